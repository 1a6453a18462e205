/**
 * torch.randn on the CPU, bit for bit: what ComfyUI's `prepare_noise` (comfy/sample.py) and
 * diffusers' `randn_tensor(..., generator=torch.Generator("cpu").manual_seed(seed))` draw.
 * Written from PyTorch's sources (files, not code): aten/src/ATen/core/MT19937RNGEngine.h,
 * aten/src/ATen/CPUGeneratorImpl.cpp, aten/src/ATen/core/DistributionsHelper.h,
 * aten/src/ATen/core/TransformationHelper.h, aten/src/ATen/native/cpu/DistributionTemplates.h
 * (normal_kernel, normal_fill, normal_fill_16_AVX2) and aten/src/ATen/native/cpu/avx_mathfun.h
 * (log256_ps, sincos256_ps); checked against the fixtures' `samplers/torch_randn_cpu` group.
 *
 * - Engine: the 32-bit Mersenne Twister mt19937. `manual_seed(seed)` takes any integer in
 *   [-2^63, 2^64) (a negative seed counts modulo 2^64) and initialises the state from the low 32
 *   bits only, so seeds equal modulo 2^32 draw the same stream. It also clears the cached normal.
 * - float32 tensors of 16 elements or more (every latent) take `normal_fill`: ALL numel
 *   uniforms first (one 32-bit word each, (w & (2^24 - 1)) * 2^-24), then Box–Muller on each
 *   complete block of 16 (u1 = 1 - d[j], u2 = d[j + 8] for j < 8); when numel % 16 != 0 the last
 *   16 slots are refilled with 16 fresh uniforms and that block is transformed again.
 *   x86 builds run the block as `normal_fill_16_AVX2`: float32 throughout with the Cephes
 *   polynomials of avx_mathfun.h, and the fused multiply-adds the compiler made of them (GCC;
 *   the official wheels give the same bits, see the fixture README). `block16` reproduces that.
 * - Smaller tensors take the serial `normal_distribution<double>`: u1, u2 from 53-bit doubles
 *   (random64 = (w1 << 32) | w2, masked to 53 bits), r = sqrt(-2 log1p(-u2)), theta = 2 pi u1;
 *   returns r cos theta and caches r sin theta for the generator's next serial draw (the cache
 *   survives later calls; normal_fill neither reads nor clears it); each value cast to float32.
 * Non-x86 (ARM) builds of torch run the scalar normal_fill_16 with libm's log/sin/cos instead of
 * the AVX2 kernel; their values differ in the last bits and are not what this module draws.
 */

const fr = Math.fround;

// ---------------------------------------------------------------------------------------------
// float32 fused multiply-add, exactly rounded: fma(a, b, c) for float32 a, b, c.
// a*b is exact in float64 (24 + 24 bits); a*b + c rounded to float64 and then to float32 is the
// correctly rounded float32 result unless the float64 sum lands exactly halfway between two
// float32 values (double rounding); then the sign of the float64 sum's error decides.
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const LO = LITTLE ? 0 : 1;

export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = fr(s);
  if (r === s) return r;
  f64[0] = s;
  // float32 keeps 23 of the 52 mantissa bits: s is a float32 midpoint when the other 29 are 100..0.
  if (((u32[LO] as number) & 0x1fffffff) !== 0x10000000) return r;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb); // TwoSum: p + c = s + err exactly
  if (err === 0) return r; // a true tie: fround's round-half-even is right
  const other = s + (s - r); // the float32 on the other side of s
  return err > 0 === r > s ? r : other;
}

// ---------------------------------------------------------------------------------------------
// avx_mathfun.h (Pommier's SSE port of Cephes logf / sinf / cosf), one lane, float32, with the
// contractions GCC makes there (the fixture README lists them): every Horner step y*x + c, the
// log's y*z + e*q1 (y*z fused), the three Cody–Waite steps x + y*DP_k, the cosine's
// yc*z*z - z/2 as fma(yc*z, z, -z/2) and the sine's ys*z*x + x as fma(ys*z, x, x).
const bitsBuf = new Float32Array(1);
const bitsU32 = new Uint32Array(bitsBuf.buffer);

const SQRTHF = fr(0.7071067811865476); // cephes_SQRTHF 0.707106781186547524
const LOG_P = [
  7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
].map(fr) as [number, number, number, number, number, number, number, number, number];
const LOG_Q1 = fr(-2.1219444e-4);
const LOG_Q2 = fr(0.693359375);

