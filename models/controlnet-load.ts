/**
 * ControlNet files: the typed config (diffusers controlnet/config.json), detection of the
 * architecture from keys and shapes, and loading of a diffusers folder or a single file
 * (original `control_model.*` layout or diffusers names; safetensors or an lllyasviel .pth pickle,
 * read by models/pickle.ts without running it). Refuses SDXL / SD2 ControlNets with a sentence.
 * The graph and its runtime are models/controlnet.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WeightMap } from './onnx/graph.js';
import { openTensorFile } from './pickle.js';
import { readRegularFileSync } from './regular-file.js';
import { SafetensorsFile } from './safetensors.js';
import { type UNetConfig, parseUNetConfig } from './unet-config.js';
import { componentWeightsFile, configShapeDiffs, otherSdBase } from './checkpoint.js';
import { LdmControlNetWeights, countHintBlocks, ldmControlNetPrefix } from './keymaps/ldm-controlnet.js';

/** The ControlNet's architecture: its UNet-encoder part plus the conditioning encoder. */
export interface ControlNetConfig extends UNetConfig {
  /** Channels of the control image (3). */
  conditioningChannels: number;
  /** Widths of the conditioning encoder, one per resolution (SD1.5: 16, 32, 96, 256). */
  conditioningEmbeddingOutChannels: number[];
  /** 'bgr' ControlNets flip the control image's channels first. */
  channelOrder: 'rgb' | 'bgr';
  /** Residuals averaged over space (shuffle-style ControlNets). */
  globalPoolConditions: boolean;
}

/** A ControlNet that does not fit this app's SD1.5 family, explained for a person. */
export class ControlNetError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlNetError';
  }
}

const base = (f: string) => path.basename(f);
/** A file as a person recognises it: a config.json with its folder, anything else by name. */
const label = (f: string) => (base(f) === 'config.json' ? `${base(path.dirname(f))}/config.json` : base(f));

/** Refuses SDXL / SD2 ControlNets by their context width and projections, naming the file. */
function refuseOtherBase(file: string, cross: number, linearProjection: boolean, sdxlKeys: boolean): void {
  const other = otherSdBase(cross, linearProjection);
  if (sdxlKeys || other === 'SDXL') {
    throw new ControlNetError(
      file,
      `${label(file)} is an SDXL ControlNet (${cross}-wide cross-attention context${sdxlKeys ? ', size/time conditioning' : ''}); this app runs Stable Diffusion 1.5-family models (768-wide context), so it cannot be used.`,
    );
  }
  if (other === 'SD2') {
    throw new ControlNetError(
      file,
      `${label(file)} is a Stable Diffusion 2.x ControlNet (${cross}-wide cross-attention context${linearProjection ? ', linear projections' : ''}); this app runs Stable Diffusion 1.5-family models (768-wide context), so it cannot be used.`,
    );
  }
}

/** Parses a diffusers controlnet/config.json. */
export function parseControlNetConfig(json: Record<string, unknown>, source = 'controlnet/config.json'): ControlNetConfig {
  const cross = json.cross_attention_dim ?? 1280;
  refuseOtherBase(
    source,
    typeof cross === 'number' ? cross : -1,
    json.use_linear_projection === true,
    json.addition_embed_type === 'text_time' || json.addition_embed_type === 'text',
  );
  const down = json.down_block_types;
  if (!Array.isArray(down)) throw new ControlNetError(source, `${source}: "down_block_types" must be a list of block type names`);
  // The ControlNet has no decoder; parseUNetConfig wants up blocks, so mirror the down blocks.
  const up = [...down].reverse().map((t) => (t === 'CrossAttnDownBlock2D' ? 'CrossAttnUpBlock2D' : 'UpBlock2D'));
  const unet = parseUNetConfig({ ...json, up_block_types: up }, source);
  const embOut = json.conditioning_embedding_out_channels ?? [16, 32, 96, 256];
  if (!Array.isArray(embOut) || embOut.length < 1 || !embOut.every((v) => typeof v === 'number')) {
    throw new ControlNetError(source, `${source}: conditioning_embedding_out_channels must be a list of numbers, found ${JSON.stringify(embOut)}`);
  }
  const order = json.controlnet_conditioning_channel_order ?? 'rgb';
  if (order !== 'rgb' && order !== 'bgr')
    throw new ControlNetError(source, `${source}: controlnet_conditioning_channel_order must be "rgb" or "bgr", found ${JSON.stringify(order)}`);
  const condCh = json.conditioning_channels ?? 3;
  if (typeof condCh !== 'number') throw new ControlNetError(source, `${source}: conditioning_channels must be a number`);
  return {
    ...unet,
    conditioningChannels: condCh,
    conditioningEmbeddingOutChannels: embOut as number[],
    channelOrder: order,
    globalPoolConditions: json.global_pool_conditions === true,
  };
}

