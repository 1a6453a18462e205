/**
 * models/sampling: the denoising loop and the sampling methods that plug into it.
 *
 * `denoise` is the loop of diffusers' StableDiffusion pipelines' __call__, with everything that
 * differs between samplers behind three parts:
 *   - the model call (`ModelCall`), provided by the sampler node: the UNet's prediction for the
 *     latents at a model timestep, one row per guidance branch (nodes/runtime/sampler-unet.ts
 *     builds the batch: text, image tokens, per-layer IP-Adapter scales, ControlNet residuals);
 *   - the guidance (`Guidance`): how the branches combine (classifier-free guidance);
 *   - the method on its schedule (`SamplingMethod`): DDIM today (ddim-method.ts); the
 *     k-diffusion-style methods (Euler, DPM++ 2M, Heun, ... in sigma space) implement the same
 *     interface: their own start latents, a step that may call the model more than once (Heun)
 *     or keep state between steps (DPM++ 2M's previous estimate), and the noise level after a
 *     step for inpainting's blend.
 * Cancellation, progress, previews and tracing are hooks the node fills in; inpainting with a
 * standard UNet is the `blend` hook (`maskBlend`). Nothing here knows the engine.
 */
import { classifierFreeGuidance } from '../ddim.js';
import { blendByMask } from '../inpaint.js';

/**
 * The model as the node provides it: the raw prediction (noise, for SD1.5's epsilon models) for
 * latents `x` (B, C, h, w) at model timestep `t` during step `step`, as (branches * B, C, h, w)
 * in the guidance's branch order. `step` lets the call follow per-step windows (an adapter's
 * start/end, a ControlNet's) and name its traces.
 */
export type ModelCall = (x: Float32Array, t: number, step: number) => Promise<Float32Array>;

/** How the model's branches combine into the one prediction a method steps with. */
export interface Guidance {
  /** Model rows per latent: 2 for [unconditional, conditional], 1 for the conditional alone. */
  readonly branches: number;
  combine(pred: Float32Array): Float32Array;
}

/**
 * Classifier-free guidance at `scale`: uncond + scale * (cond - uncond) over the batch
 * [uncond, cond] when scale > 1 (diffusers' do_classifier_free_guidance), else the conditional
 * branch alone (one row per latent, no unconditional run).
 */
export function cfgGuidance(scale: number): Guidance {
  if (!(scale > 1)) return { branches: 1, combine: (pred) => pred };
  return {
    branches: 2,
    combine: (pred) => {
      const n = pred.length / 2;
      return classifierFreeGuidance(pred.subarray(0, n), pred.subarray(n), scale);
    },
  };
}

/** The guided model as a method calls it: one prediction for latents x at model timestep t. */
export type GuidedModel = (x: Float32Array, t: number) => Promise<Float32Array>;

export interface StepResult {
  /** The latents after the step. */
  x: Float32Array;
  /** The method's estimate of the clean latents (previews). */
  denoised: Float32Array;
  /** Latents after each model evaluation of the step but the last (Heun's predictor), for traces. */
  substeps?: Float32Array[];
}

/** A sampling method on its schedule, for one run (it may keep state between steps). */
export interface SamplingMethod {
  /** The model timestep of each step, in order: one entry per step (the progress total). */
  readonly timesteps: readonly number[];
  /**
   * The latents the loop starts from: `noise` scaled to the first step's level (text-to-image,
   * no `init`), or `init` noised with `noise` to that level (image-to-image).
   */
  startLatents(noise: Float32Array, init?: Float32Array): Float32Array;
  /** Step i from latents x; calls `model` as often as the method needs. */
  step(i: number, x: Float32Array, model: GuidedModel): Promise<StepResult>;
  /** `x0` noised with `noise` to the level of the latents after step i; after the last step, x0 itself. */
  noisedAfterStep(x0: Float32Array, noise: Float32Array, i: number): Float32Array;
}

export interface DenoiseHooks {
  /** Before each step: throws to stop the run (the node checks its abort signal here). */
  beforeStep?(i: number, total: number): void;
  /** After the method's step: changes the latents in place (inpainting's blend, `maskBlend`). */
  blend?(x: Float32Array, i: number): void;
  /** After each step, with the final latents of that step: progress, previews, traces. */
  afterStep?(i: number, total: number, r: StepResult): void | Promise<void>;
}

export interface DenoiseOptions {
  model: ModelCall;
  guidance: Guidance;
  method: SamplingMethod;
  hooks?: DenoiseHooks;
}

/** Runs every step of `method` from the latents `x` (method.startLatents) and returns the last latents. */
export async function denoise(x: Float32Array, o: DenoiseOptions): Promise<Float32Array> {
  const { model, guidance, method, hooks = {} } = o;
  const total = method.timesteps.length;
  for (let i = 0; i < total; i++) {
    hooks.beforeStep?.(i, total);
    const r = await method.step(i, x, async (xi, t) => guidance.combine(await model(xi, t, i)));
    x = r.x;
    hooks.blend?.(x, i);
    await hooks.afterStep?.(i, total, r);
  }
  return x;
}

/**
 * Inpainting with a standard (4-channel) UNet, as diffusers' StableDiffusionInpaintPipeline:
 * after step i, outside the mask the latents are the init latents noised (with the draw that
 * started the loop) to the level after that step (models/inpaint.ts).
 */
export function maskBlend(
  method: SamplingMethod,
  init: Float32Array,
  noise: Float32Array,
  mask: Float32Array,
  dims: readonly number[],
): (x: Float32Array, i: number) => void {
  return (x, i) => blendByMask(x, method.noisedAfterStep(init, noise, i), mask, dims);
}
