/**
 * Deterministic noise: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11; the counter-based generator of Random123, cuRAND and JAX) turned into
 * standard normals with the Box-Muller transform.
 *
 * Layout, so anyone can reproduce a seed's noise in another language:
 * - key = (seed mod 2^32, floor(seed / 2^32)), seed an integer in [0, 2^53).
 * - counter for block j = (j, stream, 0, 0), stream = PURPOSE_ID[purpose] * 65536 + step;
 *   each block yields four uint32 a, b, c, d.
 * - (a, b) and (c, d) each give two normals: u1 = (a + 0.5) / 2^32, u2 = (b + 0.5) / 2^32,
 *   r = sqrt(-2 ln u1), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2) (computed in float64,
 *   stored as float32), so element 4j + k of the tensor comes from block j.
 * The values do not depend on anything but (seed, purpose, step, element index).
 */
import type { NoiseRequest } from './context.js';

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
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

const PURPOSE_ID: Record<NoiseRequest['purpose'], number> = { latents: 0, add_noise: 1, posterior: 2, eta: 3 };
const TWO32 = 4294967296;

/** `n` standard normals for (seed, stream), as float32. */
export function philoxNormal(seed: number, stream: number, n: number): Float32Array {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be an integer in [0, 2^53), got ${seed}`);
  const key: [number, number] = [seed % TWO32, Math.floor(seed / TWO32)];
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

/** The engine's default noise source: Philox normals keyed by the request's seed, purpose and step. */
export function seededNoise(req: NoiseRequest): Float32Array {
  const n = req.shape.reduce((a, d) => a * d, 1);
  return philoxNormal(req.seed, PURPOSE_ID[req.purpose] * 65536 + (req.step ?? 0), n);
}