/** Reads and parses a diffusers controlnet/config.json. */
export function readControlNetConfig(file: string): ControlNetConfig {
  let json: unknown;
  try {
    json = JSON.parse(readRegularFileSync(file, 'utf8'));
  } catch (e) {
    throw new ControlNetError(file, `${file}: cannot read the ControlNet config (${(e as Error).message})`);
  }
  return parseControlNetConfig(json as Record<string, unknown>, file);
}

// ---------------------------------------------------------------------------------------
// Detection from keys and shapes
// ---------------------------------------------------------------------------------------

/** What a ControlNet file's shapes tell about its architecture. */
export interface ControlNetShapes {
  inChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  crossAttentionDim: number;
  downBlockTypes: string[];
  transformerLayersPerBlock: number[];
  useLinearProjection: boolean;
  conditioningChannels: number;
  conditioningEmbeddingOutChannels: number[];
}

/** Structure read through diffusers names (any layout, once the levels are known). */
function shapesOf(file: string, w: WeightMap, levels: number, layers: number): ControlNetShapes {
  const blockOut: number[] = [];
  const types: string[] = [];
  const depths: number[] = [];
  let cross = 0;
  let linearProj = false;
  const dim = (name: string, axis: number): number => {
    const shape = w.get(name).shape;
    const d = shape[axis];
    if (d === undefined) throw new ControlNetError(file, `${base(file)}: tensor "${name}" has shape [${shape}], which has no axis ${axis}`);
    return d;
  };
  for (let b = 0; b < levels; b++) {
    blockOut.push(dim(`down_blocks.${b}.resnets.0.conv2.weight`, 0));
    const attn = w.has(`down_blocks.${b}.attentions.0.proj_in.weight`);
    types.push(attn ? 'CrossAttnDownBlock2D' : 'DownBlock2D');
    let d = 0;
    while (w.has(`down_blocks.${b}.attentions.0.transformer_blocks.${d}.attn2.to_k.weight`)) {
      cross = dim(`down_blocks.${b}.attentions.0.transformer_blocks.${d}.attn2.to_k.weight`, 1);
      d++;
    }
    depths.push(Math.max(d, 1));
    if (attn) linearProj = w.get(`down_blocks.${b}.attentions.0.proj_in.weight`).shape.length === 2;
  }
  if (!cross)
    throw new ControlNetError(file, `${base(file)}: the ControlNet has no cross-attention layers (attn2.to_k); it is not a text-conditioned SD ControlNet`);
  const embOut = [dim('controlnet_cond_embedding.conv_in.weight', 0)];
  for (let k = 1; w.has(`controlnet_cond_embedding.blocks.${k}.weight`); k += 2) embOut.push(dim(`controlnet_cond_embedding.blocks.${k}.weight`, 0));
  return {
    inChannels: dim('conv_in.weight', 1),
    blockOutChannels: blockOut,
    layersPerBlock: layers,
    crossAttentionDim: cross,
    downBlockTypes: types,
    transformerLayersPerBlock: depths,
    useLinearProjection: linearProj,
    conditioningChannels: dim('controlnet_cond_embedding.conv_in.weight', 1),
    conditioningEmbeddingOutChannels: embOut,
  };
}

/** A minimal config whose only job is to number the LDM keys (levels and layers). */
function numberingConfig(levels: number, layers: number): UNetConfig {
  const down = Array(levels).fill('CrossAttnDownBlock2D');
  return parseUNetConfig(
    { down_block_types: down, up_block_types: Array(levels).fill('CrossAttnUpBlock2D'), block_out_channels: Array(levels).fill(1), layers_per_block: layers },
    'layout',
  );
}

/** Config from shapes, with the SD1.5 standard values shapes cannot tell (8 heads, 32 groups). */
export function controlNetConfigFromShapes(s: ControlNetShapes): ControlNetConfig {
  const levels = s.blockOutChannels.length;
  return parseControlNetConfig(
    {
      in_channels: s.inChannels,
      down_block_types: s.downBlockTypes,
      block_out_channels: s.blockOutChannels,
      layers_per_block: s.layersPerBlock,
      attention_head_dim: 8,
      norm_num_groups: 32,
      norm_eps: 1e-5,
      cross_attention_dim: s.crossAttentionDim,
      transformer_layers_per_block: s.transformerLayersPerBlock.slice(0, levels),
      use_linear_projection: s.useLinearProjection,
      conditioning_channels: s.conditioningChannels,
      conditioning_embedding_out_channels: s.conditioningEmbeddingOutChannels,
      flip_sin_to_cos: true,
      freq_shift: 0,
    },
    'SD1.5 standard ControlNet config',
  );
}

