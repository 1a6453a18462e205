/**
 * Image refs: what an image param of a workflow holds, and the one rule for writing them. Pure
 * (no Node): the renderer imports it too.
 *
 * A ref is one of
 * - `inputs/<file>`: a file in the user-data inputs folder, where uploads and imported images are
 *   stored under content-hashed names (`<stem>-<sha256 prefix>.<ext>`). What the editor writes for
 *   every image it stored; it names no folder of this machine, so the file travels.
 * - a path relative to the workflow file (`images/init.png`): images kept next to a workflow
 *   (the examples, a folder someone zipped up). Resolved against the folder the file was opened
 *   from; `inputs/<file>` refs are looked up there first as well, so an unpacked folder works.
 * - an absolute path: only read (older files and hand-written CLI workflows); the app never writes one.
 */
import type { NodeSpec } from '../nodes/spec.js';
import type { Workflow } from './protocol.js';

export const INPUTS_PREFIX = 'inputs/';

/** The ref of a file stored in the inputs folder. */
export const inputsRef = (fileName: string): string => INPUTS_PREFIX + fileName;

/** The file name inside the inputs folder when `ref` is `inputs/<file>` (one plain segment), else null. */
export function inputsFileOf(ref: string): string | null {
  const m = /^inputs[\\/]([^\\/]+)$/.exec(ref);
  if (!m || m[1] === '.' || m[1] === '..' || m[1].includes('\0')) return null;
  return m[1];
}

/** True for POSIX and Windows absolute paths (`/x`, `C:\x`, `C:/x`, `\\server\x`). */
export function isAbsoluteRef(ref: string): boolean {
  return /^(?:[\\/]|[a-zA-Z]:[\\/])/.test(ref);
}

/** The last path segment of a ref (what a person recognises: `image-prompt.png`). */
export const refBaseName = (ref: string): string => ref.split(/[\\/]/).pop() ?? ref;

/** A content-hashed name of the inputs folder: `<stem>-<12 hex>.<ext>`; the hash prefix, or null. */
export function hashOfStoredName(fileName: string): string | null {
  return /-([0-9a-f]{12})\.(png|jpg|jpeg|webp)$/i.exec(fileName)?.[1].toLowerCase() ?? null;
}

/** One use of an image in a workflow: which node, which param, which ref. */
export interface ImageUse {
  node: string;
  /** The node's type title, for sentences ("Load Image (image_prompt)"). */
  title: string;
  param: string;
  ref: string;
}

type SpecLookup = Map<string, NodeSpec> | Record<string, NodeSpec> | readonly NodeSpec[];

function specOf(specs: SpecLookup, type: string): NodeSpec | undefined {
  if (specs instanceof Map) return specs.get(type);
  if (Array.isArray(specs)) return (specs as readonly NodeSpec[]).find((s) => s.type === type);
  return (specs as Record<string, NodeSpec>)[type];
}

/** Every non-empty image param of the workflow (masks included), in node order. */
export function imageUses(wf: Pick<Workflow, 'nodes'>, specs: SpecLookup): ImageUse[] {
  const out: ImageUse[] = [];
  for (const n of wf.nodes) {
    const spec = specOf(specs, n.type);
    if (!spec) continue;
    for (const p of spec.params) {
      const v = n.params[p.name];
      if (p.kind === 'image' && typeof v === 'string' && v !== '') out.push({ node: n.id, title: spec.title, param: p.name, ref: v });
    }
  }
  return out;
}

/** A copy of the workflow with each image ref replaced by `map(use)` (return the ref to keep it). */
export function mapImageRefs<W extends Pick<Workflow, 'nodes'>>(wf: W, specs: SpecLookup, map: (use: ImageUse) => string): W {
  const uses = imageUses(wf, specs);
  if (!uses.length) return wf;
  const nodes = wf.nodes.map((n) => {
    const mine = uses.filter((u) => u.node === n.id);
    if (!mine.length) return n;
    const params = { ...n.params };
    for (const u of mine) params[u.param] = map(u);
    return { ...n, params };
  });
  return { ...wf, nodes };
}

/**
 * Which of `files` (names or relative paths of files picked together with a workflow, or sitting
 * next to it) a relative ref means: the file whose path ends with the ref's whole path, else the
 * longest matching tail of it, down to the file name (a browser gives picked files without their folders).
 */
export function matchRefToFile(ref: string, files: readonly string[]): string | null {
  const want = ref.split(/[\\/]/).filter((s) => s && s !== '.');
  let best: string | null = null;
  let bestLen = 0;
  for (const f of files) {
    const have = f.split(/[\\/]/).filter(Boolean);
    let k = 0;
    while (k < want.length && k < have.length && want[want.length - 1 - k] === have[have.length - 1 - k]) k++;
    if (k > bestLen) {
      best = f;
      bestLen = k;
    }
  }
  return best;
}

/**
 * The URL both hosts serve an image ref's file under, when it is in the inputs folder: `inputs/<file>`,
 * or an older absolute path ending in `inputs/<file>`. Null for any other ref (no thumbnail).
 */
export function inputsImageUrl(ref: string): string | null {
  const file = inputsFileOf(ref) ?? (isAbsoluteRef(ref) ? (/[\\/]inputs[\\/]([^\\/]+)$/.exec(ref)?.[1] ?? null) : null);
  return file && /\.(png|jpe?g|webp)$/i.test(file) ? '/inputs/' + encodeURIComponent(file) : null;
}
