/**
 * The UNet's configuration side: the typed config parsed from a diffusers unet/config.json, the
 * block specs the builders walk, and the attention-processor numbering (diffusers registration
 * order = the h94 `ip_adapter.<index>` numbers). The graph builder is models/unet.ts.
 */
import type { BlockSpec } from './unet-blocks.js';
import { readJsonFile } from './json-file.js';

/** The UNet's architecture, parsed from a diffusers unet/config.json. */
export interface UNetConfig {
  sampleSize: number;
  inChannels: number;
  outChannels: number;
  downBlockTypes: string[];
  upBlockTypes: string[];
  midBlockType: string | null;
  blockOutChannels: number[];
  layersPerBlock: number;
  /** Heads per down block (diffusers: num_attention_heads, or attention_head_dim when that is null). */
  numAttentionHeads: number[];
  /** Transformer blocks per Transformer2DModel, per down block. */
  transformerLayersPerBlock: number[];
  normNumGroups: number;
  normEps: number;
  crossAttentionDim: number;
  flipSinToCos: boolean;
  freqShift: number;
  actFn: string;
  useLinearProjection: boolean;
  upcastAttention: boolean;
  midBlockScaleFactor: number;
  resnetOutScaleFactor: number;
  downsamplePadding: number;
}

const perBlock = (v: unknown, n: number, what: string, src: string): number[] => {
  if (typeof v === 'number') return Array(n).fill(v);
  if (Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number')) return v as number[];
  throw new Error(`${src}: ${what} must be a number or a list of ${n} numbers, found ${JSON.stringify(v)}`);
};

/**
 * Parses a diffusers UNet config. Features outside the SD1.5 family (class/addition embeddings,
 * scale-shift time norm, gated attention, ...) are refused with a sentence naming the file.
 */
export function parseUNetConfig(json: Record<string, unknown>, source = 'unet/config.json'): UNetConfig {
  const num = (k: string, d?: number): number => {
    const v = json[k] ?? d;
    if (typeof v !== 'number') throw new Error(`${source}: "${k}" must be a number, found ${JSON.stringify(json[k])}`);
    return v;
  };
  const strs = (k: string): string[] => {
    const v = json[k];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`${source}: "${k}" must be a list of block type names`);
    return v as string[];
  };
  const unsupported: [string, unknown, unknown][] = [
    ['class_embed_type', json.class_embed_type ?? null, null],
    ['addition_embed_type', json.addition_embed_type ?? null, null],
    ['time_cond_proj_dim', json.time_cond_proj_dim ?? null, null],
    ['encoder_hid_dim', json.encoder_hid_dim ?? null, null],
    ['resnet_time_scale_shift', json.resnet_time_scale_shift ?? 'default', 'default'],
    ['time_embedding_type', json.time_embedding_type ?? 'positional', 'positional'],
    ['attention_type', json.attention_type ?? 'default', 'default'],
    ['dual_cross_attention', json.dual_cross_attention ?? false, false],
    ['only_cross_attention', json.only_cross_attention ?? false, false],
    ['center_input_sample', json.center_input_sample ?? false, false],
    ['act_fn', json.act_fn ?? 'silu', 'silu'],
    ['conv_in_kernel', json.conv_in_kernel ?? 3, 3],
    ['conv_out_kernel', json.conv_out_kernel ?? 3, 3],
  ];
  for (const [k, v, want] of unsupported) {
    if (v !== want) throw new Error(`${source}: ${k} = ${JSON.stringify(v)} is not supported by the SD1.5-family UNet (expected ${JSON.stringify(want)})`);
  }
  const down = strs('down_block_types');
  const up = strs('up_block_types');
  const known = new Set(['CrossAttnDownBlock2D', 'DownBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D']);
  for (const t of [...down, ...up]) if (!known.has(t)) throw new Error(`${source}: block type ${t} is not supported`);
  if (up.length !== down.length) throw new Error(`${source}: ${down.length} down blocks but ${up.length} up blocks`);
  const midBlockType = (json.mid_block_type ?? 'UNetMidBlock2DCrossAttn') as string | null;
  if (midBlockType !== null && midBlockType !== 'UNetMidBlock2DCrossAttn') throw new Error(`${source}: mid_block_type ${midBlockType} is not supported`);
  const blockOutChannels = perBlock(json.block_out_channels, down.length, 'block_out_channels', source);
  const layers = json.layers_per_block ?? 2;
  if (typeof layers !== 'number') throw new Error(`${source}: layers_per_block must be one number for this UNet (found ${JSON.stringify(layers)})`);
  // diffusers' naming quirk: for these models `attention_head_dim` is the number of heads
  // (num_attention_heads = num_attention_heads or attention_head_dim).
  const heads = perBlock(json.num_attention_heads ?? json.attention_head_dim ?? 8, down.length, 'attention_head_dim', source);
  const downsamplePadding = num('downsample_padding', 1);
  if (downsamplePadding !== 1) throw new Error(`${source}: downsample_padding ${downsamplePadding} is not supported (SD1.5 uses 1)`);
  const cross = json.cross_attention_dim ?? 1280;
  if (typeof cross !== 'number') throw new Error(`${source}: cross_attention_dim must be one number (found ${JSON.stringify(cross)})`);
  return {
    sampleSize: num('sample_size', 64),
    inChannels: num('in_channels', 4),
    outChannels: num('out_channels', 4),
    downBlockTypes: down,
    upBlockTypes: up,
    midBlockType,
    blockOutChannels,
    layersPerBlock: layers,
    numAttentionHeads: heads,
    transformerLayersPerBlock: perBlock(json.transformer_layers_per_block ?? 1, down.length, 'transformer_layers_per_block', source),
    normNumGroups: num('norm_num_groups', 32),
    normEps: num('norm_eps', 1e-5),
    crossAttentionDim: cross,
    flipSinToCos: (json.flip_sin_to_cos ?? true) as boolean,
    freqShift: num('freq_shift', 0),
    actFn: 'silu',
    useLinearProjection: (json.use_linear_projection ?? false) as boolean,
    upcastAttention: (json.upcast_attention ?? false) as boolean,
    midBlockScaleFactor: num('mid_block_scale_factor', 1),
    resnetOutScaleFactor: num('resnet_out_scale_factor', 1),
    downsamplePadding,
  };
}

