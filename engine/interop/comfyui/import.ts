/** engine/interop/comfyui/: ComfyUI workflows in and out (read, defs, import, node-map, models, layers, report, export); file.ts for the engine side. */
/**
 * ComfyUI -> our workflow. `importComfyUI(doc, { specs, models })` takes a parsed ComfyUI
 * document (UI workflow 0.4 / 1.0 or API prompt; read.ts tells them apart) and gives our
 * workflow and the import report (report.ts):
 *   - widgets_values are read positionally in the ComfyUI node's input order (defs.ts), the
 *     frontend's control_after_generate / upload values included where they are; a list of the
 *     wrong length is read as far as it fits and reported;
 *   - the canvas tools come in as ours, so the graph looks like ComfyUI's and engine/graph-modes.ts
 *     runs it as ComfyUI does: a Reroute becomes a reroute node (one carrying a bundle of ours, an
 *     IPADAPTER pipeline, or a primitive's value, is resolved into what it carries), a PrimitiveNode
 *     a primitive feeding the params it fed (those turned into inputs; where no param of ours has
 *     the widget's name its value is written in; PrimitiveInt / Float / String / Boolean alike), a bypassed (mode 4) / muted (mode 2) node is
 *     translated and gets mode "bypass" / "mute", a Note / MarkdownNote a note node;
 *   - each node goes through its translator (node-map.ts); one without a counterpart becomes a
 *     placeholder (nodes/comfyui-node.ts) that keeps its values and links;
 *   - params are checked against our node specs (clamped to their ranges, enums and integers),
 *     model names matched in the models folder listing (models.ts), images checked when a
 *     checker is given;
 *   - positions, titles and groups are kept (node `ui`, `meta.groups`), and so are the ids,
 *     positions and params an export from here stored in the ComfyUI nodes (export.ts), so a
 *     round trip gives the same graph.
 * Fatal problems (not a ComfyUI document, too large) throw ComfyReadError with a sentence.
 * Pure: the editor runs it in the page.
 */
import type { ModelKind, NodeSpec, ParamSpec, ParamValue } from '../../../nodes/spec.js';
import type { Workflow, WorkflowEdge, WorkflowNode } from '../../protocol.js';
import { WORKFLOW_FORMAT } from '../../protocol.js';
import { WORKFLOW_VERSION } from '../../workflow.js';
import {
  BACKEND_PRIMITIVES,
  COMFY_DEFS,
  FRONTEND_ONLY,
  SEED_CONTROLS,
  UNSUPPORTED_REASONS,
  widgetSignature,
  widgetSlots,
  type InputDef,
  type NodeDefC,
} from './defs.js';
import { matchModel, normalizeModelName, type ModelPattern } from './models.js';
import { NODE_MAP } from './node-map.js';
import { ComfyReadError, normalizeComfy, type CGraph, type CLink, type CNode } from './read.js';
import type { ImportReport, ModelReport, NodeReport } from './report.js';
import type { AddOptions, PortVal, TranslateContext, Value } from './types.js';

export { ComfyReadError } from './read.js';

/** Our workflow format's limits (engine/protocol.ts WorkflowSchema, ParamValue). */
const MAX_NODES = 2000;
const MAX_EDGES = 10_000;
const MAX_STRING = 100_000;
/** The placeholder's node type (nodes/comfyui-node.ts). */
export const PLACEHOLDER_TYPE = 'comfyui-node';
/** Where an export from here keeps our ids, positions and params in a ComfyUI node (properties, or the API's _meta). */
export const STUDIO_KEY = 'ipadapter-studio';

export interface ImportOptions {
  /** Our node specs (engine.nodeSpecs() / the editor's). */
  specs: readonly NodeSpec[];
  /** The models folder listing by kind (engine.listModels()); absent: names are kept as they are. */
  models?: Partial<Record<ModelKind, string[]>>;
  /** Whether an image param's file exists (the CLI checks next to the file); absent: not checked. */
  imageExists?: (name: string) => boolean;
}

export interface ImportResult {
  workflow: Workflow;
  report: ImportReport;
}

