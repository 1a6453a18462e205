/**
 * Latent Consistency Model multistep sampling (Luo et al. 2023, Algorithm 1) in sigma space.
 * Reference: ComfyUI comfy/k_diffusion/sampling.py sample_lcm with the LCM boundary condition of
 * comfy_extras/nodes_model_advanced.py (ModelSamplingDiscrete "lcm"); diffusers' LCMScheduler.step.
 *   x0 = x - sigma eps (D);  with t the UNet timestep, c_skip = 0.25 / ((10 t)^2 + 0.25),
 *   c_out = 10 t / sqrt((10 t)^2 + 0.25) (sigma_data 0.5, timestep_scaling 10):
 *   denoised = c_out x0 + c_skip x_in;  x_{i+1} = denoised + sigma_{i+1} z (a fresh draw), or
 *   denoised at the last step (no draw).
 * x_in is the sample: ComfyUI's sigma-space x; diffusers' VP sample x / sqrt(sigma^2 + 1)
 * (`skipOnVp`). c_skip is below 1e-7 for t >= 16, so the two differ only near t = 0.
 */
import { type KSamplerFactory, zipMap } from './k-sampler.js';

export function lcmBoundary(t: number): { cSkip: number; cOut: number } {
  const st = t * 10;
  return { cSkip: 0.25 / (st * st + 0.25), cOut: st / Math.sqrt(st * st + 0.25) };
}

export function lcmSampler(o: { skipOnVp: boolean }): KSamplerFactory {
  return ({ sigmas, timesteps }, ctx) => ({
    async step(i, x, D) {
      const x0 = await D(x, i);
      const { cSkip, cOut } = lcmBoundary(timesteps[i]!);
      const s = sigmas[i]!;
      const xin = o.skipOnVp ? 1 / Math.sqrt(s * s + 1) : 1;
      const denoised = zipMap(x0, x, (d, xv) => cOut * d + cSkip * xv * xin);
      const sn = sigmas[i + 1]!;
      if (!(sn > 0)) return { x: denoised, denoised };
      const z = ctx.noise();
      return { x: zipMap(denoised, z, (d, zv) => d + sn * zv), denoised };
    },
  });
}