/** Reads and parses `<dir>/config.json` of a diffusers UNet folder. */
export function readUNetConfig(file: string): UNetConfig {
  const json = readJsonFile(file, 'UNet config');
  return parseUNetConfig(json as Record<string, unknown>, file);
}

/** Down blocks as the builder walks them (diffusers order). The per-block arrays have one entry per block (parseUNetConfig checks). */
export function downBlockSpecs(cfg: UNetConfig): BlockSpec[] {
  return cfg.downBlockTypes.map((type, i) => ({
    type,
    layers: cfg.layersPerBlock,
    hasAttention: type.startsWith('CrossAttn'),
    heads: cfg.numAttentionHeads[i]!,
    resample: i < cfg.downBlockTypes.length - 1,
  }));
}

/** Up blocks: heads reversed as in diffusers (reversed_num_attention_heads). */
export function upBlockSpecs(cfg: UNetConfig): BlockSpec[] {
  const heads = [...cfg.numAttentionHeads].reverse();
  return cfg.upBlockTypes.map((type, i) => ({
    type,
    layers: cfg.layersPerBlock + 1,
    hasAttention: type.startsWith('CrossAttn'),
    heads: heads[i]!,
    resample: i < cfg.upBlockTypes.length - 1,
  }));
}

/** One attention processor of the UNet, in diffusers registration order. */
export interface AttnProcessorInfo {
  /** Position in `unet.attn_processors` = the h94 `ip_adapter.<index>` number. */
  index: number;
  /** diffusers module name, e.g. down_blocks.0.attentions.0.transformer_blocks.0.attn2 */
  name: string;
  cross: boolean;
  /** Channels of the layer (hidden size) and its heads. */
  hiddenSize: number;
  heads: number;
}

