/**
 * Reading ComfyUI files: telling the three JSON forms apart and bringing them to one graph shape.
 *   UI workflow 0.4   {last_node_id, nodes: [{id, type, pos, inputs, outputs, widgets_values, ...}],
 *                      links: [[id, origin_id, origin_slot, target_id, target_slot, type], ...], groups}
 *   UI workflow 1.0   {version: 1, state, nodes (as 0.4), links: [{id, origin_id, origin_slot,
 *                      target_id, target_slot, type, parentId?}], reroutes, groups}
 *   API prompt        {"<id>": {class_type, inputs: {name: value | [source_id, slot]}, _meta: {title}}}
 * and ComfyUI's images: a PNG carries the UI workflow in a `workflow` text chunk and the API
 * prompt in `prompt`; a WebP carries them as EXIF strings "workflow:{...}" / "prompt:{...}"
 * (IFD0 Make / Model). The PNG chunk reader differs between the engine and the editor (zlib vs
 * DecompressionStream, both capped), so it is passed in; everything here is pure.
 */
import type { ComfyFormat } from './report.js';

/** The largest ComfyUI file read (bytes of JSON, or of the image carrying it). */
export const MAX_COMFY_BYTES = 64 * 2 ** 20;
/** The most ComfyUI nodes a file may hold (this app's workflows hold at most 2000 nodes). */
export const MAX_COMFY_NODES = 5000;
export const MAX_COMFY_LINKS = 20_000;

export class ComfyReadError extends Error {}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface CInput {
  name: string;
  type: string;
  link: number | null;
  /** The widget this input stands for (a widget converted to a socket). */
  widget?: string;
}
export interface COutput {
  name: string;
  type: string;
}
export interface CNode {
  id: string;
  classType: string;
  title?: string;
  pos?: [number, number];
  size?: [number, number];
  /** 0 always, 2 never (muted), 4 bypassed. */
  mode: number;
  inputs: CInput[];
  outputs: COutput[];
  /** UI format: the widget values, positional (or by name for some custom nodes). */
  widgetsValues?: unknown[] | Json;
  /** API format: the inputs that are values, by name. */
  apiValues?: Json;
  properties?: Json;
  /** The node's JSON as found (placeholders and skipped nodes keep it). */
  raw: Json;
}
export interface CLink {
  id: number;
  from: string;
  fromSlot: number;
  to: string;
  toSlot: number;
  type: string;
}
export interface CGroup {
  title: string;
  bounding: [number, number, number, number];
  color?: string;
}

export interface CGraph {
  format: ComfyFormat;
  nodes: CNode[];
  links: Map<number, CLink>;
  groups: CGroup[];
  /** Types that name a subgraph definition (v1.0 `definitions.subgraphs`). */
  subgraphs: Set<string>;
  /** The document's own version field. */
  version?: unknown;
  problems: string[];
}

/** Which ComfyUI form a parsed JSON document is, or null when it is none (e.g. our own format). */
export function comfyFormatOf(doc: unknown): ComfyFormat | null {
  if (!isObj(doc)) return null;
  if ('format' in doc && typeof doc.format === 'string') return null;
  if (Array.isArray(doc.nodes) && (Array.isArray(doc.links) || isObj(doc.state) || 'last_node_id' in doc || doc.version === 1)) {
    return doc.version === 1 ? 'ui-1.0' : 'ui-0.4';
  }
  if (isApiPrompt(doc)) return 'api';
  if (isObj(doc.prompt) && isApiPrompt(doc.prompt)) return 'api';
  return null;
}

function isApiPrompt(doc: Json): boolean {
  const vals = Object.values(doc);
  return vals.length > 0 && vals.every((v) => isObj(v) && typeof v.class_type === 'string');
}

/**
 * JSON.parse, except that integers past 2^53 (ComfyUI seeds go to 2^64 - 1) are read as decimal
 * strings instead of being rounded. Only number tokens outside strings are touched.
 */
