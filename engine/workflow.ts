/**
 * Workflow JSON: format "ipadapter-studio/workflow", version 3. Reading goes through
 * `parseWorkflow`, which checks the document's shape and migrates older versions step by step;
 * a newer version is refused with a sentence (we cannot guess what it means).
 *
 * Version history:
 * - 0: the draft format of early builds: `links: [[fromNode, fromPort, toNode, toPort], ...]`
 *      instead of `edges`, node positions as `position: [x, y]`, and no `format` field.
 * - 1: `edges: [{from: {node, port}, to: {node, port}}]`, layout in `ui: {x, y}` (the engine
 *      never reads it), free `meta`.
 * - 2: nodes with a seed have a `noise` param (engine/seed.ts): `torch` (torch.randn on the CPU,
 *      as ComfyUI and diffusers draw it) is the default of new nodes; a version-1 file meant the
 *      Philox noise of engine/rng.ts, so the migration writes `noise: "philox"` on its seeded
 *      nodes (DDIM Sampler, VAE Encode) and they draw exactly what they drew before. Seeds may be
 *      decimal strings from 2^53 up to 2^64 - 1; version-1 seeds (numbers below 2^53) stay as they are.
 * - 3: canvas tools (engine/graph-modes.ts resolves them before validation): a node may have a
 *      `mode`, "bypass" (its outputs pass through its first input of the same type, as ComfyUI's
 *      mode 4) or "mute" (it and the nodes that need it do not run, ComfyUI's mode 2); the
 *      node types `reroute`, `note` and `primitive`; an edge may end on a param's name (a param
 *      turned into an input, fed by a primitive); `meta.groups` are the editor's groups. A
 *      version-2 document had none of these: the migration drops a stray `mode` field, which
 *      version 2 ignored, so every older file opens and runs as it did.
 * - 4: Apply IP-Adapter's `blocks` preset (all / style only / composition only / custom) became
 *      `weight_type`, ComfyUI_IPAdapter_plus' weight types, of which the presets were the maps: the
 *      migration writes linear / style transfer / composition, and custom as linear with its
 *      `layer_weights`, which now replace the type's factors whenever they are given (a preset's
 *      unused layer_weights are dropped), so every layer gets the λ it got before.
 */
import { WORKFLOW_FORMAT, type ValidationError, type Workflow, type WorkflowEdge, type WorkflowNode } from './protocol.js';

export { WORKFLOW_FORMAT };
export const WORKFLOW_VERSION = 4;