class Unsupported extends Error {}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Our port type for a ComfyUI socket type (placeholders keep ComfyUI's where we have none). */
const PORT_TYPE_OF: Record<string, string> = { IPADAPTER: 'IP_ADAPTER', EMBEDS: 'IMAGE_EMBEDS', CLIP_VISION_OUTPUT: 'IMAGE_EMBEDS' };
const portTypeOf = (t: string) => PORT_TYPE_OF[t] ?? t;

/** The stored export data of a ComfyUI node: our ids, positions and params by role. */
export interface StudioProps {
  ids?: Record<string, string>;
  pos?: Record<string, [number, number]>;
  params?: Record<string, Record<string, ParamValue>>;
  types?: Record<string, string>;
  title?: Record<string, string>;
  /** The cards drawn collapsed here (ComfyUI's flags.collapsed says it for the whole node). */
  collapsed?: Record<string, boolean>;
  /** widgetSignature of the node's ComfyUI widgets when it was exported. */
  widgets?: string;
  /** Our links into these nodes that the ComfyUI node has no input for: [role, port, from node, from port]. */
  links?: [string, string, string, string][];
}
/** The class an export from here gives a node ComfyUI has no counterpart for: ComfyUI keeps it (a missing node), and an import restores it. */
export const STUDIO_CLASS_PREFIX = 'IPAdapterStudio:';
const studioOf = (n: CNode): StudioProps => {
  const p = n.properties?.[STUDIO_KEY];
  return isObj(p) ? (p as StudioProps) : {};
};

const ROLE_OFFSETS: Record<string, [number, number]> = {
  encode: [-300, 0],
  proj: [-300, 170],
  neg_encode: [-600, 0],
  neg_proj: [-600, 170],
  vision: [-600, 340],
  neg: [0, 200],
};

class Importer {
  readonly nodes: WorkflowNode[] = [];
  readonly edges: WorkflowEdge[] = [];
  readonly reports = new Map<string, NodeReport>();
  readonly modelReports: ModelReport[] = [];
  readonly missingImages: { node: string; image: string }[] = [];
  readonly warnings: string[];
  private readonly specs: Map<string, NodeSpec>;
  /** Our canvas-only node types (nodes/spec.ts `virtual`), where this build has them. */
  private readonly canvasType: Partial<Record<'reroute' | 'note' | 'primitive', string>>;
  private readonly byId = new Map<string, CNode>();
  private readonly linkByTarget = new Map<string, Map<string, CLink>>();
  private readonly outputs = new Map<string, Value[]>();
  private readonly active = new Set<string>();
  private readonly taken = new Set<string>();
  /** Ids an export from here stored and this import gave back. */
  private readonly restored = new Set<string>();
  private readonly widgetCache = new Map<string, Map<string, unknown>>();
  private consumerIndex: Map<string, { node: CNode; input: string }[]> | null = null;
  /** Nodes that do not run in ComfyUI either, kept as they were. */
  readonly skipped: Json[] = [];
  readonly notes: { title?: string; text: string }[] = [];
  /** API prompts have no positions: titles are kept by our node id. */
  readonly titles: Record<string, string> = {};

  constructor(
    readonly g: CGraph,
    private readonly opts: ImportOptions,
  ) {
    this.specs = new Map(opts.specs.map((s) => [s.type, s]));
    this.canvasType = Object.fromEntries(opts.specs.filter((s) => s.virtual).map((s) => [s.virtual, s.type]));
    this.warnings = [...g.problems];
    for (const n of g.nodes) this.byId.set(n.id, n);
    for (const l of g.links.values()) {
      const to = this.byId.get(l.to);
      if (!to) continue;
      const inp = to.inputs[l.toSlot];
      if (!inp) {
        this.warnings.push(`link ${l.id} goes to input ${l.toSlot} of node ${l.to}, which has no such input; ignored`);
        continue;
      }
      if (inp.link !== l.id && g.format !== 'api') continue; // a stale link: the node names another
      const name = inp.widget ?? inp.name;
      if (!this.linkByTarget.has(l.to)) this.linkByTarget.set(l.to, new Map());
      this.linkByTarget.get(l.to)!.set(name, l);
    }
    for (const n of g.nodes) {
      for (const inp of n.inputs) {
        if (inp.link !== null && !g.links.has(inp.link))
          this.warnings.push(
            `node ${n.id} (${n.classType}) input "${inp.widget ?? inp.name}" names link ${inp.link}, which is not in the file; left unconnected`,
          );
      }
    }
  }

  // ---- the ComfyUI side ----

  private report(n: CNode): NodeReport {
    let r = this.reports.get(n.id);
    if (!r) {
      const named = n.title && n.title !== this.defOf(n)?.display && n.title !== n.classType;
      r = { id: n.id, classType: n.classType, ...(named ? { title: n.title } : {}), status: 'mapped', notes: [], nodes: [] };
      this.reports.set(n.id, r);
    }
    return r;
  }

  private linkOf(n: CNode, name: string): CLink | undefined {
    return this.linkByTarget.get(n.id)?.get(name);
  }

  /** The value at output `slot` of node `id`, through reroutes, bypassed nodes and primitives. */
  private source(id: string, slot: number, seen = new Set<string>()): Value {
    const n = this.byId.get(id);
    if (!n) return { kind: 'none', why: `node ${id}, which is not in the file` };
    if (seen.has(id)) return { kind: 'none', why: `a loop of reroutes or bypassed nodes through ${id}` };
    seen.add(id);
    if (n.classType === FRONTEND_ONLY.reroute) {
      const l = n.inputs[0]?.link != null ? this.g.links.get(n.inputs[0].link) : undefined;
      return this.reroute(n, l ? this.source(l.from, l.fromSlot, seen) : { kind: 'none', why: `reroute ${id}, which has no input` });
    }
    if (n.classType === FRONTEND_ONLY.primitive) {
      // Its value goes into the widgets it feeds; then it becomes a primitive of ours (primitive()).
      const v = Array.isArray(n.widgetsValues) ? n.widgetsValues[0] : undefined;
      const control = Array.isArray(n.widgetsValues) ? n.widgetsValues[1] : undefined;
      return {
        kind: 'const',
        value: v,
        from: n.id,
        ...(typeof control === 'string' && (SEED_CONTROLS as readonly string[]).includes(control) ? { control } : {}),
      };
    }
    return this.translate(n)[slot] ?? { kind: 'none', why: `output ${slot} of node ${id}` };
  }

  /** ComfyUI Reroute `n` carrying `up`: a reroute node of ours when it carries one port, else resolved into what it carries. */
  private reroute(n: CNode, up: Value): Value {
    const made = this.outputs.get(n.id)?.[0];
    if (made) return made;
    if (up.kind !== 'port' || !this.canvasType.reroute) {
      this.markResolved(
        n,
        `a reroute: resolved into the links it carries (${up.kind === 'port' ? 'this build has no reroute node' : 'it carries no single socket of ours'})`,
      );
      return up;
    }
    const r = this.report(n);
    const id = this.allocId(n, '');
    const ui = this.uiFor(n, '', id);
    this.nodes.push({ id, type: this.canvasType.reroute, params: {}, ...(ui ? { ui } : {}) });
    this.edge(up, id, 'in');
    r.nodes.push(id);
    r.notes.push('a reroute: a Reroute node here');
    const out: PortVal = { kind: 'port', node: id, port: 'out', type: up.type };
    this.outputs.set(n.id, [out]);
    return out;
  }

  private markResolved(n: CNode, note: string): void {
    const r = this.report(n);
    if (!r.notes.length) r.notes.push(note);
  }

  skip(n: CNode, note: string): void {
    const r = this.report(n);
    if (r.status !== 'skipped') {
      r.status = 'skipped';
      r.notes = [note];
      this.skipped.push(n.raw);
    }
  }

  private defOf(n: CNode): NodeDefC | undefined {
    return COMFY_DEFS.get(n.classType);
  }

  /** Widget values by name: positional in a UI workflow (with the frontend's extra values), named in an API prompt. */
  private widgets(n: CNode): Map<string, unknown> {
    const cached = this.widgetCache.get(n.id);
    if (cached) return cached;
    const out = new Map<string, unknown>();
    this.widgetCache.set(n.id, out);
    const def = this.defOf(n);
    const r = this.report(n);
    if (n.apiValues) {
      for (const [k, v] of Object.entries(n.apiValues)) out.set(k, v);
      return out;
    }
    const wv = n.widgetsValues;
    if (!def) return out;
    const slots = widgetSlots(def);
    if (isObj(wv)) {
      for (const sl of slots) if (sl.name in wv) out.set(sl.name, wv[sl.name]);
      return out;
    }
    const vals = Array.isArray(wv) ? wv : [];
    const declared = slots.filter((x) => !x.pseudo).length;
    // How many of the frontend's own values the list holds (none from some frontends and from hand-written files).
    let extra = Math.max(0, vals.length - declared);
    let i = 0;
    const missing: string[] = [];
    for (const sl of slots) {
      if (sl.pseudo) {
        const v = vals[i];
        const fits = sl.pseudo === 'control_after_generate' ? typeof v === 'string' && (SEED_CONTROLS as readonly string[]).includes(v) : typeof v === 'string';
        if (extra > 0 && fits) {
          if (sl.pseudo === 'control_after_generate') out.set(sl.name, v);
          i++;
          extra--;
        }
        continue;
      }
      if (i < vals.length) out.set(sl.name, vals[i++]);
      else missing.push(sl.name);
    }
    if (missing.length) {
      this.approxOn(
        r,
        `widgets_values has ${vals.length} value${vals.length === 1 ? '' : 's'} for ${declared} widgets; ${missing.join(', ')} take${missing.length === 1 ? 's' : ''} ComfyUI's default`,
      );
    }
    if (i < vals.length)
      this.approxOn(
        r,
        `widgets_values has ${vals.length - i} value${vals.length - i === 1 ? '' : 's'} more than ${def.classType}'s ${declared} widgets (a newer version of the node?); the extra ${vals.length - i === 1 ? 'one is' : 'ones are'} ignored: ${JSON.stringify(vals.slice(i)).slice(0, 200)}`,
      );
    return out;
  }

  private approxOn(r: NodeReport, note: string): void {
    if (r.status === 'mapped') r.status = 'approximated';
    if (!r.notes.includes(note)) r.notes.push(note);
  }

  /** Consumers of output `slot` of `n`, after reroutes. */
  consumers(n: CNode, slot: number): { node: CNode; input: string }[] {
    if (!this.consumerIndex) {
      const idx = new Map<string, { node: CNode; input: string }[]>();
      const follow = (l: CLink, seen: Set<string>): { id: string; slot: number } | null => {
        const src = this.byId.get(l.from);
        if (!src || src.classType !== FRONTEND_ONLY.reroute) return { id: l.from, slot: l.fromSlot };
        if (seen.has(src.id)) return null;
        seen.add(src.id);
        const up = src.inputs[0]?.link != null ? this.g.links.get(src.inputs[0].link) : undefined;
        return up ? follow(up, seen) : null;
      };
      for (const [to, byName] of this.linkByTarget) {
        const node = this.byId.get(to);
        if (!node || node.classType === FRONTEND_ONLY.reroute) continue;
        for (const [input, l] of byName) {
          const src = follow(l, new Set());
          if (!src) continue;
          const key = `${src.id}\0${src.slot}`;
          if (!idx.has(key)) idx.set(key, []);
          idx.get(key)!.push({ node, input });
        }
      }
      this.consumerIndex = idx;
    }
    return this.consumerIndex.get(`${n.id}\0${slot}`) ?? [];
  }

  // ---- translation ----

  translate(n: CNode): Value[] {
    const done = this.outputs.get(n.id);
    if (done) return done;
    if (this.active.has(n.id)) {
      this.warnings.push(`node ${n.id} (${n.classType}) is part of a cycle; the link that closes it is left out`);
      return [];
    }
    this.active.add(n.id);
    const r = this.report(n);
    let out: Value[];
    const made: string[] = [];
    try {
      if ((FRONTEND_ONLY.notes as readonly string[]).includes(n.classType)) {
        const text = Array.isArray(n.widgetsValues) ? String(n.widgetsValues[0] ?? '') : '';
        if (this.canvasType.note) {
          this.addNode(n, r, made, '', this.canvasType.note!, { params: { text } });
          r.notes.push('a note: a Note node here');
        } else {
          this.notes.push({ ...(n.title ? { title: n.title } : {}), text });
          this.skip(n, "a note: its text is kept in the workflow's meta (comfyui.notes)");
        }
        out = [];
      } else {
        const ctx = this.context(n, r, made);
        if (n.classType.startsWith(STUDIO_CLASS_PREFIX)) out = this.studioNode(ctx, n.classType.slice(STUDIO_CLASS_PREFIX.length));
        else {
          const tr = NODE_MAP[n.classType];
          if (!tr) throw new Unsupported(this.unsupportedReason(n));
          out = tr(ctx);
          const def = this.defOf(n);
          for (const name of this.linkByTarget.get(n.id)?.keys() ?? []) {
            if (def && !def.inputs.some((i) => i.name === name))
              this.approxOn(r, `input "${name}" is not an input of ${n.classType} as this app knows it; its link is ignored`);
          }
        }
      }
    } catch (e) {
      // A translator's bug must not lose the node either: it becomes a placeholder that says so.
      const reason = e instanceof Unsupported ? e.message : `could not be converted (${(e as Error).message})`;
      this.rollback(made);
      out = this.placeholder(n, r, reason);
    }
    // Bypassed / muted in ComfyUI: every node it became is bypassed / muted here (engine/graph-modes.ts passes and mutes as ComfyUI does).
    const mode = n.mode === 4 ? 'bypass' : n.mode === 2 ? 'mute' : undefined;
    if (mode && r.nodes.length) {
      for (const x of this.nodes) if (r.nodes.includes(x.id)) x.mode = mode;
      r.notes.push(
        mode === 'bypass'
          ? 'bypassed in ComfyUI: bypassed here (its inputs pass through, as they do there)'
          : 'muted in ComfyUI: muted here (it and what needs it do not run)',
      );
    }
    this.active.delete(n.id);
    this.outputs.set(n.id, out);
    return out;
  }

  private unsupportedReason(n: CNode): string {
    if (this.g.subgraphs.has(n.classType)) return 'a subgraph: unpack it in ComfyUI (right-click, "Unpack Subgraph") and import again';
    if (/^workflow[>/]/.test(n.classType)) return 'a group node: convert it back to nodes in ComfyUI and import again';
    return UNSUPPORTED_REASONS[n.classType] ?? `no equivalent node here (a custom node, or a ComfyUI node this app does not have)`;
  }

  private rollback(ids: string[]): void {
    if (!ids.length) return;
    const gone = new Set(ids);
    for (let i = this.nodes.length - 1; i >= 0; i--) if (gone.has(this.nodes[i]!.id)) this.nodes.splice(i, 1);
    for (let i = this.edges.length - 1; i >= 0; i--) if (gone.has(this.edges[i]!.to.node) || gone.has(this.edges[i]!.from.node)) this.edges.splice(i, 1);
    for (const id of ids) this.taken.delete(id);
  }

  private allocId(n: CNode, role: string): string {
    const stored = studioOf(n).ids?.[role];
    const safe = (s: string) => s.replace(/[^\w.-]/g, '_').slice(0, 120);
    const restore = !!stored && /^[\w.-]{1,128}$/.test(stored) && !this.taken.has(stored);
    if (restore) this.restored.add(stored);
    let id = restore ? stored : `c${safe(n.id)}${role ? `_${role}` : ''}`;
    for (let k = 2; this.taken.has(id); k++) id = `c${safe(n.id)}${role ? `_${role}` : ''}_${k}`;
    this.taken.add(id);
    return id;
  }

  private uiFor(n: CNode, role: string, id: string): WorkflowNode['ui'] | undefined {
    const st = studioOf(n);
    const stored = st.pos?.[role];
    const title = st.title?.[role] ?? (role === '' && n.title && n.title !== this.defOf(n)?.display && n.title !== n.classType ? n.title : undefined);
    // Exported from here without a position (an API prompt's nodes): none again.
    if ((!n.pos && !stored) || (st.ids?.[role] !== undefined && !stored)) {
      if (title) this.titles[id] = title;
      return undefined;
    }
    let x: number;
    let y: number;
    if (stored && typeof stored[0] === 'number' && typeof stored[1] === 'number') [x, y] = stored;
    else {
      const [dx, dy] = ROLE_OFFSETS[role] ?? [0, 0];
      x = Math.round(n.pos![0] + dx);
      y = Math.round(n.pos![1] + dy);
    }
    // Collapsed in ComfyUI (flags.collapsed): the main card is drawn collapsed here too.
    const flags = n.raw.flags;
    const collapsed = st.collapsed
      ? st.collapsed[role] === true
      : role === '' && typeof flags === 'object' && flags !== null && (flags as Record<string, unknown>).collapsed === true;
    return { x, y, ...(title ? { title } : {}), ...(collapsed ? { collapsed: true } : {}) };
  }

  /** Our node for ComfyUI node `n`: params checked against the spec, models matched, images checked. */
  private addNode(n: CNode, r: NodeReport, made: string[], role: string, type: string, o: AddOptions = {}): string {
    const spec = this.specs.get(type);
    if (!spec) throw new Unsupported(`this build has no "${type}" node to map it to`);
    const id = this.allocId(n, role);
    made.push(id);
    const st = studioOf(n);
    const stored = st.types?.[role] === undefined || st.types[role] === type ? (st.params?.[role] ?? {}) : {};
    const params: Record<string, ParamValue> = {};
    const fromComfy = o.params ?? {};
    // Widgets as exported from here: our params as they were (ComfyUI's view of them may be rounded or narrower).
    const unchanged = this.widgetsUnchanged(n);
    for (const p of spec.params) {
      let v: unknown;
      let given = false;
      if (unchanged && p.name in stored) v = stored[p.name];
      else if (p.name in fromComfy && fromComfy[p.name] !== undefined) {
        v = fromComfy[p.name];
        given = true;
      } else if (p.name in stored) v = stored[p.name];
      else if (o.derived && p.name in o.derived) v = o.derived[p.name];
      else if (p.kind === 'file' && o.patterns?.[p.name]) v = '';
      else {
        params[p.name] = p.default;
        continue;
      } // written out, as the editor saves them
      const checked = this.checkParam(r, p, v, given, id, o.patterns?.[p.name]);
      if (checked !== undefined) params[p.name] = checked;
    }
    const ui = this.uiFor(n, role, id);
    this.nodes.push({ id, type, params, ...(ui ? { ui } : {}) });
    r.nodes.push(id);
    return id;
  }

  private widgetsUnchanged(n: CNode): boolean {
    const st = studioOf(n);
    const def = this.defOf(n);
    if (st.widgets === undefined || !def) return false;
    const w = this.widgets(n);
    return widgetSignature(def, (name) => (w.has(name) ? w.get(name) : def.inputs.find((i) => i.name === name)?.default)) === st.widgets;
  }

  /** A node of ours that an export from here kept in the ComfyUI file under STUDIO_CLASS_PREFIX: restored as it was. */
  private studioNode(c: TranslateContext, type: string): Value[] {
    const spec = this.specs.get(type);
    if (!spec) c.unsupported(`a node of IP-Adapter Studio ("${type}") that this build does not have`);
    const raw = c.node.apiValues ?? (isObj(c.node.widgetsValues) ? c.node.widgetsValues : {});
    const params: Record<string, unknown> = {};
    for (const p of spec.params) if (p.name in raw) params[p.name] = raw[p.name];
    const id = c.add('', type, { params });
    for (const p of spec.inputs) c.connect(c.input(p.name), id, p.name);
    c.info('a node of IP-Adapter Studio that ComfyUI does not have, kept in the file by an export from here');
    return spec.outputs.map((o) => c.port(id, o.name));
  }

  /** A param value fitted to its spec; each change is reported. Undefined leaves the spec's default. */
  private checkParam(r: NodeReport, p: ParamSpec, v: unknown, fromComfy: boolean, id: string, pattern?: ModelPattern): ParamValue | undefined {
    const say = (note: string) => this.approxOn(r, `${p.name}: ${note}`);
    switch (p.kind) {
      case 'number': {
        let x = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : NaN;
        if (p.widget === 'seed' && typeof v === 'string' && /^\d+$/.test(v) && !Number.isSafeInteger(Number(v))) {
          return v; // a seed past 2^53, kept exact as a decimal string
        }
        if (typeof v === 'boolean') x = v ? 1 : 0;
        if (!Number.isFinite(x)) {
          say(`${JSON.stringify(v)} is not a number; ${p.default} is used`);
          return p.default;
        }
        if (p.integer && !Number.isInteger(x)) {
          say(`${x} is not a whole number; ${Math.round(x)} is used`);
          x = Math.round(x);
        }
        if (p.min !== undefined && x < p.min) {
          say(`${x} is below this app's minimum ${p.min}; ${p.min} is used`);
          x = p.min;
        }
        if (p.max !== undefined && x > p.max) {
          say(`${x} is above this app's maximum ${p.max}; ${p.max} is used`);
          x = p.max;
        }
        return x;
      }
      case 'boolean':
        if (typeof v === 'boolean') return v;
        say(`${JSON.stringify(v)} is not true or false; ${p.default} is used`);
        return p.default;
      case 'enum': {
        const sv = typeof v === 'string' ? v : String(v);
        if (p.options.includes(sv)) return sv;
        if (fromComfy) say(`"${sv}" is not available here (choices: ${p.options.join(', ')}); "${p.default}" is used`);
        return p.default;
      }
      case 'file': {
        const wanted = typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
        if (!wanted && !pattern) return p.optional ? '' : wanted;
        const m = matchModel(p.modelKind, wanted, this.opts.models?.[p.modelKind], pattern);
        this.modelReports.push({
          node: id,
          param: p.name,
          kind: p.modelKind,
          wanted: normalizeModelName(wanted) || (pattern?.what ?? ''),
          used: m.value,
          how: m.how,
          note: m.note,
        });
        if (m.how === 'substituted' || m.how === 'missing') this.approxOn(r, `${p.name}: ${m.note}`);
        else if (m.how === 'renamed') r.notes.push(`${p.name}: ${m.note}`);
        return m.value;
      }
      case 'image': {
        const name = typeof v === 'string' ? v : '';
        if (name && this.opts.imageExists && !this.opts.imageExists(name)) {
          this.missingImages.push({ node: id, image: name });
          r.notes.push(`image "${name}" is not next to the workflow; choose it on the node (or put it there) before running`);
        }
        return name;
      }
      default: {
        let sv = typeof v === 'string' ? v : v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
        if (sv.length > MAX_STRING) {
          say(`a text of ${sv.length} characters is cut to ${MAX_STRING} (this app's limit for one value)`);
          sv = sv.slice(0, MAX_STRING);
        }
        return sv;
      }
    }
  }

  private edge(from: PortVal, to: string, port: string): void {
    const i = this.edges.findIndex((e) => e.to.node === to && e.to.port === port);
    if (i >= 0) this.edges.splice(i, 1);
    this.edges.push({ from: { node: from.node, port: from.port }, to: { node: to, port } });
  }

  /** The port a value gives to an input of `spec` type (a bundle gives the part the input takes). */
  private portOf(v: Value, want: string | undefined): PortVal | null {
    switch (v.kind) {
      case 'port':
        return v;
      case 'ipadapter':
        return want === 'CLIP_VISION' ? (v.clipVision ?? null) : v.adapter;
      case 'embeds':
        return v.list[0] ?? null;
      default:
        return null;
    }
  }

  private context(n: CNode, r: NodeReport, made: string[]): TranslateContext {
    const def = this.defOf(n);
    const linkValue = (name: string): Value | null => {
      const l = this.linkOf(n, name);
      return l ? this.source(l.from, l.fromSlot) : null;
    };
    return {
      node: n,
      def,
      hasType: (t) => this.specs.has(t),
      storedType: (role) => studioOf(n).types?.[role],
      input: (name) => {
        const v = linkValue(name);
        if (!v) return { kind: 'none' };
        if (v.kind === 'none' && v.why) this.approxOn(r, `input "${name}" is linked to ${v.why}; it is left unconnected`);
        return v;
      },
      linked: (name) => !!this.linkOf(n, name),
      widget: (name) => {
        if (name === 'control_after_generate') {
          // A seed fed by a primitive follows the primitive's own control widget.
          const seed = linkValue(this.linkOf(n, 'seed') ? 'seed' : 'noise_seed');
          if (seed?.kind === 'const' && seed.control) return seed.control;
        }
        const v = linkValue(name);
        if (v && v.kind === 'const') return v.value;
        const saved = this.widgets(n);
        if (v && v.kind !== 'none')
          this.approxOn(
            r,
            `widget "${name}" is fed by a node${v.kind === 'port' ? ` (${v.node})` : ''} whose value is only known when ComfyUI runs; the value saved in the file is used`,
          );
        if (saved.has(name)) return saved.get(name);
        return def?.inputs.find((i) => i.name === name)?.default;
      },
      widgetDef: (name) => def?.inputs.find((i) => i.name === name && i.widget),
      add: (role, type, o) => this.addNode(n, r, made, role, type, o),
      port: (id, port) => {
        const node = this.nodes.find((x) => x.id === id);
        const type = node ? (this.specs.get(node.type)?.outputs.find((p) => p.name === port)?.type ?? '*') : '*';
        return { kind: 'port', node: id, port, type };
      },
      connect: (v, node, port) => {
        const target = this.nodes.find((x) => x.id === node);
        const want = target ? this.specs.get(target.type)?.inputs.find((p) => p.name === port)?.type : undefined;
        const p = this.portOf(v, want);
        if (p) this.edge(p, node, port);
        else if (v.kind === 'const')
          this.approxOn(r, `input "${port}" gets a constant (${JSON.stringify(v.value)}) from primitive ${v.from}, which cannot feed a socket here`);
      },
      approx: (note) => this.approxOn(r, note),
      info: (note) => {
        if (!r.notes.includes(note)) r.notes.push(note);
      },
      unsupported: (reason) => {
        throw new Unsupported(reason);
      },
      consumers: (slot) => this.consumers(n, slot),
      skip: (note) => this.skip(n, note),
    };
  }

  /** A placeholder for an unsupported node: its values and sockets as params, its links as edges. */
  private placeholder(n: CNode, r: NodeReport, reason: string): Value[] {
    r.status = 'unsupported';
    r.notes = [reason, ...r.notes.filter((x) => x !== reason)];
    const def = this.defOf(n);
    const id = this.allocId(n, '');
    const ins: { name: string; type: string }[] = [];
    const widgets: Json = {};
    const edges: WorkflowEdge[] = [];
    const inputNames = def
      ? def.inputs
      : n.inputs.map((i): InputDef => ({ name: i.widget ?? i.name, type: i.type, ...(i.widget ? { widget: 'STRING' as const } : {}) }));
    for (const inp of inputNames) {
      const l = this.linkOf(n, inp.name);
      if (!inp.widget || l) {
        const v = l ? this.source(l.from, l.fromSlot) : { kind: 'none' as const };
        if (v.kind === 'const') {
          widgets[inp.name] = v.value;
          continue;
        }
        if (!inp.widget) ins.push({ name: inp.name, type: portTypeOf(inp.type) });
        const p = this.portOf(v, portTypeOf(inp.type));
        if (p) {
          if (inp.widget) ins.push({ name: inp.name, type: portTypeOf(p.type) });
          edges.push({ from: { node: p.node, port: p.port }, to: { node: id, port: inp.name } });
        }
      }
    }
    // Link inputs the file has but the definition does not list (a newer node version, a custom node).
    for (const i of n.inputs) {
      const name = i.widget ?? i.name;
      if (ins.some((x) => x.name === name) || name in widgets || def?.inputs.some((d) => d.name === name && d.widget)) continue;
      if (def?.inputs.some((d) => d.name === name)) continue;
      const l = this.linkOf(n, name);
      const v = l ? this.source(l.from, l.fromSlot) : null;
      if (v?.kind === 'const') {
        widgets[name] = v.value;
        continue;
      }
      ins.push({ name, type: portTypeOf(i.type) });
      const p = v ? this.portOf(v, portTypeOf(i.type)) : null;
      if (p) edges.push({ from: { node: p.node, port: p.port }, to: { node: id, port: name } });
    }
    if (n.apiValues) {
      Object.assign(widgets, n.apiValues);
    } else if (def) {
      for (const [k, v] of this.widgets(n)) if (!(k in widgets)) widgets[k] = v;
    } else if (n.widgetsValues !== undefined) {
      widgets.widgets_values = n.widgetsValues;
    }
    const outs = (n.outputs.length ? n.outputs : (def?.outputs ?? [])).map((o) => ({ name: o.name, type: portTypeOf(o.type) }));
    // API prompts do not list outputs: the slots its consumers read.
    if (!outs.length) {
      const max = Math.max(-1, ...[...this.g.links.values()].filter((l) => l.from === n.id).map((l) => l.fromSlot));
      for (let k = 0; k <= max; k++) outs.push({ name: `output_${k}`, type: '*' });
    }
    const json = (v: unknown) => {
      const t = JSON.stringify(v);
      return t.length > MAX_STRING ? JSON.stringify({ truncated: true, chars: t.length, start: t.slice(0, 1000) }) : t;
    };
    if (this.specs.has(PLACEHOLDER_TYPE)) {
      const ui = this.uiFor(n, '', id);
      const named = n.title && n.title !== def?.display && n.title !== n.classType ? n.title : '';
      let params: Record<string, ParamValue> = {
        class_type: n.classType.slice(0, 128),
        title: named.slice(0, 1000),
        reason,
        widgets: json(widgets),
        inputs: json(ins),
        outputs: json(outs),
      };
      // An API prompt exported from here has lost the sockets' types and a custom node's positional values: the stored ones are the original's.
      const st = studioOf(n);
      const stored = st.types?.[''] === PLACEHOLDER_TYPE ? st.params?.[''] : undefined;
      if (stored && stored.class_type === n.classType && this.g.format === 'api') {
        params = {
          ...params,
          ...Object.fromEntries(['title', 'widgets', 'inputs', 'outputs'].filter((k) => typeof stored[k] === 'string').map((k) => [k, stored[k]!])),
        };
        const storedOuts = placeholderOutputs(params.outputs);
        if (storedOuts.length) outs.splice(0, outs.length, ...storedOuts);
      }
      this.nodes.push({ id, type: PLACEHOLDER_TYPE, params, ...(ui ? { ui } : {}) });
      this.edges.push(...edges);
    } else {
      // A build without the placeholder node: the type itself names the ComfyUI class (validation refuses it as unknown).
      this.nodes.push({ id, type: `comfyui:${n.classType}`.slice(0, 128), params: { reason, widgets: json(widgets) } });
      this.edges.push(...edges);
    }
    r.nodes = [id];
    return outs.map((o) => ({ kind: 'port', node: id, port: o.name, type: o.type }));
  }

  /**
   * Several Apply IP-Adapter on one model run here only with one weight, window and layer set
   * (the UNet takes one λ per layer; nodes/runtime/sampler-unet.ts): ComfyUI's chains of
   * IPAdapter nodes with different weights are said before the run refuses them.
   */
  private checkAdapterChains(): void {
    const applies = this.nodes.filter((n) => n.type === 'apply-ip-adapter');
    const byId = new Map(this.nodes.map((n) => [n.id, n]));
    const upstream = (id: string): string => {
      const seen = new Set<string>();
      let cur = id;
      for (;;) {
        let e = this.edges.find((x) => x.to.node === cur && x.to.port === 'model');
        for (let k = 0; e && byId.get(e.from.node)?.type === this.canvasType.reroute && k < 100; k++) {
          const via = e.from.node;
          e = this.edges.find((x) => x.to.node === via && x.to.port === 'in');
        }
        const from = e ? byId.get(e.from.node) : undefined;
        if (!from || from.type !== 'apply-ip-adapter' || seen.has(from.id)) return cur;
        seen.add(from.id);
        cur = from.id;
      }
    };
    const groups = new Map<string, WorkflowNode[]>();
    for (const a of applies) {
      const root = upstream(a.id);
      if (!groups.has(root)) groups.set(root, []);
      groups.get(root)!.push(a);
    }
    const key = (n: WorkflowNode) =>
      JSON.stringify(['weight', 'start_at', 'end_at', 'weight_type', 'weight_composition', 'layer_weights'].map((k) => n.params[k]));
    for (const list of groups.values()) {
      if (list.length < 2 || list.every((n) => key(n) === key(list[0]!))) continue;
      const ids = list.map((n) => n.id).join(', ');
      const note = `several IP-Adapters on one model (${ids}) run here only with the same weight, start_at, end_at and layer weights (one λ per layer): the run is refused until they match`;
      this.warnings.push(note);
      for (const r of this.reports.values()) if (r.nodes.some((id) => list.some((n) => n.id === id)) && !r.notes.includes(note)) r.notes.push(note);
    }
  }

  run(): void {
    for (const n of this.g.nodes) {
      if (n.classType === FRONTEND_ONLY.reroute) this.source(n.id, 0);
      else if (n.classType !== FRONTEND_ONLY.primitive) this.translate(n);
    }
    for (const n of this.g.nodes)
      if (n.classType === FRONTEND_ONLY.primitive || (BACKEND_PRIMITIVES as readonly string[]).includes(n.classType)) this.primitive(n);
    this.restoreLinks();
    this.mergeProjections();
    this.checkAdapterChains();
  }

  /**
   * ComfyUI PrimitiveNode `p` as a primitive of ours (after the nodes it feeds are translated, with
   * its value in their params): wired to each param of ours named as the widget it feeds, that param
   * turned into an input (`ui.inputs`). A widget no param of ours takes by name (a translator made
   * something else of it), or of a placeholder, keeps the value written in.
   */
  private primitive(p: CNode): void {
    const type = this.canvasType.primitive;
    // PrimitiveNode: [value, control]; PrimitiveInt / Float / String / Boolean: their value widget (and an Int's control).
    const backend = p.classType !== FRONTEND_ONLY.primitive ? this.widgets(p) : null;
    const wv = backend ? [backend.get('value'), backend.get('control_after_generate')] : Array.isArray(p.widgetsValues) ? p.widgetsValues : [];
    let prim: WorkflowNode | undefined;
    const fed: string[] = [];
    const written: string[] = [];
    for (const l of this.g.links.values()) {
      const t = l.from === p.id ? this.byId.get(l.to) : undefined;
      const inp = t?.inputs[l.toSlot];
      if (!t || !inp || this.linkOf(t, inp.widget ?? inp.name) !== l) continue;
      const name = inp.widget ?? inp.name;
      const tr = this.reports.get(t.id);
      const ours = (tr?.status === 'unsupported' ? [] : (tr?.nodes ?? [])).map((id) => this.nodes.find((x) => x.id === id));
      const candidates = ours.filter((x): x is WorkflowNode => !!x?.ui && !!this.specs.get(x.type)?.params.some((q) => q.name === name));
      const target = candidates.find((x) => x.params[name] === wv[0]) ?? candidates[0];
      const value = target?.params[name];
      if (
        !type ||
        !target ||
        value === undefined ||
        this.edges.some((e) => e.to.node === target.id && e.to.port === name) ||
        (prim && prim.params.value !== value)
      ) {
        written.push(`${t.classType} ${t.id} "${name}"`);
        continue;
      }
      if (!prim) {
        const id = this.allocId(p, '');
        const ui = this.uiFor(p, '', id);
        const seed = this.specs.get(target.type)?.params.find((q) => q.name === name);
        const control =
          seed?.kind === 'number' && seed.widget === 'seed' && typeof wv[1] === 'string' && (SEED_CONTROLS as readonly string[]).includes(wv[1])
            ? wv[1]
            : undefined;
        // Exported from here: the params it had (its control kept as it was, when ComfyUI's value is unchanged).
        const stored = studioOf(p).types?.[''] === type ? studioOf(p).params?.[''] : undefined;
        const params =
          stored && stored.value === value && stored.control_after_generate === (control ?? stored.control_after_generate)
            ? { value, ...(stored.control_after_generate !== undefined ? { control_after_generate: stored.control_after_generate } : {}) }
            : { value, ...(control ? { control_after_generate: control } : {}) };
        prim = { id, type, params, ...(ui ? { ui } : {}) };
        this.nodes.push(prim);
        this.report(p).nodes.push(id);
      }
      this.edges.push({ from: { node: prim.id, port: 'value' }, to: { node: target.id, port: name } });
      target.ui = { ...target.ui!, inputs: [...new Set([...(Array.isArray(target.ui!.inputs) ? (target.ui!.inputs as string[]) : []), name])] };
      fed.push(`${target.id} "${name}"`);
    }
    const r = this.report(p);
    if (fed.length) r.notes.push(`a primitive: a Primitive node here, feeding ${fed.join(', ')}`);
    if (written.length) r.notes.push(`a primitive: its value is written into ${written.join(', ')}`);
    if (!fed.length && !written.length) r.notes.push('a primitive that feeds nothing: left out');
  }

  /**
   * IP-Adapter Projections with the same params and the same inputs are one: ComfyUI's IPAdapter
   * Embeds nodes fed by one Combine Embeds each make one here, and a projection shared by several
   * Apply IP-Adapter (exported as one IPAdapter Embeds each) comes back as the one it was.
   */
  private mergeProjections(): void {
    const groups = new Map<string, WorkflowNode[]>();
    for (const n of this.nodes) {
      if (n.type !== 'ip-adapter-projection') continue;
      const ins = this.edges
        .filter((e) => e.to.node === n.id)
        .map((e) => `${e.to.port}<${e.from.node}.${e.from.port}`)
        .sort();
      const key = JSON.stringify([n.params, ins]);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(n);
    }
    for (const list of groups.values()) {
      if (list.length < 2) continue;
      const keep = list.find((n) => this.restored.has(n.id)) ?? list[0]!;
      const gone = new Set(list.filter((n) => n !== keep).map((n) => n.id));
      for (let i = this.edges.length - 1; i >= 0; i--) {
        const e = this.edges[i]!;
        if (gone.has(e.to.node)) this.edges.splice(i, 1);
        else if (gone.has(e.from.node)) this.edges[i] = { from: { node: keep.id, port: e.from.port }, to: e.to };
      }
      for (let i = this.nodes.length - 1; i >= 0; i--) if (gone.has(this.nodes[i]!.id)) this.nodes.splice(i, 1);
      for (const r of this.reports.values()) {
        if (!r.nodes.some((id) => gone.has(id))) continue;
        r.nodes = r.nodes.map((id) => (gone.has(id) ? keep.id : id));
        const note = `its projection is the same as ${keep.id}'s: one node here`;
        if (!r.notes.includes(note)) r.notes.push(note);
      }
    }
  }

  /** The links an export from here kept beside ComfyUI's (see StudioProps.links), where both ends came back. */
  private restoreLinks(): void {
    const have = new Set(this.nodes.map((n) => n.id));
    for (const n of this.g.nodes) {
      const st = studioOf(n);
      if (!Array.isArray(st.links)) continue;
      for (const l of st.links) {
        if (!Array.isArray(l) || l.length !== 4 || !l.every((x) => typeof x === 'string')) continue;
        const [role, port, from, fromPort] = l;
        const to = st.ids?.[role];
        if (!to || !have.has(to) || !have.has(from) || this.edges.some((e) => e.to.node === to && e.to.port === port)) continue;
        const spec = this.specs.get(this.nodes.find((x) => x.id === to)!.type);
        if (!spec?.inputs.some((p) => p.name === port)) continue;
        this.edges.push({ from: { node: from, port: fromPort }, to: { node: to, port } });
      }
    }
  }
}

function placeholderOutputs(v: ParamValue | undefined): { name: string; type: string }[] {
  try {
    const a: unknown = JSON.parse(String(v));
    return Array.isArray(a) ? a.filter((o): o is { name: string; type: string } => isObj(o) && typeof o.name === 'string' && typeof o.type === 'string') : [];
  } catch {
    return [];
  }
}

function groupsMeta(g: CGraph, nodes: WorkflowNode[]): Json[] {
  return g.groups.map((gr) => {
    const [x, y, w, h] = gr.bounding;
    const inside = nodes.filter((n) => n.ui && n.ui.x >= x && n.ui.y >= y && n.ui.x < x + w && n.ui.y < y + h).map((n) => n.id);
    return { title: gr.title, bounding: gr.bounding, ...(gr.color ? { color: gr.color } : {}), nodes: inside };
  });
}

/** ComfyUI document -> our workflow and the import report. */
export function importComfyUI(doc: unknown, opts: ImportOptions): ImportResult {
  const g = normalizeComfy(doc);
  const im = new Importer(g, opts);
  im.run();
  const order = new Map(g.nodes.map((n, i) => [n.id, i]));
  const nodes = [...im.reports.values()].sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
  const report: ImportReport = { format: g.format, nodes, models: im.modelReports, missingImages: im.missingImages, warnings: im.warnings };
  if (im.nodes.length > MAX_NODES)
    throw new ComfyReadError(`the ComfyUI workflow becomes ${im.nodes.length} nodes here; a workflow holds at most ${MAX_NODES}`);
  if (im.edges.length > MAX_EDGES)
    throw new ComfyReadError(`the ComfyUI workflow becomes ${im.edges.length} links here; a workflow holds at most ${MAX_EDGES}`);
  const comfy: Json = { format: g.format, ...(g.version !== undefined ? { version: g.version } : {}) };
  if (Object.keys(im.titles).length) comfy.titles = im.titles;
  if (im.notes.length) comfy.notes = im.notes;
  if (im.skipped.length) {
    const text = JSON.stringify(im.skipped);
    comfy.skipped = text.length <= 100_000 ? im.skipped : { count: im.skipped.length, note: 'too large to keep' };
  }
  const meta: Json = { comfyui: comfy };
  if (g.groups.length) meta.groups = groupsMeta(g, im.nodes);
  const workflow: Workflow = { format: WORKFLOW_FORMAT, version: WORKFLOW_VERSION, nodes: im.nodes, edges: im.edges, meta };
  return { workflow, report };
}