export function parseJsonExact(text: string): unknown {
  let out = '';
  let last = 0;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inStr) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inStr = false;
      continue;
    }
    if (c === 0x22) {
      inStr = true;
      continue;
    }
    if ((c >= 0x30 && c <= 0x39) || c === 0x2d) {
      let j = i + (c === 0x2d ? 1 : 0);
      while (j < text.length && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x39) j++;
      const next = text.charCodeAt(j);
      const isInt = next !== 0x2e && next !== 0x65 && next !== 0x45;
      const digits = j - i - (c === 0x2d ? 1 : 0);
      if (isInt && c !== 0x2d && digits >= 16 && BigInt(text.slice(i, j)) > BigInt(Number.MAX_SAFE_INTEGER)) {
        out += `${text.slice(last, i)}"${text.slice(i, j)}"`;
        last = j;
      }
      i = j - 1;
    }
  }
  return JSON.parse(last === 0 ? text : out + text.slice(last));
}

const vec2 = (v: unknown): [number, number] | undefined => {
  if (Array.isArray(v) && v.length >= 2 && typeof v[0] === 'number' && typeof v[1] === 'number') return [v[0], v[1]];
  if (isObj(v) && typeof v[0] === 'number' && typeof v[1] === 'number') return [v[0], v[1]];
  return undefined;
};
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
const typeName = (t: unknown): string => (typeof t === 'string' ? t : Array.isArray(t) ? 'COMBO' : t === undefined ? '*' : String(t));

/** Brings a UI (0.4 / 1.0) or API document to one graph shape; entries it cannot read become problems. */
export function normalizeComfy(doc: unknown): CGraph {
  const format = comfyFormatOf(doc);
  if (!format) throw new ComfyReadError('this is not a ComfyUI workflow or API prompt');
  const d = doc as Json;
  return format === 'api' ? normalizeApi(isObj(d.prompt) && isApiPrompt(d.prompt) ? d.prompt : d) : normalizeUi(d, format);
}