export interface ParsedWorkflow {
  workflow: Workflow | null;
  errors: ValidationError[];
  /** The version the document had, when it was migrated. */
  migratedFrom?: number;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The node types of version 1 that drew noise from their seed (all of it Philox). */
const VERSION_1_SEEDED = new Set(['ddim-sampler', 'vae-encode']);

/** Free-form fields (`meta`, a node's `ui`): at most this deep and about this large (JSON bytes). */
export const MAX_FREE_FORM_DEPTH = 32;
export const MAX_FREE_FORM_BYTES = 2 ** 20;

/**
 * Why the free-form value `v` is refused (too deep or too large), or null. Walks iteratively and
 * stops at the first excess, so neither a deep nor a huge value can overflow the stack here or
 * later, when the workflow is written into a PNG (JSON.stringify recurses).
 */
export function freeFormProblem(name: string, v: unknown): string | null {
  const stack: [unknown, number][] = [[v, 1]];
  let bytes = 0;
  while (stack.length) {
    const [x, depth] = stack.pop()!;
    if (typeof x === 'string') bytes += x.length + 2;
    else if (x === null || typeof x !== 'object') bytes += 8;
    else {
      if (depth > MAX_FREE_FORM_DEPTH) return `"${name}" is nested deeper than ${MAX_FREE_FORM_DEPTH} levels`;
      bytes += 2;
      for (const [k, c] of Object.entries(x)) {
        bytes += Array.isArray(x) ? 1 : k.length + 4;
        stack.push([c, depth + 1]);
      }
    }
    if (bytes > MAX_FREE_FORM_BYTES) return `"${name}" is larger than ${MAX_FREE_FORM_BYTES / 2 ** 20} MB`;
  }
  return null;
}

/** Migrations: `MIGRATIONS[v]` turns a version-v document into version v+1. */
const MIGRATIONS: Record<number, (doc: Json) => Json> = {
  0: (doc) => {
    const links = Array.isArray(doc.links) ? doc.links : [];
    const edges = links.map((l) => {
      const [fn, fp, tn, tp] = Array.isArray(l) ? l : [];
      return { from: { node: String(fn), port: String(fp) }, to: { node: String(tn), port: String(tp) } };
    });
    const nodes = (Array.isArray(doc.nodes) ? doc.nodes : []).map((n) => {
      if (!isObj(n)) return n;
      const { position, ...rest } = n;
      const out: Json = { ...rest };
      if (Array.isArray(position) && position.length === 2) out.ui = { x: Number(position[0]), y: Number(position[1]) };
      return out;
    });
    const { links: _links, ...rest } = doc;
    return { ...rest, format: WORKFLOW_FORMAT, version: 1, nodes, edges };
  },
  1: (doc) => {
    const nodes = (Array.isArray(doc.nodes) ? doc.nodes : []).map((n) => {
      if (!isObj(n) || !VERSION_1_SEEDED.has(n.type as string) || !isObj(n.params ?? {})) return n;
      const params = (n.params ?? {}) as Json;
      return { ...n, params: { ...params, noise: params.noise ?? 'philox' } };
    });
    return { ...doc, version: 2, nodes };
  },
  2: (doc) => {
    const nodes = (Array.isArray(doc.nodes) ? doc.nodes : []).map((n) => {
      if (!isObj(n) || !('mode' in n)) return n;
      const { mode: _mode, ...rest } = n;
      return rest;
    });
    return { ...doc, version: 3, nodes };
  },
  3: (doc) => {
    // Written out here, not read from the node, so the migration stays what version 3 meant.
    const TYPE_OF_BLOCKS: Record<string, string> = { all: 'linear', 'style only': 'style transfer', 'composition only': 'composition', custom: 'linear' };
    const nodes = (Array.isArray(doc.nodes) ? doc.nodes : []).map((n) => {
      if (!isObj(n) || n.type !== 'apply-ip-adapter' || !isObj(n.params) || !('blocks' in n.params)) return n;
      const { blocks, layer_weights, ...params } = n.params;
      const custom = blocks === 'custom';
      return {
        ...n,
        params: {
          ...params,
          weight_type: TYPE_OF_BLOCKS[String(blocks)] ?? String(blocks),
          ...(custom && layer_weights !== undefined ? { layer_weights } : {}),
        },
      };
    });
    return { ...doc, version: 4, nodes };
  },
};

/** A node's mode (version 3): absent = runs normally. */
export const NODE_MODES = ['bypass', 'mute'] as const;

/**
 * Checks the document's shape and migrates it to the current version. Graph semantics (node
 * types, ports, params, cycles) are checked by `validateWorkflow` afterwards.
 */
export function parseWorkflow(input: unknown): ParsedWorkflow {
  const errors: ValidationError[] = [];
  let doc: unknown = input;
  if (typeof doc === 'string') {
    try {
      // A UTF-8 byte order mark (Windows editors write one) is not part of the JSON.
      doc = JSON.parse(doc.replace(/^\uFEFF/, ''));
    } catch (e) {
      return { workflow: null, errors: [{ message: `the workflow is not valid JSON: ${(e as Error).message}` }] };
    }
  }
  if (!isObj(doc)) return { workflow: null, errors: [{ message: 'the workflow must be a JSON object' }] };
  if (doc.format !== undefined && doc.format !== WORKFLOW_FORMAT) {
    return {
      workflow: null,
      errors: [{ message: `this is not an IP-Adapter Studio workflow: format is ${JSON.stringify(doc.format)}, expected "${WORKFLOW_FORMAT}"` }],
    };
  }
  const version = doc.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    return {
      workflow: null,
      errors: [{ message: `the workflow has no valid "version" (found ${JSON.stringify(version)}); expected an integer, currently ${WORKFLOW_VERSION}` }],
    };
  }
  if (version > WORKFLOW_VERSION) {
    return {
      workflow: null,
      errors: [
        {
          message: `the workflow is version ${version}, saved by a newer IP-Adapter Studio; this build reads versions up to ${WORKFLOW_VERSION}. Update the app to open it.`,
        },
      ],
    };
  }
  if (version >= 1 && doc.format === undefined) {
    return { workflow: null, errors: [{ message: `the workflow has no "format" field (expected "${WORKFLOW_FORMAT}")` }] };
  }
  let cur = doc;
  for (let v = version; v < WORKFLOW_VERSION; v++) cur = MIGRATIONS[v](cur);

