/**
 * AutoencoderKL (the SD VAE) as two ONNX graphs: decoder (latents -> image) and encoder (image -> latent
 * distribution), with diffusers module names so weight keys map one-to-one.
 *
 * Mirrors diffusers 0.30 models/autoencoders/vae.py (Encoder, Decoder), autoencoder_kl.py (quant convs,
 * DiagonalGaussianDistribution), resnet.py (ResnetBlock2D), downsampling.py / upsampling.py, and the
 * attention block of unet_2d_blocks.UNetMidBlock2D (one head over all channels, residual).
 * The pipeline's scaling is inside the graphs: decode(latents / scaling_factor); encode returns the
 * unscaled mean and std (the caller multiplies a sample by scaling_factor).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataType, Graph, Module, type WeightMap, attention, conv2d, dimOf, groupNorm, linear, silu } from './onnx/graph.js';
import { type SessionConfig, createSession, ort } from './onnx/session.js';
import { readJsonFile } from './json-file.js';
import { checkShapes } from './shape-check.js';

/** diffusers vae/config.json (snake_case as in the file). */
export interface VaeConfig {
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  layers_per_block: number;
  latent_channels: number;
  norm_num_groups: number;
  scaling_factor: number;
  mid_block_add_attention: boolean;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
}

/** GroupNorm epsilon of every VAE norm (diffusers resnet_eps = 1e-6). */
const EPS = 1e-6;

const VAE_DEFAULTS = {
  in_channels: 3,
  out_channels: 3,
  layers_per_block: 1,
  latent_channels: 4,
  norm_num_groups: 32,
  scaling_factor: 0.18215,
  mid_block_add_attention: true,
  use_quant_conv: true,
  use_post_quant_conv: true,
};

/** Parses diffusers' AutoencoderKL config; refuses block types this builder does not implement. */
export function parseVaeConfig(json: unknown, source = 'vae/config.json'): VaeConfig {
  if (typeof json !== 'object' || json === null) throw new Error(`${source}: expected a JSON object with the VAE config`);
  const j = json as Record<string, unknown>;
  const pick = <T>(k: keyof typeof VAE_DEFAULTS): T => (j[k] ?? VAE_DEFAULTS[k]) as T;
  const boc = j.block_out_channels;
  if (!Array.isArray(boc) || !boc.length || !boc.every((c) => Number.isInteger(c) && c > 0)) {
    throw new Error(`${source}: block_out_channels must be a list of positive integers`);
  }
  for (const [k, want] of [
    ['down_block_types', 'DownEncoderBlock2D'],
    ['up_block_types', 'UpDecoderBlock2D'],
  ] as const) {
    const types = j[k];
    if (types !== undefined && (!Array.isArray(types) || types.length !== boc.length || types.some((t) => t !== want))) {
      throw new Error(`${source}: ${k} must list ${boc.length} x ${want}, found ${JSON.stringify(types)}`);
    }
  }
  if (j.act_fn !== undefined && j.act_fn !== 'silu') throw new Error(`${source}: act_fn "${j.act_fn}" is not supported (expected silu)`);
  return {
    in_channels: pick('in_channels'),
    out_channels: pick('out_channels'),
    block_out_channels: boc as number[],
    layers_per_block: pick('layers_per_block'),
    latent_channels: pick('latent_channels'),
    norm_num_groups: pick('norm_num_groups'),
    scaling_factor: pick('scaling_factor'),
    mid_block_add_attention: pick('mid_block_add_attention'),
    use_quant_conv: pick('use_quant_conv'),
    use_post_quant_conv: pick('use_post_quant_conv'),
  };
}

/** Reads a diffusers `vae/config.json`. */
export function loadVaeConfig(file: string): VaeConfig {
  const json = readJsonFile(file, 'VAE config');
  return parseVaeConfig(json, file);
}

/**
 * The config of a VAE read from its weights (single-file checkpoints have no config.json). Widths and
 * depths come from tensor shapes; the group count and scaling factor cannot, so they come from
 * `explicit` or SD1.5's values (32, 0.18215). An explicit value that contradicts the shapes is refused.
 */
