/**
 * Original (lllyasviel ControlNet) single-file layout -> diffusers ControlNetModel names, as a
 * WeightMap view. Follows diffusers' convert_controlnet_checkpoint:
 *   - the UNet encoder (time_embed, input_blocks, middle_block) as in the LDM UNet layout
 *     (keymaps/ldm-unet.ts), under the ControlNet's prefix instead of model.diffusion_model.
 *   - zero_convs.<n>.0          -> controlnet_down_blocks.<n>
 *   - middle_block_out.0        -> controlnet_mid_block
 *   - input_hint_block.0        -> controlnet_cond_embedding.conv_in
 *   - input_hint_block.<2k+2>   -> controlnet_cond_embedding.blocks.<k>  (odd entries are SiLUs)
 *   - input_hint_block.<2n+2>   -> controlnet_cond_embedding.conv_out     (n = number of blocks)
 * Nothing is copied: `get(diffusersName)` returns the TensorRef of the original key.
 */
import type { SafetensorsFile } from '../safetensors.js';
import type { UNetConfig } from '../unet-config.js';
import { ldmUnetName } from './ldm-unet.js';
import { KeyMapView } from './view.js';

/**
 * Key prefixes of ControlNet single files, most specific first: `control_model.` (the v1.0
 * release and the tiny fixture), `controlnet.`, and none (some v1.1 conversions store the
 * module's own names at the top level).
 */
export const LDM_CONTROLNET_PREFIXES = ['control_model.', 'controlnet.', ''] as const;

/** The prefix under which `st` holds an original-layout ControlNet, or null. */
export function ldmControlNetPrefix(st: SafetensorsFile): string | null {
  for (const p of LDM_CONTROLNET_PREFIXES) if (st.has(`${p}zero_convs.0.0.weight`) && st.has(`${p}input_hint_block.0.weight`)) return p;
  return null;
}

/**
 * The original name (without prefix) of a diffusers ControlNet parameter. `hintBlocks` is the
 * number of controlnet_cond_embedding.blocks (6 for SD1.5 ControlNets: 2 per resolution step).
 */
export function ldmControlNetName(cfg: UNetConfig, name: string, hintBlocks: number): string {
  let m = /^controlnet_down_blocks\.(\d+)\.(.+)$/.exec(name);
  if (m) return `zero_convs.${m[1]}.0.${m[2]}`;
  if (name.startsWith('controlnet_mid_block.')) return `middle_block_out.0.${name.slice('controlnet_mid_block.'.length)}`;
  m = /^controlnet_cond_embedding\.(conv_in|conv_out|blocks\.(\d+))\.(.+)$/.exec(name);
  if (m) {
    if (m[2] !== undefined && Number(m[2]) >= hintBlocks) throw new Error(`no original name for ${name}: the file has ${hintBlocks} hint blocks`);
    const idx = m[1] === 'conv_in' ? 0 : m[1] === 'conv_out' ? 2 * hintBlocks + 2 : 2 * Number(m[2]) + 2;
    return `input_hint_block.${idx}.${m[3]}`;
  }
  return ldmUnetName(cfg, name);
}

/** A diffusers-named view of an original-layout ControlNet file. */
export class LdmControlNetWeights extends KeyMapView {
  /** `hintBlocks` defaults to the count found in the file (entries 2, 4, ... before the last). */
  readonly hintBlocks: number;

  constructor(
    file: SafetensorsFile,
    readonly cfg: UNetConfig,
    readonly prefix: string,
    hintBlocks?: number,
  ) {
    const blocks = hintBlocks ?? countHintBlocks(file, prefix);
    super(file, (name) => prefix + ldmControlNetName(cfg, name, blocks), 'original ControlNet layout');
    this.hintBlocks = blocks;
  }
}

/** Number of conv entries of input_hint_block between conv_in (0) and conv_out (the last). */
export function countHintBlocks(file: SafetensorsFile, prefix: string): number {
  let last = 0;
  for (let i = 2; file.has(`${prefix}input_hint_block.${i}.weight`); i += 2) last = i;
  // Entries 0, 2, ..., last: conv_in, the blocks, conv_out.
  return Math.max(0, last / 2 - 1);
}
