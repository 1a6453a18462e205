/**
 * Euler and Euler ancestral in sigma space.
 * Reference: k-diffusion sampling.py sample_euler (s_churn = 0: Karras et al. 2022, Algorithm 2
 * without churn) and sample_euler_ancestral (eta 1, s_noise 1, get_ancestral_step); diffusers'
 * EulerDiscreteScheduler / EulerAncestralDiscreteScheduler step the same way.
 */
import { type KSamplerFactory, toD, zipMap } from './k-sampler.js';

/** x_{i+1} = x_i + d_i (sigma_{i+1} - sigma_i), d_i = (x_i - D(x_i)) / sigma_i. */
export const euler: KSamplerFactory = ({ sigmas }) => ({
  async step(i, x, D) {
    const denoised = await D(x, i);
    const d = toD(x, sigmas[i]!, denoised);
    const dt = sigmas[i + 1]! - sigmas[i]!;
    return { x: zipMap(x, d, (xv, dv) => xv + dv * dt), denoised };
  },
});

/**
 * k-diffusion get_ancestral_step: the deterministic target sigma_down and the noise sigma_up with
 * sigma_down^2 + sigma_up^2 = sigma_to^2, sigma_up = min(sigma_to, eta sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2)).
 */
export function ancestralStep(from: number, to: number, eta = 1): { down: number; up: number } {
  if (!eta) return { down: to, up: 0 };
  const up = Math.min(to, eta * Math.sqrt((to * to * (from * from - to * to)) / (from * from)));
  return { down: Math.sqrt(to * to - up * up), up };
}

/** Euler to sigma_down, then + z sigma_up with a fresh draw z (none at the last step, where sigma_up = 0). */
export const eulerAncestral: KSamplerFactory = ({ sigmas }, ctx) => ({
  async step(i, x, D) {
    const denoised = await D(x, i);
    const s = sigmas[i]!;
    const { down, up } = ancestralStep(s, sigmas[i + 1]!);
    const d = toD(x, s, denoised);
    let next = zipMap(x, d, (xv, dv) => xv + dv * (down - s));
    if (sigmas[i + 1]! > 0) {
      const z = ctx.noise();
      next = zipMap(next, z, (xv, zv) => xv + zv * up);
    }
    return { x: next, denoised };
  },
});
