/**
 * DDIM Sampler: the denoising loop with classifier-free guidance and the image prompt.
 * Mirrors diffusers' StableDiffusionPipeline / StableDiffusionImg2ImgPipeline __call__:
 *
 *   text-to-image (Empty Latent, denoise 1): x = noise * init_noise_sigma (1 for DDIM),
 *       timesteps = the full schedule of `steps`;
 *   image-to-image (any other latent, or denoise < 1): timesteps = the last int(steps * denoise)
 *       of the schedule (diffusers' strength), x = add_noise(latent, noise, timesteps[0]);
 *   each step: UNet on the batch [uncond, cond] (text: negative, positive; image tokens: the
 *       projection of a zero image or the negative image tokens, the image tokens), with
 *       ip_scale = λ times each cross-attention layer's factor (Apply IP-Adapter's blocks:
 *       models/ip-adapter-layer-scales.ts) while i / steps is in [start_at, end_at], else 0;
 *       guidance uncond + cfg * (cond - uncond) (only when cfg > 1); DDIM step with eta.
 *   inpainting (a latent with a noise mask, models/inpaint.ts): a 4-channel UNet blends the
 *       latents with the noised init latents outside the mask after each step (diffusers'
 *       StableDiffusionInpaintPipeline); a 9-channel inpainting UNet gets cat([x, mask,
 *       masked-image latents]) as its input instead.
 *
 * Noise comes from ctx.noise (seeded Philox normals unless a host injects tensors), so the
 * same seed gives the same image. Progress after each step carries a preview of the predicted
 * clean latent (throttled: PreviewThrottle); cancellation is checked before each step.
 */
import sharp from 'sharp';
import { ort } from '../models/onnx/session.js';
import { classifierFreeGuidance } from '../models/ddim.js';
import { blockFactors, ipScales } from '../models/ip-adapter-layer-scales.js';
import { blendByMask, inpaintUNetInput } from '../models/inpaint.js';
import { latentPreview } from '../models/latent-preview.js';
import { checkAborted } from '../engine/context.js';
import { checkpointParts, schedulerFor, unetRuntime } from './runtime/networks.js';
import type { NodeDef } from './types.js';
import { SamplerControl, checkControlsFit, hasControls } from './runtime/controlnet.js';
import { expectValue, type AppliedAdapter, type ConditioningValue, type LatentValue, type ModelValue } from './values.js';

