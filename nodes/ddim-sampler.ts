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
 *       ip_scale = λ on every cross-attention layer while i / steps is in [start_at, end_at],
 *       else 0; guidance uncond + cfg * (cond - uncond) (only when cfg > 1); DDIM step with eta.
 *
 * Noise comes from ctx.noise (seeded Philox normals unless a host injects tensors), so the
 * same seed gives the same image. Progress after each step carries a preview of the predicted
 * clean latent; cancellation is checked before each step.
 */
import sharp from 'sharp';
import { ort } from '../models/onnx/session.js';
import { classifierFreeGuidance } from '../models/ddim.js';
import { latentPreview } from '../models/latent-preview.js';
import { checkAborted } from '../engine/context.js';
import { schedulerFor, unetRuntime } from '../engine/runtime.js';
import type { NodeDef } from './types.js';
import { SamplerControl, hasControls } from './apply-controlnet.js';
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

/** The image tokens of the model's adapters (one file; several applications concatenate). */
function imageTokens(adapters: AppliedAdapter[]): { cond: Float32Array; uncond: Float32Array; n: number; dim: number } | null {
  if (!adapters.length) return null;
  const w0 = adapters[0];
  for (const a of adapters) {
    if (a.weight !== w0.weight || a.start !== w0.start || a.end !== w0.end) {
      throw new Error('several Apply IP-Adapter nodes on one model must share weight, start_at and end_at (the UNet takes one λ per layer); feed the images through one IP-Adapter Projection instead');
    }
  }
  return {
    cond: concat(adapters.map((a) => a.tokens.cond)),
    uncond: concat(adapters.map((a) => (a.negative ? a.negative.cond : a.tokens.uncond))),
    n: adapters.reduce((s, a) => s + a.tokens.tokens, 0),
    dim: w0.tokens.dim,
  };
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
    const unet = await unetRuntime(ctx.models, model, controlled);
    const sched = await schedulerFor(ctx.models, model.checkpoint);
    const [B, C, h, w] = latent.dims;
    if (C !== unet.config.inChannels) throw new Error(`the latent has ${C} channels but the UNet takes ${unet.config.inChannels}`);
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
    if (full) {
      x = ctx.noise({ node: ctx.nodeId, purpose: 'latents', seed, shape }); // * init_noise_sigma = 1
    } else {
      x = sched.addNoise(latent.samples, ctx.noise({ node: ctx.nodeId, purpose: 'add_noise', seed, shape }), timesteps[0]);
    }
    if (x.length !== n) throw new Error(`noise source gave ${x.length} values for shape [${shape}]`);
    ctx.trace?.({ node: ctx.nodeId, name: 'start_latents', data: x, shape });

    // Fixed per-run inputs: text (B, T, C) per branch and image tokens.
    const doCfg = cfg > 1;
    const branches = doCfg ? 2 : 1;
    const text = doCfg ? concat([repeat(neg.embeds, B), repeat(pos.embeds, B)]) : repeat(pos.embeds, B);
    const feeds: Record<string, ort.Tensor> = {
      encoder_hidden_states: new ort.Tensor('float32', text, [branches * B, pos.tokens, pos.dim]),
    };
    // ControlNets (nodes/apply-controlnet.ts): residuals for the UNet's residual inputs, per step.
    const control = controlled
      ? await SamplerControl.prepare(ctx, { unet: unet.config, checkpointPath: model.checkpoint.path, branches: doCfg ? [neg, pos] : [pos], batch: B, height: h, width: w })
      : null;
    const ip = imageTokens(model.adapters);
    if (unet.ipLayers) {
      const t = ip!;
      const tok = doCfg ? concat([repeat(t.uncond, B), repeat(t.cond, B)]) : repeat(t.cond, B);
      feeds.ip_tokens = new ort.Tensor('float32', tok, [branches * B, t.n, t.dim]);
    }

    for (let i = 0; i < timesteps.length; i++) {
      checkAborted(ctx.signal);
      const t = timesteps[i];
      feeds.sample = new ort.Tensor('float32', doCfg ? concat([x, x]) : x, [branches * B, C, h, w]);
      feeds.timestep = new ort.Tensor('float32', new Float32Array(branches * B).fill(t), [branches * B]);
      if (control) Object.assign(feeds, await control.stepFeeds(i, timesteps.length, t, feeds.sample.data as Float32Array, text, [branches * B, pos.tokens, pos.dim]));
      if (unet.ipLayers) {
        const a = model.adapters[0];
        const lambda = adapterActive(a, i, timesteps.length) ? a.weight : 0;
        feeds.ip_scale = new ort.Tensor('float32', new Float32Array(unet.ipLayers).fill(lambda), [unet.ipLayers]);
      }
      const out = await unet.session.run(feeds);
      const pred = out.noise_pred.data as Float32Array; // (branches*B, C, h, w)
      ctx.trace?.({ node: ctx.nodeId, name: 'noise_pred', step: i, data: pred, shape: [branches * B, C, h, w] });
      const guided = doCfg ? classifierFreeGuidance(pred.subarray(0, n), pred.subarray(n), cfg) : pred;
      const noise = eta > 0 ? ctx.noise({ node: ctx.nodeId, purpose: 'eta', seed, shape, step: i }) : undefined;
      const r = sched.step(guided, t, x, { eta, noise });
      x = r.prevSample;
      ctx.trace?.({ node: ctx.nodeId, name: 'latents_after_step', step: i, data: x, shape });
      ctx.progress(i + 1, timesteps.length, await previewPng(r.predOriginal, shape));
    }
    const v: LatentValue = { kind: 'LATENT', dims: [B, C, h, w], samples: x };
    return { latent: v };
  },
};
