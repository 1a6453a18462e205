/**
 * ComfyUI_IPAdapter_plus' weight types as Apply IP-Adapter's `weight_type` / `layer_weights`, and back.
 * Apply IP-Adapter has ComfyUI's 15 weight types under their own names (models/ip-adapter-layer-scales.ts
 * defines them from IPAdapterPlus.py / CrossAttentionPatch.py), so a type maps to itself; IPAdapterMS'
 * layer_weights ("index:weight" by transformer_index, factors of the weight) are our layer_weights as they
 * are. IPAdapterPlus.py weights the cross-attention layers by transformer_index (the SD1.5 UNet's 16
 * SpatialTransformers in execution order: 0-5 input blocks, 6 middle, 7-15 output blocks), the same
 * numbering as our "index:weight" pairs. Only the SDXL-only "strong style and composition" (IPAdapterStyleComposition's
 * expand_style) is written as layer weights relative to the weight. Pure.
 */

import { SD15_TRANSFORMERS, WEIGHT_TYPES as WEIGHT_TYPE_NAMES } from '../../../models/ip-adapter-weight-types.js';

export { SD15_TRANSFORMERS, WEIGHT_TYPE_NAMES };
export const SD15_LAYERS = SD15_TRANSFORMERS.length;

export interface BlocksParams {
  weight_type: string;
  layer_weights: string;
  /** 'style and composition' only: λ of its composition layers. */
  weight_composition?: number;
}

export interface BlocksMapping {
  params: BlocksParams;
  /** What differs, when something does. */
  approx?: string;
  /** How it was written, when not a plain preset. */
  info?: string;
}

const fmt = (v: number) => String(Number(v.toPrecision(6)));
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const pairs = (units: [number, number][]) => units.map(([i, v]) => `${i}:${fmt(v)}`).join(', ');

/**
 * Apply IP-Adapter's params for a ComfyUI weight type at weight `w` (weight_composition `wc` where the
 * node has one: IPAdapterStyleComposition; IPAdapterAdvanced passes 1.0).
 */
export function blocksForWeightType(type: string, w: number, wc = 1): BlocksMapping {
  const plain = (weight_type: string): BlocksMapping => ({ params: { weight_type, layer_weights: '' } });
  if (type === 'standard') return plain('linear');
  if (type === 'style and composition') return { params: { weight_type: type, layer_weights: '', weight_composition: wc } };
  if ((WEIGHT_TYPE_NAMES as readonly string[]).includes(type)) return plain(type);
  if (type === 'strong style and composition') {
    // SD1.5: { 0-3, 6-15: w, 4, 5: wc } (IPAdapterPlus.py), as factors of w.
    if (w === 0)
      return { ...plain('linear'), approx: `weight type "${type}" at weight 0: its layers' weights cannot be written relative to weight 0; all layers at 0` };
    const abs: [number, number][] = range(0, SD15_LAYERS - 1).map((t) => [t, t === 4 || t === 5 ? wc / w : 1]);
    return { params: { weight_type: 'linear', layer_weights: pairs(abs) }, info: `weight type "${type}" as layer weights (SD1.5's 16 layers)` };
  }
  return { ...plain('linear'), approx: `weight type "${type}" is not known here; linear (all layers) is used` };
}

/** ComfyUI's layer_weights ("index:weight, ..."), which IPAdapterMS multiplies by its weight: our custom pairs as they are. */
export function blocksForLayerWeights(text: string): BlocksMapping {
  const t = text.trim();
  if (!t) return { params: { weight_type: 'linear', layer_weights: '' } };
  return {
    params: {
      weight_type: 'linear',
      layer_weights: t
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .join(', '),
    },
  };
}

/**
 * Our weight type and layer weights as ComfyUI sees them: the weight type, plus (layer weights given)
 * IPAdapterMS' layer_weights by transformer_index, under which ComfyUI keeps a precise type and reads any
 * other as linear, as ours does. A list or diffusers-name pairs are turned into index pairs with SD1.5's
 * layout. Null layer_weights when the type says it all.
 */
export function comfyWeightType(weightType: string, layerWeights: string): { weightType: string; layerWeights: string | null; approx?: string } {
  const items = layerWeights
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (!items.length) return { weightType, layerWeights: null };
  const type = weightType.endsWith(' precise') ? weightType : 'linear';
  if (items.every((s) => !s.includes(':'))) {
    return { weightType: type, layerWeights: items.map((v, i) => `${i}:${v}`).join(', ') };
  }
  const out: string[] = [];
  let approx: string | undefined;
  for (const item of items) {
    const k = item.slice(0, item.lastIndexOf(':'));
    const v = item.slice(item.lastIndexOf(':') + 1);
    if (/^\d+$/.test(k)) {
      out.push(`${k}:${v}`);
      continue;
    }
    const hits = SD15_TRANSFORMERS.map((n, i) => [n, i] as const).filter(([n]) => n === k || n.startsWith(`${k}.`));
    if (!hits.length) {
      approx = `layer "${k}" has no SD1.5 transformer_index; left out`;
      continue;
    }
    for (const [, i] of hits) out.push(`${i}:${v}`);
  }
  return { weightType: type, layerWeights: out.join(', '), ...(approx ? { approx } : {}) };
}
