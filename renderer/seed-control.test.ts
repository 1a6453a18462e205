import { describe, expect, it } from 'vitest';
import { resolveGraph } from '../engine/graph-modes.js';
import { validateWorkflow } from '../engine/validate.js';
import { nodeSpecs } from '../nodes/index.js';
import type { NodeSpec, ParamSpec } from '../nodes/types.js';
import { followSeedControls, seedsAfterGenerate } from './seed-control.js';
import { createEditorStore } from './store/index.js';

const CONTROL: ParamSpec = { name: 'control_after_generate', kind: 'enum', options: ['fixed', 'increment', 'decrement', 'randomize'], default: 'fixed' };
const SPECS: NodeSpec[] = [
  {
    type: 'sampler',
    title: 'Sampler',
    category: 'Sampling',
    description: '',
    inputs: [],
    outputs: [],
    params: [{ name: 'seed', kind: 'number', default: 0, min: 0, integer: true, widget: 'seed' }, CONTROL, { name: 'steps', kind: 'number', default: 4 }],
  },
  {
    type: 'advanced',
    title: 'Advanced',
    category: 'Sampling',
    description: '',
    inputs: [],
    outputs: [],
    params: [{ name: 'noise_seed', kind: 'number', default: 0, min: 0, integer: true, widget: 'seed' }, CONTROL],
  },
  {
    type: 'encode',
    title: 'Encode',
    category: 'Latent',
    description: '',
    inputs: [],
    outputs: [],
    params: [{ name: 'seed', kind: 'number', default: 0, min: 0, integer: true, widget: 'seed' }],
  },
];

function setup() {
  const store = createEditorStore();
  store.getState().setSpecs(SPECS);
  const s = () => store.getState();
  const a = s().addNode('sampler', 0, 0)!;
  const b = s().addNode('advanced', 0, 200)!;
  const c = s().addNode('encode', 0, 400)!;
  const params = (id: string) => s().nodes.find((n) => n.id === id)!.data.params;
  const queued = (runId: string) => store.setState({ runs: { ...s().runs, [runId]: { runId, status: 'queued', workflow: s().workflow() } } });
  return { store, s, a, b, c, params, queued };
}

describe('seed control after generate', () => {
  it('leaves fixed seeds alone and steps the others once per run the editor queues', () => {
    const { store, s, a, b, c, params, queued } = setup();
    followSeedControls(store, () => 0.25);
    s().setParam(a, 'seed', 41);
    s().setParam(a, 'control_after_generate', 'increment');
    s().setParam(b, 'noise_seed', '18446744073709551615');
    s().setParam(b, 'control_after_generate', 'decrement');
    queued('r1');
    expect([params(a).seed, params(b).noise_seed, params(c).seed]).toEqual([42, '18446744073709551614', 0]);
    // An event about a run this editor did not queue (no workflow) changes nothing; nor does an update of r1.
    s().handleEvent({ type: 'queued', runId: 'other', position: 0 });
    store.setState({ runs: { ...s().runs, r1: { ...s().runs.r1, status: 'running' } } });
    expect(params(a).seed).toBe(42);
    queued('r2');
    expect(params(a).seed).toBe(43);
    // One undo step takes both seeds back.
    s().undo();
    expect([params(a).seed, params(b).noise_seed]).toEqual([42, '18446744073709551614']);
  });

  it('randomize draws below 2^50; increment stops at 2^64 - 1, decrement at 0', () => {
    const { s, a, b } = setup();
    s().setParam(a, 'control_after_generate', 'randomize');
    s().setParam(b, 'control_after_generate', 'decrement');
    expect(seedsAfterGenerate(s(), () => 0.5)).toEqual([
      [a, 'seed', 2 ** 49],
      [b, 'noise_seed', 0],
    ]);
    s().setParam(a, 'seed', '18446744073709551615');
    s().setParam(a, 'control_after_generate', 'increment');
    expect(seedsAfterGenerate(s())[0]).toEqual([a, 'seed', '18446744073709551615']);
    // A seed that is not one (validation refuses it) is left for the person to fix.
    s().setParam(a, 'seed', -4);
    expect(seedsAfterGenerate(s()).map(([n]) => n)).toEqual([b]);
  });
});

describe('a Primitive feeding seeds (real node specs)', () => {
  it('takes the seed and its control when wired; its own control steps its value; the nodes it feeds run with it', () => {
    const specs = nodeSpecs();
    const store = createEditorStore();
    store.getState().setSpecs(specs);
    const s = () => store.getState();
    const k1 = s().addNode('ksampler', 0, 0, { seed: 41, control_after_generate: 'increment' })!;
    const k2 = s().addNode('ksampler-advanced', 0, 300, { noise_seed: 5, control_after_generate: 'decrement' })!;
    const p = s().addNode('primitive', 400, 0)!;
    s().convertParam(k1, 'seed', true);
    s().convertParam(k2, 'noise_seed', true);
    expect(s().connect({ source: p, sourceHandle: 'value', target: k1, targetHandle: 'seed' })).toBeNull();
    expect(s().connect({ source: p, sourceHandle: 'value', target: k2, targetHandle: 'noise_seed' })).toBeNull();
    const params = (id: string) => s().nodes.find((n) => n.id === id)!.data.params;
    // The first wire gives the primitive the seed and its control, as ComfyUI's PrimitiveNode takes the widget's.
    expect(params(p)).toMatchObject({ value: 41, control_after_generate: 'increment' });
    const queued = (runId: string) => store.setState({ runs: { ...s().runs, [runId]: { runId, status: 'queued', workflow: s().workflow() } } });
    followSeedControls(store, () => 0.5);

    queued('r1');
    // The primitive stepped; the nodes' own controls no longer touch the seeds it feeds.
    expect([params(p).value, params(k1).seed, params(k2).noise_seed]).toEqual([42, 41, 5]);
    const ran = resolveGraph(s().workflow(), new Map(specs.map((x) => [x.type, x]))).workflow;
    expect(ran.nodes.find((n) => n.id === k1)!.params.seed).toBe(42);
    expect(ran.nodes.find((n) => n.id === k2)!.params.noise_seed).toBe(42);
    expect(validateWorkflow(s().workflow(), new Map(specs.map((x) => [x.type, x]))).filter((e) => /seed|control/.test(e.message))).toEqual([]);

    for (const [control, next] of [
      ['decrement', 41],
      ['fixed', 41],
      ['randomize', 2 ** 49],
    ] as const) {
      s().setParam(p, 'control_after_generate', control);
      queued(`r-${control}`);
      expect(params(p).value).toBe(next);
    }
    // Undo takes the primitive's last step back (one step per run).
    s().undo();
    expect(params(p).value).toBe(41);

    // Back to a widget: the node's own control applies to its seed again.
    s().convertParam(k1, 'seed', false);
    s().setParam(p, 'control_after_generate', 'fixed');
    expect(seedsAfterGenerate(s())).toEqual([[k1, 'seed', 42]]);
  });
});
