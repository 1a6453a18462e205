import { describe, expect, it } from 'vitest';
import { type CaseSpec, trackCase } from './context.js';

describe('trackCase', () => {
  const spec = (): CaseSpec => ({
    name: 'c',
    inputs: { prompt: 'p', latents: 'latents' },
    params: { eta: 0, timesteps: [1], extra: 3 },
    outputs: { latents: { tensor: 'x' } },
    intermediates: { step: { tensor: 'y' } },
    notes: 'not checked',
  });

  it('lists every key of inputs / params / outputs / intermediates the handler never read', () => {
    const { tracked, unread } = trackCase(spec());
    expect(unread()).toEqual(['inputs.prompt', 'inputs.latents', 'params.eta', 'params.timesteps', 'params.extra', 'outputs.latents', 'intermediates.step']);
    void tracked.params!.eta;
    void (tracked.inputs as Record<string, unknown>).prompt;
    for (const [k, v] of Object.entries(tracked.outputs ?? {})) void [k, v]; // entries reads every value
    expect(unread()).toEqual(['inputs.latents', 'params.timesteps', 'params.extra', 'intermediates.step']);
  });

  it('does not count listing the keys as using them, nor absent keys', () => {
    const { tracked, unread } = trackCase(spec());
    expect(Object.keys(tracked.params ?? {})).toEqual(['eta', 'timesteps', 'extra']);
    expect('extra' in (tracked.params ?? {})).toBe(true);
    void (tracked.params as Record<string, unknown>).missing;
    expect(unread()).toContain('params.extra');
    expect(unread()).toHaveLength(7);
    expect(tracked.name).toBe('c');
    expect(tracked.notes).toBe('not checked');
  });
});
