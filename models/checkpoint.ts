/** models/: the networks as ONNX graph builders and their files — checkpoints, safetensors, tokenizer, DDIM, providers; onnx/, keymaps/, preprocessors/, pickle/ below. */
/**
 * Stable Diffusion checkpoints: architecture detection from keys and shapes, and loading of a
 * diffusers folder or an original (LDM) single-file checkpoint into a UNet config + a
 * diffusers-named weight map, plus where the VAE and text-encoder weights are.
 *
 * Only the SD1.5 family is accepted (any widths/depths of that structure, 4 or 9 input channels).
 * SDXL, SD2 and unknown files are refused with a sentence naming the file and what was found.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WeightMap } from './onnx/graph.js';
import { openTensorFile, refusePickle } from './pickle.js';
import { readRegularFileSync } from './regular-file.js';
import { SafetensorsFile, type TensorRef } from './safetensors.js';
import { type UNetConfig, parseUNetConfig, readUNetConfig } from './unet-config.js';
import { LDM_UNET_PREFIX, LdmUNetWeights } from './keymaps/ldm-unet.js';

/** A file or folder that is not an SD1.5-family checkpoint, explained for a person. */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** What a safetensors file holds, read from its keys and shapes only. */
export interface DetectedCheckpoint {
  file: string;
  family: 'sd15';
  /** 'ldm': original single file (model.diffusion_model.*); 'diffusers-unet': a diffusers UNet weights file. */
  layout: 'ldm' | 'diffusers-unet';
  /** UNet architecture as far as shapes tell it (heads and groups are not in the shapes). */
  unet: {
    inChannels: number;
    outChannels: number;
    blockOutChannels: number[];
    layersPerBlock: number;
    crossAttentionDim: number;
    downBlockTypes: string[];
    upBlockTypes: string[];
    transformerLayersPerBlock: number[];
    useLinearProjection: boolean;
    hasMidBlock: boolean;
  };
  hasVae: boolean;
  hasTextEncoder: boolean;
}

const LDM_VAE_PREFIX = 'first_stage_model.';
const LDM_TEXT_PREFIX = 'cond_stage_model.transformer.';

const base = (f: string) => path.basename(f);

/** Dimension `i` of tensor `key`; a tensor of lower rank than the layout needs is a malformed checkpoint. */
function dimOf(file: string, key: string, t: TensorRef, i: number): number {
  const d = t.shape[i];
  if (d === undefined) throw new CheckpointError(file, `${base(file)}: tensor ${key} has shape [${t.shape}], expected at least ${i + 1} dimensions`);
  return d;
}

/** Refusals that need only the key names: other model types and other architectures. */
function refuseByKeys(file: string, keys: string[]): void {
  const any = (p: string) => keys.some((k) => k.startsWith(p));
  const name = base(file);
  if (any('conditioner.embedders.')) {
    throw new CheckpointError(
      file,
      `${name} is an SDXL checkpoint (it has conditioner.embedders.* text encoders); this loader handles Stable Diffusion 1.5-family checkpoints only.`,
    );
  }
  if (any(`${LDM_UNET_PREFIX}label_emb.`) || any('add_embedding.')) {
    throw new CheckpointError(
      file,
      `${name} looks like an SDXL UNet (it has ${any('add_embedding.') ? 'add_embedding.*' : 'model.diffusion_model.label_emb.*'} size/time conditioning); this loader handles Stable Diffusion 1.5-family checkpoints only.`,
    );
  }
  if (any('cond_stage_model.model.')) {
    throw new CheckpointError(
      file,
      `${name} is a Stable Diffusion 2.x checkpoint (its text encoder is OpenCLIP, cond_stage_model.model.*); this loader handles Stable Diffusion 1.5-family checkpoints only.`,
    );
  }
  if (any('control_model.'))
    throw new CheckpointError(file, `${name} is a ControlNet (control_model.*), not a Stable Diffusion checkpoint; load it with the ControlNet loader.`);
  if (any('image_proj.') || any('ip_adapter.'))
    throw new CheckpointError(file, `${name} is an IP-Adapter, not a Stable Diffusion checkpoint; load it with the IP-Adapter loader.`);
  if (any('lora_unet_') || keys.some((k) => k.includes('.lora_')))
    throw new CheckpointError(file, `${name} is a LoRA, not a full Stable Diffusion checkpoint.`);
}

