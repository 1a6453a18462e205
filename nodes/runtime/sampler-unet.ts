/**
 * The sampler's model call (models/sampling/denoise.ts ModelCall): the UNet of a MODEL value on
 * the guidance batch, through models/unet-call.ts `callUNet`.
 *
 *   rows: [uncond, cond] per latent with guidance (text: negative, positive; image tokens: the
 *       projection of a zero image or the negative image tokens, the image tokens), else cond;
 *   IP-Adapters, each its own image branch of the UNet (at most 4): its tokens, the per-layer scales
 *       (Apply IP-Adapter's weight λ and weight type, models/ip-adapter-layer-scales.ts weightTypeLayers)
 *       while i / steps is in its [start_at, end_at], else 0, its embeds_scaling, its mask, and the
 *       routed tokens of the precise / composition layers;
 *   ControlNets (nodes/runtime/controlnet.ts): residuals per step from the 4 latent channels, from their own
 *       sessions through the CPU, or inside the UNet's session (models/unet-controlnet.ts; on a GPU provider,
 *       engine/model-store.ts controlNetsInUNet) with each one's image and per-row strength as inputs; a step where
 *       no ControlNet acts runs the plain UNet session instead (the reason is in README "ControlNet inside the UNet session");
 *   9-channel inpainting UNet: cat([x, mask, masked-image latents]) as its sample.
 * The per-run inputs (text, tokens, the two scale vectors) are built once; the per-step sample
 * buffers are made once per run and reused (the UNet and the ControlNets read them during the
 * step's calls only).
 */
import { weightTypeLayers } from '../../models/ip-adapter-layer-scales.js';
import { inpaintUNetInput, resampleMask } from '../../models/inpaint.js';
import type { Guidance, ModelCall } from '../../models/sampling/denoise.js';
import { downsampleIpMask, maskAspectDiffers } from '../../models/ip-adapter-mask.js';
import { type F32Tensor, type IpAdapterInputs, callUNet } from '../../models/unet-call.js';
import { type UNetConfig, crossAttnLevels, levelGrid } from '../../models/unet-config.js';
import type { ExecContext } from '../../engine/context.js';
import type { AppliedAdapter, ConditioningValue, LatentValue, ModelValue } from '../values.js';
import { SamplerControl } from './controlnet.js';
import { adapterLabel } from './ip-adapters.js';
import { type UNetGraph, type UNetRuntime, unetGraph, unetSession } from './networks.js';
import { UNET_SESSION_OPTIONS } from '../../models/unet.js';
import { unetControlNet, unetControlNetKey } from '../../models/unet-controlnet.js';

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
 * The image tokens of one application: cond for the conditional branch; for the unconditional one
 * the negative image prompt's tokens when one is connected, else the projection of a zero image.
 */
export function adapterTokens(a: AppliedAdapter): { cond: Float32Array; uncond: Float32Array; n: number; dim: number } {
  return { cond: a.tokens.cond, uncond: a.negative ? a.negative.cond : a.tokens.uncond, n: a.tokens.tokens, dim: a.tokens.dim };
}

/** The tokens of the model's first adapter (null without one); each adapter's are adapterTokens(a). */
export function imageTokens(adapters: AppliedAdapter[]): { cond: Float32Array; uncond: Float32Array; n: number; dim: number } | null {
  return adapters[0] ? adapterTokens(adapters[0]) : null;
}

/** One adapter's fixed inputs for a run: everything but the window, which picks one of its two scale vectors per step. */
interface AdapterRun {
  applied: AppliedAdapter;
  inputs: Omit<IpAdapterInputs, 'scale'>;
  /** λ per layer outside and inside the adapter's window. */
  scales: [Float32Array, Float32Array];
}

/**
 * The per-run inputs of adapter `k` (models/unet-call.ts IpAdapterInputs) on the guidance batch:
 * rows [uncond x B, cond x B] (or cond x B); λ per layer from its weight type (models/ip-adapter-layer-scales.ts
 * weightTypeLayers); precise layers attend to routed tokens [cond, zeros] (CrossAttentionPatch.py: `uncond = cond;
 * cond = cond * 0`), composition layers to [uncond, composition tokens]; a mask of another aspect than
 * the latent is stretched to it (with a notice) and given per image when it has one plane per image.
 */
