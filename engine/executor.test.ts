import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeDef } from '../nodes/types.js';
import type { RunEvent, Workflow } from './api.js';
import { Executor, type RunRequest } from './executor.js';
import { ModelStore } from './model-store.js';

// Stub nodes: a number source, an adder, a slow step node, a preprocessor that shows an image on
// its card, and an output that records values.
const seen: number[] = [];
const defs: NodeDef[] = [
  {
    type: 'num',
    title: 'Num',
    category: 't',
    description: '',
    inputs: [],
    outputs: [{ name: 'latent', type: 'LATENT' }],
    params: [{ name: 'v', kind: 'number', default: 0 }],
    execute: async (_i, p) => ({ latent: p.v }),
  },
  {
    type: 'add',
    title: 'Add',
    category: 't',
    description: '',
    inputs: [
      { name: 'a', type: 'LATENT' },
      { name: 'b', type: 'LATENT' },
    ],
    outputs: [{ name: 'latent', type: 'LATENT' }],
    params: [],
    execute: async (i) => ({ latent: (i.a as number) + (i.b as number) }),
  },
  {
    type: 'steps',
    title: 'Steps',
    category: 't',
    description: '',
    inputs: [{ name: 'a', type: 'LATENT' }],
    outputs: [{ name: 'latent', type: 'LATENT' }],
    params: [{ name: 'n', kind: 'number', default: 5 }],
    execute: async (i, p, ctx) => {
      for (let s = 1; s <= (p.n as number); s++) {
        if (ctx.signal.aborted) throw new Error('aborted');
        await new Promise((r) => setTimeout(r, 1));
        ctx.progress(s, p.n as number);
      }
      return { latent: i.a };
    },
  },
  {
    type: 'pre',
    title: 'Pre',
    category: 't',
    description: '',
    inputs: [{ name: 'a', type: 'LATENT' }],
    outputs: [{ name: 'latent', type: 'LATENT' }],
    params: [],
    execute: async (i, _p, ctx) => {
      ctx.previewOnNode([{ path: `/tmp/preview-of-${i.a}.png`, width: 8, height: 8 }]);
      return { latent: i.a };
    },
  },
  {
    type: 'fail',
    title: 'Fail',
    category: 't',
    description: '',
    inputs: [{ name: 'a', type: 'LATENT' }],
    outputs: [{ name: 'latent', type: 'LATENT' }],
    params: [],
    execute: async () => {
      throw new Error('boom');
    },
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
    execute: async (i) => {
      seen.push(i.a as number);
      return {};
    },
  },
  // Two outputs with their own dependencies (as Load LoRA's MODEL / CLIP): p only reads a and pa, q only b and pb.
  {
    type: 'split',
    title: 'Split',
    category: 't',
    description: '',
    inputs: [
      { name: 'a', type: 'LATENT' },
      { name: 'b', type: 'LATENT' },
    ],
    outputs: [
      { name: 'p', type: 'LATENT' },
      { name: 'q', type: 'LATENT' },
    ],
    params: [
      { name: 'pa', kind: 'number', default: 0 },
      { name: 'pb', kind: 'number', default: 0 },
    ],
    outputDeps: { p: { params: ['pa'], inputs: ['a'] }, q: { params: ['pb'], inputs: ['b'] } },
    execute: async (i, p) => ({ p: (i.a as number) + (p.pa as number), q: (i.b as number) + (p.pb as number) }),
  },
];

function workflow(x: number, y: number, tail: 'steps' | 'fail' | 'pre' = 'steps'): Workflow {
  return {
    format: 'ipadapter-studio/workflow',
    version: 1,
    nodes: [
      { id: 'x', type: 'num', params: { v: x } },
      { id: 'y', type: 'num', params: { v: y } },
      { id: 'sum', type: 'add', params: {} },
      { id: 'k', type: tail, params: {} },
      { id: 'o', type: 'out', params: {} },
      { id: 'unused', type: 'num', params: {} },
    ],
    edges: [
      { from: { node: 'x', port: 'latent' }, to: { node: 'sum', port: 'a' } },
      { from: { node: 'y', port: 'latent' }, to: { node: 'sum', port: 'b' } },
      { from: { node: 'sum', port: 'latent' }, to: { node: 'k', port: 'a' } },
      { from: { node: 'k', port: 'latent' }, to: { node: 'o', port: 'a' } },
    ],
  };
}

