/**
 * ComfyUI_IPAdapter_plus' weight types as Apply IP-Adapter's `blocks` / `layer_weights`, and back.
 * IPAdapterPlus.py weights the cross-attention layers by transformer_index (the SD1.5 UNet's 16
 * SpatialTransformers in execution order: 0-5 input blocks, 6 middle, 7-15 output blocks), the
 * same numbering as our custom "index:weight" pairs (models/ip-adapter-layer-scales.ts). Our
 * layer weights are unit scales that Apply IP-Adapter multiplies by its weight λ, so ComfyUI's
 * per-layer weights are written here divided by λ.
 *   linear -> all, style transfer -> style only, composition -> composition only (the presets are
 *   those maps); the others -> custom pairs, exact for SD1.5's 16 layers; "precise" types also
 *   swap cond and uncond on some layers, which no weight can say (approximated).
 * Pure.
 */

export const SD15_LAYERS = 16;
/** SD1.5's cross-attention transformers by transformer_index (diffusers names). */
export const SD15_TRANSFORMERS = [
  'down_blocks.0.attentions.0',
  'down_blocks.0.attentions.1',
  'down_blocks.1.attentions.0',
  'down_blocks.1.attentions.1',
  'down_blocks.2.attentions.0',
  'down_blocks.2.attentions.1',
  'mid_block.attentions.0',
  'up_blocks.1.attentions.0',
  'up_blocks.1.attentions.1',
  'up_blocks.1.attentions.2',
  'up_blocks.2.attentions.0',
  'up_blocks.2.attentions.1',
  'up_blocks.2.attentions.2',
  'up_blocks.3.attentions.0',
  'up_blocks.3.attentions.1',
  'up_blocks.3.attentions.2',
] as const;

export interface BlocksParams {
  blocks: 'all' | 'style only' | 'composition only' | 'custom';
  layer_weights: string;
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
const STYLE = [0, 1, 2, 3, ...range(9, 15)];

/** ComfyUI's absolute weight per transformer_index (absent = 0) for a weight type, SD1.5. */
function absoluteWeights(type: string, w: number, wc: number): Map<number, number> | 'factor' | null {
  const m = new Map<number, number>();
  const set = (idx: number[], v: number) => idx.forEach((i) => m.set(i, v));
  switch (type) {
    case 'strong style transfer':
      set([0, 1, 2, 3, ...range(6, 15)], w);
      return m;
    case 'style and composition':
      set(STYLE, w);
      m.set(4, wc * 0.25);
      m.set(5, wc);
      return m;
    case 'strong style and composition':
      set([0, 1, 2, 3, ...range(6, 15)], w);
      m.set(4, wc);
      m.set(5, wc);
      return m;
    default:
      return null;
  }
}

/** ComfyUI's factor (weight multiplier) of transformer t for the per-layer weight types, SD1.5. */
function factor(type: string, t: number): number | null {
  const L = SD15_LAYERS;
  const block = t < 6 ? 'input' : t === 6 ? 'middle' : 'output';
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
      return null;
  }
}

const pairs = (units: [number, number][]) => units.map(([i, v]) => `${i}:${fmt(v)}`).join(', ');

/**
 * Apply IP-Adapter's blocks for a ComfyUI weight type at weight `w` (weight_composition `wc`
 * where the node has none: IPAdapterAdvanced passes 1.0).
 */
export function blocksForWeightType(type: string, w: number, wc = 1): BlocksMapping {
  const plain = (blocks: BlocksParams['blocks']): BlocksMapping => ({ params: { blocks, layer_weights: '' } });
  if (type === 'linear' || type === 'standard') return plain('all');
  if (type === 'style transfer') return plain('style only');
  if (type === 'composition') return plain('composition only');
  if (type === 'style transfer precise') {
    return {
      ...plain('style only'),
      approx: 'weight type "style transfer precise" also inverts the composition layers (4, 5) against the image prompt; here they are left out (style only)',
    };
  }
  if (type === 'composition precise') {
    return {
      ...plain('composition only'),
      approx:
        'weight type "composition precise" also inverts every other layer against the image prompt; here only the composition layers act (composition only)',
    };
  }
  const f = range(0, SD15_LAYERS - 1).map((t) => factor(type, t));
  if (f.every((x) => x !== null)) {
    return {
      params: { blocks: 'custom', layer_weights: pairs(f.map((x, i) => [i, x!])) },
      info: `weight type "${type}" as custom layer weights (SD1.5's 16 layers)`,
    };
  }
  const abs = absoluteWeights(type, w, wc);
  if (abs && abs !== 'factor') {
    if (w === 0)
      return { ...plain('all'), approx: `weight type "${type}" at weight 0: the layers' own weights cannot be written relative to weight 0; all layers at 0` };
    return {
      params: { blocks: 'custom', layer_weights: pairs([...abs].sort((a, b) => a[0] - b[0]).map(([i, v]) => [i, v / w])) },
      info: `weight type "${type}" as custom layer weights (SD1.5's 16 layers)`,
    };
  }
  return { ...plain('all'), approx: `weight type "${type}" is not known here; linear (all layers) is used` };
}

/** ComfyUI's layer_weights ("index:weight, ..."), which IPAdapterMS multiplies by its weight: our custom pairs as they are. */
export function blocksForLayerWeights(text: string): BlocksMapping {
  const t = text.trim();
  if (!t) return { params: { blocks: 'all', layer_weights: '' } };
  return {
    params: {
      blocks: 'custom',
      layer_weights: t
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .join(', '),
    },
  };
}

/**
 * Our blocks as ComfyUI sees them: a weight type, or (custom) IPAdapterMS's layer_weights, whose
 * pairs are by transformer_index. A custom list or diffusers-name pairs are turned into index
 * pairs with SD1.5's layout. Null layer_weights when a weight type says it all.
 */
export function weightTypeForBlocks(blocks: string, layerWeights: string): { weightType: string; layerWeights: string | null; approx?: string } {
  if (blocks === 'style only') return { weightType: 'style transfer', layerWeights: null };
  if (blocks === 'composition only') return { weightType: 'composition', layerWeights: null };
  if (blocks !== 'custom') return { weightType: 'linear', layerWeights: null };
  const items = layerWeights
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (!items.length) return { weightType: 'linear', layerWeights: null, approx: 'custom layer weights are empty; linear in ComfyUI' };
  if (items.every((s) => !s.includes(':'))) {
    return { weightType: 'linear', layerWeights: items.map((v, i) => `${i}:${v}`).join(', ') };
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
  return { weightType: 'linear', layerWeights: out.join(', '), ...(approx ? { approx } : {}) };
}