/** Reads the SD UNet structure from shapes; `get(k)` answers names relative to the UNet root in LDM naming. */
function ldmStructure(file: string, has: (k: string) => boolean, get: (k: string) => TensorRef, keys: string[]): DetectedCheckpoint['unet'] {
  const name = base(file);
  const dim = (k: string, i: number) => dimOf(file, k, get(k), i);
  const inputIdx = new Set<number>();
  for (const k of keys) {
    const m = /^input_blocks\.(\d+)\./.exec(k);
    if (m) inputIdx.add(Number(m[1]));
  }
  const n = Math.max(...inputIdx) + 1;
  const downsamplers = [...inputIdx].filter((i) => has(`input_blocks.${i}.0.op.weight`)).sort((a, b) => a - b);
  const levels = downsamplers.length + 1;
  const layers = n / levels - 1;
  if (!Number.isInteger(layers) || layers < 1 || downsamplers.some((d, j) => d !== (j + 1) * (layers + 1))) {
    throw new CheckpointError(
      file,
      `${name}: the UNet's input_blocks (${n} entries, downsamplers at ${downsamplers.join(', ')}) do not form the SD1.5 layout of equal blocks`,
    );
  }
  const inChannels = dim('input_blocks.0.0.weight', 1); // (C0, Cin, 3, 3)
  const blockOut: number[] = [];
  const downTypes: string[] = [];
  const depths: number[] = [];
  let cross = 0;
  let linearProj = false;
  for (let b = 0; b < levels; b++) {
    const first = 1 + b * (layers + 1);
    blockOut.push(dim(`input_blocks.${first}.0.out_layers.3.weight`, 0));
    const attn = has(`input_blocks.${first}.1.proj_in.weight`);
    downTypes.push(attn ? 'CrossAttnDownBlock2D' : 'DownBlock2D');
    let d = 0;
    while (has(`input_blocks.${first}.1.transformer_blocks.${d}.attn2.to_k.weight`)) {
      cross = dim(`input_blocks.${first}.1.transformer_blocks.${d}.attn2.to_k.weight`, 1);
      d++;
    }
    depths.push(Math.max(d, 1));
    if (attn) linearProj = get(`input_blocks.${first}.1.proj_in.weight`).shape.length === 2;
  }
  const upTypes: string[] = [];
  for (let b = 0; b < levels; b++) upTypes.push(has(`output_blocks.${b * (layers + 1)}.1.proj_in.weight`) ? 'CrossAttnUpBlock2D' : 'UpBlock2D');
  if (!cross)
    throw new CheckpointError(file, `${name}: the UNet has no cross-attention layers (attn2.to_k); it is not a text-conditioned Stable Diffusion UNet`);
  return {
    inChannels,
    outChannels: dim('out.2.weight', 0),
    blockOutChannels: blockOut,
    layersPerBlock: layers,
    crossAttentionDim: cross,
    downBlockTypes: downTypes,
    upBlockTypes: upTypes,
    transformerLayersPerBlock: depths,
    useLinearProjection: linearProj,
    hasMidBlock: has('middle_block.1.proj_in.weight'),
  };
}

