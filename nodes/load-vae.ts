/** Load VAE: a standalone VAE from <models>/vae (single file, pickle or diffusers folder) -> VAE for VAE Decode / VAE Encode. */
import { resolveVaeConfigPath } from '../models/vae-load.js';
import { vaeFileParts } from './runtime/networks.js';
import type { NodeDef } from './types.js';
import { warnOnWeightValues } from './runtime/weight-values.js';
import type { VaeValue } from './values.js';

/** The VAE value Load VAE makes for a file or folder and its optional config choice (resolved to a config.json). */
export function standaloneVae(file: string, config = ''): VaeValue {
  return { kind: 'VAE', file, configPath: config ? resolveVaeConfigPath(config) : '' };
}

export const loadVae: NodeDef = {
  type: 'load-vae',
  title: 'Load VAE',
  category: 'Loaders',
  description:
    'Opens a VAE from <models>/vae to use instead of the checkpoint\'s (or for a checkpoint shipped without one): an original-layout file such as vae-ft-mse-840000-ema-pruned.safetensors (with or without first_stage_model.), its .ckpt / .pt pickle, a diffusers AutoencoderKL file, or a diffusers folder. A single file is described by its shapes and SD1.5\'s group count and scaling factor unless "config" names a config.json, a diffusers VAE folder, or a diffusers pipeline folder (its vae/config.json).',
  inputs: [],
  outputs: [{ name: 'vae', type: 'VAE' }],
  params: [
    { name: 'vae_name', label: 'VAE', kind: 'file', modelKind: 'vae', default: 'vae-ft-mse-840000-ema-pruned.safetensors' },
    { name: 'config', label: 'config (config.json or folder)', kind: 'file', modelKind: 'vae', default: '', optional: true },
  ],
  async execute(_inputs, params, ctx) {
    const v = standaloneVae(params.vae_name as string, params.config as string);
    // Reading the headers here surfaces a wrong file (a checkpoint without a VAE, a LoRA, an SDXL VAE's config clash) on this node.
    await vaeFileParts(ctx.models, v.file!, v.configPath);
    await warnOnWeightValues(ctx, loadVae.title, v.file!); // NaN / Inf or mislabelled weights (models/weight-sanity.ts)
    return { vae: v };
  },
};
