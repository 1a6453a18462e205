/**
 * Validation of a parsed workflow against the node definitions, before anything runs. Every
 * problem is reported at once, each tied to its node (and port or param) with a sentence.
 * Port compatibility uses the same `canConnect` as the editor (nodes/ports.ts).
 */
import { canConnect } from '../nodes/ports.js';
import type { NodeSpec, ParamSpec, ParamValue } from '../nodes/types.js';
import type { ValidationError, Workflow, WorkflowNode } from './api.js';
import { notRegularFile } from '../models/regular-file.js';
import { resolveGraph } from './graph-modes.js';
import { checkOutputPrefix, climbsOut, type PathResolver } from './paths.js';
import { seedProblem } from './seed.js';

export interface ValidateOptions {
  /** When given, file and image params must resolve to existing paths. */
  paths?: PathResolver;
  /** Extra per-node checks (NodeDef.check). */
  check?: (type: string, params: Record<string, ParamValue>) => { param?: string; message: string }[];
}

/** Params with defaults filled in (unknown params are left out; validation reports them). */
export function paramsWithDefaults(spec: NodeSpec, params: Record<string, ParamValue>): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const p of spec.params) out[p.name] = p.name in params ? params[p.name] : p.default;
  return out;
}

function checkParam(p: ParamSpec, v: ParamValue): string | null {
  switch (p.kind) {
    case 'number': {
      // Seeds are integers in [0, 2^64): a number below 2^53 or a decimal string (engine/seed.ts).
      if (p.widget === 'seed') return seedProblem(v);
      if (typeof v !== 'number' || !Number.isFinite(v)) return `must be a number, found ${JSON.stringify(v)}`;
      if (p.integer && !Number.isInteger(v)) return `must be a whole number, found ${v}`;
      if (p.min !== undefined && v < p.min) return `${v} is below the minimum ${p.min}`;
      if (p.max !== undefined && v > p.max) return `${v} is above the maximum ${p.max}`;
      return null;
    }
    case 'boolean':
      return typeof v === 'boolean' ? null : `must be true or false, found ${JSON.stringify(v)}`;
    case 'enum':
      if (typeof v !== 'string') return `must be one of ${p.options.join(', ')}, found ${JSON.stringify(v)}`;
      return p.options.includes(v) ? null : `"${v}" is not one of ${p.options.join(', ')}`;
    default:
      return typeof v === 'string' ? null : `must be a string, found ${JSON.stringify(v)}`;
  }
}

/** Finds the cycles of the graph (Tarjan's strongly connected components of size > 1 or self-loops). */
function findCycles(ids: string[], succ: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of succ.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (succ.get(v) ?? []).includes(v)) out.push(comp.reverse());
    }
  };
  for (const v of ids) if (!idx.has(v)) visit(v);
  return out;
}

/**
 * Validates `wf`; returns every error found (empty when the workflow may run). Bypassed and muted
 * nodes, reroutes, notes and primitives are resolved first (engine/graph-modes.ts): what is checked
 * is the graph that runs, and an input left unconnected by a bypass or mute says so.
 */
export function validateWorkflow(wf: Workflow, specs: Map<string, NodeSpec>, opts: ValidateOptions = {}): ValidationError[] {
  const r = resolveGraph(wf, specs);
  const errors = validateGraph(r.workflow, specs, opts).filter((e) => !(r.errors.length && e.node === undefined && /no output node|no nodes/.test(e.message)));
  for (const e of errors) {
    const why = e.node && e.port ? r.why.get(`${e.node}\0${e.port}`) : undefined;
    if (why && e.message.endsWith('is not connected')) e.message = `${e.message}: ${why}`;
  }
  return [...r.errors, ...errors];
}