/** A ControlNet ready to build: config, diffusers-named weights, and where they came from. */
export interface LoadedControlNet {
  config: ControlNetConfig;
  weights: WeightMap;
  source: { kind: 'diffusers' | 'single-file'; path: string; configPath?: string };
  shapes: ControlNetShapes;
}

export interface LoadControlNetOptions {
  /** A diffusers controlnet/config.json to use for a single file (heads and groups are not in shapes). */
  configPath?: string;
}

/** Throws when a config disagrees with the weights' shapes, naming both files. */
function checkConfig(file: string, cfgPath: string, cfg: ControlNetConfig, s: ControlNetShapes): void {
  const diffs = configShapeDiffs('weights', [
    ['in_channels', cfg.inChannels, s.inChannels],
    ['block_out_channels', cfg.blockOutChannels, s.blockOutChannels],
    ['layers_per_block', cfg.layersPerBlock, s.layersPerBlock],
    ['cross_attention_dim', cfg.crossAttentionDim, s.crossAttentionDim],
    ['down_block_types', cfg.downBlockTypes, s.downBlockTypes],
    ['conditioning_embedding_out_channels', cfg.conditioningEmbeddingOutChannels, s.conditioningEmbeddingOutChannels],
  ]);
  if (diffs.length) throw new ControlNetError(file, `${base(file)} does not match the config ${cfgPath}: ${diffs.join('; ')}`);
}

/**
 * True for T2I-Adapter weights (TencentARC `t2iadapter_*.pth` / diffusers `T2IAdapter`, optionally
 * under `adapter.`): a `body.N.*` stack or a bare `conv_in` without any ControlNet or UNet keys
 * (`input_hint_block`, `zero_convs`, `controlnet_*`, `down_blocks`), or a style adapter's `style_embedding`.
 */
export function looksLikeT2IAdapter(keys: string[]): boolean {
  const ks = keys.map((k) => (k.startsWith('adapter.') ? k.slice('adapter.'.length) : k));
  const has = (re: RegExp) => ks.some((k) => re.test(k));
  if (has(/(^|\.)(input_hint_block|zero_convs|controlnet_cond_embedding|controlnet_down_blocks)\./)) return false;
  if (has(/^(down_blocks|input_blocks|mid_block|model\.diffusion_model)\./)) return false;
  return has(/^body\.\d+\.(block1|block2|in_conv|out_conv|resnets|body|down_opt)\./) || ks.includes('conv_in.weight') || ks.includes('style_embedding');
}

const T2I_REFUSAL =
  'T2I-Adapters are not supported (only ControlNets are); use a ControlNet of the same kind instead, e.g. control_v11p_sd15_canny for a canny adapter.';

/**
 * Loads a ControlNet from a diffusers folder (config.json + diffusion_pytorch_model.safetensors)
 * or a single weight file (original `control_model.*` layout, or diffusers names), and
 * refuses ControlNets made for SDXL or SD2.
 */