/** The same from a diffusers UNet weights file. */
function diffusersStructure(file: string, st: SafetensorsFile): DetectedCheckpoint['unet'] {
  const keys = st.keys();
  const dim = (k: string, i: number) => dimOf(file, k, st.get(k), i);
  const count = (re: RegExp) => new Set(keys.map((k) => re.exec(k)?.[1]).filter((x) => x !== undefined)).size;
  const levels = count(/^down_blocks\.(\d+)\./);
  const layers = count(/^down_blocks\.0\.resnets\.(\d+)\./);
  const blockOut: number[] = [];
  const downTypes: string[] = [];
  const upTypes: string[] = [];
  const depths: number[] = [];
  let cross = 0;
  let linearProj = false;
  for (let b = 0; b < levels; b++) {
    blockOut.push(dim(`down_blocks.${b}.resnets.0.conv2.weight`, 0));
    const attn = st.has(`down_blocks.${b}.attentions.0.proj_in.weight`);
    downTypes.push(attn ? 'CrossAttnDownBlock2D' : 'DownBlock2D');
    upTypes.push(st.has(`up_blocks.${b}.attentions.0.proj_in.weight`) ? 'CrossAttnUpBlock2D' : 'UpBlock2D');
    depths.push(Math.max(1, count(new RegExp(`^down_blocks\\.${b}\\.attentions\\.0\\.transformer_blocks\\.(\\d+)\\.`))));
    if (attn) {
      cross = dim(`down_blocks.${b}.attentions.0.transformer_blocks.0.attn2.to_k.weight`, 1);
      linearProj = st.get(`down_blocks.${b}.attentions.0.proj_in.weight`).shape.length === 2;
    }
  }
  if (!cross) throw new CheckpointError(file, `${base(file)}: the UNet has no cross-attention layers; it is not a text-conditioned Stable Diffusion UNet`);
  return {
    inChannels: dim('conv_in.weight', 1),
    outChannels: dim('conv_out.weight', 0),
    blockOutChannels: blockOut,
    layersPerBlock: layers,
    crossAttentionDim: cross,
    downBlockTypes: downTypes,
    upBlockTypes: upTypes,
    transformerLayersPerBlock: depths,
    useLinearProjection: linearProj,
    hasMidBlock: st.has('mid_block.attentions.0.proj_in.weight'),
  };
}

/**
 * The other Stable Diffusion base a UNet's (or ControlNet's) structure points to, or null for
 * SD1.5-family: SDXL by its 2048 / 1280-wide context, SD2.x by 1024 or linear transformer projections.
 */
export function otherSdBase(crossAttentionDim: number, linearProjection: boolean): 'SDXL' | 'SD2' | null {
  if (crossAttentionDim === 2048 || crossAttentionDim === 1280) return 'SDXL';
  if (crossAttentionDim === 1024 || linearProjection) return 'SD2';
  return null;
}

/** "what: <shapes> in the <where>, <config> in the config" for each field where the two differ (compared as JSON). */
export function configShapeDiffs(where: string, fields: [what: string, inConfig: unknown, inShapes: unknown][]): string[] {
  return fields
    .filter(([, a, b]) => JSON.stringify(a) !== JSON.stringify(b))
    .map(([what, a, b]) => `${what}: ${JSON.stringify(b)} in the ${where}, ${JSON.stringify(a)} in the config`);
}

/** Refusals that need the structure: SDXL / SD2 context widths, unusual input channels. */
function refuseByStructure(file: string, u: DetectedCheckpoint['unet']): void {
  const name = base(file);
  const other = otherSdBase(u.crossAttentionDim, u.useLinearProjection);
  if (other === 'SDXL') {
    throw new CheckpointError(
      file,
      `${name} has a ${u.crossAttentionDim}-wide cross-attention context, as SDXL does; this loader handles Stable Diffusion 1.5-family checkpoints (768) only.`,
    );
  }
  if (other === 'SD2') {
    throw new CheckpointError(
      file,
      `${name} has a ${u.crossAttentionDim}-wide cross-attention context${u.useLinearProjection ? ' and linear transformer projections' : ''}, as Stable Diffusion 2.x does; this loader handles Stable Diffusion 1.5-family checkpoints (768) only.`,
    );
  }
  if (u.inChannels !== 4 && u.inChannels !== 9) {
    throw new CheckpointError(file, `${name}: the UNet takes ${u.inChannels} input channels; SD1.5-family checkpoints take 4 (or 9 for inpainting)`);
  }
}