function validateGraph(wf: Workflow, specs: Map<string, NodeSpec>, opts: ValidateOptions): ValidationError[] {
  const errors: ValidationError[] = [];
  const byId = new Map<string, WorkflowNode>();
  for (const n of wf.nodes) {
    if (byId.has(n.id)) errors.push({ node: n.id, message: `node id "${n.id}" is used by more than one node` });
    byId.set(n.id, n);
  }
  const title = (n: WorkflowNode) => `${specs.get(n.type)?.title ?? n.type} (${n.id})`;

  // Node types and params.
  for (const n of wf.nodes) {
    const spec = specs.get(n.type);
    if (!spec) {
      errors.push({ node: n.id, message: `node ${n.id}: unknown node type "${n.type}"` });
      continue;
    }
    for (const k of Object.keys(n.params)) {
      if (!spec.params.some((p) => p.name === k)) {
        errors.push({ node: n.id, param: k, message: `${title(n)}: unknown param "${k}" (params: ${spec.params.map((p) => p.name).join(', ') || 'none'})` });
      }
    }
    const params = paramsWithDefaults(spec, n.params);
    let paramsOk = true;
    for (const p of spec.params) {
      const msg = checkParam(p, params[p.name]);
      if (msg) {
        paramsOk = false;
        // Named as its field is labelled ("weight λ"), not by its internal name.
        errors.push({ node: n.id, param: p.name, message: `${title(n)}: ${p.label ?? p.name}: ${msg}` });
        continue;
      }
      const v = params[p.name] as string;
      if ((p.kind === 'file' || p.kind === 'image') && opts.paths && !(p.optional && v === '')) {
        // A model is a file or a folder, an image a file; a FIFO or device would block the loader's open.
        const found = climbsOut(v) ? null : p.kind === 'file' ? opts.paths.resolveModel(p.modelKind, v) : opts.paths.resolveImage(v);
        const bad = climbsOut(v)
          ? `"${v}" climbs out of the folder it is looked up in (..); name a file inside the ${p.kind === 'file' ? 'models folder' : "workflow's folder or the inputs folder"}, or its absolute path`
          : found
            ? notRegularFile(found, p.kind === 'file')
            : p.kind === 'file'
              ? opts.paths.missingModel(p.modelKind, v)
              : opts.paths.missingImage(v);
        if (bad) errors.push({ node: n.id, param: p.name, message: `${title(n)}: ${bad}` });
      }
      if (p.kind === 'string' && p.outputPrefix) {
        const bad = checkOutputPrefix(v);
        if (bad) errors.push({ node: n.id, param: p.name, message: `${title(n)}: ${bad}` });
      }
    }
    if (paramsOk && opts.check) {
      for (const e of opts.check(n.type, params)) errors.push({ node: n.id, ...(e.param ? { param: e.param } : {}), message: `${title(n)}: ${e.message}` });
    }
  }

  // Edges: endpoints, ports, types; one edge per input.
  const succ = new Map<string, string[]>();
  const fed = new Map<string, string>();
  for (const e of wf.edges) {
    const a = byId.get(e.from.node);
    const b = byId.get(e.to.node);
    const where = `${e.from.node}.${e.from.port} -> ${e.to.node}.${e.to.port}`;
    if (!a) {
      errors.push({ node: e.to.node, port: e.to.port, message: `edge ${where}: no node "${e.from.node}"` });
      continue;
    }
    if (!b) {
      errors.push({ node: e.from.node, port: e.from.port, message: `edge ${where}: no node "${e.to.node}"` });
      continue;
    }
    succ.set(a.id, [...(succ.get(a.id) ?? []), b.id]);
    const sa = specs.get(a.type);
    const sb = specs.get(b.type);
    if (!sa || !sb) continue; // unknown type already reported
    // A ComfyUI placeholder's ports are its own (nodes/comfyui-node.ts), and its node refuses the run by itself.
    if (sa.dynamicPorts || sb.dynamicPorts) {
      if (!sb.dynamicPorts) fed.set(`${b.id}\0${e.to.port}`, a.id);
      continue;
    }
    const out = sa.outputs.find((p) => p.name === e.from.port);
    const inp = sb.inputs.find((p) => p.name === e.to.port);
    if (!out)
      errors.push({
        node: a.id,
        port: e.from.port,
        message: `${title(a)}: unknown output port "${e.from.port}" (outputs: ${sa.outputs.map((p) => p.name).join(', ') || 'none'})`,
      });
    if (!inp)
      errors.push({
        node: b.id,
        port: e.to.port,
        message: `${title(b)}: unknown input port "${e.to.port}" (inputs: ${sb.inputs.map((p) => p.name).join(', ') || 'none'})`,
      });
    if (!out || !inp) continue;
    const key = `${b.id}\0${inp.name}`;
    if (fed.has(key))
      errors.push({ node: b.id, port: inp.name, message: `${title(b)}: input "${inp.name}" has more than one incoming edge (${fed.get(key)} and ${a.id})` });
    fed.set(key, a.id);
    // Cycles are reported once, below, for the whole graph; here self-link and type.
    const v = canConnect({ node: a.id, port: out.name, type: out.type }, { node: b.id, port: inp.name, type: inp.type }, () => false);
    if (!v.ok) errors.push({ node: b.id, port: inp.name, message: `${title(b)}: input "${inp.name}": ${v.reason}` });
  }

  for (const cyc of findCycles(
    wf.nodes.map((n) => n.id),
    succ,
  )) {
    if (cyc.length === 1) continue; // self-link, reported by canConnect
    const path = [...cyc, cyc[0]].join(' -> ');
    errors.push({ node: cyc[0], message: `nodes ${cyc.join(', ')} form a cycle (${path}); a workflow must flow one way` });
  }

  // Required inputs.
  for (const n of wf.nodes) {
    const spec = specs.get(n.type);
    if (!spec) continue;
    for (const p of spec.inputs) {
      if (!p.optional && !fed.has(`${n.id}\0${p.name}`)) {
        errors.push({ node: n.id, port: p.name, message: `${title(n)}: required input "${p.name}" (${p.type}) is not connected` });
      }
    }
  }

  if (wf.nodes.length > 0 && !wf.nodes.some((n) => specs.get(n.type)?.output)) {
    errors.push({ message: 'the workflow has no output node (Save Image or Preview Image), so running it would produce nothing' });
  }
  if (wf.nodes.length === 0) errors.push({ message: 'the workflow has no nodes' });
  return errors;
}