function setup() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-exec-'));
  const ex = new Executor(defs, new ModelStore({ cacheDir: path.join(tmp, 'cache'), provider: 'cpu' }));
  const events: RunEvent[] = [];
  const req = (wf: Workflow, signal = new AbortController().signal): RunRequest => ({
    runId: 'r',
    workflow: wf,
    modelsDir: tmp,
    outputDir: tmp,
    tempDir: tmp,
    signal,
    emit: (e) => events.push(e),
  });
  return { ex, events, req };
}

describe('Executor', () => {
  it('runs in topological order, skips nodes that lead to no output, and reports ms', async () => {
    const { ex, events, req } = setup();
    seen.length = 0;
    expect(await ex.run(req(workflow(2, 3)))).toEqual({ ok: true });
    expect(seen).toEqual([5]);
    const done = events.filter((e) => e.type === 'node-done').map((e) => (e as { node: string }).node);
    expect(done).toEqual(['x', 'y', 'sum', 'k', 'o']);
    expect(ex.executions.get('unused')).toBeUndefined();
    expect(events.filter((e) => e.type === 'progress')).toHaveLength(5);
  });

  it('caches by input signature: a changed param re-runs that node and what is downstream of it only', async () => {
    const { ex, events, req } = setup();
    await ex.run(req(workflow(2, 3)));
    await ex.run(req(workflow(2, 3)));
    expect(Object.fromEntries(ex.executions)).toEqual({ x: 1, y: 1, sum: 1, k: 1, o: 2 }); // output nodes always run
    await ex.run(req(workflow(2, 4)));
    expect(Object.fromEntries(ex.executions)).toEqual({ x: 1, y: 2, sum: 2, k: 2, o: 3 });
    const cached = events.filter((e) => e.type === 'node-done' && e.cached).map((e) => (e as { node: string }).node);
    expect(cached).toEqual(['x', 'y', 'sum', 'k', 'x']);
  });

  it('an output with declared dependencies (outputDeps) keeps its signature when only the others change', async () => {
    const { ex, req } = setup();
    const wf = (pa: number, pb: number, y: number): Workflow => ({
      format: 'ipadapter-studio/workflow',
      version: 1,
      nodes: [
        { id: 'x', type: 'num', params: { v: 1 } },
        { id: 'y', type: 'num', params: { v: y } },
        { id: 's', type: 'split', params: { pa, pb } },
        { id: 'kp', type: 'pre', params: {} },
        { id: 'kq', type: 'pre', params: {} },
        { id: 'op', type: 'out', params: {} },
        { id: 'oq', type: 'out', params: {} },
      ],
      edges: [
        { from: { node: 'x', port: 'latent' }, to: { node: 's', port: 'a' } },
        { from: { node: 'y', port: 'latent' }, to: { node: 's', port: 'b' } },
        { from: { node: 's', port: 'p' }, to: { node: 'kp', port: 'a' } },
        { from: { node: 's', port: 'q' }, to: { node: 'kq', port: 'a' } },
        { from: { node: 'kp', port: 'latent' }, to: { node: 'op', port: 'a' } },
        { from: { node: 'kq', port: 'latent' }, to: { node: 'oq', port: 'a' } },
      ],
    });
    seen.length = 0;
    await ex.run(req(wf(1, 2, 3)));
    await ex.run(req(wf(1, 7, 3))); // pb: only q's branch
    expect(Object.fromEntries(ex.executions)).toMatchObject({ s: 2, kp: 1, kq: 2 });
    await ex.run(req(wf(4, 7, 3))); // pa: only p's branch
    expect(Object.fromEntries(ex.executions)).toMatchObject({ s: 3, kp: 2, kq: 2 });
    await ex.run(req(wf(4, 7, 5))); // input b: only q's branch
    expect(Object.fromEntries(ex.executions)).toMatchObject({ s: 4, kp: 2, kq: 3 });
    expect(seen.slice(-2).sort((a, b) => a - b)).toEqual([5, 12]);
  });

  it('keeps only the entries the last completed run used; a failed run evicts nothing', async () => {
    const { ex, req } = setup();
    await ex.run(req(workflow(2, 3)));
    expect(ex.cachedEntries).toBe(4); // x, y, sum, k (output nodes are not cached)
    await ex.run(req(workflow(2, 4)));
    expect(ex.cachedEntries).toBe(4); // y=3, its sum and k are gone; x was reused
    await ex.run(req(workflow(2, 3)));
    expect(Object.fromEntries(ex.executions)).toMatchObject({ x: 1, y: 3, sum: 3, k: 3 });
    expect((await ex.run(req(workflow(1, 5, 'fail')))).ok).toBe(false);
    expect(ex.cachedEntries).toBe(7); // the failed run's x, y, sum added; nothing evicted
  });

  it('a cached node shows the preview it showed when it executed (its card would be empty otherwise)', async () => {
    const { ex, events, req } = setup();
    await ex.run(req(workflow(2, 3, 'pre')));
    const previews = () => events.filter((e) => e.type === 'node-preview');
    expect(previews()).toEqual([{ type: 'node-preview', runId: 'r', node: 'k', images: [{ path: '/tmp/preview-of-5.png', width: 8, height: 8 }] }]);
    events.length = 0;
    await ex.run(req(workflow(2, 3, 'pre')));
    expect(ex.executions.get('k')).toBe(1);
    expect(events.find((e) => e.type === 'node-done' && e.node === 'k')).toMatchObject({ cached: true });
    expect(previews()).toEqual([{ type: 'node-preview', runId: 'r', node: 'k', images: [{ path: '/tmp/preview-of-5.png', width: 8, height: 8 }] }]);
    // Before the node's "done", as when it executes; nodes without previews send none.
    expect(events.findIndex((e) => e.type === 'node-preview')).toBeLessThan(events.findIndex((e) => e.type === 'node-done' && e.node === 'k'));
    // A changed input runs it again, with the new image.
    events.length = 0;
    await ex.run(req(workflow(2, 4, 'pre')));
    expect(ex.executions.get('k')).toBe(2);
    expect(previews().map((e) => (e as { images: { path: string }[] }).images[0].path)).toEqual(['/tmp/preview-of-6.png']);
  });

  it('reports a node error tied to the node and stops', async () => {
    const { ex, events, req } = setup();
    const r = await ex.run(req(workflow(1, 1, 'fail')));
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/Fail \(k\): boom/);
    expect(events.find((e) => e.type === 'node-error')).toMatchObject({ node: 'k', message: 'boom' });
    expect(ex.executions.get('o')).toBeUndefined();
  });

  it('stops between nodes when cancelled and returns cancelled', async () => {
    const { ex, events, req } = setup();
    const ac = new AbortController();
    const r0 = req(workflow(1, 1), ac.signal);
    const r = await ex.run({
      ...r0,
      emit: (e) => {
        events.push(e);
        if (e.type === 'progress' && e.step === 2) ac.abort();
      },
    });
    expect(r).toEqual({ ok: false, cancelled: true });
    expect(ex.executions.get('o')).toBeUndefined();
  });

  it('does not execute an invalid workflow', async () => {
    const { ex, req } = setup();
    const wf = workflow(1, 1);
    wf.edges.pop();
    const r = await ex.run(req(wf));
    expect(r.ok).toBe(false);
    expect(r.errors?.[0]).toMatchObject({ node: 'o', port: 'a' });
    expect(ex.executions.size).toBe(0);
  });
});