export function vaeConfigFromWeights(w: WeightMap, explicit: Partial<VaeConfig> = {}, source = 'VAE weights'): VaeConfig {
  const shape = (k: string) => w.get(k).shape;
  const dim = (k: string, axis: number) => dimOf(shape(k), axis, k);
  const boc: number[] = [];
  while (w.has(`encoder.down_blocks.${boc.length}.resnets.0.conv1.weight`)) boc.push(dim(`encoder.down_blocks.${boc.length}.resnets.0.conv1.weight`, 0));
  if (!boc.length) {
    // Decoder-only file: up block i has width boc[n-1-i].
    let n = 0;
    while (w.has(`decoder.up_blocks.${n}.resnets.0.conv1.weight`)) n++;
    for (let i = n - 1; i >= 0; i--) boc.push(dim(`decoder.up_blocks.${i}.resnets.0.conv1.weight`, 0));
  }
  if (!boc.length) throw new Error(`${source}: no encoder.down_blocks or decoder.up_blocks found; not an AutoencoderKL`);
  let layers = 0;
  const countFrom = w.has('encoder.down_blocks.0.resnets.0.conv1.weight') ? 'encoder.down_blocks.0' : null;
  if (countFrom) while (w.has(`${countFrom}.resnets.${layers}.conv1.weight`)) layers++;
  else {
    while (w.has(`decoder.up_blocks.0.resnets.${layers}.conv1.weight`)) layers++;
    layers -= 1;
  }
  const derived: Partial<VaeConfig> = {
    block_out_channels: boc,
    layers_per_block: layers,
    latent_channels: w.has('decoder.conv_in.weight') ? shape('decoder.conv_in.weight')[1] : dim('encoder.conv_out.weight', 0) / 2,
    in_channels: w.has('encoder.conv_in.weight') ? shape('encoder.conv_in.weight')[1] : undefined,
    out_channels: w.has('decoder.conv_out.weight') ? shape('decoder.conv_out.weight')[0] : undefined,
    mid_block_add_attention: w.has('decoder.mid_block.attentions.0.to_q.weight') || w.has('encoder.mid_block.attentions.0.to_q.weight'),
    use_quant_conv: w.has('quant_conv.weight') || !w.has('encoder.conv_in.weight'),
    use_post_quant_conv: w.has('post_quant_conv.weight') || !w.has('decoder.conv_in.weight'),
  };
  const cfg = { ...VAE_DEFAULTS, ...explicit } as Record<string, unknown>;
  for (const [k, v] of Object.entries(derived)) {
    if (v === undefined) continue;
    const given = (explicit as Record<string, unknown>)[k];
    if (given !== undefined && JSON.stringify(given) !== JSON.stringify(v)) {
      throw new Error(`${source}: config says ${k} = ${JSON.stringify(given)} but the weights have ${JSON.stringify(v)}`);
    }
    cfg[k] = v;
  }
  return cfg as unknown as VaeConfig;
}

// ---------------------------------------------------------------------------------------
// Blocks. x is (B, C, H, W) throughout.
// ---------------------------------------------------------------------------------------

/** ResnetBlock2D without time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))). */
function resnet(m: Module, x: string, groups: number): string {
  const g = m.g;
  let h = conv2d(m.child('conv1'), silu(g, groupNorm(m.child('norm1'), x, groups, EPS)));
  h = conv2d(m.child('conv2'), silu(g, groupNorm(m.child('norm2'), h, groups, EPS)));
  const skip = m.has('conv_shortcut.weight') ? conv2d(m.child('conv_shortcut'), x) : x;
  return g.op('Add', [skip, h]); // output_scale_factor 1
}

/** Mid-block self-attention: one head over all C channels, on the HW tokens, plus the residual. */
function attnBlock(m: Module, x: string, groups: number): string {
  const g = m.g;
  const C = m.dim('to_q.weight', 0);
  const shape = g.op('Shape', [x]);
  const n = groupNorm(m.child('group_norm'), x, groups, EPS);
  const tokens = g.op('Transpose', [g.op('Reshape', [n, g.constI([0, 0, -1])])], { perm: [0, 2, 1] }); // (B, HW, C)
  const q = linear(m.child('to_q'), tokens);
  const k = linear(m.child('to_k'), tokens);
  const v = linear(m.child('to_v'), tokens);
  const o = linear(m.child('to_out.0'), attention(g, q, k, v, 1, C)); // (B, HW, C)
  const back = g.op('Reshape', [g.op('Transpose', [o], { perm: [0, 2, 1] }), shape]); // (B, C, H, W)
  return g.op('Add', [back, x]); // rescale_output_factor 1
}