/** Detects an SD1.5-family checkpoint from a weight file's keys and shapes (safetensors or a torch.save pickle), or throws CheckpointError. */
export function detectCheckpoint(file: string | SafetensorsFile): DetectedCheckpoint {
  const st = typeof file === 'string' ? openTensorFile(file) : file;
  const keys = st.keys();
  refuseByKeys(st.file, keys);
  let unet: DetectedCheckpoint['unet'];
  let layout: DetectedCheckpoint['layout'];
  if (st.has(`${LDM_UNET_PREFIX}input_blocks.0.0.weight`)) {
    const rel = keys.filter((k) => k.startsWith(LDM_UNET_PREFIX)).map((k) => k.slice(LDM_UNET_PREFIX.length));
    unet = ldmStructure(
      st.file,
      (k) => st.has(LDM_UNET_PREFIX + k),
      (k) => st.get(LDM_UNET_PREFIX + k),
      rel,
    );
    layout = 'ldm';
  } else if (st.has('conv_in.weight') && st.has('down_blocks.0.resnets.0.conv1.weight')) {
    unet = diffusersStructure(st.file, st);
    layout = 'diffusers-unet';
  } else {
    const sample = keys.slice(0, 3).join(', ');
    const vaeOnly = keys.some((k) => k.startsWith('encoder.down.') || k.startsWith('decoder.up_blocks.') || k.startsWith('decoder.up.'));
    throw new CheckpointError(
      st.file,
      vaeOnly
        ? `${base(st.file)} holds only a VAE, not a Stable Diffusion checkpoint; put it in the vae folder.`
        : `${base(st.file)} is not a Stable Diffusion 1.5 checkpoint: no UNet found (expected model.diffusion_model.* or diffusers down_blocks.* keys; found e.g. ${sample || 'no tensors'}).`,
    );
  }
  refuseByStructure(st.file, unet);
  return {
    file: st.file,
    family: 'sd15',
    layout,
    unet,
    hasVae: keys.some((k) => k.startsWith(LDM_VAE_PREFIX)),
    hasTextEncoder: keys.some((k) => k.startsWith(LDM_TEXT_PREFIX)),
  };
}

/** Config of a single-file SD1.5-family UNet: widths/depths from shapes, the rest SD1.5 standard values. */
export function sd15ConfigFromShapes(u: DetectedCheckpoint['unet']): UNetConfig {
  return parseUNetConfig(
    {
      sample_size: 64,
      in_channels: u.inChannels,
      out_channels: u.outChannels,
      down_block_types: u.downBlockTypes,
      up_block_types: u.upBlockTypes,
      mid_block_type: u.hasMidBlock ? 'UNetMidBlock2DCrossAttn' : null,
      block_out_channels: u.blockOutChannels,
      layers_per_block: u.layersPerBlock,
      attention_head_dim: 8,
      norm_num_groups: 32,
      norm_eps: 1e-5,
      cross_attention_dim: u.crossAttentionDim,
      flip_sin_to_cos: true,
      freq_shift: 0,
      transformer_layers_per_block: u.transformerLayersPerBlock,
      use_linear_projection: u.useLinearProjection,
    },
    'SD1.5 standard config',
  );
}

/** Checks that a config file describes the same architecture as the shapes; throws naming both. */
function checkConfigMatches(file: string, cfgPath: string, cfg: UNetConfig, u: DetectedCheckpoint['unet']): void {
  const diffs = configShapeDiffs('file', [
    ['in_channels', cfg.inChannels, u.inChannels],
    ['out_channels', cfg.outChannels, u.outChannels],
    ['block_out_channels', cfg.blockOutChannels, u.blockOutChannels],
    ['layers_per_block', cfg.layersPerBlock, u.layersPerBlock],
    ['cross_attention_dim', cfg.crossAttentionDim, u.crossAttentionDim],
    ['down_block_types', cfg.downBlockTypes, u.downBlockTypes],
    ['up_block_types', cfg.upBlockTypes, u.upBlockTypes],
  ]);
  if (diffs.length) throw new CheckpointError(file, `${base(file)} does not match the config ${cfgPath}: ${diffs.join('; ')}`);
}

