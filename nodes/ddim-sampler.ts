/**
 * DDIM Sampler: the denoising loop with classifier-free guidance and the image prompt.
 * Mirrors diffusers' StableDiffusionPipeline / StableDiffusionImg2ImgPipeline __call__:
 *
 *   text-to-image (Empty Latent, denoise 1): x = noise * init_noise_sigma (1 for DDIM),
 *       timesteps = the full schedule of `steps`;
 *   image-to-image (any other latent, or denoise < 1): timesteps = the last int(steps * denoise)
 *       of the schedule (diffusers' strength), x = add_noise(latent, noise, timesteps[0]);
 *   each step: the model call (nodes/runtime/sampler-unet.ts: the UNet on the batch [uncond,
 *       cond] with the image tokens, per-layer IP-Adapter scales and ControlNet residuals),
 *       guidance uncond + cfg * (cond - uncond) (only when cfg > 1), DDIM step with eta: the
 *       loop is models/sampling/denoise.ts with models/sampling/ddim-method.ts;
 *   inpainting (a latent with a noise mask, models/inpaint.ts): a 4-channel UNet blends the
 *       latents with the noised init latents outside the mask after each step (diffusers'
 *       StableDiffusionInpaintPipeline); a 9-channel inpainting UNet gets cat([x, mask,
 *       masked-image latents]) as its input instead.
 *
 * Noise comes from ctx.noise through the node's seed params (nodes/runtime/seed.ts): with `noise` torch
 * the starting noise is torch.randn on the CPU from manual_seed(seed), as ComfyUI and diffusers
 * draw it, and eta's per-step noise continues that generator (diffusers' DDIMScheduler); with
 * philox (workflows saved before version 2) the counter-based noise of engine/rng.ts. The same
 * seed gives the same image. Progress after each step carries a preview of the predicted
 * clean latent (throttled: PreviewThrottle); cancellation is checked before each step.
 */
import sharp from 'sharp';
import { latentPreview } from '../models/latent-preview.js';
import { cfgGuidance, denoise, maskBlend } from '../models/sampling/denoise.js';
import { ddimMethod } from '../models/sampling/ddim-method.js';
import type { UNetConfig } from '../models/unet-config.js';
import { checkAborted } from '../engine/context.js';
import { checkpointParts, schedulerFor, unetRuntime } from './runtime/networks.js';
import { checkControlsFit, hasControls } from './runtime/controlnet.js';
import { samplerUNet } from './runtime/sampler-unet.js';
import { SEED_PARAMS, seededDraws } from './runtime/seed.js';
import type { NodeDef, PortValues } from './types.js';
import { expectValue, type ConditioningValue, type LatentValue, type ModelValue } from './values.js';

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

export const ddimSampler: NodeDef = {
  type: 'ddim-sampler',
  title: 'DDIM Sampler',
  category: 'Sampling',
  description:
    'Denoises the latent with DDIM and classifier-free guidance. denoise < 1 (or a latent from VAE Encode) is image-to-image: only the last steps × denoise steps run, starting from the noised input.',
  inputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'positive', type: 'CONDITIONING' },
    { name: 'negative', type: 'CONDITIONING' },
    { name: 'latent', type: 'LATENT' },
  ],
  outputs: [{ name: 'latent', type: 'LATENT' }],
  params: [
    ...SEED_PARAMS,
    { name: 'steps', kind: 'number', default: 30, min: 1, max: 1000, step: 1, integer: true },
    { name: 'cfg', label: 'CFG scale', kind: 'number', default: 7.5, min: 0, max: 30, step: 0.5 },
    { name: 'eta', kind: 'number', default: 0, min: 0, max: 1, step: 0.05 },
    { name: 'denoise', kind: 'number', default: 1, min: 0, max: 1, step: 0.01 },
  ],
  async execute(inputs, params, ctx) {
    const { model, positive, negative, latent } = samplerInputs(inputs);
    const draws = seededDraws(ctx, params);
    const steps = params.steps as number;
    const cfg = params.cfg as number;
    const eta = params.eta as number;
    const strength = params.denoise as number;
    const controlled = hasControls([positive, negative]); // Apply ControlNet on either prompt
    if (controlled) await checkControlsFit(ctx, [positive, negative], (await checkpointParts(ctx.models, model.checkpoint)).unet.config, model.checkpoint.path);
    const unet = await unetRuntime(ctx.models, model, controlled);
    const sched = await schedulerFor(ctx.models, model.checkpoint);
    const { inpaintUNet } = checkSamplerInputs(unet.config, model.checkpoint.path, positive, negative, latent);

    const shape = [...latent.dims];
    const full = !!latent.empty && strength >= 1;
    const method = ddimMethod(sched, { steps, strength, full, eta, noise: (step) => draws.eta(shape, step) });
    if (!method.timesteps.length) return { latent };
    // The starting draw; inpainting also noises the init latents with it at every step.
    const noise0 = draws.initial(full ? 'latents' : 'add_noise', shape);
    const x0 = method.startLatents(noise0, full ? undefined : latent.samples);
    ctx.trace?.({ node: ctx.nodeId, name: 'start_latents', data: x0, shape });

    const guidance = cfgGuidance(cfg);
    const unetCall = await samplerUNet(ctx, { unet, model, positive, negative, latent, guidance, inpaintUNet, controlled, steps: method.timesteps.length });
    const mask = latent.noiseMask?.data;
    const preview = new PreviewThrottle(PREVIEW_INTERVAL_MS);
    const x = await denoise(x0, {
      model: unetCall,
      guidance,
      method,
      hooks: {
        beforeStep: () => checkAborted(ctx.signal),
        blend: mask && !inpaintUNet ? maskBlend(method, latent.samples, noise0, mask, shape) : undefined,
        async afterStep(i, total, r) {
          ctx.trace?.({ node: ctx.nodeId, name: 'latents_after_step', step: i, data: r.x, shape });
          ctx.progress(i + 1, total, preview.due(i === total - 1) ? await previewPng(r.denoised, shape) : undefined);
        },
      },
    });
    // The mask stays on the latent (as in ComfyUI), so a second sampler pass inpaints the same area.
    const v: LatentValue = {
      kind: 'LATENT',
      dims: [...latent.dims],
      samples: x,
      ...(latent.noiseMask ? { noiseMask: latent.noiseMask, maskedImage: latent.maskedImage } : {}),
    };
    return { latent: v };
  },
};
