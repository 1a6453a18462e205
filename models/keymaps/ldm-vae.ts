/**
 * VAE weights in the original (CompVis LDM) layout, presented under diffusers AutoencoderKL names.
 *
 * LDM layout (single-file checkpoints: `first_stage_model.` + these; ComfyUI `<models>/vae/*.safetensors`
 * often without a prefix):
 *   encoder.down.N.block.M.*         -> encoder.down_blocks.N.resnets.M.*   (nin_shortcut -> conv_shortcut)
 *   encoder.down.N.downsample.conv.* -> encoder.down_blocks.N.downsamplers.0.conv.*
 *   decoder.up.N.block.M.*           -> decoder.up_blocks.(U-1-N).resnets.M.*  (up blocks numbered in reverse)
 *   decoder.up.N.upsample.conv.*     -> decoder.up_blocks.(U-1-N).upsamplers.0.conv.*
 *   {encoder,decoder}.mid.block_1/2  -> mid_block.resnets.0/1
 *   {encoder,decoder}.mid.attn_1.{norm,q,k,v,proj_out} -> mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0}
 *     (q/k/v/proj_out are 1x1 conv weights [C,C,1,1]; presented as Linear weights [C,C], same bytes)
 *   {encoder,decoder}.norm_out       -> conv_norm_out;   conv_in, conv_out, quant_conv, post_quant_conv unchanged.
 * Reference: diffusers convert_ldm_vae_checkpoint (loaders/single_file_utils.py).
 */
import * as path from 'node:path';
import type { WeightMap } from '../onnx/graph.js';
import { openTensorFile } from '../pickle.js';
import { SafetensorsFile, type TensorRef } from '../safetensors.js';

/** A WeightMap over an explicit name -> tensor table; errors name the source file and layout. */
export class MappedWeights implements WeightMap {
  constructor(
    readonly table: ReadonlyMap<string, TensorRef>,
    readonly source: string,
    readonly layout: string,
  ) {}

  get(name: string): TensorRef {
    const r = this.table.get(name);
    if (!r) throw new Error(`${path.basename(this.source)}: VAE weight "${name}" not found (${this.layout} layout; file: ${this.source})`);
    return r;
  }

  has(name: string): boolean {
    return this.table.has(name);
  }

  keys(): string[] {
    return [...this.table.keys()];
  }
}

const ATTN: Record<string, string> = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' };
/** Names of the pre-0.14 diffusers attention block (`_from_deprecated_attn_block`). */
const OLD_DIFFUSERS_ATTN: Record<string, string> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };

const resnetParam = (p: string) => p.replace(/^nin_shortcut\./, 'conv_shortcut.');

/** One LDM VAE key (without prefix) -> its diffusers name, or null when it is not a VAE parameter. */
export function ldmVaeKeyToDiffusers(key: string, upBlocks: number): string | null {
  let m: RegExpMatchArray | null;
  if ((m = key.match(/^encoder\.down\.(\d+)\.block\.(\d+)\.(.+)$/))) return `encoder.down_blocks.${m[1]}.resnets.${m[2]}.${resnetParam(m[3]!)}`;
  if ((m = key.match(/^encoder\.down\.(\d+)\.downsample\.conv\.(.+)$/))) return `encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[2]}`;
  if ((m = key.match(/^decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$/)))
    return `decoder.up_blocks.${upBlocks - 1 - Number(m[1])}.resnets.${m[2]}.${resnetParam(m[3]!)}`;
  if ((m = key.match(/^decoder\.up\.(\d+)\.upsample\.conv\.(.+)$/))) return `decoder.up_blocks.${upBlocks - 1 - Number(m[1])}.upsamplers.0.conv.${m[2]}`;
  if ((m = key.match(/^(encoder|decoder)\.mid\.block_([12])\.(.+)$/))) return `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${resnetParam(m[3]!)}`;
  if ((m = key.match(/^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$/))) return `${m[1]}.mid_block.attentions.0.${ATTN[m[2]!]}.${m[3]}`;
  if ((m = key.match(/^(encoder|decoder)\.norm_out\.(weight|bias)$/))) return `${m[1]}.conv_norm_out.${m[2]}`;
  if (/^(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)$/.test(key)) return key;
  if (/^(quant_conv|post_quant_conv)\.(weight|bias)$/.test(key)) return key;
  return null;
}