export function loadControlNet(pathOrDir: string, opts: LoadControlNetOptions = {}): LoadedControlNet {
  const p = path.resolve(pathOrDir);
  if (!fs.existsSync(p)) throw new ControlNetError(p, `${p} does not exist`);
  if (fs.statSync(p).isDirectory()) {
    const configPath = path.join(p, 'config.json');
    if (!fs.existsSync(configPath)) throw new ControlNetError(p, `${p} is not a diffusers ControlNet folder: config.json is missing`);
    const cls = (() => {
      try {
        return (JSON.parse(readRegularFileSync(configPath, 'utf8')) as { _class_name?: unknown })._class_name;
      } catch {
        return undefined;
      }
    })();
    if (cls === 'T2IAdapter' || cls === 'MultiAdapter')
      throw new ControlNetError(p, `${base(p)} is a T2I-Adapter (config.json: _class_name ${cls}), not a ControlNet: ${T2I_REFUSAL}`);
    const config = readControlNetConfig(configPath);
    const st = SafetensorsFile.open(componentWeightsFile(p, 'diffusion_pytorch_model'));
    const shapes = shapesOf(st.file, st, config.blockOutChannels.length, config.layersPerBlock);
    checkConfig(st.file, configPath, config, shapes);
    return { config, weights: st, source: { kind: 'diffusers', path: p, configPath }, shapes };
  }
  const st = openTensorFile(p); // safetensors or an lllyasviel .pth pickle, read without running it
  const keys = st.keys();
  const prefix = ldmControlNetPrefix(st);
  let weights: WeightMap;
  let shapes: ControlNetShapes;
  if (prefix !== null) {
    const rel = keys.filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
    if (rel.some((k) => k.startsWith('label_emb.'))) refuseOtherBase(p, -1, false, true);
    const idx = new Set(
      rel
        .map((k) => /^input_blocks\.(\d+)\./.exec(k)?.[1])
        .filter((x): x is string => x !== undefined)
        .map(Number),
    );
    const n = Math.max(...idx) + 1;
    const downsamplers = [...idx].filter((i) => st.has(`${prefix}input_blocks.${i}.0.op.weight`)).length;
    const levels = downsamplers + 1;
    const layers = n / levels - 1;
    if (!Number.isInteger(layers) || layers < 1) {
      throw new ControlNetError(
        p,
        `${base(p)}: the ControlNet's input_blocks (${n} entries, ${downsamplers} downsamplers) do not form the SD1.5 layout of equal blocks`,
      );
    }
    const view = new LdmControlNetWeights(st, numberingConfig(levels, layers), prefix, countHintBlocks(st, prefix));
    shapes = shapesOf(p, view, levels, layers);
    refuseOtherBase(p, shapes.crossAttentionDim, shapes.useLinearProjection, false);
    const config = opts.configPath ? readControlNetConfig(opts.configPath) : controlNetConfigFromShapes(shapes);
    if (opts.configPath) checkConfig(p, opts.configPath, config, shapes);
    weights = new LdmControlNetWeights(st, config, prefix, view.hintBlocks);
    return { config, weights, source: { kind: 'single-file', path: p, configPath: opts.configPath }, shapes };
  }
  if (st.has('controlnet_cond_embedding.conv_in.weight') && st.has('controlnet_down_blocks.0.weight')) {
    if (keys.some((k) => k.startsWith('add_embedding.'))) refuseOtherBase(p, -1, false, true);
    const count = (re: RegExp) => new Set(keys.map((k) => re.exec(k)?.[1]).filter((x) => x !== undefined)).size;
    shapes = shapesOf(p, st, count(/^down_blocks\.(\d+)\./), count(/^down_blocks\.0\.resnets\.(\d+)\./));
    refuseOtherBase(p, shapes.crossAttentionDim, shapes.useLinearProjection, false);
    const config = opts.configPath ? readControlNetConfig(opts.configPath) : controlNetConfigFromShapes(shapes);
    if (opts.configPath) checkConfig(p, opts.configPath, config, shapes);
    weights = st;
    return { config, weights, source: { kind: 'single-file', path: p, configPath: opts.configPath }, shapes };
  }
  if (looksLikeT2IAdapter(keys)) {
    throw new ControlNetError(
      p,
      `${base(p)} is a T2I-Adapter (${keys.some((k) => /^(adapter\.)?body\./.test(k)) ? 'body.* blocks' : 'conv_in'} without input_hint_block), not a ControlNet: ${T2I_REFUSAL}`,
    );
  }
  const hint = keys.some((k) => k.startsWith('model.diffusion_model.'))
    ? ' It looks like a Stable Diffusion checkpoint; put it in the checkpoints folder.'
    : keys.some((k) => k.startsWith('image_proj.') || k.startsWith('ip_adapter.'))
      ? ' It looks like an IP-Adapter; put it in the ipadapter folder.'
      : '';
  throw new ControlNetError(
    p,
    `${base(p)} is not a ControlNet: expected control_model.zero_convs.* / input_hint_block.* (original layout) or controlnet_down_blocks.* / controlnet_cond_embedding.* (diffusers) keys.${hint}`,
  );
}

/**
 * Refuses a ControlNet whose residuals cannot feed this UNet: another base model (context
 * width), or other block widths / depths. The sentence names both files and both widths.
 */
export function checkControlNetFitsUNet(cn: LoadedControlNet, unet: UNetConfig, checkpointName: string): void {
  const cnName = base(cn.source.path);
  const ckName = base(checkpointName);
  const kind = (w: number) => (w === 768 ? ' (SD1.5)' : w === 1024 ? ' (SD2.x)' : w === 2048 ? ' (SDXL)' : '');
  if (cn.config.crossAttentionDim !== unet.crossAttentionDim) {
    throw new ControlNetError(
      cn.source.path,
      `ControlNet ${cnName} was made for a base model with a ${cn.config.crossAttentionDim}-wide text context${kind(cn.config.crossAttentionDim)}, but checkpoint ${ckName} uses a ${unet.crossAttentionDim}-wide context${kind(unet.crossAttentionDim)}; choose a ControlNet made for the checkpoint's base model.`,
    );
  }
  const same =
    JSON.stringify(cn.config.blockOutChannels) === JSON.stringify(unet.blockOutChannels) &&
    cn.config.layersPerBlock === unet.layersPerBlock &&
    JSON.stringify(cn.config.downBlockTypes) === JSON.stringify(unet.downBlockTypes);
  if (!same) {
    throw new ControlNetError(
      cn.source.path,
      `ControlNet ${cnName} has block widths [${cn.config.blockOutChannels}] with ${cn.config.layersPerBlock} layers per block, but checkpoint ${ckName} has [${unet.blockOutChannels}] with ${unet.layersPerBlock}; its residuals cannot feed this UNet (it was made for another base model).`,
    );
  }
}
