/**
 * DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2) in sigma space, lambda = -log sigma.
 * Reference: k-diffusion sampling.py sample_dpmpp_2m. diffusers' DPMSolverMultistepScheduler
 * (algorithm_type dpmsolver++, solver_order 2, solver_type midpoint, final_sigmas_type zero) is the
 * same update in VP form (x_vp = x / sqrt(sigma^2 + 1)): first order on the first and the last step.
 *   h = t_{i+1} - t_i with t = -log sigma;
 *   first / last step:  x_{i+1} = (sigma_{i+1} / sigma_i) x_i - expm1(-h) D_i
 *   otherwise:          r = h_{i-1} / h,  D' = (1 + 1 / (2r)) D_i - (1 / (2r)) D_{i-1},
 *                       x_{i+1} = (sigma_{i+1} / sigma_i) x_i - expm1(-h) D'
 */
import { type KSamplerFactory, zipMap } from './k-sampler.js';

const tOf = (sigma: number) => -Math.log(sigma);

export const dpmpp2m: KSamplerFactory = ({ sigmas }) => {
  let old: Float32Array | null = null;
  return {
    async step(i, x, D) {
      const denoised = await D(x, i);
      const s = sigmas[i]!;
      const sn = sigmas[i + 1]!;
      const t = tOf(s);
      const tn = tOf(sn);
      const h = tn - t;
      const ratio = sn / s; // sigma_fn(t_next) / sigma_fn(t)
      const e = -Math.expm1(-h);
      let out: Float32Array;
      if (old === null || sn === 0) {
        out = zipMap(x, denoised, (xv, dv) => ratio * xv + e * dv);
      } else {
        const r = (t - tOf(sigmas[i - 1]!)) / h;
        const a = 1 + 1 / (2 * r);
        const b = 1 / (2 * r);
        const prev = old;
        out = zipMap(x, denoised, (xv, dv, k) => ratio * xv + e * (a * dv - b * prev[k]!));
      }
      old = denoised;
      return { x: out, denoised };
    },
  };
};