/** Weights of a diffusers component folder: one safetensors file, or shards listed in an index. */
export class ShardedWeights implements WeightMap {
  private constructor(
    readonly files: Map<string, SafetensorsFile>,
    readonly index: Map<string, string>,
  ) {}

  static open(indexFile: string): ShardedWeights {
    const dir = path.dirname(indexFile);
    const idx = JSON.parse(readRegularFileSync(indexFile, 'utf8')) as { weight_map?: Record<string, string> };
    if (!idx.weight_map) throw new CheckpointError(indexFile, `${indexFile}: no weight_map in the shard index`);
    const files = new Map<string, SafetensorsFile>();
    for (const shard of new Set(Object.values(idx.weight_map))) files.set(shard, SafetensorsFile.open(path.join(dir, shard)));
    return new ShardedWeights(files, new Map(Object.entries(idx.weight_map)));
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  get(name: string): TensorRef {
    const shard = this.index.get(name);
    if (!shard) throw new Error(`missing tensor "${name}" in the shards of ${[...this.files.values()][0]?.file ?? 'the index'}`);
    return this.files.get(shard)!.get(name);
  }
}

/** Finds the weights of a diffusers component folder (`unet/`, `vae/`, `text_encoder/`). */
export function componentWeightsFile(dir: string, stem: string): string {
  for (const f of [`${stem}.safetensors`, `${stem}.fp16.safetensors`, `${stem}.safetensors.index.json`, `${stem}.fp16.safetensors.index.json`]) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) return p;
  }
  // Only pickle weights (diffusers' .bin): say so, with how to convert them.
  for (const f of [`${stem}.bin`, `${stem}.fp16.bin`])
    if (fs.existsSync(path.join(dir, f))) refusePickle(path.join(dir, f), `the ${path.basename(dir)} weights file`);
  throw new CheckpointError(dir, `${dir}: no ${stem}.safetensors found (pickle .bin weights are not read)`);
}

function openWeights(file: string): { weights: WeightMap; st: SafetensorsFile } {
  if (file.endsWith('.index.json')) {
    const w = ShardedWeights.open(file);
    const [st] = w.files.values();
    if (!st) throw new CheckpointError(file, `${file}: the shard index lists no weight files`);
    return { weights: w, st };
  }
  const st = SafetensorsFile.open(file);
  return { weights: st, st };
}

/** Where a part's weights are: a safetensors file and the key prefix of that part inside it. */
export interface WeightsLocation {
  weightsFile: string;
  prefix: string;
  /** The part's diffusers/transformers config.json, when one is known. */
  configPath?: string;
}

export interface LoadedCheckpoint {
  source: { kind: 'diffusers' | 'single-file'; path: string };
  unet: { config: UNetConfig; weights: WeightMap; configPath?: string };
  /** VAE weights: diffusers AutoencoderKL names under `prefix` (diffusers) or the LDM layout (`first_stage_model.`). */
  vae?: WeightsLocation;
  /** Text encoder: transformers CLIPTextModel names under `prefix`. */
  textEncoder?: WeightsLocation;
  tokenizerDir?: string;
}

export interface LoadOptions {
  /**
   * A diffusers folder whose `unet/config.json` (and vae/text_encoder configs) describe a
   * single-file checkpoint: heads and group counts cannot be read from shapes.
   */
  configDir?: string;
}

const existing = (p: string) => (fs.existsSync(p) ? p : undefined);