function normalizeUi(d: Json, format: ComfyFormat): CGraph {
  const problems: string[] = [];
  const rawNodes = d.nodes as unknown[];
  if (rawNodes.length > MAX_COMFY_NODES)
    throw new ComfyReadError(`the ComfyUI workflow has ${rawNodes.length} nodes; at most ${MAX_COMFY_NODES} are read (this app's workflows hold at most 2000)`);
  const rawLinks = Array.isArray(d.links) ? d.links : [];
  if (rawLinks.length > MAX_COMFY_LINKS) throw new ComfyReadError(`the ComfyUI workflow has ${rawLinks.length} links; at most ${MAX_COMFY_LINKS} are read`);
  const nodes: CNode[] = [];
  const seen = new Set<string>();
  rawNodes.forEach((n, i) => {
    if (!isObj(n)) return void problems.push(`nodes[${i}] is not an object; skipped`);
    const id = str(n.id);
    if (id === undefined) return void problems.push(`nodes[${i}] has no id; skipped`);
    if (typeof n.type !== 'string' || !n.type) return void problems.push(`node ${id} has no type; skipped`);
    if (seen.has(id)) return void problems.push(`node id ${id} is used twice; the second (${n.type}) is skipped`);
    seen.add(id);
    const inputs: CInput[] = (Array.isArray(n.inputs) ? n.inputs : []).map((inp, k) => {
      const o = isObj(inp) ? inp : {};
      const widget = isObj(o.widget) && typeof o.widget.name === 'string' ? o.widget.name : undefined;
      const link = typeof o.link === 'number' ? o.link : null;
      return { name: typeof o.name === 'string' ? o.name : `input_${k}`, type: typeName(o.type), link, ...(widget ? { widget } : {}) };
    });
    const outputs: COutput[] = (Array.isArray(n.outputs) ? n.outputs : []).map((o, k) => {
      const oo = isObj(o) ? o : {};
      return { name: typeof oo.name === 'string' ? oo.name : `output_${k}`, type: typeName(oo.type) };
    });
    const wv = n.widgets_values;
    nodes.push({
      id,
      classType: n.type,
      mode: typeof n.mode === 'number' ? n.mode : 0,
      inputs,
      outputs,
      raw: n,
      ...(typeof n.title === 'string' ? { title: n.title } : {}),
      ...(vec2(n.pos) ? { pos: vec2(n.pos) } : {}),
      ...(vec2(n.size) ? { size: vec2(n.size) } : {}),
      ...(Array.isArray(wv) || isObj(wv) ? { widgetsValues: wv } : {}),
      ...(isObj(n.properties) ? { properties: n.properties } : {}),
    });
  });
  const links = new Map<number, CLink>();
  rawLinks.forEach((l, i) => {
    let link: CLink | null = null;
    if (Array.isArray(l) && l.length >= 5) {
      const [id, from, fromSlot, to, toSlot, type] = l as unknown[];
      if (
        typeof id === 'number' &&
        str(from) !== undefined &&
        str(to) !== undefined &&
        Number.isInteger(Number(fromSlot)) &&
        Number.isInteger(Number(toSlot))
      ) {
        link = { id, from: str(from)!, fromSlot: Number(fromSlot), to: str(to)!, toSlot: Number(toSlot), type: typeName(type) };
      }
    } else if (isObj(l) && typeof l.id === 'number' && str(l.origin_id) !== undefined && str(l.target_id) !== undefined) {
      link = {
        id: l.id,
        from: str(l.origin_id)!,
        fromSlot: Number(l.origin_slot),
        to: str(l.target_id)!,
        toSlot: Number(l.target_slot),
        type: typeName(l.type),
      };
      if (!Number.isInteger(link.fromSlot) || !Number.isInteger(link.toSlot)) link = null;
    }
    if (!link) return void problems.push(`links[${i}] is not a valid link; skipped`);
    if (links.has(link.id)) return void problems.push(`link id ${link.id} is used twice; the second is skipped`);
    links.set(link.id, link);
  });
  const groups: CGroup[] = [];
  for (const g of Array.isArray(d.groups) ? d.groups : []) {
    if (!isObj(g) || !Array.isArray(g.bounding) || g.bounding.length !== 4 || !g.bounding.every((x) => typeof x === 'number')) continue;
    groups.push({
      title: typeof g.title === 'string' ? g.title : 'Group',
      bounding: g.bounding as CGroup['bounding'],
      ...(typeof g.color === 'string' ? { color: g.color } : {}),
    });
  }
  const subgraphs = new Set<string>();
  const defs = isObj(d.definitions) && Array.isArray(d.definitions.subgraphs) ? d.definitions.subgraphs : [];
  for (const s of defs) if (isObj(s) && typeof s.id === 'string') subgraphs.add(s.id);
  return { format, nodes, links, groups, subgraphs, version: d.version, problems };
}

/** An API input value that is a link: [source id, output slot]. */
export function apiLink(v: unknown): { node: string; slot: number } | null {
  if (!Array.isArray(v) || v.length !== 2) return null;
  const [n, s] = v as unknown[];
  if ((typeof n !== 'string' && typeof n !== 'number') || typeof s !== 'number' || !Number.isInteger(s) || s < 0) return null;
  return { node: String(n), slot: s };
}

function normalizeApi(d: Json): CGraph {
  const problems: string[] = [];
  const entries = Object.entries(d);
  if (entries.length > MAX_COMFY_NODES)
    throw new ComfyReadError(`the ComfyUI prompt has ${entries.length} nodes; at most ${MAX_COMFY_NODES} are read (this app's workflows hold at most 2000)`);
  const nodes: CNode[] = [];
  const links = new Map<number, CLink>();
  let nextLink = 1;
  for (const [id, n] of entries) {
    const o = n as Json;
    const inputs: CInput[] = [];
    const values: Json = {};
    for (const [name, v] of Object.entries(isObj(o.inputs) ? o.inputs : {})) {
      const l = apiLink(v);
      if (l) {
        const linkId = nextLink++;
        links.set(linkId, { id: linkId, from: l.node, fromSlot: l.slot, to: id, toSlot: inputs.length, type: '*' });
        inputs.push({ name, type: '*', link: linkId });
      } else values[name] = v;
    }
    const meta = isObj(o._meta) ? o._meta : {};
    nodes.push({
      id,
      classType: o.class_type as string,
      mode: 0,
      inputs,
      outputs: [],
      apiValues: values,
      raw: o,
      ...(typeof meta.title === 'string' ? { title: meta.title } : {}),
      ...(isObj(meta.ipadapter_studio) ? { properties: { 'ipadapter-studio': meta.ipadapter_studio } } : {}),
    });
  }
  return { format: 'api', nodes, links, groups: [], subgraphs: new Set(), problems };
}

