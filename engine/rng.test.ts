import { describe, expect, it } from 'vitest';
import { philox4x32, philoxNormal, seededNoise } from './rng.js';

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
