/**
 * IP-Adapter Unified Loader: MODEL -> IP_ADAPTER + CLIP_VISION for a preset (ComfyUI_IPAdapter_plus'
 * IPAdapterUnifiedLoader: light, standard, plus, plus face, full face, vit-G). The files are found in the
 * models folder by their tensor shapes (models/ip-adapter-presets.ts: headers only, never file names), for
 * the connected model's cross-attention width; the log names what was found, an error what is missing.
 */
import { findPreset, IPADAPTER_PRESETS, type IpAdapterPreset } from '../models/ip-adapter-presets.js';
import { IpAdapterModel } from '../models/ip-adapter.js';
import { checkpointParts } from './runtime/networks.js';
import type { NodeDef } from './types.js';
import { expectValue, type ClipVisionValue, type IpAdapterValue, type ModelValue } from './values.js';

export const ipAdapterUnifiedLoader: NodeDef = {
  type: 'ip-adapter-unified-loader',
  title: 'IP-Adapter Unified Loader',
  category: 'Loaders',
  description:
    'Finds the IP-Adapter and the CLIP vision model of a preset in the models folder by their tensor shapes, not their names (a renamed file is still found; a misnamed one is not taken): light / standard = base adapter for ViT-H, plus / plus face = Plus (16 tokens), full face, vit-G = base adapter for ViT-bigG. Light and standard (and plus and plus face) have the same shapes: when several files fit, choose one in "ipadapter file". The run log says which files were taken.',
  inputs: [{ name: 'model', type: 'MODEL' }],
  outputs: [
    { name: 'ip_adapter', type: 'IP_ADAPTER' },
    { name: 'clip_vision', type: 'CLIP_VISION' },
  ],
  params: [
    { name: 'preset', kind: 'enum', options: [...IPADAPTER_PRESETS], default: 'standard' },
    { name: 'ipadapter_file', label: 'ipadapter file (if several fit)', kind: 'file', modelKind: 'ipadapter', default: '', optional: true },
    { name: 'clip_name', label: 'clip vision (if several fit)', kind: 'file', modelKind: 'clip_vision', default: '', optional: true },
  ],
  async execute(inputs, params, ctx) {
    const model = expectValue<ModelValue>(inputs.model, 'MODEL', 'model');
    const ck = await checkpointParts(ctx.models, model.checkpoint);
    const found = findPreset(ctx.paths.modelsDir, params.preset as IpAdapterPreset, ck.unet.config.crossAttentionDim, {
      ...(params.ipadapter_file ? { adapter: params.ipadapter_file as string } : {}),
      ...(params.clip_name ? { vision: params.clip_name as string } : {}),
    });
    ctx.log('info', `IP-Adapter Unified Loader: ${found.how}`);
    const ad = IpAdapterModel.load(found.adapter.file);
    const ip: IpAdapterValue = { kind: 'IP_ADAPTER', path: ad.file, adapterKind: ad.kind, tokensPerImage: ad.numTokens, crossDim: ad.crossAttentionDim };
    const cv: ClipVisionValue = { kind: 'CLIP_VISION', path: found.vision.file };
    return { ip_adapter: ip, clip_vision: cv };
  },
};
