/** Load CLIP Vision: the image encoder of IP-Adapter (transformers folder or single file). */
import { resolveClipVision } from '../models/clip-vision.js';
import type { NodeDef } from './types.js';
import { warnOnWeightValues } from './runtime/weight-values.js';
import type { ClipVisionValue } from './values.js';

export const loadClipVision: NodeDef = {
  type: 'load-clip-vision',
  title: 'Load CLIP Vision',
  category: 'Loaders',
  description: 'Opens a CLIP vision model from <models>/clip_vision (for the SD1.5 IP-Adapters: OpenCLIP ViT-H/14).',
  inputs: [],
  outputs: [{ name: 'clip_vision', type: 'CLIP_VISION' }],
  params: [{ name: 'clip_name', label: 'model', kind: 'file', modelKind: 'clip_vision', default: 'CLIP-ViT-H-14-laion2B-s32B-b79K' }],
  async execute(_inputs, params, ctx) {
    const p = params.clip_name as string;
    resolveClipVision(p); // checks the files and config now, so an error lands on this node
    await warnOnWeightValues(ctx, loadClipVision.title, p); // NaN / Inf or mislabelled weights (models/weight-sanity.ts)
    const v: ClipVisionValue = { kind: 'CLIP_VISION', path: p };
    return { clip_vision: v };
  },
};
