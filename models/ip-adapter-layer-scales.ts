/**
 * λ per layer: one IP-Adapter scale per cross-attention layer, from a weight type (ComfyUI_IPAdapter_plus'
 * 15, `weightTypeLayers`, below), a preset of the older `blocks` param or a custom list.
 * The UNet graph takes ip_adapter_scale (L,) as an input (one scale per attn2 layer,
 * crossAttnLayers order), so none of this rebuilds the UNet. `unitLayerScales` gives each
 * layer's scale for an adapter scale of 1 (the preset's pattern), `layerScales` the input for a
 * step: the adapter's scale (Apply IP-Adapter's weight λ) times that pattern.
 *
 * Layers are found by their diffusers module names, never by a fixed count: SD1.5 has 16
 * cross-attention transformers, the demo UNet 11, the tiny reference UNet 16.
 *
 * Presets follow ComfyUI_IPAdapter_plus (cubiq, IPAdapterPlus.py `ipadapter_execute`, weight
 * types "style transfer" and "composition" for SD1.5), which weights layers by ComfyUI's
 * `transformer_index`: the SpatialTransformers counted in execution order, input blocks, middle,
 * output blocks (CrossAttentionPatch.py reads extra_options["transformer_index"]). For SD1.5
 * that order is, in diffusers names:
 *    0-1 down_blocks.0.attentions.0-1   2-3 down_blocks.1.attentions.0-1
 *    4-5 down_blocks.2.attentions.0-1   6   mid_block.attentions.0
 *    7-9 up_blocks.1.attentions.0-2    10-12 up_blocks.2.attentions.0-2   13-15 up_blocks.3.attentions.0-2
 * and its maps are  style:       {0,1,2,3, 9..15: λ}
 *                   composition: {4: λ/4, 5: λ}.
 * They are written here by name (below), so they land on the same modules in any UNet of the
 * family, whatever its count. (InstantStyle's SD1.5 script marks its own choice, style =
 * "up_blocks.1", as experimental; its SDXL finding, up_blocks.0.attentions.1 for style and
 * down_blocks.2.attentions.1 for layout, has no SD1.5 counterpart by name, so the presets follow
 * ComfyUI_IPAdapter_plus, the one most people use with SD1.5.)
 */
import { crossAttnLayers, type UNetConfig } from './unet-config.js';
import { SD15_TRANSFORMERS, WEIGHT_TYPES, type WeightType } from './ip-adapter-weight-types.js';

export const BLOCK_PRESETS = ['all', 'style only', 'composition only', 'custom'] as const;
export type BlockPreset = (typeof BLOCK_PRESETS)[number];

/** A preset as (Transformer2DModel name -> its unit scale); layers not listed get 0. */
const PRESETS: Record<'style only' | 'composition only', [string, number][]> = {
  'style only': [
    ['down_blocks.0.attentions.0', 1],
    ['down_blocks.0.attentions.1', 1],
    ['down_blocks.1.attentions.0', 1],
    ['down_blocks.1.attentions.1', 1],
    ['up_blocks.1.attentions.2', 1],
    ['up_blocks.2.attentions.0', 1],
    ['up_blocks.2.attentions.1', 1],
    ['up_blocks.2.attentions.2', 1],
    ['up_blocks.3.attentions.0', 1],
    ['up_blocks.3.attentions.1', 1],
    ['up_blocks.3.attentions.2', 1],
  ],
  'composition only': [
    ['down_blocks.2.attentions.0', 0.25],
    ['down_blocks.2.attentions.1', 1],
  ],
};

/** The Transformer2DModel holding an attn2 processor: "down_blocks.1.attentions.0.transformer_blocks.0.attn2" -> "down_blocks.1.attentions.0". */
export const transformerOf = (processorName: string) => processorName.replace(/\.transformer_blocks\.\d+\.attn2$/, '');

/**
 * The UNet's cross-attention transformers in execution order (down blocks, mid block, up
 * blocks): the numbering of custom lists, ComfyUI's transformer_index.
 */