/** log256_ps for one positive normal float32 (the only inputs normal_fill gives it: u1 in [2^-24, 1]). */
export function logAvx(v: number): number {
  bitsBuf[0] = v;
  const bits = bitsU32[0] as number;
  let e = fr((bits >>> 23) - 127 + 1);
  bitsU32[0] = (bits & ~0x7f800000) | 0x3f000000; // mantissa in [0.5, 1)
  const m = bitsBuf[0] as number;
  let x: number;
  if (m < SQRTHF) {
    e = fr(e - 1);
    x = fr(fr(m - 1) + m);
  } else {
    x = fr(m - 1);
  }
  const z = fr(x * x);
  let y = LOG_P[0];
  for (let k = 1; k < 9; k++) y = fma32(y, x, LOG_P[k] as number);
  y = fr(y * x);
  y = fma32(y, z, fr(e * LOG_Q1));
  y = fr(y - fr(z * 0.5));
  x = fr(x + y);
  return fr(x + fr(e * LOG_Q2));
}

const FOPI = fr(1.27323954473516);
const DP1 = fr(-0.78515625);
const DP2 = fr(-2.4187564849853515625e-4);
const DP3 = fr(-3.774894977445941e-8); // -3.77489497744594108e-8
const SIN_P0 = fr(-1.9515295891e-4);
const SIN_P1 = fr(8.3321608736e-3);
const SIN_P2 = fr(-1.6666654611e-1);
const COS_P0 = fr(2.443315711809948e-5);
const COS_P1 = fr(-1.388731625493765e-3);
const COS_P2 = fr(4.166664568298827e-2);

/** sincos256_ps for one float32 (theta in [0, 2 pi) here): [sin, cos]. */
export function sincosAvx(v: number): [number, number] {
  const negative = v < 0 || Object.is(v, -0);
  let x = Math.abs(v);
  let j = Math.trunc(fr(x * FOPI)) | 0; // _mm256_cvttps_epi32
  j = (j + 1) & ~1;
  const y = j; // exact in float32 for the arguments normal_fill gives
  const sinSignFlip = (j & 4) !== 0;
  const sinPoly = (j & 2) === 0; // poly_mask: the sine polynomial is the sine
  const cosNegative = (~(j - 2) & 4) !== 0;
  x = fma32(y, DP1, x);
  x = fma32(y, DP2, x);
  x = fma32(y, DP3, x);
  const z = fr(x * x);
  let yc = fma32(COS_P0, z, COS_P1);
  yc = fma32(yc, z, COS_P2);
  yc = fma32(fr(yc * z), z, -fr(z * 0.5));
  yc = fr(yc + 1);
  let ys = fma32(SIN_P0, z, SIN_P1);
  ys = fma32(ys, z, SIN_P2);
  ys = fma32(fr(ys * z), x, x);
  // The masked adds of the vector code (x + 0) turn -0 into +0; the sign flips are xors.
  let s = (sinPoly ? ys : yc) + 0;
  let c = (sinPoly ? yc : ys) + 0;
  if (negative !== sinSignFlip) s = -s;
  if (cosNegative) c = -c;
  return [s, c];
}

const TWO_PI_F = fr(2 * Math.PI);

/** normal_fill_16_AVX2 on data[o .. o+16) with mean 0 and std 1 (torch.randn). */
function block16(d: Float32Array, o: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = fr(1 - (d[o + j] as number));
    const u2 = d[o + j + 8] as number;
    const radius = fr(Math.sqrt(fr(-2 * logAvx(u1))));
    const [s, c] = sincosAvx(fr(TWO_PI_F * u2));
    // _mm256_fmadd_ps(n, std = 1, mean = 0): n exactly, with -0 + 0 = +0.
    d[o + j] = fr(radius * c) + 0;
    d[o + j + 8] = fr(radius * s) + 0;
  }
}

// ---------------------------------------------------------------------------------------------
// mt19937 (MT19937RNGEngine.h: the standard init_genrand recurrence and twist).
const N = 624;
const M = 397;
const TWO64 = 1n << 64n;

/** A seed as torch.manual_seed takes it: an integer in [-2^63, 2^64), returned modulo 2^64. */
export function torchSeed(seed: bigint | number | string): bigint {
  let s: bigint;
  if (typeof seed === 'bigint') s = seed;
  else if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed))
      throw new Error(`a seed given as a number must be a safe integer (below 2^53; larger seeds as decimal strings), got ${seed}`);
    s = BigInt(seed);
  } else {
    if (!/^-?\d+$/.test(seed.trim())) throw new Error(`a seed must be an integer, got ${JSON.stringify(seed)}`);
    s = BigInt(seed.trim());
  }
  if (s < -(1n << 63n) || s >= TWO64) throw new Error(`torch.manual_seed takes seeds in [-2^63, 2^64), got ${s}`);
  return s < 0n ? s + TWO64 : s;
}

