/**
 * Load Embeds: IP_ADAPTER -> IP_EMBEDS from a file written by Save Embeds (ComfyUI_IPAdapter_plus'
 * IPAdapterLoadEmbeds; .safetensors only, never a pickle). `file` is relative to the output folder, where
 * Save Embeds writes, or absolute. Embeds saved for another adapter file (by content) are refused,
 * naming both files.
 */
import * as path from 'node:path';
import { outputPath } from '../engine/paths.js';
import { readEmbedsFile } from './runtime/ip-embeds.js';
import type { NodeDef } from './types.js';
import { expectValue, type IpAdapterValue } from './values.js';

export const loadEmbeds: NodeDef = {
  type: 'load-embeds',
  title: 'Load Embeds',
  category: 'IP-Adapter',
  description:
    'Loads embeds written by Save Embeds (a .safetensors file; its name relative to the output folder, e.g. "ip_embeds_00001.safetensors", or an absolute path) for the connected adapter. Embeds saved for another adapter are refused.',
  inputs: [{ name: 'ip_adapter', type: 'IP_ADAPTER' }],
  outputs: [{ name: 'embeds', type: 'IP_EMBEDS' }],
  params: [{ name: 'file', kind: 'string', default: '' }],
  check(params) {
    const f = String(params.file ?? '');
    if (!f) return [{ param: 'file', message: 'name the embeds file (written by Save Embeds into the output folder)' }];
    if (!f.endsWith('.safetensors'))
      return [{ param: 'file', message: `"${f}" is not a .safetensors file; embeds are read from .safetensors only (never a pickle)` }];
    return [];
  },
  async execute(inputs, params, ctx) {
    const adapter = expectValue<IpAdapterValue>(inputs.ip_adapter, 'IP_ADAPTER', 'ip_adapter');
    const f = String(params.file);
    const file = path.isAbsolute(f) ? f : outputPath(ctx.outputDir, f);
    return { embeds: await readEmbedsFile(ctx.models, file, adapter) };
  },
};