function midBlock(m: Module, x: string, cfg: VaeConfig): string {
  const groups = cfg.norm_num_groups;
  let h = resnet(m.child('resnets.0'), x, groups);
  if (cfg.mid_block_add_attention) h = attnBlock(m.child('attentions.0'), h, groups);
  return resnet(m.child('resnets.1'), h, groups);
}

/** conv_norm_out -> SiLU -> conv_out. */
function head(m: Module, x: string, groups: number): string {
  return conv2d(m.child('conv_out'), silu(m.g, groupNorm(m.child('conv_norm_out'), x, groups, EPS)));
}

/** Encoder: image (B, 3, H, W) -> moments (B, 2*latent, H/8, W/8). */
function encoder(m: Module, x: string, cfg: VaeConfig): string {
  const g = m.g;
  let h = conv2d(m.child('conv_in'), x);
  cfg.block_out_channels.forEach((_, i) => {
    const blk = m.child(`down_blocks.${i}`);
    for (let j = 0; j < cfg.layers_per_block; j++) h = resnet(blk.child(`resnets.${j}`), h, cfg.norm_num_groups);
    if (i < cfg.block_out_channels.length - 1) {
      // Downsample2D(padding=0): pad right and bottom by one, then a stride-2 3x3 conv.
      h = g.op('Pad', [h, g.constI([0, 0, 0, 0, 0, 0, 1, 1])], { mode: 'constant' });
      h = conv2d(blk.child('downsamplers.0.conv'), h, { stride: 2, padding: 0 });
    }
  });
  h = midBlock(m.child('mid_block'), h, cfg);
  return head(m, h, cfg.norm_num_groups);
}

