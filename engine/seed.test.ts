import { describe, expect, it } from 'vitest';
import { RANDOMIZE_LIMIT, parseSeed, seedAfterGenerate, seedProblem, seedValue } from './seed.js';
import { WORKFLOW_VERSION, parseWorkflow } from './workflow.js';

describe('seeds', () => {
  it('are integers in [0, 2^64): numbers below 2^53, decimal strings above', () => {
    expect(seedProblem(0)).toBeNull();
    expect(seedProblem(Number.MAX_SAFE_INTEGER)).toBeNull();
    expect(seedProblem('18446744073709551615')).toBeNull();
    expect(parseSeed('18446744073709551615')).toBe(2n ** 64n - 1n);
    expect(parseSeed(42)).toBe(42n);
    expect(seedProblem('18446744073709551616')).toMatch(/not below 2\^64/);
    expect(seedProblem(-1)).toMatch(/below 0/);
    expect(seedProblem('-1')).toMatch(/whole number in \[0, 2\^64\)/);
    expect(seedProblem(2 ** 60)).toMatch(/decimal string/);
    expect(seedProblem(1.5)).toMatch(/whole number/);
    expect(seedProblem('0x10')).toMatch(/whole number/);
    expect(seedProblem(true)).toMatch(/whole number/);
    expect(() => parseSeed(-3)).toThrow(/seed -3 is below 0/);
    expect(seedValue(2n ** 53n - 1n)).toBe(Number.MAX_SAFE_INTEGER);
    expect(seedValue(2n ** 53n)).toBe('9007199254740992');
  });

  it('change after a run as ComfyUI does: fixed, increment, decrement (clamped), randomize below 2^50', () => {
    expect(seedAfterGenerate(7, 'fixed')).toBe(7);
    expect(seedAfterGenerate(7, 'increment')).toBe(8);
    expect(seedAfterGenerate(7, 'decrement')).toBe(6);
    expect(seedAfterGenerate(0, 'decrement')).toBe(0);
    expect(seedAfterGenerate(Number.MAX_SAFE_INTEGER, 'increment')).toBe('9007199254740992');
    expect(seedAfterGenerate('18446744073709551615', 'increment')).toBe('18446744073709551615');
    expect(seedAfterGenerate('9007199254740992', 'decrement')).toBe(Number.MAX_SAFE_INTEGER);
    expect(seedAfterGenerate(7, 'randomize', () => 0.5)).toBe(RANDOMIZE_LIMIT / 2);
    expect(seedAfterGenerate(7, 'randomize', () => 0.999999999999)).toBeLessThan(RANDOMIZE_LIMIT);
  });
});

describe('workflow version 2', () => {
  const v1 = {
    format: 'ipadapter-studio/workflow',
    version: 1,
    nodes: [
      { id: 's', type: 'ddim-sampler', params: { seed: 5, steps: 4 } },
      { id: 'e', type: 'vae-encode', params: { mode: 'sample' } },
      { id: 'x', type: 'ddim-sampler', params: { noise: 'torch' } },
      { id: 'l', type: 'empty-latent-image', params: { width: 64 } },
    ],
    edges: [],
  };

  it('migrates version 1: seeded nodes keep the Philox noise they were made with', () => {
    expect(WORKFLOW_VERSION).toBeGreaterThanOrEqual(2);
    const r = parseWorkflow(v1);
    expect(r.migratedFrom).toBe(1);
    const params = Object.fromEntries(r.workflow!.nodes.map((n) => [n.id, n.params]));
    expect(params).toEqual({ s: { seed: 5, steps: 4, noise: 'philox' }, e: { mode: 'sample', noise: 'philox' }, x: { noise: 'torch' }, l: { width: 64 } });
    // Version 0 goes through both steps.
    const v0 = parseWorkflow({ version: 0, nodes: [{ id: 's', type: 'ddim-sampler', params: { seed: 1 } }], links: [] });
    expect(v0.workflow!.nodes[0].params).toEqual({ seed: 1, noise: 'philox' });
  });

  it('leaves version 2 files as they are (a seeded node without noise draws torch noise, the default)', () => {
    const r = parseWorkflow({ ...v1, version: 2 });
    expect(r.migratedFrom).toBe(WORKFLOW_VERSION > 2 ? 2 : undefined);
    expect(r.workflow!.nodes[0].params).toEqual({ seed: 5, steps: 4 });
  });
});
