/** Inpainting arithmetic: mask resampling rules, the per-step blend, the 9-channel input layout. */
import { describe, expect, it } from 'vitest';
import { blendByMask, greyMasked, inpaintUNetInput, resampleMask } from './inpaint.js';

describe('inpainting helpers', () => {
  it('binary resampling: threshold 0.5, then PyTorch nearest (top-left pixel of each 8x8 block)', () => {
    const W = 16;
    const H = 8;
    const data = new Float32Array(W * H);
    data[0] = 0.6; // block (0, 0): its top-left pixel decides
    data[8 * 1 + 1] = 1; // block (0, 1) has a 1 that is not its top-left pixel
    data[8] = 0.4;
    const m = resampleMask({ batch: 1, width: W, height: H, data }, 2, 1, true);
    expect(Array.from(m)).toEqual([1, 0]);
  });

  it('soft resampling keeps fractions (bilinear, align_corners = False) and equals the input at the same size', () => {
    const data = Float32Array.from([0, 0.25, 0.5, 1]);
    expect(resampleMask({ batch: 1, width: 2, height: 2, data }, 2, 2, false)).toEqual(data);
    const down = resampleMask({ batch: 1, width: 2, height: 2, data }, 1, 1, false);
    expect(down[0]).toBeCloseTo(0.4375, 6); // the centre: mean of the four
  });

  it('blend: 1 keeps x bit-identical, 0 takes init, 0.5 mixes; a mask of batch 1 serves every latent', () => {
    const dims = [2, 2, 1, 2];
    const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const init = Float32Array.from([-1, -2, -3, -4, -5, -6, -7, -8]);
    const ones = new Float32Array(2).fill(1);
    const y = new Float32Array(x);
    blendByMask(y, init, ones, dims);
    expect(y).toEqual(x);
    const z = new Float32Array(x);
    blendByMask(z, init, Float32Array.from([0, 0.5]), dims);
    expect(Array.from(z)).toEqual([-1, 0, -3, 0, -5, 0, -7, 0]);
    expect(() => blendByMask(new Float32Array(x), init, new Float32Array(6), dims)).toThrow(/3 planes for 2 latents/);
  });

  it('9-channel input: [x (4), mask (1), masked-image latents (4)] per latent', () => {
    const dims = [1, 4, 1, 1];
    const out = inpaintUNetInput(Float32Array.from([1, 2, 3, 4]), Float32Array.from([9]), Float32Array.from([5, 6, 7, 8]), dims);
    expect(Array.from(out)).toEqual([1, 2, 3, 4, 9, 5, 6, 7, 8]);
  });

  it('masked pixels (mask >= 0.5) turn 0.5 grey', () => {
    const rgb = Float32Array.from([1, 1, 1, 0, 0, 0]);
    expect(Array.from(greyMasked(rgb, Float32Array.from([0.7, 0.2]), 1, 2))).toEqual([0.5, 0.5, 0.5, 0, 0, 0]);
  });
});
