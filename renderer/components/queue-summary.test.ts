/** The queue panel's job summary: the seed a job ran with, also when a Primitive feeds it through reroutes. */
import { describe, expect, it } from 'vitest';
import { jobSummary } from './QueuePanel.js';

type Wf = NonNullable<Parameters<typeof jobSummary>[0]>;
const node = (id: string, type: string, params: Record<string, unknown> = {}) => ({ id, type, params, position: { x: 0, y: 0 } });
const edge = (from: string, fromPort: string, to: string, toPort: string) => ({ from: { node: from, port: fromPort }, to: { node: to, port: toPort } });

describe('jobSummary', () => {
  const nodes = [node('s', 'ddim-sampler', { seed: 41, steps: 2 }), node('p', 'primitive', { value: 141 }), node('t', 'text-encode', { text: 'a  windmill' })];
  it('reads the sampler’s own params and the first prompt', () => {
    expect(jobSummary({ version: 4, nodes, edges: [] } as unknown as Wf)).toBe('seed 41 · 2 steps · “a windmill”');
  });
  it('reads a Primitive’s value, wired directly or through a chain of reroutes', () => {
    const direct = { version: 4, nodes, edges: [edge('p', 'value', 's', 'seed')] } as unknown as Wf;
    expect(jobSummary(direct)).toBe('seed 141 · 2 steps · “a windmill”');
    const rerouted = {
      version: 4,
      nodes: [...nodes, node('r1', 'reroute'), node('r2', 'reroute')],
      edges: [edge('p', 'value', 'r1', 'in'), edge('r1', 'out', 'r2', 'in'), edge('r2', 'out', 's', 'seed')],
    } as unknown as Wf;
    expect(jobSummary(rerouted)).toBe('seed 141 · 2 steps · “a windmill”');
  });
});