export function transformerOrder(cfg: UNetConfig): string[] {
  const names = [...new Set(crossAttnLayers(cfg).map((l) => transformerOf(l.name)))];
  const rank = (n: string) => (n.startsWith('down_blocks.') ? 0 : n.startsWith('mid_block') ? 1 : 2);
  // crossAttnLayers lists down, up, mid (registration order); keep each group's own order.
  return [0, 1, 2].flatMap((r) => names.filter((n) => rank(n) === r));
}

/** A parsed custom list: one unit scale per transformer, or some of them by index or by name. */
export type LayerWeights = { kind: 'list'; values: number[] } | { kind: 'pairs'; pairs: { key: number | string; value: number }[] };

/**
 * Parses a custom layer-weight string. Three forms, comma or space separated:
 *   "1, 1, 0, 0.5, ..."                     one weight per transformer, execution order;
 *   "3:2.5, 6:1"                            index:weight pairs (ComfyUI's layer_weights form), others 0;
 *   "down_blocks.2:1, up_blocks.1.attentions.1:0.5"  diffusers name (prefix):weight pairs, others 0.
 * Throws a sentence for anything else.
 */
export function parseLayerWeights(text: string): LayerWeights {
  const items = text
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (!items.length) throw new Error('the custom layer weights are empty: give one number per cross-attention layer, or index:weight pairs');
  const num = (s: string, item: string) => {
    const v = Number(s);
    if (s === '' || !Number.isFinite(v)) throw new Error(`"${item}" in the custom layer weights: "${s}" is not a number`);
    return v;
  };
  const pairs = items.filter((s) => s.includes(':'));
  if (!pairs.length) return { kind: 'list', values: items.map((s) => num(s, s)) };
  if (pairs.length !== items.length) throw new Error('the custom layer weights mix plain numbers and key:weight pairs; use one form');
  return {
    kind: 'pairs',
    pairs: items.map((item) => {
      const i = item.lastIndexOf(':');
      const k = item.slice(0, i);
      const value = num(item.slice(i + 1), item);
      if (/^\d+$/.test(k)) return { key: Number(k), value };
      if (!/^(down_blocks|mid_block|up_blocks)(\.[a-z_0-9]+)*$/.test(k))
        throw new Error(
          `"${item}" in the custom layer weights: "${k}" is neither a layer index nor a diffusers block name (down_blocks.N, mid_block, up_blocks.N.attentions.M)`,
        );
      return { key: k, value };
    }),
  };
}

/** Does a Transformer2DModel name fall under a name prefix given by a user (whole segments)? */
const under = (name: string, prefix: string) => name === prefix || name.startsWith(`${prefix}.`);

/**
 * Every cross-attention layer's scale for an adapter scale of 1, in ip_adapter_scale order
 * (crossAttnLayers). 'all' gives 1 everywhere, so scale · 1 is exactly the scalar scale.
 */
export function unitLayerScales(cfg: UNetConfig, preset: BlockPreset, custom = ''): number[] {
  const layers = crossAttnLayers(cfg);
  if (preset === 'all') return layers.map(() => 1);
  const order = transformerOrder(cfg);
  const byName = new Map<string, number>();
  if (preset === 'custom') {
    const w = parseLayerWeights(custom);
    if (w.kind === 'list') {
      if (w.values.length !== order.length) {
        throw new Error(
          `the custom layer weights list ${w.values.length} numbers, but this UNet has ${order.length} cross-attention layers (in order: ${order.join(', ')})`,
        );
      }
      w.values.forEach((v, i) => byName.set(order[i]!, v));
    } else {
      for (const { key, value } of w.pairs) {
        const hit = typeof key === 'number' ? order.slice(key, key + 1) : order.filter((n) => under(n, key));
        if (!hit.length) {
          throw new Error(
            typeof key === 'number'
              ? `custom layer weight index ${key}: this UNet has ${order.length} cross-attention layers (0 to ${order.length - 1})`
              : `custom layer weight "${key}": no cross-attention layer of this UNet is named so (it has ${order.join(', ')})`,
          );
        }
        for (const n of hit) byName.set(n, value);
      }
    }
  } else {
    for (const [n, f] of PRESETS[preset]) if (order.includes(n)) byName.set(n, f);
    if (!byName.size)
      throw new Error(
        `the "${preset}" preset targets ${PRESETS[preset].map(([n]) => n).join(', ')}, none of which is a cross-attention layer of this UNet (${order.join(', ')})`,
      );
  }
  return layers.map((l) => byName.get(transformerOf(l.name)) ?? 0);
}

