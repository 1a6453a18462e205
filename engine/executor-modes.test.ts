import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { note } from '../nodes/note.js';
import { primitive } from '../nodes/primitive.js';
import { reroute } from '../nodes/reroute.js';
import type { NodeDef } from '../nodes/types.js';
import type { RunEvent, Workflow, WorkflowNode } from './api.js';
import { Executor, type RunRequest } from './executor.js';
import { resolveGraph } from './graph-modes.js';
import { ModelStore } from './model-store.js';
import { validateWorkflow } from './validate.js';

// Stub nodes on numbers: a source, a node that adds its param k (x2: two inputs, an optional third),
// and an output that records what reaches it. With the real reroute, note and primitive nodes.
const seen: Record<string, number[]> = {};
const defs: NodeDef[] = [
  {
    type: 'num',
    title: 'Num',
    category: 't',
    description: '',
    inputs: [],
    outputs: [{ name: 'latent', type: 'LATENT' }],
    params: [{ name: 'v', kind: 'number', default: 0, min: 0, max: 100 }],
    execute: async (_i, p) => ({ latent: p.v }),
  },
  {
    type: 'plus',
    title: 'Plus',
    category: 't',
    description: '',
    inputs: [
      { name: 'image', type: 'IMAGE', optional: true },
      { name: 'a', type: 'LATENT' },
      { name: 'extra', type: 'LATENT', optional: true },
    ],
    outputs: [{ name: 'latent', type: 'LATENT' }],
    params: [{ name: 'k', kind: 'number', default: 1, min: 0, max: 10 }],
    execute: async (i, p) => ({ latent: (i.a as number) + (p.k as number) + ((i.extra as number | undefined) ?? 0) }),
  },
  {
    type: 'out',
    title: 'Out',
    category: 't',
    description: '',
    inputs: [{ name: 'a', type: 'LATENT' }],
    outputs: [],
    params: [],
    output: true,
    execute: async (i, _p, ctx) => {
      (seen[ctx.nodeId] ??= []).push(i.a as number);
      return {};
    },
  },
  reroute,
  note,
  primitive,
];
const specs = new Map(defs.map((d) => [d.type, d]));

const edge = (a: string, ap: string, b: string, bp: string) => ({ from: { node: a, port: ap }, to: { node: b, port: bp } });

/** num(2) -> p1(+1) -> p2(+10) -> out; a second branch num(5) -> q(+1) -> out2. */
function base(mode: Partial<Record<string, WorkflowNode['mode']>> = {}): Workflow {
  const node = (id: string, type: string, params: WorkflowNode['params'] = {}): WorkflowNode => ({ id, type, params, ...(mode[id] ? { mode: mode[id] } : {}) });
  return {
    format: 'ipadapter-studio/workflow',
    version: 3,
    nodes: [
      node('n', 'num', { v: 2 }),
      node('p1', 'plus', { k: 1 }),
      node('p2', 'plus', { k: 10 }),
      node('o', 'out'),
      node('m', 'num', { v: 5 }),
      node('q', 'plus', { k: 1 }),
      node('o2', 'out'),
    ],
    edges: [
      edge('n', 'latent', 'p1', 'a'),
      edge('p1', 'latent', 'p2', 'a'),
      edge('p2', 'latent', 'o', 'a'),
      edge('m', 'latent', 'q', 'a'),
      edge('q', 'latent', 'o2', 'a'),
    ],
  };
}

function setup() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-modes-'));
  const ex = new Executor(defs, new ModelStore({ cacheDir: path.join(tmp, 'cache'), provider: 'cpu' }));
  const events: RunEvent[] = [];
  const req = (wf: Workflow): RunRequest => ({
    runId: 'r',
    workflow: wf,
    modelsDir: tmp,
    outputDir: tmp,
    tempDir: tmp,
    signal: new AbortController().signal,
    emit: (e) => events.push(e),
  });
  for (const k of Object.keys(seen)) delete seen[k];
  const ran = () => events.filter((e) => e.type === 'node-done' && !e.cached).map((e) => (e as { node: string }).node);
  const cached = () => events.filter((e) => e.type === 'node-done' && e.cached).map((e) => (e as { node: string }).node);
  return { ex, events, req, ran, cached };
}