// ---- bytes: JSON text, PNG and WebP carriers ----------------------------------------------

export const isWebp = (b: Uint8Array) =>
  b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50;

/**
 * The "key:value" strings of a WebP's EXIF chunk (ComfyUI's SaveAnimatedWEBP writes
 * "workflow:{json}" and "prompt:{json}" into IFD0), by key. A damaged chunk gives what was readable.
 */
export function webpExifStrings(b: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isWebp(b)) return out;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 12;
  const end = Math.min(b.length, 8 + dv.getUint32(4, true));
  while (off + 8 <= end) {
    const fourcc = String.fromCharCode(b[off]!, b[off + 1]!, b[off + 2]!, b[off + 3]!);
    const size = dv.getUint32(off + 4, true);
    const start = off + 8;
    if (start + size > b.length) break;
    if (fourcc === 'EXIF') Object.assign(out, tiffStrings(b.subarray(start, start + size)));
    off = start + size + (size & 1);
  }
  return out;
}

function tiffStrings(t0: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  // "Exif\0\0" before the TIFF header in some writers.
  const t = t0.length >= 6 && t0[0] === 0x45 && t0[1] === 0x78 && t0[2] === 0x69 && t0[3] === 0x66 ? t0.subarray(6) : t0;
  if (t.length < 8) return out;
  const le = t[0] === 0x49 && t[1] === 0x49;
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return out;
  const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
  const u16 = (o: number) => dv.getUint16(o, le);
  const u32 = (o: number) => dv.getUint32(o, le);
  const ifd = u32(4);
  if (ifd + 2 > t.length) return out;
  const count = Math.min(u16(ifd), 512);
  const decoder = new TextDecoder();
  for (let k = 0; k < count; k++) {
    const e = ifd + 2 + k * 12;
    if (e + 12 > t.length) break;
    const type = u16(e + 2);
    const n = u32(e + 4);
    if (type !== 2 && type !== 7) continue; // ASCII or UNDEFINED
    const at = n <= 4 ? e + 8 : u32(e + 8);
    if (at + n > t.length) continue;
    let s = decoder.decode(t.subarray(at, at + n));
    s = s.replace(/\0+$/, '');
    const colon = s.indexOf(':');
    if (colon > 0) out[s.slice(0, colon)] = s.slice(colon + 1);
  }
  return out;
}

export interface ComfyTexts {
  /** The UI workflow JSON text (PNG `workflow` chunk / WebP EXIF), if any. */
  workflow?: string;
  /** The API prompt JSON text (PNG `prompt` chunk / WebP EXIF), if any. */
  prompt?: string;
}

/**
 * The ComfyUI document inside an image's texts: the UI workflow when it parses (it has the
 * layout), else the API prompt. Null when neither is there.
 */
export function comfyDocFromTexts(t: ComfyTexts): { doc: unknown; from: 'workflow' | 'prompt' } | null {
  const tryParse = (s: string | undefined) => {
    if (s === undefined) return null;
    try {
      const doc = parseJsonExact(s);
      return comfyFormatOf(doc) ? doc : null;
    } catch {
      return null;
    }
  };
  const wf = tryParse(t.workflow);
  if (wf) return { doc: wf, from: 'workflow' };
  const pr = tryParse(t.prompt);
  if (pr) return { doc: pr, from: 'prompt' };
  if (t.workflow !== undefined || t.prompt !== undefined)
    throw new ComfyReadError('the image carries ComfyUI metadata, but neither its workflow nor its prompt is a readable ComfyUI document');
  return null;
}
