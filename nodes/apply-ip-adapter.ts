/**
 * Apply IP-Adapter: MODEL + IP_ADAPTER + IP_TOKENS -> MODEL with the decoupled cross-attention
 * active at strength λ between `start_at` and `end_at` (fractions of the sampling schedule).
 * Cheap: it records the adapter on the model value; the UNet graph takes λ and the tokens as
 * inputs, so changing λ re-runs only the sampler.
 *
 * λ per layer: `weight_type` is one of ComfyUI_IPAdapter_plus' 15 weight types (ease curves,
 * weak/strong blocks, style transfer, composition, the precise types that route the image to the
 * unconditional branch on some layers, style and composition with its own composition tokens and
 * weight); `layer_weights` (IPAdapterMS' form, or a list / diffusers names) replaces the type's
 * factors. The sampler turns them into the UNet's per-layer scales (models/ip-adapter-layer-scales.ts
 * weightTypeLayers), so this never rebuilds the UNet either. Inside, λ is the adapter's `scale`
 * (diffusers' name); the param stays `weight`. Workflows saved with the older `blocks` param are
 * migrated to the equivalent type (engine/workflow.ts, version 4).
 *
 * Several adapters: each Apply IP-Adapter is one image branch of the UNet (nodes/runtime/ip-adapters.ts
 * appendAdapter; at most 4 per model), so chaining them adds their terms, the same file or not.
 * The optional mask and embeds_scaling are inputs of the graph too (models/unet.ts).
 */
import { parseLayerWeights, WEIGHT_TYPES, type WeightType } from '../models/ip-adapter-layer-scales.js';
import { EMBEDS_SCALING, type EmbedsScaling } from '../models/ip-adapter.js';
import { appendAdapter } from './runtime/ip-adapters.js';
import type { NodeDef } from './types.js';
import { expectValue, type IpAdapterValue, type IpTokensValue, type MaskValue, type ModelValue } from './values.js';

export const applyIpAdapter: NodeDef = {
  type: 'apply-ip-adapter',
  title: 'Apply IP-Adapter',
  category: 'IP-Adapter',
  description:
    'Adds the image prompt to the model: Z = Attention(Q, K, V) + λ · Attention(Q, K\', V\'). λ = 0 is the text-only model. The optional negative tokens replace the unconditional image tokens (a negative image prompt). "weight type" is ComfyUI_IPAdapter_plus\' (linear, ease in/out, weak/strong blocks, style transfer = λ on the style layers only, composition = λ on the composition layers only, the "precise" types, which also send the image to the unconditional branch on the other layers, and style and composition: the composition tokens input, or the same tokens, at weight_composition on the composition layers). "layer weights", when given, replace the type\'s factors: one factor per cross-attention layer in execution order (down, mid, up: 16 for SD1.5), or pairs such as "4:0.25, 5:1" (ComfyUI\'s transformer_index) or "up_blocks.1:1". Chain several Apply IP-Adapter nodes (the same or different adapter files, up to 4 per model) to add their image prompts, each with its own λ, window, mask and negative tokens. The attention mask (any MASK, e.g. Load Image\'s painted mask; white = acts) limits the image prompt to a region: one mask, or one per image of the tokens (each image then attends on its own). "embeds scaling" is ComfyUI_IPAdapter_plus\' (V only = diffusers; K+V, K+V w/ C penalty, K+mean(V) w/ C penalty also scale the keys).',
  inputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'ip_adapter', type: 'IP_ADAPTER' },
    { name: 'tokens', type: 'IP_TOKENS' },
    { name: 'negative', label: 'negative tokens', type: 'IP_TOKENS', optional: true },
    { name: 'mask', label: 'attention mask', type: 'MASK', optional: true },
    { name: 'composition', label: 'composition tokens', type: 'IP_TOKENS', optional: true },
  ],
  outputs: [{ name: 'model', type: 'MODEL' }],
  params: [
    { name: 'weight', label: 'weight λ', kind: 'number', default: 1, min: -1, max: 3, step: 0.05, widget: 'slider' },
    { name: 'start_at', kind: 'number', default: 0, min: 0, max: 1, step: 0.01 },
    { name: 'end_at', kind: 'number', default: 1, min: 0, max: 1, step: 0.01 },
    { name: 'weight_type', label: 'weight type', kind: 'enum', options: [...WEIGHT_TYPES], default: 'linear' },
    { name: 'weight_composition', label: 'weight composition', kind: 'number', default: 1, min: -1, max: 5, step: 0.05 },
    { name: 'layer_weights', label: 'layer weights (override)', kind: 'string', default: '' },
    { name: 'embeds_scaling', label: 'embeds scaling', kind: 'enum', options: [...EMBEDS_SCALING], default: 'V only' },
  ],
  check(params) {
    const out: { param?: string; message: string }[] = [];
    if ((params.start_at as number) > (params.end_at as number))
      out.push({ param: 'end_at', message: `end_at ${params.end_at} is before start_at ${params.start_at}` });
    if (String(params.layer_weights ?? '').trim()) {
      try {
        parseLayerWeights(String(params.layer_weights ?? ''));
      } catch (e) {
        out.push({ param: 'layer_weights', message: (e as Error).message });
      }
    }
    return out;
  },
  async execute(inputs, params, ctx) {
    const model = expectValue<ModelValue>(inputs.model, 'MODEL', 'model');
    const adapter = expectValue<IpAdapterValue>(inputs.ip_adapter, 'IP_ADAPTER', 'ip_adapter');
    const tokens = expectValue<IpTokensValue>(inputs.tokens, 'IP_TOKENS', 'tokens');
    const negative = inputs.negative === undefined ? undefined : expectValue<IpTokensValue>(inputs.negative, 'IP_TOKENS', 'negative');
    const composition = inputs.composition === undefined ? undefined : expectValue<IpTokensValue>(inputs.composition, 'IP_TOKENS', 'composition');
    for (const [what, t] of [
      ['tokens', tokens],
      ['negative tokens', negative],
      ['composition tokens', composition],
    ] as const) {
      if (t && t.adapterPath !== adapter.path) {
        throw new Error(
          `the ${what} were projected by ${t.adapterPath}, not by this adapter (${adapter.path}); connect the same Load IP-Adapter to both nodes`,
        );
      }
    }
    if (negative && negative.tokens !== tokens.tokens) {
      throw new Error(`the negative image prompt has ${negative.tokens} tokens but the image prompt has ${tokens.tokens}; give both the same number of images`);
    }
    const mask = inputs.mask === undefined ? undefined : expectValue<MaskValue>(inputs.mask, 'MASK', 'mask');
    const out = appendAdapter(ctx, model, {
      adapter,
      tokens,
      ...(negative ? { negative } : {}),
      scale: params.weight as number,
      start: params.start_at as number,
      end: params.end_at as number,
      weightType: (params.weight_type ?? 'linear') as WeightType,
      weightComposition: (params.weight_composition ?? 1) as number,
      ...(composition ? { composition } : {}),
      layerWeights: String(params.layer_weights ?? ''),
      embedsScaling: (params.embeds_scaling ?? 'V only') as EmbedsScaling,
      ...(mask ? { mask } : {}),
      from: { node: ctx.nodeId, title: applyIpAdapter.title },
    });
    return { model: out };
  },
};
