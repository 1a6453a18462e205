/**
 * DDPM ancestral sampling (Ho et al. 2020, eq. 11 with sigma_t^2 = beta~_t, diffusers'
 * variance_type fixed_small) on the schedule's noise levels.
 * Reference: ComfyUI comfy/k_diffusion/sampling.py DDPMSampler_step and generic_step_sampler.
 * In VP form (x_vp = x / sqrt(sigma^2 + 1), abar = 1 / (sigma^2 + 1), alpha = abar / abar_next):
 *   mu = (x_vp - (1 - alpha) eps / sqrt(1 - abar)) / sqrt(alpha),  eps = (x - D(x)) / sigma
 *   x_vp' = mu + sqrt((1 - alpha)(1 - abar_next) / (1 - abar)) z   (no noise when sigma_next = 0)
 *   x' = x_vp' sqrt(sigma_next^2 + 1)
 * diffusers' DDPMScheduler (its posterior mean written with x0) gives the same; at its last step it
 * adds the clamped variance 1e-20 (1e-10 z), which ComfyUI leaves out.
 */
import { type KSamplerFactory, zipMap } from './k-sampler.js';

export const ddpm: KSamplerFactory = ({ sigmas }, ctx) => ({
  async step(i, x, D) {
    const denoised = await D(x, i);
    const s = sigmas[i]!;
    const sn = sigmas[i + 1]!;
    const abar = 1 / (s * s + 1);
    const abarNext = 1 / (sn * sn + 1);
    const alpha = abar / abarNext;
    const inv = 1 / Math.sqrt(1 + s * s);
    const c = (1 - alpha) / Math.sqrt(1 - abar);
    let mu = zipMap(x, denoised, (xv, dv) => (xv * inv - (c * (xv - dv)) / s) / Math.sqrt(alpha));
    if (sn > 0) {
      const std = Math.sqrt(((1 - alpha) * (1 - abarNext)) / (1 - abar));
      const z = ctx.noise();
      const scale = Math.sqrt(1 + sn * sn);
      mu = zipMap(mu, z, (m, zv) => (m + std * zv) * scale);
    }
    return { x: mu, denoised };
  },
});