/** 1x1 conv weights [C,C,1,1] of the attention block viewed as Linear weights [C,C] (same bytes). */
function asLinear(name: string, ref: TensorRef): TensorRef {
  if (/\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(name) && ref.shape.length === 4) {
    return { ...ref, shape: ref.shape.slice(0, 2) };
  }
  return ref;
}

/**
 * The VAE of an original-layout file (a full checkpoint with `first_stage_model.`, or a VAE-only file
 * with prefix ''), as a diffusers-named WeightMap. The number of up blocks is read from the keys.
 */
export function ldmVaeWeights(file: SafetensorsFile, prefix = 'first_stage_model.'): MappedWeights {
  const keys = file
    .keys()
    .filter((k) => k.startsWith(prefix))
    .map((k) => k.slice(prefix.length));
  const ups = new Set(keys.map((k) => k.match(/^decoder\.up\.(\d+)\./)?.[1]).filter((x): x is string => x !== undefined));
  const upBlocks = ups.size;
  for (let i = 0; i < upBlocks; i++) {
    if (!ups.has(String(i))) throw new Error(`${file.file}: decoder up blocks under "${prefix}decoder.up." are not numbered 0..${upBlocks - 1}`);
  }
  const table = new Map<string, TensorRef>();
  for (const k of keys) {
    const name = ldmVaeKeyToDiffusers(k, upBlocks);
    if (name) table.set(name, asLinear(name, file.get(prefix + k)));
  }
  if (!table.has('decoder.conv_in.weight') && !table.has('encoder.conv_in.weight')) {
    throw new Error(`${file.file}: no VAE found under "${prefix}" (expected ${prefix}decoder.conv_in.weight, LDM layout)`);
  }
  return new MappedWeights(table, file.file, `LDM${prefix ? ` "${prefix}"` : ''}`);
}

/** A diffusers-layout VAE file, accepting the pre-0.14 attention names (query/key/value/proj_attn). */
function diffusersVaeWeights(file: SafetensorsFile): MappedWeights {
  const table = new Map<string, TensorRef>();
  for (const k of file.keys()) {
    const name = k.replace(/\.attentions\.0\.(query|key|value|proj_attn)\./, (_, p: string) => `.attentions.0.${OLD_DIFFUSERS_ATTN[p]}.`);
    table.set(name, asLinear(name, file.get(k)));
  }
  return new MappedWeights(table, file.file, 'diffusers');
}

/**
 * The VAE of any file people have: a single-file checkpoint (`first_stage_model.*`), a VAE-only file
 * in LDM layout (ComfyUI `<models>/vae`), or a diffusers `vae/diffusion_pytorch_model.safetensors`.
 * Given a path, a pickle (.ckpt/.pt/.bin/.pth, e.g. `vae-ft-mse-840000-ema-pruned.ckpt`) is read by
 * models/pickle.ts without running it (`state_dict` unwrapped).
 */
export function vaeWeightsFromFile(source: string | SafetensorsFile): MappedWeights {
  const file = typeof source === 'string' ? openTensorFile(source) : source;
  if (file.has('first_stage_model.decoder.conv_in.weight') || file.has('first_stage_model.encoder.conv_in.weight')) {
    return ldmVaeWeights(file, 'first_stage_model.');
  }
  const keys = file.keys();
  if (keys.some((k) => /^(decoder\.up\.\d+\.|decoder\.mid\.|encoder\.down\.\d+\.|encoder\.mid\.)/.test(k))) return ldmVaeWeights(file, '');
  if (keys.some((k) => /^(decoder\.up_blocks\.|decoder\.mid_block\.|encoder\.down_blocks\.)/.test(k))) return diffusersVaeWeights(file);
  throw new Error(
    `${path.basename(file.file)}: not a VAE (expected first_stage_model.* of a checkpoint, or encoder.*/decoder.* in LDM or diffusers layout; file: ${file.file})`,
  );
}