/** Loads a diffusers folder or an original single-file checkpoint (SD1.5 family). */
export function loadCheckpoint(pathOrDir: string, opts: LoadOptions = {}): LoadedCheckpoint {
  const p = path.resolve(pathOrDir);
  if (!fs.existsSync(p)) throw new CheckpointError(p, `${p} does not exist`);
  if (fs.statSync(p).isDirectory()) return loadDiffusersFolder(p);
  const st = openTensorFile(p); // safetensors or a .ckpt/.pt pickle, read without running it
  const det = detectCheckpoint(st);
  if (det.layout === 'diffusers-unet') {
    throw new CheckpointError(p, `${base(p)} holds only a diffusers UNet; open the diffusers folder that contains it (with vae/ and text_encoder/) instead`);
  }
  let config: UNetConfig;
  let configPath: string | undefined;
  if (opts.configDir) {
    configPath = path.join(opts.configDir, 'unet', 'config.json');
    config = readUNetConfig(configPath);
    checkConfigMatches(p, configPath, config, det.unet);
  } else {
    config = sd15ConfigFromShapes(det.unet);
  }
  const cfgFile = (part: string) => (opts.configDir ? existing(path.join(opts.configDir, part, 'config.json')) : undefined);
  return {
    source: { kind: 'single-file', path: p },
    unet: { config, weights: new LdmUNetWeights(st, config), configPath },
    vae: det.hasVae ? { weightsFile: p, prefix: LDM_VAE_PREFIX, configPath: cfgFile('vae') } : undefined,
    textEncoder: det.hasTextEncoder ? { weightsFile: p, prefix: LDM_TEXT_PREFIX, configPath: cfgFile('text_encoder') } : undefined,
    tokenizerDir: opts.configDir ? existing(path.join(opts.configDir, 'tokenizer')) : undefined,
  };
}

function loadDiffusersFolder(dir: string): LoadedCheckpoint {
  const unetDir = path.join(dir, 'unet');
  const configPath = path.join(unetDir, 'config.json');
  if (!fs.existsSync(configPath)) {
    throw new CheckpointError(dir, `${dir} is not a diffusers Stable Diffusion folder: unet/config.json is missing`);
  }
  const raw = JSON.parse(readRegularFileSync(configPath, 'utf8')) as Record<string, unknown>;
  const cross = raw.cross_attention_dim;
  if (raw.addition_embed_type === 'text_time' || cross === 2048) {
    throw new CheckpointError(
      dir,
      `${dir} is an SDXL diffusers folder (unet/config.json: cross_attention_dim ${JSON.stringify(cross)}, addition_embed_type ${JSON.stringify(raw.addition_embed_type)}); this loader handles Stable Diffusion 1.5-family models only.`,
    );
  }
  if (cross === 1024 || raw.use_linear_projection === true) {
    throw new CheckpointError(
      dir,
      `${dir} is a Stable Diffusion 2.x diffusers folder (cross_attention_dim ${JSON.stringify(cross)}, use_linear_projection ${JSON.stringify(raw.use_linear_projection)}); this loader handles Stable Diffusion 1.5-family models only.`,
    );
  }
  const config = parseUNetConfig(raw, configPath);
  const { weights, st } = openWeights(componentWeightsFile(unetDir, 'diffusion_pytorch_model'));
  if (!(weights instanceof ShardedWeights)) checkConfigMatches(st.file, configPath, config, diffusersStructure(st.file, st));
  const part = (name: string, stem: string): WeightsLocation | undefined => {
    const d = path.join(dir, name);
    if (!fs.existsSync(d)) return undefined;
    return { weightsFile: componentWeightsFile(d, stem), prefix: '', configPath: existing(path.join(d, 'config.json')) };
  };
  return {
    source: { kind: 'diffusers', path: dir },
    unet: { config, weights, configPath },
    vae: part('vae', 'diffusion_pytorch_model'),
    textEncoder: part('text_encoder', 'model'),
    tokenizerDir: existing(path.join(dir, 'tokenizer')),
  };
}
