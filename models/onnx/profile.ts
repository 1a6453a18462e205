/**
 * Graph profiles: which precision and which fused ops a network's graph is built with, per execution provider.
 * A profile is applied to a built graph by onnx/apply-profile.ts (post-passes, so the builders stay the
 * reference's module-by-module code) and is part of every graph and session cache key (its id).
 * Pure data and small functions (no ONNX Runtime import): the settings, the conformance runner and
 * `npm run gpu-check` read it too. The agreement with the int8 work is /work/notes/s8/precision-api.md.
 */
import type { Provider } from '../providers.js';

/** fp32: today's graph. fp16: fp16 weights and activations, float32 graph inputs / outputs and float32 islands (onnx/fp16.ts). */
export type Precision = 'fp32' | 'fp16' | 'int8';
export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16', 'int8'];

/**
 * A graph rewrite onto one of ONNX Runtime's fused contrib ops (onnx/fusions.ts). `mha` is the attention
 * the builders already emit (com.microsoft MultiHeadAttention, models/unet-blocks.ts sdpa), listed so the
 * structural check knows which profiles may contain it.
 */
export type Fusion = 'mha' | 'group-norm' | 'skip-group-norm' | 'bias-split-gelu' | 'bias-add' | 'skip-layer-norm' | 'nhwc-conv';

export interface GraphProfile {
  /** Stable id, part of every cache key: `<provider>-<precision>[-fused]`. */
  readonly id: string;
  readonly provider: Provider;
  readonly precision: Precision;
  /** Rewrites applied before the precision pass, in this order. */
  readonly fusions: readonly Fusion[];
}

const profile = (provider: Provider, precision: Precision, fusions: Fusion[] = ['mha']): GraphProfile => ({
  id: `${provider}-${precision}${fusions.some((x) => x !== 'mha') ? '-fused' : ''}`,
  provider,
  precision,
  fusions,
});

/**
 * Every profile, by id. CPU keeps today's graph (fp16 on CPU exists for the conformance check of the fp16
 * graph's structure: ONNX Runtime's x86 CPU kernels compute most fp16 ops through float32). CUDA: fp16 and the
 * fusions of ORT's stable-diffusion optimizer that onnx/fusions.ts implements (GroupNorm with SiLU in NHWC,
 * SkipGroupNorm for the resnets' time-embedding Add, NhwcConv, BiasSplitGelu, BiasAdd, SkipLayerNormalization).
 * WebGPU: fp16 and the fused ops its 1.30 kernels have (no GroupNorm / SkipGroupNorm / NhwcConv: GroupNorm stays
 * decomposed). DirectML: fp16 and its contrib-op registrations (GroupNorm, BiasSplitGelu, BiasAdd,
 * SkipLayerNormalization, MultiHeadAttention). Lists and sources: onnx/provider-ops.ts.
 */
export const PROFILES: Readonly<Record<string, GraphProfile>> = Object.fromEntries(
  [
    profile('cpu', 'fp32'),
    profile('cpu', 'fp16'),
    profile('cpu', 'int8'), // onnx/quantize.ts: int8 linears of the UNet / ControlNet ("CPU precision: fast")
    profile('webgpu', 'fp32'),
    profile('webgpu', 'fp16'),
    profile('webgpu', 'fp16', ['mha', 'bias-split-gelu', 'bias-add', 'skip-layer-norm']),
    profile('cuda', 'fp32'),
    profile('cuda', 'fp16'),
    profile('cuda', 'fp16', ['mha', 'group-norm', 'skip-group-norm', 'nhwc-conv', 'bias-split-gelu', 'bias-add', 'skip-layer-norm']),
    profile('dml', 'fp32'),
    profile('dml', 'fp16'),
    profile('dml', 'fp16', ['mha', 'group-norm', 'bias-split-gelu', 'bias-add', 'skip-layer-norm']),
  ].map((p) => [p.id, p]),
);

/** The profile a provider gets for a precision: the fused one where it exists (fp16), else the plain one. */
export function profileFor(provider: Provider, precision: Precision = 'fp32'): GraphProfile {
  const p = PROFILES[`${provider}-${precision}-fused`] ?? PROFILES[`${provider}-${precision}`];
  if (!p) throw new Error(`no graph profile for provider ${provider} at precision ${precision} (profiles: ${Object.keys(PROFILES).join(', ')})`);
  return p;
}

/** The profile a session uses when its config names none: the provider's fp32 graph (today's). */
export function defaultProfile(provider: Provider = 'cpu'): GraphProfile {
  return profileFor(provider, 'fp32');
}

/**
 * The profiles to try, in order, when `p`'s session fails to build: `p`, then the same precision without
 * fusions, then the provider's fp32 graph. (A provider that fails to start at all falls back to CPU in
 * onnx/session.ts, after this chain.)
 */
export function fallbackChain(p: GraphProfile): GraphProfile[] {
  const chain: GraphProfile[] = [p];
  const add = (id: string) => {
    const q = PROFILES[id];
    if (q && !chain.includes(q)) chain.push(q);
  };
  add(`${p.provider}-${p.precision}`);
  add(`${p.provider}-fp32`);
  return chain;
}

/** The fp32 profile of the same provider (the NaN guard's re-run, models/unet.ts). */
export function float32Twin(p: GraphProfile): GraphProfile {
  return defaultProfile(p.provider);
}
