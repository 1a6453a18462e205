/**
 * A sigma-space sampler on its schedule as a SamplingMethod for the denoising loop (denoise.ts),
 * the way ComfyUI's KSAMPLER runs a k-diffusion sampler (comfy/samplers.py KSAMPLER.sample,
 * CFGNoisePredictor; comfy/model_sampling.py EPS):
 *   start:     x = latent + noise * scale (EPS.noise_scaling: scale sqrt(1 + sigma_0^2) from pure
 *              noise, else sigma_0; `noiseScale`), or the latent unchanged when no noise is added;
 *   denoiser:  eps = model(x / sqrt(sigma_j^2 + 1), t_j), D(x, j) = x - sigma_j eps
 *              (EPS.calculate_input / calculate_denoised), t_j the schedule's UNet timestep;
 *   inpainting blend: x0 noised to the level after step i is x0 + sigma_{i+1} noise.
 */
import type { SamplingMethod } from './denoise.js';
import type { Denoiser, KSamplerFactory } from './k-sampler.js';
import type { SigmaSchedule } from './schedulers.js';

const fr = Math.fround;

export interface KMethodOptions {
  schedule: SigmaSchedule;
  sampler: KSamplerFactory;
  /** What the starting noise is multiplied by (0: no noise is added, the latent is the start). */
  noiseScale: number;
  /** Standard-normal draw k (0, 1, ...) of the run's per-step noise, of the latents' shape. */
  noise(k: number): Float32Array;
}

/** A SamplingMethod that also tells its sigmas (traces, chaining). */
export interface KMethod extends SamplingMethod {
  readonly sigmas: readonly number[];
}

export function kMethod(o: KMethodOptions): KMethod {
  const { sigmas, timesteps } = o.schedule;
  const n = sigmas.length - 1;
  let draws = 0;
  const run = o.sampler(o.schedule, { noise: () => o.noise(draws++) });
  return {
    sigmas,
    timesteps: timesteps.slice(0, n),
    startLatents(noise, init) {
      const s = o.noiseScale;
      return init ? init.map((v, k) => fr(v + fr(noise[k]! * s))) : noise.map((v) => fr(v * s));
    },
    async step(i, x, model) {
      const D: Denoiser = async (xj, j) => {
        const s = sigmas[j]!;
        const c = fr(Math.sqrt(fr(fr(s * s) + 1)));
        const eps = await model(
          xj.map((v) => v / c),
          timesteps[j]!,
        );
        return xj.map((v, k) => fr(v - fr(s * eps[k]!)));
      };
      return run.step(i, x, D);
    },
    noisedAfterStep(x0, noise, i) {
      const s = sigmas[i + 1]!;
      return s > 0 ? x0.map((v, k) => fr(v + fr(s * noise[k]!))) : x0;
    },
  };
}
