/**
 * Save Embeds: IP_EMBEDS -> `<output>/<prefix>_00001.safetensors` (ComfyUI_IPAdapter_plus' IPAdapterSaveEmbeds,
 * which writes a torch pickle; here a .safetensors file, never a pickle). One F32 tensor "embeds"
 * (n, D) or (n, T, D); the header records the adapter file they belong to (its name and SHA-256), so
 * Load Embeds refuses them for another adapter. Written atomically (models/fs-atomic.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../models/fs-atomic.js';
import { outputPath } from '../engine/paths.js';
import { adapterDigest, encodeEmbedsFile } from './runtime/ip-embeds.js';
import type { NodeDef } from './types.js';
import { expectValue, type IpEmbedsValue } from './values.js';

/** The next free `<base>_NNNNN.safetensors` in `dir`. */
function nextEmbedsFile(dir: string, base: string): string {
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_(\\d{5,})\\.safetensors$`);
  let max = 0;
  if (fs.existsSync(dir)) for (const f of fs.readdirSync(dir)) max = Math.max(max, Number(re.exec(f)?.[1] ?? 0));
  return path.join(dir, `${base}_${String(max + 1).padStart(5, '0')}.safetensors`);
}

export const saveEmbeds: NodeDef = {
  type: 'save-embeds',
  title: 'Save Embeds',
  category: 'IP-Adapter',
  description:
    'Saves IP-Adapter embeds as <prefix>_00001.safetensors in the output folder (a prefix may name a subfolder, never one outside it). The file records the adapter the embeds belong to; Load Embeds reads it back for that adapter only, bit for bit.',
  inputs: [{ name: 'embeds', type: 'IP_EMBEDS' }],
  outputs: [],
  params: [{ name: 'filename_prefix', kind: 'string', default: 'ip_embeds', outputPrefix: true }],
  output: true,
  async execute(inputs, params, ctx) {
    const e = expectValue<IpEmbedsValue>(inputs.embeds, 'IP_EMBEDS', 'embeds');
    const target = outputPath(ctx.outputDir, params.filename_prefix as string); // throws on ../ or absolute prefixes
    const file = nextEmbedsFile(path.dirname(target), path.basename(target));
    writeFileAtomicSync(file, encodeEmbedsFile(e, await adapterDigest(ctx.models, e.adapterPath)));
    ctx.log('info', `Save Embeds: ${e.count} row(s) of [${e.rowDims}] for ${path.basename(e.adapterPath)} written to ${file}`);
    return {};
  },
};
