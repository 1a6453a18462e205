import { describe, expect, it } from 'vitest';
import { TorchGenerator, comfyPrepareNoise, fma32, logAvx, sincosAvx, torchRandn, torchSeed } from './torch-randn.js';

/** float64 -> exact (mantissa, exponent): v = m * 2^e. */
function exact(v: number): [bigint, number] {
  if (v === 0) return [0n, 0];
  let e = 0;
  let m = v;
  while (!Number.isInteger(m)) {
    m *= 2;
    e--;
  }
  return [BigInt(m), e];
}

/** The float32 nearest to m * 2^e (ties to even), computed in exact integers. */
function roundToF32(m: bigint, e: number): number {
  if (m === 0n) return 0;
  const neg = m < 0n;
  let a = neg ? -m : m;
  const bits = a.toString(2).length;
  let shift = bits - 24; // keep 24 significant bits (normal range only in these tests)
  if (shift > 0) {
    const rem = a & ((1n << BigInt(shift)) - 1n);
    const half = 1n << BigInt(shift - 1);
    a >>= BigInt(shift);
    if (rem > half || (rem === half && (a & 1n) === 1n)) a += 1n;
  } else shift = 0;
  const v = Number(a) * 2 ** (e + shift);
  return neg ? -v : v;
}

function fmaReference(a: number, b: number, c: number): number {
  const [ma, ea] = exact(a);
  const [mb, eb] = exact(b);
  const [mc, ec] = exact(c);
  const ep = ea + eb;
  const e = Math.min(ep, ec);
  const sum = ((ma * mb) << BigInt(ep - e)) + (mc << BigInt(ec - e));
  return roundToF32(sum, e);
}

describe('fma32', () => {
  it('is the exactly rounded float32 a*b + c, also where float64 rounding lands on a float32 midpoint', () => {
    const f = Math.fround;
    // Crafted double-rounding cases: the float64 sum lands exactly on a float32 midpoint.
    // (80581 * 2^-27) * (13325 * 2^-27) = 2^-24 + 2^-54; + 1 -> 1 + 2^-23 (just above the midpoint).
    const up: [number, number, number] = [80581 * 2 ** -27, 13325 * 2 ** -27, 1];
    // 2^-24 (1 + 2^-15) * (1 - 2^-15) = 2^-24 - 2^-54; + (1 + 2^-23) -> 1 + 2^-23 (just below it).
    const down: [number, number, number] = [f(2 ** -24 * (1 + 2 ** -15)), f(1 - 2 ** -15), f(1 + 2 ** -23)];
    expect(fma32(...up)).toBe(1 + 2 ** -23);
    expect(f(up[0] * up[1] + up[2])).toBe(1); // what float64-then-float32 would give
    expect(fma32(...down)).toBe(1 + 2 ** -23);
    expect(f(down[0] * down[1] + down[2])).toBe(1 + 2 ** -22);
    const cases: [number, number, number][] = [up, down, [-up[0], up[1], -up[2]], [-down[0], down[1], -down[2]]];
    let s = 12345;
    const rnd = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 2 ** 32;
    };
    for (let i = 0; i < 20000; i++) {
      const a = f((rnd() - 0.5) * 4);
      const b = f((rnd() - 0.5) * 4);
      const c = f(-a * b * (1 + (rnd() - 0.5) * 2 ** -20));
      cases.push([a, b, c], [a, b, f((rnd() - 0.5) * 2)]);
    }
    let naiveDiffers = 0;
    for (const [a, b, c] of cases) {
      const want = fmaReference(a, b, c);
      expect(fma32(a, b, c)).toBe(want);
      if (f(f(a * b) + c) !== want) naiveDiffers++;
    }
    expect(naiveDiffers).toBeGreaterThan(0);
  });
});

describe('avx_mathfun lanes', () => {
  it('log and sincos stay within float32 accuracy of the exact functions', () => {
    for (let k = 1; k <= 4096; k++) {
      const u = Math.fround(k / 4096);
      expect(Math.abs(logAvx(u) - Math.log(u))).toBeLessThan(3e-7 * Math.max(1, Math.abs(Math.log(u))));
      const t = Math.fround(2 * Math.PI * (k / 4096));
      const [sn, cs] = sincosAvx(t);
      expect(Math.abs(sn - Math.sin(t))).toBeLessThan(3e-7);
      expect(Math.abs(cs - Math.cos(t))).toBeLessThan(3e-7);
    }
  });
});

describe('TorchGenerator', () => {
  it('is mt19937: seeded 5489, the 1st word is 3499211612 and the 10000th 4123659995 (C++ std::mt19937)', () => {
    const g = new TorchGenerator(5489);
    expect(g.random()).toBe(3499211612);
    for (let i = 2; i < 10000; i++) g.random();
    expect(g.random()).toBe(4123659995);
  });

  it('torch.manual_seed(0); torch.randn(3) = [1.5410, -0.2934, -2.1788]', () => {
    const v = torchRandn(0, [3]);
    expect([...v].map((x) => Number(x.toFixed(4)))).toEqual([1.541, -0.2934, -2.1788]);
  });

  it('takes seeds in [-2^63, 2^64) like torch.manual_seed, uses their low 32 bits, and refuses others', () => {
    expect(torchRandn(5, [20])).toEqual(torchRandn(2 ** 32 + 5, [20]));
    expect(torchRandn('-1', [20])).toEqual(torchRandn('18446744073709551615', [20]));
    expect(torchSeed(-5)).toBe(2n ** 64n - 5n);
    expect(torchSeed('18446744073709551615')).toBe(2n ** 64n - 1n);
    expect(() => torchSeed('18446744073709551616')).toThrow(/\[-2\^63, 2\^64\)/);
    expect(() => torchSeed(-(2n ** 63n) - 1n)).toThrow(/\[-2\^63, 2\^64\)/);
    expect(() => torchSeed(2 ** 60)).toThrow(/safe integer/);
    expect(() => torchSeed('1.5')).toThrow(/integer/);
  });

  it('small tensors keep the second Box-Muller value for the next small draw, also across a large one', () => {
    const g = new TorchGenerator(42);
    const a = g.randn([1]);
    g.randn([16]);
    const b = g.randn([1]);
    const h = new TorchGenerator(42);
    const ab = h.randn([2]);
    expect(a[0]).toBe(ab[0]);
    expect(b[0]).toBe(ab[1]);
  });

  it('a latent batch drawn at once equals its samples drawn in order, and prepare_noise orders rows by noise_inds', () => {
    const all = torchRandn(7, [3, 4, 8, 8]);
    const g = new TorchGenerator(7);
    const rows = [g.randn([1, 4, 8, 8]), g.randn([1, 4, 8, 8]), g.randn([1, 4, 8, 8])];
    expect(all).toEqual(Float32Array.from([...rows[0], ...rows[1], ...rows[2]]));
    expect(comfyPrepareNoise(7, [3, 4, 8, 8])).toEqual(all);
    expect(comfyPrepareNoise(7, [3, 4, 8, 8], [2, 0, 0])).toEqual(Float32Array.from([...rows[2], ...rows[0], ...rows[0]]));
    expect(() => comfyPrepareNoise(7, [2, 4, 8, 8], [0])).toThrow(/batch of 2/);
  });
});
