/**
 * Standalone VAE files as people download them (ComfyUI `<models>/vae`): an original-layout file
 * (`vae-ft-mse-840000-ema-pruned.safetensors`, keys with or without `first_stage_model.`), the same
 * as a torch pickle (`.ckpt` / `.pt`, read by models/pickle.ts without running it), a diffusers
 * AutoencoderKL file, or a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`).
 *
 * A single file has no config: widths and depths come from its shapes, the group count and the
 * scaling factor from SD1.5's values (32, 0.18215) unless a config.json is named (diffusers'
 * `from_single_file(file, config=<pipeline folder>, subfolder='vae')`); a config that contradicts
 * the shapes is refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { componentWeightsFile } from './checkpoint.js';
import { type MappedWeights, vaeWeightsFromFile } from './keymaps/ldm-vae.js';
import { type VaeConfig, loadVaeConfig, vaeConfigFromWeights } from './vae.js';

export interface LoadedVae {
  weights: MappedWeights;
  config: VaeConfig;
  /** The tensor file read (the folder's weights file for a diffusers folder). */
  weightsFile: string;
  /** The config.json used, if any. */
  configPath?: string;
}

/**
 * The config.json a `config` choice names: the file itself, `<dir>/config.json` (a diffusers VAE
 * folder) or `<dir>/vae/config.json` (a diffusers pipeline folder). Throws naming what was looked for.
 */
export function resolveVaeConfigPath(p: string): string {
  const abs = path.resolve(p);
  if (!fs.existsSync(abs)) throw new Error(`${abs}: the VAE config does not exist`);
  if (!fs.statSync(abs).isDirectory()) return abs;
  for (const f of [path.join(abs, 'config.json'), path.join(abs, 'vae', 'config.json')]) if (fs.existsSync(f)) return f;
  throw new Error(`${abs}: no config.json or vae/config.json in this folder, so it cannot describe a VAE`);
}

/** Opens a standalone VAE (file or diffusers folder); `configPath` may name its config (see resolveVaeConfigPath). */
export function loadVaeFile(pathOrDir: string, opts: { configPath?: string } = {}): LoadedVae {
  const p = path.resolve(pathOrDir);
  if (!fs.existsSync(p)) throw new Error(`${p} does not exist`);
  let weightsFile = p;
  let configPath = opts.configPath ? resolveVaeConfigPath(opts.configPath) : undefined;
  if (fs.statSync(p).isDirectory()) {
    weightsFile = componentWeightsFile(p, 'diffusion_pytorch_model'); // refuses pickle-only folders with the convert command
    if (weightsFile.endsWith('.index.json'))
      throw new Error(`${p}: a VAE split into shards (${path.basename(weightsFile)}) is not supported; save it as one diffusion_pytorch_model.safetensors`);
    if (!configPath && fs.existsSync(path.join(p, 'config.json'))) configPath = path.join(p, 'config.json');
  }
  const weights = vaeWeightsFromFile(weightsFile);
  let config: VaeConfig;
  if (configPath) {
    config = vaeConfigFromWeights(weights, loadVaeConfig(configPath), `${path.basename(weightsFile)} with ${configPath}`);
  } else {
    config = vaeConfigFromWeights(weights, {}, weightsFile);
    const odd = config.block_out_channels.filter((c) => c % config.norm_num_groups !== 0);
    if (odd.length) {
      throw new Error(
        `${path.basename(p)}: its block widths [${config.block_out_channels}] are not multiples of SD1.5's ${config.norm_num_groups} norm groups, so this is not an SD1.5 VAE on its own; name its config.json (or the diffusers folder it belongs to) in the "config" param (file: ${p})`,
      );
    }
  }
  return { weights, config, weightsFile, configPath };
}
