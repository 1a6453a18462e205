import { describe, expect, it } from 'vitest';
import { philox4x32, philoxNormal, seededNoise } from './rng.js';
import { TorchGenerator, torchRandn } from '../models/sampling/torch-randn.js';

const hex = (a: number[]) => a.map((x) => x.toString(16).padStart(8, '0')).join(' ');

describe('Philox4x32-10 noise', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
    expect(hex(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))).toBe('408f276d 41c83b0e a20bc7c6 6d5451fd');
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toBe('d16cfe09 94fdcceb 5001e420 24126ea1');
  });

  it('gives standard normals, the same for the same seed, other values for other seeds and purposes', () => {
    const z = philoxNormal(42, 0, 200_000);
    const mean = z.reduce((a, x) => a + x, 0) / z.length;
    const varc = z.reduce((a, x) => a + x * x, 0) / z.length - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(varc - 1)).toBeLessThan(0.02);
    const a = seededNoise({ node: 'n', purpose: 'latents', seed: 7, shape: [1, 4, 8, 8] });
    expect(seededNoise({ node: 'other', purpose: 'latents', seed: 7, shape: [1, 4, 8, 8] })).toEqual(a);
    expect(seededNoise({ node: 'n', purpose: 'latents', seed: 8, shape: [1, 4, 8, 8] })).not.toEqual(a);
    expect(seededNoise({ node: 'n', purpose: 'add_noise', seed: 7, shape: [1, 4, 8, 8] })).not.toEqual(a);
    // A prefix of a longer draw is the shorter draw (element i depends only on i).
    expect(philoxNormal(3, 1, 10)).toEqual(philoxNormal(3, 1, 13).subarray(0, 10));
    expect(() => philoxNormal(-1, 0, 4)).toThrow(/seed/);
  });
});

describe('seededNoise with the torch generator', () => {
  const shape = [1, 4, 8, 8];
  const req = (purpose: 'latents' | 'add_noise' | 'posterior' | 'eta' | 'sampler', seed: number | bigint, step?: number) =>
    seededNoise({ node: 'n', purpose, seed, shape, generator: 'torch', ...(step === undefined ? {} : { step }) });

  it('draws the first randn of manual_seed(seed) for latents, add_noise and posterior (ComfyUI prepare_noise)', () => {
    const first = torchRandn(42, shape);
    expect(req('latents', 42)).toEqual(first);
    expect(req('add_noise', 42)).toEqual(first);
    expect(req('posterior', 42n)).toEqual(first);
  });

  it('continues that generator for eta (diffusers) and draws from manual_seed(seed + 1) for sampler (ComfyUI default_noise_sampler)', () => {
    const g = new TorchGenerator(9);
    const own = [g.randn(shape), g.randn(shape), g.randn(shape)];
    const h = new TorchGenerator(10);
    const next = [h.randn(shape), h.randn(shape), h.randn(shape)];
    expect(req('eta', 9, 0)).toEqual(own[1]);
    expect(req('eta', 9, 1)).toEqual(own[2]);
    // Asked out of order, the stream is drawn again: the same values.
    expect(req('sampler', 9, 2)).toEqual(next[2]);
    expect(req('sampler', 9, 0)).toEqual(next[0]);
    expect(req('sampler', 9, 1)).toEqual(next[1]);
    // seed + 1 wraps at 2^64, as the low 32 bits do.
    expect(req('sampler', 2n ** 64n - 1n, 0)).toEqual(torchRandn(0, shape));
  });

  it('takes seeds up to 2^64 - 1 and refuses others; Philox keeps its values and extends its key to 64 bits', () => {
    expect(req('latents', 2n ** 64n - 1n)).toEqual(torchRandn('18446744073709551615', shape));
    expect(() => req('latents', 2n ** 64n)).toThrow(/\[0, 2\^64\)/);
    expect(() => req('latents', -1)).toThrow(/\[0, 2\^64\)/);
    const philox = (seed: number | bigint) => seededNoise({ node: 'n', purpose: 'latents', seed, shape });
    expect(philox(123n)).toEqual(philox(123));
    expect(seededNoise({ node: 'n', purpose: 'latents', seed: 123, shape, generator: 'philox' })).toEqual(philox(123));
    expect(philox(2n ** 63n)).not.toEqual(philox(0));
  });
});