function adapterRun(ctx: ExecContext, cfg: UNetConfig, a: AppliedAdapter, k: number, B: number, doCfg: boolean, h: number, w: number): AdapterRun {
  const t = adapterTokens(a);
  const rows = (uncond: Float32Array, cond: Float32Array) => (doCfg ? concat([repeat(uncond, B), repeat(cond, B)]) : repeat(cond, B));
  const M = (doCfg ? 2 : 1) * B;
  const label = adapterLabel(a);
  const shares = weightTypeLayers(cfg, a.weightType ?? 'linear', a.scale, { weightComposition: a.weightComposition, layerWeights: a.layerWeights });
  const precise = shares.map((s) => s.precise && s.scale !== 0);
  const comp = shares.map((s) => !!a.composition && s.composition && s.scale !== 0);
  if (precise.some(Boolean) && comp.some(Boolean)) {
    throw new Error(
      `${label}: weight type "${a.weightType}" would route both the precise layers and the composition tokens, which one adapter cannot; apply the composition image with a second Apply IP-Adapter`,
    );
  }
  let routedTokens: Float32Array | undefined;
  if (precise.some(Boolean)) routedTokens = rows(t.cond, new Float32Array(t.cond.length));
  if (comp.some(Boolean)) {
    const c = a.composition!;
    if (c.tokens !== t.n || c.dim !== t.dim) throw new Error(`${label}: the composition tokens (${c.tokens}) must match the image prompt's (${t.n} tokens)`);
    routedTokens = rows(t.uncond, c.cond);
  }
  const route = shares.map((_, l) => precise[l]! || comp[l]!);

  // The mask: one plane for the adapter (its images share one softmax) or one per image (each its own).
  let mask: F32Tensor | undefined;
  let images = 1;
  if (a.mask) {
    let m = a.mask;
    if (maskAspectDiffers(m.height, m.width, h, w)) {
      const mw = Math.max(1, Math.round((m.height * w) / h));
      ctx.log(
        'info',
        `${label}: the attention mask is ${m.width}x${m.height}, another aspect ratio than the ${w * 8}x${h * 8} image; it is stretched to ${mw}x${m.height}`,
      );
      m = { ...m, width: mw, data: resampleMask(m, mw, m.height, false) };
    }
    images = m.batch;
    mask = { data: m.data, dims: [1, m.batch, m.height, m.width] };
    if (ctx.trace) {
      for (const lv of crossAttnLevels(cfg)) {
        const [lh, lw] = levelGrid(h, w, lv);
        const q = downsampleIpMask({ data: m.data, dims: [1, m.batch, m.height, m.width] }, lh * lw);
        ctx.trace({ node: ctx.nodeId, name: `ip_mask_${k}_q${lh * lw}`, data: q, shape: [m.batch, lh * lw] });
      }
    }
  }
  const N = t.n / images;
  const dims = images > 1 ? [M, images, N, t.dim] : [M, t.n, t.dim];
  return {
    applied: a,
    inputs: {
      tokens: { data: rows(t.uncond, t.cond), dims },
      perImage: images > 1,
      embedsScaling: a.embedsScaling ?? 'V only',
      ...(routedTokens ? { route, routedTokens: { data: routedTokens, dims } } : {}),
      ...(mask ? { mask } : {}),
    },
    scales: [new Float32Array(shares.length), Float32Array.from(shares, (s) => s.scale)],
  };
}

export interface SamplerUNetOptions {
  /** The UNet graph (nodes/runtime/networks.ts unetGraph, with residual inputs when `controlled`); its session is made here. */
  unet: UNetGraph;
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
  const inUNet = o.controlled && ctx.models.controlNetsInUNet;
  const control = o.controlled
    ? await SamplerControl.prepare(ctx, {
        unet: unet.config,
        checkpointPath: model.checkpoint.path,
        branches: doCfg ? [neg, pos] : [pos],
        batch: B,
        height: h,
        width: w,
        inUNet,
      })
    : null;
  // The sessions: the UNet's (with residual inputs fed from the ControlNets' sessions when controlled), or with the
  // ControlNets inside, the merged one for steps where some ControlNet acts and the plain UNet for the others (made on first need).
  let plain: Promise<UNetRuntime> | null = inUNet ? null : unetSession(ctx.models, unet);
  let merged: Promise<UNetRuntime> | null = null;
  const sessionAt = (i: number): Promise<UNetRuntime> => {
    if (inUNet && control!.activeAt(i, o.steps)) {
      merged ??= ctx.models
        .session(unetControlNetKey(unet.key, control!.keys), () => unetControlNet(unet.build(), control!.graphs()), UNET_SESSION_OPTIONS)
        .then((session) => ({ ...unet, session }));
      return merged;
    }
    plain ??= unetGraph(ctx.models, model, false).then((g) => unetSession(ctx.models, g));
    return plain;
  };
  await plain;
  if (unet.ipAdapters !== model.adapters.length) {
    throw new Error(`internal: the UNet graph takes ${unet.ipAdapters} IP-Adapters but the model has ${model.adapters.length}`);
  }
  const adapters = model.adapters.map((a, k) => adapterRun(ctx, unet.config, a, k, B, doCfg, h, w));

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
    const session = await sessionAt(i);
    const held = inUNet && control!.activeAt(i, o.steps);
    const residuals = control && !inUNet ? await control.stepResiduals(i, o.steps, t, latents, text, textDims) : null;
    const out = await callUNet(session, {
      sample: { data: unetIn ?? x, dims: [M, inC, h, w] },
      timestep: t,
      encoderHiddenStates: { data: text, dims: textDims },
      ipAdapters: adapters.map((r) => ({ ...r.inputs, scale: r.scales[adapterActive(r.applied, i, o.steps) ? 1 : 0] })),
      downResiduals: residuals?.down,
      midResidual: residuals?.mid,
      ...(held ? { controlNets: control!.stepFeeds(i, o.steps) } : {}),
      loraScale: unet.loraScale, // Load LoRA's strength_model per LoRA file: an input, so no rebuild
    });
    if (out.notice) ctx.log('warn', `Sampler (${ctx.nodeId}), step ${i + 1}: ${out.notice}`);
    ctx.trace?.({ node: ctx.nodeId, name: 'noise_pred', step: i, data: out.data, shape: [M, C, h, w] });
    return out.data;
  };
}