/** ip_adapter_scale for one step: `scale` times each layer's unit scale (0 everywhere outside the adapter's window). */
export function layerScales(unit: number[], scale: number, active: boolean): Float32Array {
  return Float32Array.from(unit, (u) => (active ? scale * u : 0));
}

// ---------------------------------------------------------------------------------------
// Weight types: ComfyUI_IPAdapter_plus' 15 (IPAdapterPlus.py WEIGHT_TYPES), for SD1.5.
// ---------------------------------------------------------------------------------------

export { SD15_TRANSFORMERS, WEIGHT_TYPES, type WeightType } from './ip-adapter-weight-types.js';

/** What one cross-attention layer does with an adapter under a weight type. */
export interface LayerShare {
  /** The layer's λ: ComfyUI's per-layer weight (0 = the adapter does nothing here). */
  scale: number;
  /** 'style and composition': this layer attends to the composition image's tokens, not the style image's. */
  composition: boolean;
  /**
   * The "precise" types (CrossAttentionPatch.py: `uncond = cond; cond = cond * 0`): on this layer the
   * unconditional branch gets the image tokens and the conditional branch zero tokens, so with
   * guidance the image pushes away from itself there.
   */
  precise: boolean;
}

export interface WeightTypeOptions {
  /** weight_composition of 'style and composition' (IPAdapterStyleComposition; IPAdapterAdvanced passes 1). */
  weightComposition?: number;
  /**
   * IPAdapterMS' layer_weights (any form parseLayerWeights reads): per-layer factors of λ that replace the
   * type's; as in IPAdapterPlus.py the precise types keep their routing, the others act as linear.
   */
  layerWeights?: string;
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
/** transformer_index of SD1.5's style layers (ComfyUI "style transfer"): everything but 4-8. */
const STYLE = [0, 1, 2, 3, ...range(9, 15)];

/**
 * ComfyUI's weight dict for SD1.5 (IPAdapterPlus.py ipadapter_execute, `is_sdxl` false), transformer_index ->
 * weight, for the types that write one (indices absent = 0); null for the types that scale every layer.
 * w = weight, wc = weight_composition. The precise types come from IPAdapterAdvanced (style_boost and
 * composition_boost unset): "style transfer precise" sets weight_composition = w, "composition precise" too.
 */
function sd15WeightDict(type: WeightType, w: number, wc: number): Map<number, number> | null {
  const m = new Map<number, number>();
  const set = (idx: number[], v: number) => idx.forEach((i) => m.set(i, v));
  switch (type) {
    case 'style transfer':
      set(STYLE, w);
      return m;
    case 'composition':
      m.set(4, w * 0.25);
      m.set(5, w);
      return m;
    case 'strong style transfer':
      set([0, 1, 2, 3, ...range(6, 15)], w);
      return m;
    case 'style and composition':
      set(STYLE, w);
      m.set(4, wc * 0.25);
      m.set(5, wc);
      return m;
    case 'style transfer precise':
      set(STYLE, w);
      m.set(4, w * 0.25);
      m.set(5, w);
      return m;
    case 'composition precise':
      set([0, 1, 2, 3], w);
      m.set(4, w * 0.25);
      m.set(5, w);
      set([6, 7, 8], w * 0.1);
      set(range(9, 15), w);
      return m;
    default:
      return null;
  }
}

/**
 * ComfyUI's factor of the weight on transformer t of L for the types that scale every layer
 * (CrossAttentionPatch.py ipadapter_attention; L = 16 for SD1.5), by the block the layer is in.
 */
export function weightTypeFactor(type: WeightType, t: number, L: number, block: 'input' | 'middle' | 'output'): number {
  switch (type) {
    case 'ease in':
      return 0.05 + 0.95 * (1 - t / L);
    case 'ease out':
      return 0.05 + 0.95 * (t / L);
    case 'ease in-out':
      return 0.05 + 0.95 * (1 - Math.abs(t - L / 2) / (L / 2));
    case 'reverse in-out':
      return 0.05 + 0.95 * (Math.abs(t - L / 2) / (L / 2));
    case 'weak input':
      return block === 'input' ? 0.2 : 1;
    case 'weak middle':
      return block === 'middle' ? 0.2 : 1;
    case 'weak output':
      return block === 'output' ? 0.2 : 1;
    case 'strong middle':
      return block === 'middle' ? 1 : 0.2;
    default:
      return 1;
  }
}

const blockOf = (name: string) => (name.startsWith('down_blocks.') ? 'input' : name.startsWith('mid_block') ? 'middle' : 'output');

/**
 * Every cross-attention layer's share of an adapter applied with weight `weight` and a weight type, in
 * ip_adapter_scale order (crossAttnLayers). Layers are numbered by execution order (ComfyUI's
 * transformer_index; L = their count, 16 for SD1.5, so the ease curves are ComfyUI's there); the types
 * that write fixed layer sets name SD1.5's layers (SD15_TRANSFORMERS), so in a UNet of the family with
 * fewer layers they land on the same modules. 'linear' (or any type whose factors are 1) gives exactly
 * `weight` on every layer.
 */
export function weightTypeLayers(cfg: UNetConfig, type: WeightType, weight: number, opts: WeightTypeOptions = {}): LayerShare[] {
  if (!(WEIGHT_TYPES as readonly string[]).includes(type)) throw new Error(`unknown weight type "${type}" (known: ${WEIGHT_TYPES.join(', ')})`);
  const layers = crossAttnLayers(cfg);
  const order = transformerOrder(cfg);
  const L = order.length;
  const sd15 = (name: string) => (SD15_TRANSFORMERS as readonly string[]).indexOf(name);
  const precise = (i: number) =>
    i >= 0 && ((type === 'style transfer precise' && (i === 4 || i === 5)) || (type === 'composition precise' && i !== 4 && i !== 5));
  const composition = (i: number) => type === 'style and composition' && (i === 4 || i === 5);
  if (opts.layerWeights?.trim()) {
    const unit = unitLayerScales(cfg, 'custom', opts.layerWeights);
    return layers.map((l, k) => {
      const i = sd15(transformerOf(l.name));
      return { scale: weight * unit[k]!, composition: composition(i), precise: precise(i) };
    });
  }
  const dict = sd15WeightDict(type, weight, opts.weightComposition ?? 1);
  if (dict && !order.some((n) => dict.has(sd15(n)))) {
    throw new Error(
      `weight type "${type}" acts on ${[...dict.keys()].map((i) => SD15_TRANSFORMERS[i]).join(', ')}, none of which is a cross-attention layer of this UNet (${order.join(', ')})`,
    );
  }
  return layers.map((l) => {
    const name = transformerOf(l.name);
    const i = sd15(name);
    if (dict) return { scale: dict.get(i) ?? 0, composition: composition(i), precise: precise(i) };
    const f = weightTypeFactor(type, order.indexOf(name), L, blockOf(name));
    return { scale: weight * f, composition: false, precise: false }; // f = 1: exactly `weight`
  });
}

/**
 * The weight type a workflow saved before weight types meant with its `blocks` param (Apply IP-Adapter's
 * presets were ComfyUI's maps): all -> linear, style only -> style transfer, composition only ->
 * composition; custom -> linear with its layer weights, which then replace the factors as before.
 */
export function weightTypeForBlockPreset(blocks: string): WeightType {
  return blocks === 'style only' ? 'style transfer' : blocks === 'composition only' ? 'composition' : 'linear';
}