/**
 * The UNet's attention processors in diffusers registration order: down blocks, then up blocks,
 * then the mid block (UNet2DConditionModel registers the down/up ModuleLists before mid_block);
 * within a Transformer2DModel each transformer block gives attn1 then attn2.
 */
export function attnProcessors(cfg: UNetConfig): AttnProcessorInfo[] {
  const out: AttnProcessorInfo[] = [];
  const add = (prefix: string, nAttn: number, depth: number, hiddenSize: number, heads: number) => {
    for (let a = 0; a < nAttn; a++) {
      for (let t = 0; t < depth; t++) {
        for (const kind of ['attn1', 'attn2'] as const) {
          out.push({ index: out.length, name: `${prefix}.attentions.${a}.transformer_blocks.${t}.${kind}`, cross: kind === 'attn2', hiddenSize, heads });
        }
      }
    }
  };
  downBlockSpecs(cfg).forEach((s, i) => {
    if (s.hasAttention) add(`down_blocks.${i}`, s.layers, cfg.transformerLayersPerBlock[i]!, cfg.blockOutChannels[i]!, s.heads);
  });
  const revCh = [...cfg.blockOutChannels].reverse();
  const revDepth = [...cfg.transformerLayersPerBlock].reverse();
  upBlockSpecs(cfg).forEach((s, i) => {
    if (s.hasAttention) add(`up_blocks.${i}`, s.layers, revDepth[i]!, revCh[i]!, s.heads);
  });
  const last = cfg.blockOutChannels.length - 1;
  if (cfg.midBlockType) add('mid_block', 1, cfg.transformerLayersPerBlock[last]!, cfg.blockOutChannels[last]!, cfg.numAttentionHeads[last]!);
  return out;
}

/** The cross-attention (attn2) processors, ordered by ip_adapter index; ip_adapter_scale[i] belongs to the i-th. */
export function crossAttnLayers(cfg: UNetConfig): AttnProcessorInfo[] {
  return attnProcessors(cfg).filter((p) => p.cross);
}

/** Number of skip tensors of the down path (= ControlNet down residuals). */
export function numDownResiduals(cfg: UNetConfig): number {
  return 1 + downBlockSpecs(cfg).reduce((a, s) => a + s.layers + (s.resample ? 1 : 0), 0);
}

/**
 * The resolution level of a cross-attention layer: 0 at the latent's size, 1 after the first
 * downsampler, ... (down_blocks.i at level i, up_blocks.i at level n - 1 - i, the mid block at n - 1).
 * Layers of one level attend over the same query grid, so they share one downsampled attention mask.
 */
export function crossAttnLevel(cfg: UNetConfig, processorName: string): number {
  const n = cfg.blockOutChannels.length;
  const m = /^(down_blocks|up_blocks)\.(\d+)\./.exec(processorName);
  if (m) return m[1] === 'down_blocks' ? Number(m[2]) : n - 1 - Number(m[2]);
  if (processorName.startsWith('mid_block.')) return n - 1;
  throw new Error(`internal: ${processorName} is not a UNet attention processor name`);
}

/** The levels that have cross-attention layers, ascending (SD1.5: 0, 1, 2, 3). */
export function crossAttnLevels(cfg: UNetConfig): number[] {
  return [...new Set(crossAttnLayers(cfg).map((p) => crossAttnLevel(cfg, p.name)))].sort((a, b) => a - b);
}

/** The latent grid (h, w) at each level for a (H, W) latent: a stride-2 conv with padding 1 gives ceil(H / 2) per level. */
export function levelGrid(height: number, width: number, level: number): [number, number] {
  let h = height;
  let w = width;
  for (let i = 0; i < level; i++) {
    h = Math.floor((h - 1) / 2) + 1;
    w = Math.floor((w - 1) / 2) + 1;
  }
  return [h, w];
}
