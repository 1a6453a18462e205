/**
 * Linear multistep (order 4) in sigma space.
 * Reference: k-diffusion sampling.py sample_lms and linear_multistep_coeff; diffusers'
 * LMSDiscreteScheduler (get_lms_coefficient) is the same method.
 *   d_i = (x_i - D(x_i)) / sigma_i;  x_{i+1} = x_i + sum_{j < p} c_j d_{i-j},  p = min(i + 1, 4),
 *   c_j = integral over [sigma_i, sigma_{i+1}] of prod_{k != j, k < p} (tau - sigma_{i-k}) / (sigma_{i-j} - sigma_{i-k}).
 * The integrand is a polynomial of degree p - 1 <= 3, so 4-point Gauss-Legendre is exact (the
 * references use scipy's quad, whose 21-point Gauss-Kronrod rule is exact for it too).
 */
import { type KSamplerFactory, toD } from './k-sampler.js';

const GL_X = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
const GL_W = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];

/** k-diffusion linear_multistep_coeff(order, sigmas, i, j). */
export function lmsCoefficient(order: number, sigmas: readonly number[], i: number, j: number): number {
  if (order - 1 > i) throw new Error(`LMS: order ${order} too high for step ${i}`);
  const basis = (tau: number) => {
    let prod = 1;
    for (let k = 0; k < order; k++) {
      if (k === j) continue;
      prod *= (tau - sigmas[i - k]!) / (sigmas[i - j]! - sigmas[i - k]!);
    }
    return prod;
  };
  const a = sigmas[i]!;
  const b = sigmas[i + 1]!;
  const half = (b - a) / 2;
  const mid = (a + b) / 2;
  let sum = 0;
  for (let q = 0; q < 4; q++) sum += GL_W[q]! * basis(mid + half * GL_X[q]!);
  return sum * half;
}

export function lmsSampler(order = 4): KSamplerFactory {
  return ({ sigmas }) => {
    const ds: Float32Array[] = []; // newest last
    return {
      async step(i, x, D) {
        const denoised = await D(x, i);
        ds.push(toD(x, sigmas[i]!, denoised));
        if (ds.length > order) ds.shift();
        const p = Math.min(i + 1, order);
        const c = Array.from({ length: p }, (_, j) => lmsCoefficient(p, sigmas, i, j));
        const out = new Float32Array(x.length);
        for (let k = 0; k < x.length; k++) {
          let v = x[k]!;
          for (let j = 0; j < p; j++) v += c[j]! * ds[ds.length - 1 - j]![k]!;
          out[k] = v;
        }
        return { x: out, denoised };
      },
    };
  };
}

export const lms: KSamplerFactory = lmsSampler(4);
