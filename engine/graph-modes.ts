/**
 * The canvas tools, resolved into the graph that runs (workflow version 3), before validation and
 * execution, so the executor, the CLI and the editor's checks all see one plain graph:
 * - a **bypassed** node (mode "bypass", ComfyUI's mode 4) is left out and each of its outputs is
 *   fed by what feeds its input of the same type (the input of the same index first, then the first
 *   of that type), as ComfyUI passes it through; an output with no such input feeds nothing;
 * - a **muted** node (mode "mute", ComfyUI's mode 2 "never") does not run, nor does any node that
 *   needs it (a required input fed, through any chain, by a muted node); an optional input it fed
 *   is left unconnected;
 * - a **reroute** is joined into the wire it carries; a **note** is left out;
 * - a **primitive** writes its value into every param it is wired to (an edge whose `to.port` is a
 *   param of the target: the param turned into an input), then is left out.
 * Signatures are those of the resolved graph: a bypassed node's consumers hash as if wired to its
 * source, a primitive's value as a typed-in param, so the cache treats them alike.
 */
import { dynamicPortsOf, type NodeSpec, type ParamValue } from '../nodes/spec.js';
import type { ValidationError, Workflow, WorkflowEdge, WorkflowNode } from './protocol.js';

/** What the resolution did, for the run's log and the editor. */
export interface ResolvedGraph {
  workflow: Workflow;
  bypassed: string[];
  /** Muted nodes and the nodes that do not run because they need one. */
  muted: string[];
  /** For an input left unconnected by a bypass, mute or reroute: why (key `node\0port`). */
  why: Map<string, string>;
  errors: ValidationError[];
}

type Source =
  { kind: 'port'; node: string; port: string } | { kind: 'value'; value: ParamValue; from: string } | { kind: 'none'; why: string; muted?: boolean };

/** True when the workflow uses none of the canvas tools (nothing to resolve). */
function plain(wf: Workflow, specs: Map<string, NodeSpec>): boolean {
  return wf.nodes.every((n) => !n.mode && !specs.get(n.type)?.virtual);
}

export function resolveGraph(wf: Workflow, specs: Map<string, NodeSpec>): ResolvedGraph {
  const empty = { bypassed: [], muted: [], why: new Map<string, string>(), errors: [] };
  if (plain(wf, specs)) return { workflow: wf, ...empty };
  const byId = new Map(wf.nodes.map((n) => [n.id, n]));
  const title = (n: WorkflowNode) => `${specs.get(n.type)?.title ?? n.type} (${n.id})`;
  const into = new Map<string, WorkflowEdge>();
  for (const e of wf.edges) if (!into.has(`${e.to.node}\0${e.to.port}`)) into.set(`${e.to.node}\0${e.to.port}`, e);
  const virtual = (n: WorkflowNode | undefined) => (n ? specs.get(n.type)?.virtual : undefined);
  const errors: ValidationError[] = [];

  // Muted nodes grow to the nodes that need them (fixed point below).
  const muted = new Set(wf.nodes.filter((n) => n.mode === 'mute').map((n) => n.id));

  /** Where output `port` of node `id` really comes from. */
  const source = (id: string, port: string, seen: Set<string>): Source => {
    const n = byId.get(id);
    if (!n) return { kind: 'port', node: id, port }; // validation names the missing node
    if (seen.has(id)) return { kind: 'none', why: `${title(n)} is part of a loop of reroutes or bypassed nodes` };
    seen.add(id);
    if (muted.has(id)) return { kind: 'none', why: `${title(n)} is muted${n.mode === 'mute' ? '' : ' (it needs a muted node)'}`, muted: true };
    const v = virtual(n);
    if (v === 'reroute') {
      const e = into.get(`${id}\0in`);
      return e ? source(e.from.node, e.from.port, seen) : { kind: 'none', why: `${title(n)} has no input` };
    }
    if (v === 'primitive') {
      const value = n.params.value;
      return value === undefined ? { kind: 'none', why: `${title(n)} has no value` } : { kind: 'value', value, from: id };
    }
    if (v === 'note') return { kind: 'none', why: `${title(n)} has no outputs` };
    if (n.mode === 'bypass') {
      const spec = specs.get(n.type);
      // A ComfyUI placeholder's ports are its own (params inputs / outputs): a bypassed one passes through them too.
      const ports = spec?.dynamicPorts ? dynamicPortsOf(n.params) : spec;
      const outs = ports?.outputs ?? [];
      const slot = outs.findIndex((p) => p.name === port);
      const type = outs[slot]?.type;
      const ins = ports?.inputs ?? [];
      const same = ins[slot]?.type === type ? ins[slot] : ins.find((p) => p.type === type);
      const e = same ? into.get(`${id}\0${same.name}`) : undefined;
      if (e) return source(e.from.node, e.from.port, seen);
      return {
        kind: 'none',
        why: same
          ? `${title(n)} is bypassed and its input "${same.name}" is not connected`
          : `${title(n)} is bypassed and has no ${type ?? port} input to pass through`,
      };
    }
    return { kind: 'port', node: id, port };
  };

  const runs = (n: WorkflowNode) => !virtual(n) && n.mode !== 'bypass' && !muted.has(n.id);
  // A node that needs a muted one (a required input, through any chain) is muted too.
  for (let changed = true; changed;) {
    changed = false;
    for (const n of wf.nodes) {
      if (!runs(n)) continue;
      const spec = specs.get(n.type);
      for (const e of wf.edges) {
        if (e.to.node !== n.id) continue;
        const input = spec?.inputs.find((p) => p.name === e.to.port);
        if (!input || input.optional) continue;
        const s = source(e.from.node, e.from.port, new Set());
        if (s.kind === 'none' && s.muted) {
          muted.add(n.id);
          changed = true;
          break;
        }
      }
    }
  }

  const why = new Map<string, string>();
  const edges: WorkflowEdge[] = [];
  const params = new Map<string, Record<string, ParamValue>>();
  for (const e of wf.edges) {
    const target = byId.get(e.to.node);
    if (target && !runs(target)) continue;
    const s = source(e.from.node, e.from.port, new Set());
    if (s.kind === 'port') edges.push(s.node === e.from.node && s.port === e.from.port ? e : { from: { node: s.node, port: s.port }, to: e.to });
    else if (s.kind === 'none') why.set(`${e.to.node}\0${e.to.port}`, s.why);
    else if (target) {
      const spec = specs.get(target.type);
      if (spec && !spec.params.some((p) => p.name === e.to.port)) {
        errors.push({
          node: target.id,
          port: e.to.port,
          message: `${title(target)}: "${e.to.port}" is not a param, so Primitive (${s.from}) cannot feed it; a primitive feeds params turned into inputs`,
        });
        continue;
      }
      params.set(target.id, { ...(params.get(target.id) ?? {}), [e.to.port]: s.value });
    }
  }
  const nodes = wf.nodes.filter(runs).map((n) => (params.has(n.id) ? { ...n, params: { ...n.params, ...params.get(n.id) } } : n));
  const hadOutput = wf.nodes.some((n) => specs.get(n.type)?.output);
  if (hadOutput && !nodes.some((n) => specs.get(n.type)?.output)) {
    errors.push({ message: 'every output node (Save Image, Preview Image) is muted or needs a muted node, so running the workflow would produce nothing' });
  }
  return {
    workflow: { ...wf, nodes, edges },
    bypassed: wf.nodes.filter((n) => n.mode === 'bypass' && !virtual(n)).map((n) => n.id),
    muted: [...muted],
    why,
    errors,
  };
}