describe('bypass (mode "bypass", ComfyUI mode 4)', () => {
  it('skips the node and passes its input of the same type through; un-bypassing runs it again, the rest stays cached', async () => {
    const { ex, req, ran, cached, events } = setup();
    expect(await ex.run(req(base({ p1: 'bypass' })))).toEqual({ ok: true });
    expect(seen.o).toEqual([12]); // 2 + 10: p1's +1 is skipped
    expect(ex.executions.get('p1')).toBeUndefined();
    expect(ran()).toEqual(['n', 'p2', 'o', 'm', 'q', 'o2']);
    expect(events.some((e) => e.type === 'log' && /bypassed .*Plus \(p1\)/.test(e.message))).toBe(true);
    events.length = 0;
    expect(await ex.run(req(base()))).toEqual({ ok: true });
    expect(seen.o).toEqual([12, 13]);
    expect(ran()).toEqual(['p1', 'p2', 'o', 'o2']);
    expect(cached()).toEqual(['n', 'm', 'q']);
  });

  it('a bypassed node hashes as the wire it replaces: the consumer is a cache hit of the graph without it', async () => {
    const { ex, req, cached, events } = setup();
    const direct = base();
    direct.nodes = direct.nodes.filter((n) => n.id !== 'p1');
    direct.edges = [edge('n', 'latent', 'p2', 'a'), ...direct.edges.filter((e) => e.from.node !== 'n' && e.from.node !== 'p1')];
    await ex.run(req(direct));
    events.length = 0;
    await ex.run(req(base({ p1: 'bypass' })));
    expect(cached()).toEqual(['n', 'p2', 'm', 'q']);
    expect(seen.o).toEqual([12, 12]);
  });

  it('an output with no input of its type feeds nothing, and validation says why on the consumer', () => {
    const wf = base({ p1: 'bypass' });
    wf.edges = wf.edges.filter((e) => e.to.node !== 'p1');
    const errors = validateWorkflow(wf, specs);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ node: 'p2', port: 'a' });
    expect(errors[0].message).toBe('Plus (p2): required input "a" (LATENT) is not connected: Plus (p1) is bypassed and its input "a" is not connected');
  });
});

describe('mute (mode "mute", ComfyUI mode 2)', () => {
  it('the node and what needs it do not run; the other branch does', async () => {
    const { ex, req, ran, events } = setup();
    expect(await ex.run(req(base({ p1: 'mute' })))).toEqual({ ok: true });
    expect(ran()).toEqual(['m', 'q', 'o2']);
    expect(seen.o).toBeUndefined();
    expect(seen.o2).toEqual([6]);
    expect(resolveGraph(base({ p1: 'mute' }), specs).muted.sort()).toEqual(['o', 'p1', 'p2']);
    expect(events.some((e) => e.type === 'log' && /muted \(not run\): .*Plus \(p1\)/.test(e.message))).toBe(true);
  });

  it('an optional input fed by a muted node is left unconnected; the node runs', async () => {
    const { ex, req } = setup();
    const wf = base({ m: 'mute' });
    wf.edges.push(edge('m', 'latent', 'p2', 'extra'));
    await ex.run(req(wf));
    expect(seen.o).toEqual([13]); // without m's 5 on "extra"
    expect(seen.o2).toBeUndefined();
    const unmuted = base();
    unmuted.edges.push(edge('m', 'latent', 'p2', 'extra'));
    await ex.run(req(unmuted));
    expect(seen.o).toEqual([13, 18]);
  });

  it('every output muted: refused with a sentence instead of running nothing', async () => {
    const { ex, req } = setup();
    const r = await ex.run(req(base({ n: 'mute', m: 'mute' })));
    expect(r.ok).toBe(false);
    expect(r.errors?.map((e) => e.message)).toEqual([
      'every output node (Save Image, Preview Image) is muted or needs a muted node, so running the workflow would produce nothing',
    ]);
  });
});