/** Repeats a row `times` times: (L,) -> (times * L,). */
function repeat(row: Float32Array, times: number): Float32Array {
  const out = new Float32Array(row.length * times);
  for (let i = 0; i < times; i++) out.set(row, i * row.length);
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Whether an adapter acts at step i of n: its window [start, end] holds i / n. */
export function adapterActive(a: Pick<AppliedAdapter, 'start' | 'end'>, i: number, n: number): boolean {
  const f = i / n;
  return f >= a.start && f <= a.end;
}

/**
 * The image tokens of the model's adapters (one file; several applications concatenate): cond
 * for the conditional branch; for the unconditional one the negative image prompt's tokens
 * when one is connected, else the projection of a zero image.
 */
export function imageTokens(adapters: AppliedAdapter[]): { cond: Float32Array; uncond: Float32Array; n: number; dim: number } | null {
  if (!adapters.length) return null;
  const w0 = adapters[0];
  for (const a of adapters) {
    if (a.weight !== w0.weight || a.start !== w0.start || a.end !== w0.end || (a.blocks ?? 'all') !== (w0.blocks ?? 'all') || (a.layerWeights ?? '') !== (w0.layerWeights ?? '')) {
      throw new Error('several Apply IP-Adapter nodes on one model must share weight, start_at, end_at and blocks (the UNet takes one λ per layer); feed the images through one IP-Adapter Projection instead');
    }
  }
  return {
    cond: concat(adapters.map((a) => a.tokens.cond)),
    uncond: concat(adapters.map((a) => (a.negative ? a.negative.cond : a.tokens.uncond))),
    n: adapters.reduce((s, a) => s + a.tokens.tokens, 0),
    dim: w0.tokens.dim,
  };
}

/**
 * Latent previews are throttled: the PNG goes through events (and IPC to the window) as base64,
 * and a window cannot show more than a few a second anyway. Progress itself is sent every step;
 * the window keeps the last preview it got. The first and the last step always carry one.
 */
export const PREVIEW_INTERVAL_MS = 250;

export class PreviewThrottle {
  private lastAt = -Infinity;
  constructor(private intervalMs: number, private now: () => number = () => performance.now()) {}
  /** Whether this step should carry a preview (and if so, counts it as sent). */
  due(last: boolean): boolean {
    const t = this.now();
    if (!last && t - this.lastAt < this.intervalMs) return false;
    this.lastAt = t;
    return true;
  }
}

async function previewPng(x0: Float32Array, dims: number[]): Promise<{ width: number; height: number; png: Uint8Array }> {
  const p = latentPreview(x0, dims, 0);
  const png = await sharp(Buffer.from(p.rgb.buffer, p.rgb.byteOffset, p.rgb.byteLength), { raw: { width: p.width, height: p.height, channels: 3 } }).png().toBuffer();
  return { width: p.width, height: p.height, png };
}

export const ddimSampler: NodeDef = {
  type: 'ddim-sampler',
  title: 'DDIM Sampler',
  category: 'Sampling',
  description: 'Denoises the latent with DDIM and classifier-free guidance. denoise < 1 (or a latent from VAE Encode) is image-to-image: only the last steps × denoise steps run, starting from the noised input.',
  inputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'positive', type: 'CONDITIONING' },
    { name: 'negative', type: 'CONDITIONING' },
    { name: 'latent', type: 'LATENT' },
  ],
  outputs: [{ name: 'latent', type: 'LATENT' }],
  params: [
    { name: 'seed', kind: 'number', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, step: 1, integer: true, widget: 'seed' },
    { name: 'steps', kind: 'number', default: 30, min: 1, max: 1000, step: 1, integer: true },
    { name: 'cfg', label: 'CFG scale', kind: 'number', default: 7.5, min: 0, max: 30, step: 0.5 },
    { name: 'eta', kind: 'number', default: 0, min: 0, max: 1, step: 0.05 },
    { name: 'denoise', kind: 'number', default: 1, min: 0, max: 1, step: 0.01 },
  ],
  async execute(inputs, params, ctx) {
    const model = expectValue<ModelValue>(inputs.model, 'MODEL', 'model');
    const pos = expectValue<ConditioningValue>(inputs.positive, 'CONDITIONING', 'positive');
    const neg = expectValue<ConditioningValue>(inputs.negative, 'CONDITIONING', 'negative');
    const latent = expectValue<LatentValue>(inputs.latent, 'LATENT', 'latent');
    const seed = params.seed as number;
    const steps = params.steps as number;
    const cfg = params.cfg as number;
    const eta = params.eta as number;
    const denoise = params.denoise as number;
    const controlled = hasControls([pos, neg]); // Apply ControlNet on either prompt
    if (controlled) await checkControlsFit(ctx, [pos, neg], (await checkpointParts(ctx.models, model.checkpoint)).unet.config, model.checkpoint.path);
    const unet = await unetRuntime(ctx.models, model, controlled);
    const sched = await schedulerFor(ctx.models, model.checkpoint);
    const [B, C, h, w] = latent.dims;
    // A 9-channel inpainting UNet takes the 4 latent channels + mask + masked-image latents.
    const inpaintUNet = unet.config.inChannels === 2 * C + 1;
    if (!inpaintUNet && C !== unet.config.inChannels) throw new Error(`the latent has ${C} channels but the UNet takes ${unet.config.inChannels}`);
    const nm = latent.noiseMask;
    if (nm && ((nm.batch !== 1 && nm.batch !== B) || nm.data.length !== nm.batch * h * w)) throw new Error(`the latent's noise mask is ${nm.data.length} values for ${nm.batch} mask(s) at ${w}x${h}; it must be 1 or ${B} planes of the latent's size`);
    if (inpaintUNet && !latent.noiseMask) throw new Error(`${model.checkpoint.path} is an inpainting model (its UNet takes ${unet.config.inChannels} channels): give the sampler a masked latent (VAE Encode with a mask, or Set Latent Noise Mask)`);
    for (const [what, c] of [['positive', pos], ['negative', neg]] as const) {
      if (c.dim !== unet.config.crossAttentionDim) throw new Error(`the ${what} conditioning has width ${c.dim}, the UNet expects ${unet.config.crossAttentionDim} (text encoder and UNet from different models?)`);
    }
    if (pos.tokens !== neg.tokens) throw new Error(`positive (${pos.tokens} tokens) and negative (${neg.tokens} tokens) conditioning differ in length`);

    const full = latent.empty && denoise >= 1;
    const timesteps = full ? sched.setTimesteps(steps) : sched.timestepsForStrength(steps, denoise);
    if (!timesteps.length) return { latent };
    const shape = [B, C, h, w];
    const n = B * C * h * w;
    let x: Float32Array;
    // The starting draw; inpainting also noises the init latents with it at every step.
    const noise0 = ctx.noise({ node: ctx.nodeId, purpose: full ? 'latents' : 'add_noise', seed, shape });
    if (noise0.length !== n) throw new Error(`noise source gave ${noise0.length} values for shape [${shape}]`);
    x = full ? noise0 : sched.addNoise(latent.samples, noise0, timesteps[0]); // text-to-image: * init_noise_sigma = 1
    ctx.trace?.({ node: ctx.nodeId, name: 'start_latents', data: x, shape });

    // Fixed per-run inputs: text (B, T, C) per branch and image tokens.
    const doCfg = cfg > 1;
    const branches = doCfg ? 2 : 1;
    const text = doCfg ? concat([repeat(neg.embeds, B), repeat(pos.embeds, B)]) : repeat(pos.embeds, B);
    const feeds: Record<string, ort.Tensor> = {
      encoder_hidden_states: new ort.Tensor('float32', text, [branches * B, pos.tokens, pos.dim]),
    };
    // ControlNets (nodes/runtime/controlnet.ts): residuals for the UNet's residual inputs, per step.
    const control = controlled
      ? await SamplerControl.prepare(ctx, { unet: unet.config, checkpointPath: model.checkpoint.path, branches: doCfg ? [neg, pos] : [pos], batch: B, height: h, width: w })
      : null;
    const ip = imageTokens(model.adapters);
    const a0 = model.adapters[0];
    const factors = unet.ipLayers ? blockFactors(unet.config, a0.blocks ?? 'all', a0.layerWeights ?? '') : [];
    if (unet.ipLayers) {
      const t = ip!;
      const tok = doCfg ? concat([repeat(t.uncond, B), repeat(t.cond, B)]) : repeat(t.cond, B);
      feeds.ip_tokens = new ort.Tensor('float32', tok, [branches * B, t.n, t.dim]);
    }

    // ip_scale takes one of two values per run (the adapter's window on or off): built once.
    const ipScale = unet.ipLayers
      ? [false, true].map((on) => new ort.Tensor('float32', ipScales(factors, a0.weight, on), [unet.ipLayers]))
      : null;
    // Per-step inputs reuse buffers made once per run: the UNet reads them during `run` only, and
    // nothing keeps them across steps (the ControlNets read `xs` within stepFeeds).
    const M = branches * B;
    const xs = doCfg ? new Float32Array(2 * n) : null; // [x, x]: (2B, C, h, w)
    const timestep = new Float32Array(M);
    feeds.timestep = new ort.Tensor('float32', timestep, [M]);
    const unetIn = inpaintUNet ? new Float32Array(M * unet.config.inChannels * h * w) : xs;
    if (unetIn) feeds.sample = new ort.Tensor('float32', unetIn, [M, unet.config.inChannels, h, w]);
    const preview = new PreviewThrottle(PREVIEW_INTERVAL_MS);

    const mask = latent.noiseMask?.data;
    for (let i = 0; i < timesteps.length; i++) {
      checkAborted(ctx.signal);
      const t = timesteps[i];
      if (xs) { xs.set(x, 0); xs.set(x, n); }
      const latents = xs ?? x; // (branches*B, C, h, w)
      if (inpaintUNet) {
        const one = inpaintUNetInput(x, mask!, latent.maskedImage ?? latent.samples, shape);
        for (let b = 0; b < branches; b++) unetIn!.set(one, b * one.length);
      } else if (!xs) {
        feeds.sample = new ort.Tensor('float32', x, [B, C, h, w]); // x is a new array each step
      }
      timestep.fill(t);
      // ControlNets see the 4 latent channels (diffusers' inpainting ControlNet pipeline too).
      if (control) Object.assign(feeds, await control.stepFeeds(i, timesteps.length, t, latents, text, [M, pos.tokens, pos.dim]));
      if (ipScale) feeds.ip_scale = ipScale[adapterActive(a0, i, timesteps.length) ? 1 : 0];
      const out = await unet.session.run(feeds);
      const pred = out.noise_pred.data as Float32Array; // (branches*B, C, h, w)
      ctx.trace?.({ node: ctx.nodeId, name: 'noise_pred', step: i, data: pred, shape: [M, C, h, w] });
      const guided = doCfg ? classifierFreeGuidance(pred.subarray(0, n), pred.subarray(n), cfg) : pred;
      const noise = eta > 0 ? ctx.noise({ node: ctx.nodeId, purpose: 'eta', seed, shape, step: i }) : undefined;
      const r = sched.step(guided, t, x, { eta, noise });
      x = r.prevSample;
      if (mask && !inpaintUNet) {
        const init = i < timesteps.length - 1 ? sched.addNoise(latent.samples, noise0, timesteps[i + 1]) : latent.samples;
        blendByMask(x, init, mask, shape);
      }
      ctx.trace?.({ node: ctx.nodeId, name: 'latents_after_step', step: i, data: x, shape });
      const last = i === timesteps.length - 1;
      ctx.progress(i + 1, timesteps.length, preview.due(last) ? await previewPng(r.predOriginal, shape) : undefined);
    }
    // The mask stays on the latent (as in ComfyUI), so a second sampler pass inpaints the same area.
    const v: LatentValue = { kind: 'LATENT', dims: [B, C, h, w], samples: x, ...(latent.noiseMask ? { noiseMask: latent.noiseMask, maskedImage: latent.maskedImage } : {}) };
    return { latent: v };
  },
};
