/**
 * Original (CompVis LDM) single-file UNet layout -> diffusers names, as a WeightMap view.
 *
 * The LDM layout numbers the encoder as `input_blocks.N.M` (N = 0 is conv_in, then for each down
 * block `layers_per_block` (resnet, attention) pairs and one downsampler `op`), the decoder as
 * `output_blocks.N.M` (`layers_per_block + 1` entries per up block, the upsampler `conv` after the
 * attention, if any), and the middle as `middle_block.0..2`. This follows diffusers'
 * convert_ldm_unet_checkpoint, with the numbering derived from the config rather than hard-coded.
 * Nothing is copied: `get(diffusersName)` returns the TensorRef of the LDM key.
 */
import type { SafetensorsFile } from '../safetensors.js';
import { KeyMapView } from './view.js';
import { type UNetConfig, downBlockSpecs, upBlockSpecs } from '../unet-config.js';

/** The UNet key prefix inside an original single-file checkpoint. */
export const LDM_UNET_PREFIX = 'model.diffusion_model.';

/** ResnetBlock2D sub-module names: diffusers -> LDM ResBlock. */
const RESNET: Record<string, string> = {
  norm1: 'in_layers.0',
  conv1: 'in_layers.2',
  time_emb_proj: 'emb_layers.1',
  norm2: 'out_layers.0',
  conv2: 'out_layers.3',
  conv_shortcut: 'skip_connection',
};

const TOP: Record<string, string> = {
  conv_in: 'input_blocks.0.0',
  'time_embedding.linear_1': 'time_embed.0',
  'time_embedding.linear_2': 'time_embed.2',
  conv_norm_out: 'out.0',
  conv_out: 'out.2',
};

function resnetRest(rest: string, name: string): string {
  const dot = rest.indexOf('.');
  const head = rest.slice(0, dot);
  const mapped = RESNET[head];
  if (!mapped) throw new Error(`no LDM name for resnet parameter ${name}`);
  return `${mapped}${rest.slice(dot)}`;
}

/**
 * The LDM name (without prefix) of a diffusers UNet parameter name, for this config.
 * Throws for names that have no LDM counterpart.
 */
export function ldmUnetName(cfg: UNetConfig, name: string): string {
  for (const [d, l] of Object.entries(TOP)) {
    if (name.startsWith(`${d}.`)) return `${l}${name.slice(d.length)}`;
  }
  const down = downBlockSpecs(cfg);
  const up = upBlockSpecs(cfg);
  let m = /^down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const [b, kind, l, rest] = [Number(m[1]), m[2], Number(m[3]), m[4]!];
    const spec = down[b];
    if (!spec) throw new Error(`no LDM name for ${name}: the config has ${down.length} down blocks`);
    const base = 1 + b * (cfg.layersPerBlock + 1); // input_blocks index of this block's first layer
    if (kind === 'resnets') return `input_blocks.${base + l}.0.${resnetRest(rest, name)}`;
    if (kind === 'attentions') return `input_blocks.${base + l}.1.${rest}`;
    if (!rest.startsWith('conv.')) throw new Error(`no LDM name for ${name}`);
    return `input_blocks.${base + cfg.layersPerBlock}.0.op.${rest.slice('conv.'.length)}`;
  }
  m = /^up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const [b, kind, l, rest] = [Number(m[1]), m[2], Number(m[3]), m[4]!];
    const spec = up[b];
    if (!spec) throw new Error(`no LDM name for ${name}: the config has ${up.length} up blocks`);
    const base = b * spec.layers; // output_blocks index of this block's first layer
    if (kind === 'resnets') return `output_blocks.${base + l}.0.${resnetRest(rest, name)}`;
    if (kind === 'attentions') return `output_blocks.${base + l}.1.${rest}`;
    // The upsampler sits in the block's last output_blocks entry, after the attention if any.
    return `output_blocks.${base + spec.layers - 1}.${spec.hasAttention ? 2 : 1}.${rest}`;
  }
  m = /^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const [kind, i, rest] = [m[1], Number(m[2]), m[3]!];
    return kind === 'resnets' ? `middle_block.${2 * i}.${resnetRest(rest, name)}` : `middle_block.${2 * i + 1}.${rest}`;
  }
  throw new Error(`no LDM name for UNet parameter ${name}`);
}

/** A diffusers-named view of the UNet inside an LDM single-file checkpoint. */
export class LdmUNetWeights extends KeyMapView {
  constructor(
    file: SafetensorsFile,
    readonly cfg: UNetConfig,
    readonly prefix = LDM_UNET_PREFIX,
  ) {
    super(file, (name) => prefix + ldmUnetName(cfg, name), 'original SD1.5 UNet layout');
  }
}
