import { describe, expect, it } from 'vitest';
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