  if (!Array.isArray(cur.nodes)) errors.push({ message: '"nodes" must be a list' });
  if (!Array.isArray(cur.edges)) errors.push({ message: '"edges" must be a list' });
  if (cur.meta !== undefined && !isObj(cur.meta)) errors.push({ message: '"meta" must be an object when present' });
  const metaProblem = isObj(cur.meta) ? freeFormProblem('meta', cur.meta) : null;
  if (metaProblem) errors.push({ message: `${metaProblem}; the workflow's metadata is refused` });
  if (errors.length) return { workflow: null, errors };

  const nodes: WorkflowNode[] = [];
  (cur.nodes as unknown[]).forEach((n, i) => {
    if (!isObj(n)) return errors.push({ message: `nodes[${i}] is not an object` });
    if (typeof n.id !== 'string' || !n.id) return errors.push({ message: `nodes[${i}] has no string "id"` });
    if (typeof n.type !== 'string') return errors.push({ node: n.id, message: `node ${n.id} has no string "type"` });
    const params = n.params ?? {};
    if (!isObj(params)) return errors.push({ node: n.id, message: `node ${n.id}: "params" must be an object` });
    for (const [k, v] of Object.entries(params)) {
      if (!['number', 'string', 'boolean'].includes(typeof v)) {
        errors.push({ node: n.id, param: k, message: `node ${n.id}: param "${k}" must be a number, string or boolean, found ${JSON.stringify(v)}` });
      }
    }
    const uiProblem = n.ui !== undefined ? freeFormProblem('ui', n.ui) : null;
    if (uiProblem) return errors.push({ node: n.id, message: `node ${n.id}: ${uiProblem}` });
    if (n.mode !== undefined && !(NODE_MODES as readonly unknown[]).includes(n.mode)) {
      return errors.push({
        node: n.id,
        message: `node ${n.id}: "mode" must be ${NODE_MODES.map((m) => `"${m}"`).join(' or ')} when present, found ${JSON.stringify(n.mode)}`,
      });
    }
    const node: WorkflowNode = { id: n.id, type: n.type, params: params as WorkflowNode['params'] };
    if (n.mode !== undefined) node.mode = n.mode as WorkflowNode['mode'];
    if (isObj(n.ui)) node.ui = n.ui as WorkflowNode['ui'];
    nodes.push(node);
  });
  const edges: WorkflowEdge[] = [];
  (cur.edges as unknown[]).forEach((e, i) => {
    const end = (v: unknown) => isObj(v) && typeof v.node === 'string' && typeof v.port === 'string';
    if (!isObj(e) || !end(e.from) || !end(e.to)) {
      return errors.push({ message: `edges[${i}] must look like {"from": {"node", "port"}, "to": {"node", "port"}}` });
    }
    const from = e.from as Json;
    const to = e.to as Json;
    edges.push({ from: { node: from.node as string, port: from.port as string }, to: { node: to.node as string, port: to.port as string } });
  });
  if (errors.length) return { workflow: null, errors };
  const workflow: Workflow = { format: WORKFLOW_FORMAT, version: WORKFLOW_VERSION, nodes, edges };
  if (isObj(cur.meta)) workflow.meta = cur.meta;
  return { workflow, errors: [], ...(version < WORKFLOW_VERSION ? { migratedFrom: version } : {}) };
}

/** A workflow serialised the way we save it (stable key order, two-space indent). */
export function stringifyWorkflow(wf: Workflow): string {
  return `${JSON.stringify(wf, null, 2)}\n`;
}
