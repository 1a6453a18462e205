/** Load ControlNet: a ControlNet from <models>/controlnet (diffusers folder or single .safetensors file). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NodeDef } from './types.js';
import { warnOnWeightValues } from './runtime/weight-values.js';
import type { ControlNetValue } from './values.js';
import { controlNetParts } from './runtime/controlnet.js';

/** The config.json for a single file: the param may name the file itself or a folder holding it. */
function configFile(p: string): string {
  if (!p) return '';
  if (fs.existsSync(p) && fs.statSync(p).isDirectory()) {
    for (const f of [path.join(p, 'config.json'), path.join(p, 'controlnet', 'config.json')]) if (fs.existsSync(f)) return f;
    throw new Error(`${p}: no config.json (or controlnet/config.json) in this folder`);
  }
  return p;
}

export const loadControlNet: NodeDef = {
  type: 'load-controlnet',
  title: 'Load ControlNet',
  category: 'Loaders',
  description:
    'Opens a Stable Diffusion 1.5 ControlNet: a diffusers folder, or a single file in the original control_model.* layout (control_v11p_sd15_canny, ...). A single file is described by SD1.5 standard values unless "config" names its diffusers config.json. ControlNets for SDXL or SD2 are refused.',
  inputs: [],
  outputs: [{ name: 'control_net', type: 'CONTROL_NET' }],
  params: [
    { name: 'control_net_name', label: 'ControlNet', kind: 'file', modelKind: 'controlnet', default: 'control_v11p_sd15_canny.safetensors' },
    { name: 'config', label: 'config (config.json or folder)', kind: 'file', modelKind: 'controlnet', default: '', optional: true },
  ],
  async execute(_inputs, params, ctx) {
    const v: ControlNetValue = { kind: 'CONTROL_NET', path: params.control_net_name as string, configPath: configFile(params.config as string) };
    // Reading the headers here surfaces a wrong file (SDXL, a checkpoint, a pickle) on this node.
    await controlNetParts(ctx.models, v);
    await warnOnWeightValues(ctx, loadControlNet.title, v.path); // NaN / Inf or mislabelled weights (models/weight-sanity.ts)
    return { control_net: v };
  },
};
