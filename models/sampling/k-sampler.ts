/**
 * What the sigma-space samplers (k-diffusion's sample_* loops, one step at a time) share: the
 * denoiser they call and the shape of one step. Latents are k-diffusion's x = x0 + sigma * eps;
 * k-method.ts turns a sampler and a schedule into a SamplingMethod for the denoising loop.
 */
import type { SigmaSchedule } from './schedulers.js';

/** The model's estimate of the clean latents for latents x (sigma space) at schedule point j: D(x, sigmas[j]). */
export type Denoiser = (x: Float32Array, j: number) => Promise<Float32Array>;

export interface KStep {
  /** Latents after the step, at sigmas[i + 1]. */
  x: Float32Array;
  /** The step's estimate of the clean latents (the preview; ComfyUI's callback `denoised`). */
  denoised: Float32Array;
  /** Latents after each model evaluation but the last, for methods that evaluate more than once (Heun's predictor). */
  substeps?: Float32Array[];
}

/** One run of a sampler on its schedule (multistep samplers keep their history in it). */
export interface KSamplerRun {
  step(i: number, x: Float32Array, D: Denoiser): Promise<KStep>;
}

export interface KSamplerContext {
  /** The next standard-normal draw of the latents' shape (k-diffusion's noise_sampler). */
  noise(): Float32Array;
}

export type KSamplerFactory = (schedule: SigmaSchedule, ctx: KSamplerContext) => KSamplerRun;

/** Elementwise f over equally long arrays, as a new float32 array. */
export function zipMap(a: Float32Array, b: Float32Array, f: (x: number, y: number, k: number) => number): Float32Array {
  if (a.length !== b.length) throw new Error(`sampler: tensors of ${a.length} and ${b.length} values`);
  const out = new Float32Array(a.length);
  for (let k = 0; k < a.length; k++) out[k] = f(a[k]!, b[k]!, k);
  return out;
}

/** k-diffusion to_d: the ODE derivative (x - denoised) / sigma. */
export function toD(x: Float32Array, sigma: number, denoised: Float32Array): Float32Array {
  return zipMap(x, denoised, (xv, d) => (xv - d) / sigma);
}