/** Decoder: z (B, latent, h, w) -> image (B, 3, 8h, 8w). */
function decoder(m: Module, z: string, cfg: VaeConfig): string {
  const g = m.g;
  let h = conv2d(m.child('conv_in'), z);
  h = midBlock(m.child('mid_block'), h, cfg);
  const n = cfg.block_out_channels.length;
  const upBlock = (i: number) => {
    const blk = m.child(`up_blocks.${i}`);
    for (let j = 0; j <= cfg.layers_per_block; j++) h = resnet(blk.child(`resnets.${j}`), h, cfg.norm_num_groups);
    if (i < n - 1) {
      // Upsample2D: nearest 2x (out[y] = in[floor(y/2)]), then a 3x3 conv.
      h = g.op('Resize', [h, '', g.constF([1, 1, 2, 2], [4])], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
      h = conv2d(blk.child('upsamplers.0.conv'), h);
    }
  };
  for (let i = 0; i < n - 1; i++) upBlock(i);
  // The last up block and the head stay float32 under an fp16 profile (onnx/fp16.ts island 'marked'): the
  // full-resolution activations feed the image directly, where fp16's 1/1024 relative step shows as banding.
  return g.keepFloat32(() => {
    upBlock(n - 1);
    return head(m, h, cfg.norm_num_groups);
  });
}

/**
 * Decoder graph. Input `latents` (B, latent, h, w): the sampler's scaled latents. Outputs `image`
 * (B, 3, 8h, 8w), the raw decoder output in about [-1, 1], and `image_01` = clamp(image/2 + 0.5, 0, 1).
 */
export function buildVaeDecoder(cfg: VaeConfig, w: WeightMap): Graph {
  checkShapes('VAE', w, vaeParameterShapes(cfg)); // models/shape-check.ts
  const g = new Graph('vae_decoder');
  const root = new Module(g, w);
  const latents = g.input('latents', DataType.FLOAT, ['batch', cfg.latent_channels, 'height', 'width']);
  let z = g.op('Div', [latents, g.scalar(cfg.scaling_factor)]); // pipeline: vae.decode(latents / scaling_factor)
  if (cfg.use_post_quant_conv) z = conv2d(root.child('post_quant_conv'), z);
  const image = decoder(root.child('decoder'), z, cfg);
  g.output('image', image, DataType.FLOAT, ['batch', cfg.out_channels, 'image_height', 'image_width']);
  const x01 = g.op('Add', [g.op('Div', [image, g.scalar(2)]), g.scalar(0.5)]);
  g.output('image_01', g.op('Clip', [x01, g.scalar(0), g.scalar(1)]), DataType.FLOAT, ['batch', cfg.out_channels, 'image_height', 'image_width']);
  return g;
}

/**
 * Encoder graph. Input `image` (B, 3, H, W) in [-1, 1]. Outputs `latent_mean` and `latent_std`
 * (B, latent, H/8, W/8), unscaled; std = exp(0.5 * clamp(logvar, -30, 20)).
 */
export function buildVaeEncoder(cfg: VaeConfig, w: WeightMap): Graph {
  checkShapes('VAE', w, vaeParameterShapes(cfg));
  const g = new Graph('vae_encoder');
  const root = new Module(g, w);
  const image = g.input('image', DataType.FLOAT, ['batch', cfg.in_channels, 'height', 'width']);
  let moments = encoder(root.child('encoder'), image, cfg); // (B, 2*latent, h, w)
  if (cfg.use_quant_conv) moments = conv2d(root.child('quant_conv'), moments);
  const L = cfg.latent_channels;
  const [mean, logvar] = g.opN('Split', [moments, g.constI([L, L])], 2, { axis: 1 }) as [string, string];
  const clamped = g.op('Clip', [logvar, g.scalar(-30), g.scalar(20)]);
  const std = g.op('Exp', [g.op('Mul', [clamped, g.scalar(0.5)])]);
  const dims = ['batch', L, 'latent_height', 'latent_width'];
  g.output('latent_mean', mean, DataType.FLOAT, dims);
  g.output('latent_std', std, DataType.FLOAT, dims);
  return g;
}

export interface VaeLoadOptions extends SessionConfig {
  /** Sessions created by load(); the others are created on first use. Default: both. */
  parts?: ('decoder' | 'encoder')[];
}

export interface DecodeResult {
  /** Raw decoder output (B, 3, H, W), about [-1, 1]. */
  image: Float32Array;
  /** clamp(image/2 + 0.5, 0, 1), (B, 3, H, W). */
  image01: Float32Array;
  dims: number[];
}

export interface EncodeResult {
  mean: Float32Array;
  std: Float32Array;
  dims: number[];
}

/** The VAE at run time: decoder and encoder sessions built from the user's weights. */
export class Vae {
  private sessions: Partial<Record<'decoder' | 'encoder', Promise<ort.InferenceSession>>> = {};

  private constructor(
    readonly config: VaeConfig,
    private readonly weights: WeightMap,
    private readonly opts: VaeLoadOptions,
  ) {}

  static async load(weights: WeightMap, config: VaeConfig, opts: VaeLoadOptions): Promise<Vae> {
    checkShapes('VAE', weights, vaeParameterShapes(config)); // at load: before decode checks its input against the config
    const vae = new Vae(config, weights, opts);
    await Promise.all((opts.parts ?? ['decoder', 'encoder']).map((p) => vae.session(p)));
    return vae;
  }

  private session(part: 'decoder' | 'encoder'): Promise<ort.InferenceSession> {
    let s = this.sessions[part];
    if (!s) {
      const graph = part === 'decoder' ? buildVaeDecoder(this.config, this.weights) : buildVaeEncoder(this.config, this.weights);
      s = createSession(graph.build(), this.opts);
      this.sessions[part] = s;
      s.catch(() => {
        if (this.sessions[part] === s) delete this.sessions[part];
      });
    }
    return s;
  }

  /** latents (B, latent, h, w), scaled as the sampler produces them -> image (B, 3, 8h, 8w). */
  async decode(latents: Float32Array, dims: number[]): Promise<DecodeResult> {
    checkDims('VAE decode latents', latents, dims, this.config.latent_channels);
    const s = await this.session('decoder');
    const { image, image_01: image01 } = await s.run({ latents: new ort.Tensor('float32', latents, dims) });
    if (!image || !image01) throw new Error('VAE decode: the decoder session did not return image and image_01');
    return { image: image.data as Float32Array, image01: image01.data as Float32Array, dims: [...image.dims] };
  }

  /** image (B, 3, H, W) in [-1, 1] -> unscaled latent mean and std (B, latent, H/8, W/8). */
  async encode(image: Float32Array, dims: number[]): Promise<EncodeResult> {
    checkDims('VAE encode image', image, dims, this.config.in_channels);
    const s = await this.session('encoder');
    const { latent_mean: mean, latent_std: std } = await s.run({ image: new ort.Tensor('float32', image, dims) });
    if (!mean || !std) throw new Error('VAE encode: the encoder session did not return latent_mean and latent_std');
    return { mean: mean.data as Float32Array, std: std.data as Float32Array, dims: [...mean.dims] };
  }

  async release(): Promise<void> {
    const all = Object.values(this.sessions);
    this.sessions = {};
    for (const s of all) await (await s).release();
  }
}

function checkDims(what: string, data: Float32Array, dims: number[], channels: number): void {
  if (dims.length !== 4 || dims[1] !== channels) throw new Error(`${what}: expected shape [B, ${channels}, H, W], got [${dims}]`);
  const n = dims.reduce((a, d) => a * d, 1);
  if (n !== data.length) throw new Error(`${what}: shape [${dims}] needs ${n} values, got ${data.length}`);
}

/** A diffusers `vae/` folder: its config.json and weights file. */
export function diffusersVaeFiles(dir: string): { config: string; weights: string } {
  const config = path.join(dir, 'config.json');
  const weights = ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors']
    .map((n) => path.join(dir, n))
    .find((p) => fs.existsSync(p));
  if (!fs.existsSync(config) || !weights) {
    throw new Error(`${dir}: not a diffusers VAE folder (expected config.json and diffusion_pytorch_model.safetensors)`);
  }
  return { config, weights };
}

// ---------------------------------------------------------------------------------------
// Parameter list of a config (diffusers names and shapes): for generated test/bench models.
// ---------------------------------------------------------------------------------------

/**
 * Every AutoencoderKL parameter (diffusers name -> shape) for `cfg`, in a stable order: encoder,
 * quant_conv, post_quant_conv, decoder. `part: 'decoder'` keeps post_quant_conv + decoder only
 * (what buildVaeDecoder reads).
 */
export function vaeParameterShapes(cfg: VaeConfig, part: 'all' | 'decoder' = 'all'): Map<string, number[]> {
  const p = new Map<string, number[]>();
  const conv = (k: string, o: number, i: number, s = 3) => {
    p.set(`${k}.weight`, [o, i, s, s]);
    p.set(`${k}.bias`, [o]);
  };
  const norm = (k: string, ch: number) => {
    p.set(`${k}.weight`, [ch]);
    p.set(`${k}.bias`, [ch]);
  };
  const resnet = (k: string, i: number, o: number) => {
    norm(`${k}.norm1`, i);
    conv(`${k}.conv1`, o, i);
    norm(`${k}.norm2`, o);
    conv(`${k}.conv2`, o, o);
    if (i !== o) conv(`${k}.conv_shortcut`, o, i, 1);
  };
  // Forward order (resnet, attention, resnet): the demo set's file layout depends on it.
  const mid = (k: string, ch: number) => {
    resnet(`${k}.resnets.0`, ch, ch);
    if (cfg.mid_block_add_attention) {
      norm(`${k}.attentions.0.group_norm`, ch);
      for (const l of ['to_q', 'to_k', 'to_v', 'to_out.0']) {
        p.set(`${k}.attentions.0.${l}.weight`, [ch, ch]);
        p.set(`${k}.attentions.0.${l}.bias`, [ch]);
      }
    }
    resnet(`${k}.resnets.1`, ch, ch);
  };
  const boc = cfg.block_out_channels; // not empty (parseVaeConfig checks)
  const n = boc.length;
  const top = boc[n - 1]!;
  const L = cfg.latent_channels;
  if (part === 'all') {
    conv('encoder.conv_in', boc[0]!, cfg.in_channels);
    boc.forEach((o, i) => {
      for (let j = 0; j < cfg.layers_per_block; j++) resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? boc[Math.max(i - 1, 0)]! : o, o);
      if (i < n - 1) conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, o, o);
    });
    mid('encoder.mid_block', top);
    norm('encoder.conv_norm_out', top);
    conv('encoder.conv_out', 2 * L, top);
    if (cfg.use_quant_conv) conv('quant_conv', 2 * L, 2 * L, 1);
  }
  if (cfg.use_post_quant_conv) conv('post_quant_conv', L, L, 1);
  conv('decoder.conv_in', top, L);
  mid('decoder.mid_block', top);
  const rev = [...boc].reverse();
  rev.forEach((o, i) => {
    for (let j = 0; j <= cfg.layers_per_block; j++) resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? rev[Math.max(i - 1, 0)]! : o, o);
    if (i < n - 1) conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, o, o);
  });
  norm('decoder.conv_norm_out', boc[0]!);
  conv('decoder.conv_out', cfg.out_channels, boc[0]!);
  return p;
}