describe('reroute and note', () => {
  it('a reroute (chain) carries its link; it never executes, and the graph hashes as without it', async () => {
    const { ex, req, ran, cached, events } = setup();
    await ex.run(req(base()));
    const wf = base();
    wf.nodes.push({ id: 'r1', type: 'reroute', params: {} }, { id: 'r2', type: 'reroute', params: {} }, { id: 'txt', type: 'note', params: { text: 'hello' } });
    wf.edges = wf.edges.filter((e) => !(e.from.node === 'p1' && e.to.node === 'p2'));
    wf.edges.push(edge('p1', 'latent', 'r1', 'in'), edge('r1', 'out', 'r2', 'in'), edge('r2', 'out', 'p2', 'a'), edge('r2', 'out', 'q', 'extra'));
    events.length = 0;
    expect(await ex.run(req(wf))).toEqual({ ok: true });
    expect(ex.executions.get('r1')).toBeUndefined();
    expect(ex.executions.get('txt')).toBeUndefined();
    expect(cached()).toEqual(['n', 'p1', 'p2', 'm']);
    expect(ran()).toEqual(['o', 'q', 'o2']); // q gained p1's 3 on "extra"
    expect(seen.o2).toEqual([6, 9]);
  });

  it('a reroute checks types at the far end, and one with no input says so', () => {
    const wf = base();
    wf.nodes.push({ id: 'r', type: 'reroute', params: {} });
    wf.edges = wf.edges.filter((e) => e.to.node !== 'p2');
    wf.edges.push(edge('r', 'out', 'p2', 'a'));
    expect(validateWorkflow(wf, specs).map((e) => e.message)).toEqual(['Plus (p2): required input "a" (LATENT) is not connected: Reroute (r) has no input']);
    wf.edges.push(edge('n', 'latent', 'r', 'in'), edge('r', 'out', 'p2', 'image'));
    expect(validateWorkflow(wf, specs).map((e) => e.message)).toEqual(['Plus (p2): input "image": LATENT output cannot feed a IMAGE input']);
  });
});

describe('primitive (a param turned into an input)', () => {
  const withPrimitive = (value: number) => {
    const wf = base();
    wf.nodes.push({ id: 'k', type: 'primitive', params: { value } });
    wf.edges.push(edge('k', 'value', 'p1', 'k'), edge('k', 'value', 'q', 'k'));
    return wf;
  };

  it('gives its value to every param it feeds; the nodes hash as with the value typed in', async () => {
    const { ex, req, ran, cached, events } = setup();
    await ex.run(req(withPrimitive(4)));
    expect(seen.o).toEqual([16]); // 2 + 4 + 10
    expect(seen.o2).toEqual([9]); // 5 + 4
    expect(ex.executions.get('k')).toBeUndefined();
    events.length = 0;
    const typed = base();
    typed.nodes.find((n) => n.id === 'p1')!.params.k = 4;
    typed.nodes.find((n) => n.id === 'q')!.params.k = 4;
    await ex.run(req(typed));
    expect(cached()).toEqual(['n', 'p1', 'p2', 'm', 'q']);
    events.length = 0;
    await ex.run(req(withPrimitive(5)));
    expect(ran()).toEqual(['p1', 'p2', 'o', 'q', 'o2']);
    expect(seen.o).toEqual([16, 16, 17]);
  });

  it('its value is checked against each param it feeds, on that node', () => {
    const errors = validateWorkflow(withPrimitive(50), specs);
    expect(errors.map((e) => [e.node, e.param])).toEqual([
      ['p1', 'k'],
      ['q', 'k'],
    ]);
    for (const e of errors) expect(e.message).toMatch(/^Plus \((p1|q)\): .*\b50 is above the maximum 10/);
    const wf = withPrimitive(1);
    wf.edges.push(edge('k', 'value', 'o', 'a'));
    expect(validateWorkflow(wf, specs).map((e) => e.message)).toContain(
      'Out (o): "a" is not a param, so Primitive (k) cannot feed it; a primitive feeds params turned into inputs',
    );
  });
});
