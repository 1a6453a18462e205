/** nodes/runtime/sampling: what the sampler nodes share around models/sampling/denoise: input checks, step hooks, previews, the output latent. */
import sharp from 'sharp';
import { latentPreview } from '../../models/latent-preview.js';
import { maskBlend, type DenoiseHooks, type SamplingMethod } from '../../models/sampling/denoise.js';
import type { UNetConfig } from '../../models/unet-config.js';
import { checkAborted, type ExecContext } from '../../engine/context.js';
import type { PortValues } from '../types.js';
import { expectValue, type ConditioningValue, type LatentValue, type ModelValue } from '../values.js';

/**
 * Latent previews are throttled: the PNG goes through events (and IPC to the window) as base64,
 * and a window cannot show more than a few a second anyway. Progress itself is sent every step;
 * the window keeps the last preview it got. The first and the last step always carry one.
 */
export const PREVIEW_INTERVAL_MS = 250;

export class PreviewThrottle {
  private lastAt = -Infinity;
  constructor(
    private intervalMs: number,
    private now: () => number = () => performance.now(),
  ) {}
  /** Whether this step should carry a preview (and if so, counts it as sent). */
  due(last: boolean): boolean {
    const t = this.now();
    if (!last && t - this.lastAt < this.intervalMs) return false;
    this.lastAt = t;
    return true;
  }
}

export async function previewPng(x0: Float32Array, dims: number[]): Promise<{ width: number; height: number; png: Uint8Array }> {
  const p = latentPreview(x0, dims, 0);
  const png = await sharp(Buffer.from(p.rgb.buffer, p.rgb.byteOffset, p.rgb.byteLength), { raw: { width: p.width, height: p.height, channels: 3 } })
    .png()
    .toBuffer();
  return { width: p.width, height: p.height, png };
}

export function samplerInputs(inputs: PortValues): { model: ModelValue; positive: ConditioningValue; negative: ConditioningValue; latent: LatentValue } {
  return {
    model: expectValue<ModelValue>(inputs.model, 'MODEL', 'model'),
    positive: expectValue<ConditioningValue>(inputs.positive, 'CONDITIONING', 'positive'),
    negative: expectValue<ConditioningValue>(inputs.negative, 'CONDITIONING', 'negative'),
    latent: expectValue<LatentValue>(inputs.latent, 'LATENT', 'latent'),
  };
}

/**
 * Refuses inputs the UNet cannot take, with a sentence: latent channels (a 9-channel inpainting
 * UNet takes the 4 latent channels + mask + masked-image latents, and needs a masked latent), the
 * noise mask's size, the conditioning width and the prompts' lengths.
 */
export function checkSamplerInputs(
  unet: UNetConfig,
  checkpointPath: string,
  pos: ConditioningValue,
  neg: ConditioningValue,
  latent: LatentValue,
): { inpaintUNet: boolean } {
  const [B, C, h, w] = latent.dims;
  const inpaintUNet = unet.inChannels === 2 * C + 1;
  if (!inpaintUNet && C !== unet.inChannels) throw new Error(`the latent has ${C} channels but the UNet takes ${unet.inChannels}`);
  const nm = latent.noiseMask;
  if (nm && ((nm.batch !== 1 && nm.batch !== B) || nm.data.length !== nm.batch * h * w))
    throw new Error(
      `the latent's noise mask is ${nm.data.length} values for ${nm.batch} mask(s) at ${w}x${h}; it must be 1 or ${B} planes of the latent's size`,
    );
  if (inpaintUNet && !latent.noiseMask)
    throw new Error(
      `${checkpointPath} is an inpainting model (its UNet takes ${unet.inChannels} channels): give the sampler a masked latent (VAE Encode with a mask, or Set Latent Noise Mask)`,
    );
  for (const [what, c] of [
    ['positive', pos],
    ['negative', neg],
  ] as const) {
    if (c.dim !== unet.crossAttentionDim)
      throw new Error(`the ${what} conditioning has width ${c.dim}, the UNet expects ${unet.crossAttentionDim} (text encoder and UNet from different models?)`);
  }
  if (pos.tokens !== neg.tokens) throw new Error(`positive (${pos.tokens} tokens) and negative (${neg.tokens} tokens) conditioning differ in length`);
  return { inpaintUNet };
}

/** What a sampler node hands `denoise` around each step: cancel, inpainting's latent blend, traces, progress with a throttled x0 preview. */
export function samplerStepHooks(
  ctx: ExecContext,
  o: { method: SamplingMethod; latent: LatentValue; noise0: Float32Array; inpaintUNet: boolean; shape: number[] },
): DenoiseHooks {
  const mask = o.latent.noiseMask?.data;
  const preview = new PreviewThrottle(PREVIEW_INTERVAL_MS);
  return {
    beforeStep: () => checkAborted(ctx.signal),
    blend: mask && !o.inpaintUNet ? maskBlend(o.method, o.latent.samples, o.noise0, mask, o.shape) : undefined,
    async afterStep(i, total, r) {
      const trace = ctx.trace;
      if (trace) for (const s of [...(r.substeps ?? []), r.x]) trace({ node: ctx.nodeId, name: 'latents_after_step', step: i, data: s, shape: o.shape });
      ctx.progress(i + 1, total, preview.due(i === total - 1) ? await previewPng(r.denoised, o.shape) : undefined);
    },
  };
}

/** The sampled latent; the mask stays on it (as in ComfyUI), so a second sampler pass inpaints the same area. */
export function sampledLatent(latent: LatentValue, x: Float32Array): LatentValue {
  return {
    kind: 'LATENT',
    dims: [...latent.dims],
    samples: x,
    ...(latent.noiseMask ? { noiseMask: latent.noiseMask, maskedImage: latent.maskedImage } : {}),
  };
}
