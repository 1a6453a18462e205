/** Load Checkpoint: an SD1.5-family checkpoint (diffusers folder or single file) -> MODEL, CLIP, VAE. */
import * as path from 'node:path';
import { checkpointParts, tokenizerDirFor } from './runtime/networks.js';
import type { NodeDef } from './types.js';
import { warnOnWeightValues } from './runtime/weight-values.js';
import type { CheckpointRef, ClipValue, ModelValue, VaeValue } from './values.js';

export const loadCheckpoint: NodeDef = {
  type: 'load-checkpoint',
  title: 'Load Checkpoint',
  category: 'Loaders',
  description:
    'Opens a Stable Diffusion 1.5 checkpoint from <models>/checkpoints: a diffusers folder or a single .safetensors file. A single file has no configs or tokenizer; "config" may name a diffusers folder whose configs describe it, "tokenizer" a folder in <models>/tokenizers.',
  inputs: [],
  outputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'clip', type: 'CLIP' },
    { name: 'vae', type: 'VAE' },
  ],
  params: [
    { name: 'ckpt_name', label: 'checkpoint', kind: 'file', modelKind: 'checkpoints', default: 'v1-5-pruned-emaonly.safetensors' },
    { name: 'config', label: 'config (diffusers folder)', kind: 'file', modelKind: 'checkpoints', default: '', optional: true },
    { name: 'tokenizer', kind: 'file', modelKind: 'tokenizers', default: '', optional: true },
  ],
  async execute(_inputs, params, ctx) {
    const ref: CheckpointRef = { path: params.ckpt_name as string, configDir: params.config as string };
    // Opening the headers here surfaces a wrong file (SDXL, a VAE, a pickle) on this node.
    await checkpointParts(ctx.models, ref);
    await warnOnWeightValues(ctx, loadCheckpoint.title, ref.path); // NaN / Inf or mislabelled weights (models/weight-sanity.ts)
    const tokenizerDir = await tokenizerDirFor(ctx.models, ref, params.tokenizer as string, path.join(ctx.paths.modelsDir, 'tokenizers'));
    const model: ModelValue = { kind: 'MODEL', checkpoint: ref, adapters: [] };
    const clip: ClipValue = { kind: 'CLIP', checkpoint: ref, tokenizerDir };
    // A checkpoint without a VAE still loads; VAE Decode / Encode fed by this output say so (add a Load VAE node).
    const vae: VaeValue = { kind: 'VAE', checkpoint: ref, from: { node: ctx.nodeId, title: loadCheckpoint.title } };
    return { model, clip, vae };
  },
};
