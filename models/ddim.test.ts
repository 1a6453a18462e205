import { describe, expect, it } from 'vitest';
import { DDIMScheduler, classifierFreeGuidance, fmaf, parseSchedulerConfig } from './ddim.js';

// The SD1.5 scheduler config, as diffusers writes it (the conformance group reads the fixture's file).
const sd15 = parseSchedulerConfig({
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
  timestep_spacing: 'leading',
  prediction_type: 'epsilon',
});

describe('DDIMScheduler', () => {
  it('leading spacing: 10 and 50 steps', () => {
    const s = new DDIMScheduler(sd15);
    expect(s.setTimesteps(10)).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    const t50 = s.setTimesteps(50);
    expect(t50.length).toBe(50);
    expect(t50.slice(0, 3)).toEqual([981, 961, 941]);
    expect(t50.at(-1)).toBe(1);
    expect(s.prevTimestep(981)).toBe(961);
  });

  it('trailing and linspace spacing', () => {
    const tr = new DDIMScheduler({ ...sd15, timestep_spacing: 'trailing', steps_offset: 0 });
    expect(tr.setTimesteps(10)).toEqual([999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
    const li = new DDIMScheduler({ ...sd15, timestep_spacing: 'linspace', steps_offset: 0 });
    expect(li.setTimesteps(10)).toEqual([999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
  });

  it('img2img strength keeps the last int(n*strength) steps', () => {
    const s = new DDIMScheduler(sd15);
    expect(s.timestepsForStrength(10, 0.5)).toEqual([401, 301, 201, 101, 1]);
    expect(s.timestepsForStrength(10, 1)).toEqual(s.setTimesteps(10));
    expect(s.timestepsForStrength(10, 0)).toEqual([]);
    const t = s.timestepsForStrength(50, 0.75); // int(37.5) = 37
    expect(t.length).toBe(37);
    expect(t[0]).toBe(721);
    expect(() => s.timestepsForStrength(10, 1.5)).toThrow(/strength/);
  });

  it('alphas_cumprod is decreasing and final alpha is alphas_cumprod[0]', () => {
    const s = new DDIMScheduler(sd15);
    expect(s.alphasCumprod.length).toBe(1000);
    expect(s.alphasCumprod[0]).toBeCloseTo(1 - 0.00085, 7);
    expect(s.alphasCumprod[999]).toBeLessThan(s.alphasCumprod[0]);
    expect(s.finalAlphaCumprod).toBe(s.alphasCumprod[0]);
    expect(s.betas[999]).toBeCloseTo(0.012, 7);
  });

  it('step with eta 0 inverts addNoise when the model predicts the true noise', () => {
    const s = new DDIMScheduler(sd15);
    s.setTimesteps(10);
    const x0 = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
    const eps = Float32Array.from({ length: 16 }, (_, i) => Math.cos(3 * i));
    const xt = s.addNoise(x0, eps, 501);
    const { predOriginal, prevSample } = s.step(eps, 501, xt);
    for (let i = 0; i < 16; i++) expect(predOriginal[i]).toBeCloseTo(x0[i], 5);
    const expected = s.addNoise(x0, eps, 401);
    for (let i = 0; i < 16; i++) expect(prevSample[i]).toBeCloseTo(expected[i], 5);
    expect(() => s.step(eps, 501, xt, { eta: 1 })).toThrow(/noise/);
    const withNoise = s.step(eps, 501, xt, { eta: 1, noise: new Float32Array(16) });
    expect(withNoise.prevSample.every(Number.isFinite)).toBe(true);
  });

  it('classifier-free guidance', () => {
    const g = classifierFreeGuidance(Float32Array.of(1, 2), Float32Array.of(3, 2), 7.5);
    expect([...g]).toEqual([16, 2]);
  });

  it('fmaf rounds once where double rounding would not', () => {
    const a = Math.fround(2 ** -24 * (1 + 2 ** -23));
    const b = Math.fround(1 - 2 ** -23);
    const c = Math.fround(1 + 2 ** -23);
    expect(Math.fround(a * b + c)).toBe(1 + 2 ** -22); // double rounding lands on the tie, then to even
    expect(fmaf(a, b, c)).toBe(1 + 2 ** -23); // the exact value is below the tie
  });

  it('rejects configs it does not implement', () => {
    expect(() => parseSchedulerConfig({ beta_schedule: 'sigmoid' })).toThrow(/beta_schedule/);
    expect(() => parseSchedulerConfig({ thresholding: true })).toThrow(/thresholding/);
  });
});