/**
 * A torch CPU generator (`torch.Generator("cpu").manual_seed(seed)`, or the default generator
 * after `torch.manual_seed(seed)`): `randn(shape)` called in order draws what the same calls
 * draw in torch, including the cached second Box–Muller value of small tensors.
 */
export class TorchGenerator {
  readonly seed: bigint;
  private readonly mt = new Uint32Array(N);
  private next = N;
  private cachedNormal: number | null = null;

  constructor(seed: bigint | number | string) {
    this.seed = torchSeed(seed);
    const mt = this.mt;
    mt[0] = Number(this.seed & 0xffffffffn);
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] as number;
      mt[i] = (Math.imul(1812433253, (prev ^ (prev >>> 30)) >>> 0) + i) >>> 0;
    }
  }

  private twist(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = ((mt[i] as number) & 0x80000000) | ((mt[(i + 1) % N] as number) & 0x7fffffff);
      mt[i] = ((mt[(i + M) % N] as number) ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0)) >>> 0;
    }
    this.next = 0;
  }

  /** One 32-bit word (CPUGeneratorImpl::random). */
  random(): number {
    if (this.next >= N) this.twist();
    let y = this.mt[this.next++] as number;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** uniform_real_distribution<float>(0, 1): 24 bits of one word. */
  uniformFloat(): number {
    return (this.random() & 0xffffff) * 2 ** -24;
  }

  /** uniform_real_distribution<double>(0, 1): 53 bits of random64 = (w1 << 32) | w2. */
  uniformDouble(): number {
    const hi = this.random();
    const lo = this.random();
    return ((hi & 0x1fffff) * 4294967296 + lo) * 2 ** -53;
  }

  /** normal_distribution<double>(0, 1), with the generator's cached second value. */
  normalDouble(): number {
    if (this.cachedNormal !== null) {
      const v = this.cachedNormal;
      this.cachedNormal = null;
      return v;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    this.cachedNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** torch.randn(shape, dtype=float32, generator=this) on the CPU. */
  randn(shape: readonly number[]): Float32Array {
    const n = shape.reduce((a, d) => a * d, 1);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad shape [${shape.join(', ')}]`);
    const out = new Float32Array(n);
    if (randnPath(n) === 'serial') {
      for (let i = 0; i < n; i++) out[i] = this.normalDouble();
      return out;
    }
    for (let i = 0; i < n; i++) out[i] = this.uniformFloat();
    for (let i = 0; i + 16 <= n; i += 16) block16(out, i);
    if (n % 16 !== 0) {
      const o = n - 16;
      for (let i = 0; i < 16; i++) out[o + i] = this.uniformFloat();
      block16(out, o);
    }
    return out;
  }
}

/** Which of torch's two paths a float32 contiguous CPU tensor of `numel` values takes. */
export function randnPath(numel: number): 'normal_fill' | 'serial' {
  return numel >= 16 ? 'normal_fill' : 'serial';
}

/** torch.randn(shape, generator=torch.manual_seed(seed)) on the CPU. */
export function torchRandn(seed: bigint | number | string, shape: readonly number[]): Float32Array {
  return new TorchGenerator(seed).randn(shape);
}

/**
 * ComfyUI's prepare_noise(latent, seed, noise_inds) (comfy/sample.py): one randn of the whole
 * latent shape from torch.manual_seed(seed); with `noiseInds` (the latent's batch_index) one
 * [1, C, H, W] draw per index 0..max, kept where the index occurs, rows ordered like noiseInds.
 */
export function comfyPrepareNoise(seed: bigint | number | string, shape: readonly number[], noiseInds?: readonly number[] | null): Float32Array {
  const gen = new TorchGenerator(seed);
  if (!noiseInds) return gen.randn(shape);
  const [B, ...rest] = shape;
  if (B !== noiseInds.length) throw new Error(`noise_inds has ${noiseInds.length} entries for a batch of ${B}`);
  if (noiseInds.some((i) => !Number.isInteger(i) || i < 0)) throw new Error('noise_inds must be non-negative integers');
  const per = rest.reduce((a, d) => a * d, 1);
  const max = Math.max(...noiseInds);
  const wanted = new Set(noiseInds);
  const draws = new Map<number, Float32Array>();
  for (let i = 0; i <= max; i++) {
    const d = gen.randn([1, ...rest]);
    if (wanted.has(i)) draws.set(i, d);
  }
  const out = new Float32Array(noiseInds.length * per);
  noiseInds.forEach((ind, r) => out.set(draws.get(ind) as Float32Array, r * per));
  return out;
}
