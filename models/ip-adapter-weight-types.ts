/**
 * The names ComfyUI_IPAdapter_plus gives SD1.5's IP-Adapter layers and weight types: pure data (no
 * imports), shared by the weight types' definitions (ip-adapter-layer-scales.ts) and the ComfyUI
 * importer / exporter, which the editor bundles.
 */

/** ComfyUI_IPAdapter_plus' weight types, in its order (IPAdapterPlus.py WEIGHT_TYPES). */
export const WEIGHT_TYPES = [
  'linear',
  'ease in',
  'ease out',
  'ease in-out',
  'reverse in-out',
  'weak input',
  'weak output',
  'weak middle',
  'strong middle',
  'style transfer',
  'composition',
  'strong style transfer',
  'style and composition',
  'style transfer precise',
  'composition precise',
] as const;
export type WeightType = (typeof WEIGHT_TYPES)[number];

/** SD1.5's cross-attention transformers by ComfyUI transformer_index (0-5 input blocks, 6 middle, 7-15 output blocks). */
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
