/**
 * The sampler's model call (models/sampling/denoise.ts ModelCall): the UNet of a MODEL value on
 * the guidance batch, through models/unet-call.ts `callUNet`.
 *
 *   rows: [uncond, cond] per latent with guidance (text: negative, positive; image tokens: the
 *       projection of a zero image or the negative image tokens, the image tokens), else cond;
 *   IP-Adapter: the per-layer scales (Apply IP-Adapter's weight λ and weight type,
 *       models/ip-adapter-layer-scales.ts weightTypeLayers) while
 *       i / steps is in [start_at, end_at], else 0;
 *   ControlNets (nodes/runtime/controlnet.ts): residuals per step from the 4 latent channels;
 *   9-channel inpainting UNet: cat([x, mask, masked-image latents]) as its sample.
 * The per-run inputs (text, tokens, the two scale vectors) are built once; the per-step sample
 * buffers are made once per run and reused (the UNet and the ControlNets read them during the
 * step's calls only).
 */
import { weightTypeLayers } from '../../models/ip-adapter-layer-scales.js';
import { inpaintUNetInput } from '../../models/inpaint.js';
import type { Guidance, ModelCall } from '../../models/sampling/denoise.js';
import { callUNet } from '../../models/unet-call.js';
import type { ExecContext } from '../../engine/context.js';
import type { AppliedAdapter, ConditioningValue, LatentValue, ModelValue } from '../values.js';
import { SamplerControl } from './controlnet.js';
import type { UNetRuntime } from './networks.js';

/** Repeats a row `times` times: (L,) -> (times * L,). */
function repeat(row: Float32Array, times: number): Float32Array {
  const out = new Float32Array(row.length * times);
  for (let i = 0; i < times; i++) out.set(row, i * row.length);
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
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
    if (
      a.scale !== w0.scale ||
      a.start !== w0.start ||
      a.end !== w0.end ||
      (a.weightType ?? 'linear') !== (w0.weightType ?? 'linear') ||
      (a.weightComposition ?? 1) !== (w0.weightComposition ?? 1) ||
      (a.layerWeights ?? '') !== (w0.layerWeights ?? '')
    ) {
      throw new Error(
        'several Apply IP-Adapter nodes on one model must share weight, start_at, end_at, weight type and layer weights (the UNet takes one λ per layer); feed the images through one IP-Adapter Projection instead',
      );
    }
  }
  return {
    cond: concat(adapters.map((a) => a.tokens.cond)),
    uncond: concat(adapters.map((a) => (a.negative ? a.negative.cond : a.tokens.uncond))),
    n: adapters.reduce((s, a) => s + a.tokens.tokens, 0),
    dim: w0.tokens.dim,
  };
}

export interface SamplerUNetOptions {
  unet: UNetRuntime;
  model: ModelValue;
  positive: ConditioningValue;
  negative: ConditioningValue;
  latent: LatentValue;
  guidance: Guidance;
  /** The UNet takes 2 * C + 1 channels: [latents, mask, masked-image latents]. */
  inpaintUNet: boolean;
  /** The UNet was built with ControlNet residual inputs (a prompt carries Apply ControlNet). */
  controlled: boolean;
  /** The run's number of steps (the adapter's and the ControlNets' windows are fractions of it). */
  steps: number;
}

/** Prepares the run's fixed inputs (and ControlNets) and returns the per-step model call. */
export async function samplerUNet(ctx: ExecContext, o: SamplerUNetOptions): Promise<ModelCall> {
  const { unet, model, positive: pos, negative: neg, latent } = o;
  const [B, C, h, w] = latent.dims;
  const n = B * C * h * w;
  const doCfg = o.guidance.branches === 2;
  const M = o.guidance.branches * B;
  // Fixed per-run inputs: text (B, T, C) per branch and image tokens.
  const text = doCfg ? concat([repeat(neg.embeds, B), repeat(pos.embeds, B)]) : repeat(pos.embeds, B);
  const textDims = [M, pos.tokens, pos.dim];
  const control = o.controlled
    ? await SamplerControl.prepare(ctx, {
        unet: unet.config,
        checkpointPath: model.checkpoint.path,
        branches: doCfg ? [neg, pos] : [pos],
        batch: B,
        height: h,
        width: w,
      })
    : null;
  const ip = imageTokens(model.adapters);
  const a0 = model.adapters[0];
  const shares = unet.ipLayers
    ? weightTypeLayers(unet.config, a0.weightType ?? 'linear', a0.scale, { weightComposition: a0.weightComposition, layerWeights: a0.layerWeights })
    : [];
  const routed = shares.some((s) => s.scale !== 0 && (s.precise || s.composition));
  if (routed || model.adapters.some((a) => a.composition)) {
    throw new Error(
      `weight type "${a0.weightType}" routes image tokens per layer (composition tokens or precise layers), which this UNet graph does not take yet; use another weight type`,
    );
  }
  let tokens: { data: Float32Array; dims: number[] } | undefined;
  if (unet.ipLayers) {
    const t = ip!;
    tokens = { data: doCfg ? concat([repeat(t.uncond, B), repeat(t.cond, B)]) : repeat(t.cond, B), dims: [M, t.n, t.dim] };
  }
  // The per-layer scales take one of two values per run (the adapter's window on or off): built once.
  const scales = unet.ipLayers ? [false, true].map((on) => Float32Array.from(shares, (s) => (on ? s.scale : 0))) : null;

  const xs = doCfg ? new Float32Array(2 * n) : null; // [x, x]: (2B, C, h, w)
  const inC = unet.config.inChannels;
  const unetIn = o.inpaintUNet ? new Float32Array(M * inC * h * w) : xs;
  const mask = latent.noiseMask?.data;
  return async (x, t, i) => {
    if (xs) {
      xs.set(x, 0);
      xs.set(x, n);
    }
    const latents = xs ?? x; // (branches*B, C, h, w)
    if (o.inpaintUNet) {
      const one = inpaintUNetInput(x, mask!, latent.maskedImage ?? latent.samples, [B, C, h, w]);
      for (let b = 0; b < o.guidance.branches; b++) unetIn!.set(one, b * one.length);
    }
    // ControlNets see the 4 latent channels (diffusers' inpainting ControlNet pipeline too).
    const residuals = control ? await control.stepResiduals(i, o.steps, t, latents, text, textDims) : null;
    const out = await callUNet(unet, {
      sample: { data: unetIn ?? x, dims: [M, inC, h, w] },
      timestep: t,
      encoderHiddenStates: { data: text, dims: textDims },
      ipAdapter: tokens && scales ? { tokens, scale: scales[adapterActive(a0, i, o.steps) ? 1 : 0] } : undefined,
      downResiduals: residuals?.down,
      midResidual: residuals?.mid,
      loraScale: unet.loraScale, // Load LoRA's strength_model per LoRA file: an input, so no rebuild
    });
    ctx.trace?.({ node: ctx.nodeId, name: 'noise_pred', step: i, data: out.data, shape: [M, C, h, w] });
    return out.data;
  };
}
