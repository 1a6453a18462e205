/**
 * The engine's default noise source, `seededNoise`: torch's CPU generator or Philox, as the
 * request's `generator` says (engine/context.ts NoiseRequest says which draw each request is).
 *
 * torch: models/sampling/torch-randn.ts, bit for bit what ComfyUI and diffusers draw on the CPU.
 * A request names a position in a generator's stream; the last few streams are kept, so a
 * sampler asking for step k after step k - 1 costs one draw (asked out of order, the stream is
 * drawn again from its seed: the values never depend on the order of requests).
 *
 * Philox (workflows saved before version 2): Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11; the counter-based generator of Random123, cuRAND and JAX) turned into
 * standard normals with the Box-Muller transform.
 *
 * Layout, so anyone can reproduce a seed's noise in another language:
 * - key = (seed mod 2^32, floor(seed / 2^32)), seed an integer in [0, 2^64).
 * - counter for block j = (j, stream, 0, 0), stream = PURPOSE_ID[purpose] * 65536 + step;
 *   each block yields four uint32 a, b, c, d.
 * - (a, b) and (c, d) each give two normals: u1 = (a + 0.5) / 2^32, u2 = (b + 0.5) / 2^32,
 *   r = sqrt(-2 ln u1), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2) (computed in float64,
 *   stored as float32), so element 4j + k of the tensor comes from block j.
 * The values do not depend on anything but (seed, purpose, step, element index).
 */
import type { NoiseRequest } from './context.js';
import { TorchGenerator } from '../models/sampling/torch-randn.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High and low 32 bits of the 64-bit product of two uint32. */
function mulhilo(a: number, b: number): [number, number] {
  const lo = Math.imul(a, b) >>> 0;
  const aH = a >>> 16;
  const aL = a & 0xffff;
  const bH = b >>> 16;
  const bL = b & 0xffff;
  // Exact high word: (aH*bH*2^32 + (aH*bL + aL*bH)*2^16 + aL*bL) >> 32.
  const mid1 = aH * bL;
  const mid2 = aL * bH;
  const low = aL * bL;
  const carry = ((low >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  const hi = (aH * bH + (mid1 >>> 16) + (mid2 >>> 16) + carry) >>> 0;
  return [hi, lo];
}

/** One Philox4x32-10 block: counter (4 x uint32), key (2 x uint32) -> 4 x uint32. */
export function philox4x32(ctr: [number, number, number, number], key: [number, number]): [number, number, number, number] {
  let [c0, c1, c2, c3] = ctr.map((x) => x >>> 0);
  let [k0, k1] = key.map((x) => x >>> 0);
  for (let r = 0; r < 10; r++) {
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    const n0 = (hi1 ^ c1 ^ k0) >>> 0;
    const n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

const PURPOSE_ID: Record<NoiseRequest['purpose'], number> = { latents: 0, add_noise: 1, posterior: 2, eta: 3, sampler: 4 };
const TWO32 = 4294967296;

const TWO64 = 1n << 64n;

function seedBig(seed: number | bigint): bigint {
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new Error(`seed must be an integer in [0, 2^64) (a number below 2^53), got ${seed}`);
  const s = BigInt(seed);
  if (s < 0n || s >= TWO64) throw new Error(`seed must be an integer in [0, 2^64), got ${s}`);
  return s;
}

/** `n` standard normals for (seed, stream), as float32. */
export function philoxNormal(seed: number | bigint, stream: number, n: number): Float32Array {
  const s = seedBig(seed);
  const key: [number, number] = [Number(s & 0xffffffffn), Number(s >> 32n)];
  const out = new Float32Array(n);
  for (let j = 0; j * 4 < n; j++) {
    const r = philox4x32([j, stream, 0, 0], key);
    for (let p = 0; p < 2; p++) {
      const u1 = (r[2 * p] + 0.5) / TWO32;
      const u2 = (r[2 * p + 1] + 0.5) / TWO32;
      const rad = Math.sqrt(-2 * Math.log(u1));
      const i = 4 * j + 2 * p;
      if (i < n) out[i] = rad * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) out[i + 1] = rad * Math.sin(2 * Math.PI * u2);
    }
  }
  return out;
}

/** Philox normals keyed by the request's seed, purpose and step. */
export function philoxNoise(req: NoiseRequest): Float32Array {
  const n = req.shape.reduce((a, d) => a * d, 1);
  return philoxNormal(req.seed, PURPOSE_ID[req.purpose] * 65536 + (req.step ?? 0), n);
}

interface Stream {
  gen: TorchGenerator;
  drawn: number;
}
const STREAMS_KEPT = 8;
const streams = new Map<string, Stream>();

/** Draw number `index` (0-based) of randn(shape) from manual_seed(seed). */
export function torchStreamDraw(seed: bigint, shape: readonly number[], index: number): Float32Array {
  if (!Number.isInteger(index) || index < 0) throw new Error(`noise draw index must be a whole number >= 0, got ${index}`);
  const key = `${seed}|${shape.join(',')}`;
  let s = streams.get(key);
  if (!s || s.drawn > index) s = { gen: new TorchGenerator(seed), drawn: 0 };
  for (; s.drawn < index; s.drawn++) s.gen.randn(shape);
  const out = s.gen.randn(shape);
  s.drawn++;
  streams.delete(key);
  streams.set(key, s);
  if (streams.size > STREAMS_KEPT) streams.delete(streams.keys().next().value as string);
  return out;
}

/** torch CPU noise: each request is a draw of a torch generator's stream (engine/context.ts NoiseRequest). */
export function torchNoise(req: NoiseRequest): Float32Array {
  const seed = seedBig(req.seed);
  const step = req.step ?? 0;
  switch (req.purpose) {
    case 'latents':
    case 'add_noise':
    case 'posterior':
      return torchStreamDraw(seed, req.shape, 0);
    case 'eta':
      return torchStreamDraw(seed, req.shape, step + 1);
    case 'sampler':
      return torchStreamDraw((seed + 1n) % TWO64, req.shape, step);
  }
}

/** The engine's default noise source: the request's generator (Philox when it names none). */
export function seededNoise(req: NoiseRequest): Float32Array {
  return req.generator === 'torch' ? torchNoise(req) : philoxNoise(req);
}
