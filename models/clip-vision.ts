/**
 * CLIP vision encoder with projection (transformers' CLIPVisionModelWithProjection), the
 * image encoder of IP-Adapter (OpenCLIP ViT-H/14 for SD1.5: width 1280, 32 layers, 16 heads,
 * projection 1024). Pre-norm ViT: patch conv + class token + positions, pre_layrnorm,
 * N x (LN -> attention -> +res, LN -> MLP -> +res), post_layernorm on the class token,
 * visual_projection.
 *
 * Reference: transformers/models/clip/modeling_clip.py (CLIPVisionEmbeddings,
 * CLIPVisionTransformer, CLIPEncoderLayer, CLIPVisionModelWithProjection).
 *
 * Outputs:
 *   image_embeds              (B, projection_dim)  visual_projection(post_layernorm(h_L[:, 0]))
 *   penultimate_hidden_states (B, 1+P, C)          hidden_states[-2] (before post_layernorm)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Graph, Module, DataType, type WeightMap, attention, dimOf, conv2d, gelu, layerNorm, linear, quickGelu } from './onnx/graph.js';
import { IN_PLACE_SESSION_OPTIONS, createSession, ort, type Provider } from './onnx/session.js';
import { refusePickle } from './pickle.js';
import { SafetensorsFile } from './safetensors.js';
import { CLIP_DEFAULTS, readPreprocessorConfig, type ClipPreprocessConfig, type Tensor } from './image-preprocess.js';
import { readJsonFile } from './json-file.js';
import { checkShapes, clipVisionShapes } from './shape-check.js';

/** transformers CLIPVisionConfig (+ projection_dim of the model with projection). */
export interface ClipVisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  /** Width of image_embeds; null when the file has no visual_projection. */
  projectionDim: number | null;
  hiddenAct: 'gelu' | 'quick_gelu' | 'gelu_new' | 'gelu_pytorch_tanh';
  layerNormEps: number;
}

const ACTS = ['gelu', 'quick_gelu', 'gelu_new', 'gelu_pytorch_tanh'] as const;

/**
 * Parses a transformers config.json: a CLIPVisionConfig (model_type clip_vision_model), or a
 * full CLIPConfig whose `vision_config` is used. Missing keys take transformers' defaults.
 */
export function parseClipVisionConfig(j: Record<string, unknown>, file = 'config.json'): ClipVisionConfig {
  const v = (j.vision_config && typeof j.vision_config === 'object' ? j.vision_config : j) as Record<string, unknown>;
  const num = (k: string, d: number) => {
    const x = v[k];
    if (x === undefined) return d;
    if (typeof x !== 'number') throw new Error(`${file}: "${k}" must be a number, found ${JSON.stringify(x)}`);
    return x;
  };
  const act = (v.hidden_act ?? 'quick_gelu') as string;
  if (!(ACTS as readonly string[]).includes(act)) throw new Error(`${file}: hidden_act "${act}" is not supported (expected one of ${ACTS.join(', ')})`);
  const proj = (v.projection_dim ?? j.projection_dim ?? 512) as number;
  return {
    hiddenSize: num('hidden_size', 768),
    intermediateSize: num('intermediate_size', 3072),
    numHiddenLayers: num('num_hidden_layers', 12),
    numAttentionHeads: num('num_attention_heads', 12),
    imageSize: num('image_size', 224),
    patchSize: num('patch_size', 32),
    numChannels: num('num_channels', 3),
    projectionDim: proj,
    hiddenAct: act as ClipVisionConfig['hiddenAct'],
    layerNormEps: num('layer_norm_eps', 1e-5),
  };
}

/** Reads config.json of a transformers CLIP vision folder. */
export function readClipVisionConfig(file: string): ClipVisionConfig {
  const j = readJsonFile(file, 'CLIP vision config');
  if (!j || typeof j !== 'object') throw new Error(`${file}: expected a JSON object (transformers CLIPVisionConfig)`);
  return parseClipVisionConfig(j as Record<string, unknown>, file);
}

const P = 'vision_model';

/**
 * Widths and depths from tensor shapes, for a single file without config.json. Head counts
 * and the activation cannot be read from shapes: the known CLIP towers are used (OpenAI
 * ViT-B 768/12 heads and ViT-L 1024/16 with quick_gelu; OpenCLIP ViT-H 1280/16 and
 * ViT-bigG 1664/16 with gelu), otherwise width/64 heads and gelu.
 */
export function inferClipVisionConfig(w: WeightMap, file: string): ClipVisionConfig {
  if (!w.has(`${P}.embeddings.class_embedding`)) {
    throw new Error(`${file}: not a CLIP vision model in the transformers layout (no "${P}.embeddings.class_embedding")`);
  }
  const dim = (name: string, axis: number) => dimOf(w.get(name).shape, axis, name);
  const C = dim(`${P}.embeddings.class_embedding`, 0);
  const patchName = `${P}.embeddings.patch_embedding.weight`; // (C, 3, p, p)
  const patchSize = dim(patchName, 2);
  const numChannels = dim(patchName, 1);
  const positions = dim(`${P}.embeddings.position_embedding.weight`, 0);
  let layers = 0;
  while (w.has(`${P}.encoder.layers.${layers}.layer_norm1.weight`)) layers++;
  const known: Record<number, [number, ClipVisionConfig['hiddenAct']]> = {
    768: [12, 'quick_gelu'],
    1024: [16, 'quick_gelu'],
    1280: [16, 'gelu'],
    1664: [16, 'gelu'],
  };
  const [heads, act] = known[C] ?? [Math.max(1, Math.round(C / 64)), 'gelu'];
  const grid = Math.round(Math.sqrt(positions - 1));
  return {
    hiddenSize: C,
    intermediateSize: dim(`${P}.encoder.layers.0.mlp.fc1.weight`, 0),
    numHiddenLayers: layers,
    numAttentionHeads: heads,
    imageSize: grid * patchSize,
    patchSize,
    numChannels,
    projectionDim: w.has('visual_projection.weight') ? dim('visual_projection.weight', 0) : null,
    hiddenAct: act,
    layerNormEps: 1e-5,
  };
}

/** Checks the config against the weights' shapes; throws a sentence naming the file. */
export function checkClipVisionWeights(cfg: ClipVisionConfig, w: WeightMap, file: string): void {
  const expect = (key: string, shape: number[]) => {
    if (!w.has(key)) throw new Error(`${file}: missing tensor "${key}" expected by a CLIP vision model with ${cfg.numHiddenLayers} layers`);
    const s = w.get(key).shape;
    if (s.join(',') !== shape.join(',')) throw new Error(`${file}: tensor "${key}" has shape [${s}], the config expects [${shape}]`);
  };
  const C = cfg.hiddenSize;
  const grid = cfg.imageSize / cfg.patchSize;
  if (!Number.isInteger(grid)) throw new Error(`${file}: image_size ${cfg.imageSize} is not a multiple of patch_size ${cfg.patchSize}`);
  if (C % cfg.numAttentionHeads) throw new Error(`${file}: hidden_size ${C} is not divisible by num_attention_heads ${cfg.numAttentionHeads}`);
  expect(`${P}.embeddings.class_embedding`, [C]);
  expect(`${P}.embeddings.patch_embedding.weight`, [C, cfg.numChannels, cfg.patchSize, cfg.patchSize]);
  expect(`${P}.embeddings.position_embedding.weight`, [grid * grid + 1, C]);
  expect(`${P}.encoder.layers.${cfg.numHiddenLayers - 1}.mlp.fc1.weight`, [cfg.intermediateSize, C]);
  if (cfg.projectionDim !== null && w.has('visual_projection.weight')) expect('visual_projection.weight', [cfg.projectionDim, C]);
}

function act(g: Graph, x: string, kind: ClipVisionConfig['hiddenAct']): string {
  if (kind === 'quick_gelu') return quickGelu(g, x);
  if (kind === 'gelu') return gelu(g, x);
  // tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  const x3 = g.op('Mul', [g.op('Mul', [x, x]), x]);
  const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [x3, g.scalar(0.044715)])]), g.scalar(Math.sqrt(2 / Math.PI))]);
  return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [g.op('Tanh', [inner]), g.scalar(1)])]);
}

/** CLIPEncoderLayer: pre-norm attention and MLP with residuals. h (B, T, C) -> (B, T, C). */
function encoderLayer(m: Module, h: string, cfg: ClipVisionConfig): string {
  const g = m.g;
  const heads = cfg.numAttentionHeads;
  const headDim = cfg.hiddenSize / heads;
  const a = m.child('self_attn');
  let x = layerNorm(m.child('layer_norm1'), h, cfg.layerNormEps);
  const q = linear(a.child('q_proj'), x);
  const k = linear(a.child('k_proj'), x);
  const v = linear(a.child('v_proj'), x);
  x = linear(a.child('out_proj'), attention(g, q, k, v, heads, headDim)); // (B, T, C)
  const h1 = g.op('Add', [h, x]);
  x = layerNorm(m.child('layer_norm2'), h1, cfg.layerNormEps);
  x = linear(m.child('mlp').child('fc2'), act(g, linear(m.child('mlp').child('fc1'), x), cfg.hiddenAct));
  return g.op('Add', [h1, x]);
}

/**
 * Builds the encoder graph. Input `pixel_values` (B, 3, S, S); outputs `image_embeds`
 * (B, projection_dim) when the weights have visual_projection, and `penultimate_hidden_states`.
 */
export function buildClipVision(cfg: ClipVisionConfig, w: WeightMap): Graph {
  checkShapes(
    'CLIP vision encoder',
    w,
    clipVisionShapes({
      hidden: cfg.hiddenSize,
      inner: cfg.intermediateSize,
      layers: cfg.numHiddenLayers,
      imageSize: cfg.imageSize,
      patch: cfg.patchSize,
      projection: cfg.projectionDim ?? 0,
      channels: cfg.numChannels,
    }),
  );
  const g = new Graph('clip_vision');
  const S = cfg.imageSize;
  const C = cfg.hiddenSize;
  const grid = S / cfg.patchSize;
  const T = grid * grid + 1;
  const px = g.input('pixel_values', DataType.FLOAT, ['B', cfg.numChannels, S, S]);
  const vm = new Module(g, w, P);
  const emb = vm.child('embeddings');

  // 1. embeddings: patches (B, C, g, g) -> (B, g*g, C); class token first; + positions.
  const patches = conv2d(emb.child('patch_embedding'), px, { stride: cfg.patchSize, padding: 0 });
  const seq = g.op('Transpose', [g.op('Reshape', [patches, g.constI([0, C, -1])])], { perm: [0, 2, 1] });
  const batch = g.op('Shape', [px], { start: 0, end: 1 });
  const clsShape = g.op('Concat', [batch, g.constI([1, C])], { axis: 0 });
  const cls = g.op('Expand', [emb.param('class_embedding', [1, 1, C]), clsShape]); // (B, 1, C)
  const tokens = g.op('Concat', [cls, seq], { axis: 1 }); // (B, T, C)
  let h = g.op('Add', [tokens, emb.child('position_embedding').param('weight', [1, T, C])]);
  h = layerNorm(vm.child('pre_layrnorm'), h, cfg.layerNormEps); // (sic: transformers' name)

  // 2. encoder; hidden_states = [h0, h1, ..., hL], penultimate = h_{L-1}.
  const L = cfg.numHiddenLayers;
  let penultimate = h;
  for (let i = 0; i < L; i++) {
    if (i === L - 1) penultimate = h;
    h = encoderLayer(vm.child('encoder').child('layers').child(i), h, cfg);
  }
  g.output('penultimate_hidden_states', penultimate, DataType.FLOAT, ['B', T, C]);

  // 3. pooled class token -> post_layernorm -> visual_projection.
  if (w.has('visual_projection.weight')) {
    const pooled = g.op('Gather', [h, g.constI([0], [])], { axis: 1 }); // (B, C)
    const normed = layerNorm(vm.child('post_layernorm'), pooled, cfg.layerNormEps);
    const embeds = linear(new Module(g, w, 'visual_projection'), normed, { bias: false });
    g.output('image_embeds', embeds, DataType.FLOAT, ['B', cfg.projectionDim ?? 'D']);
  }
  return g;
}

/** Where a CLIP vision model's weights, config and preprocessor config are. */
export interface ClipVisionFiles {
  weights: string;
  config: ClipVisionConfig;
  preprocess: ClipPreprocessConfig;
}

/**
 * Resolves a transformers folder (config.json + model.safetensors [+ preprocessor_config.json])
 * or a single .safetensors file (config.json beside it if present and consistent, else the
 * config inferred from shapes).
 */
export function resolveClipVision(src: string, opts: { config?: ClipVisionConfig } = {}): ClipVisionFiles & { file: SafetensorsFile } {
  const abs = path.resolve(src);
  if (!fs.existsSync(abs)) throw new Error(`${abs}: CLIP vision model not found`);
  let weights = abs;
  let dir = path.dirname(abs);
  if (fs.statSync(abs).isDirectory()) {
    dir = abs;
    weights = path.join(abs, 'model.safetensors');
    if (!fs.existsSync(weights)) {
      const names = fs.readdirSync(abs);
      const any = names.filter((n) => n.endsWith('.safetensors'));
      // A transformers folder with only pytorch_model.bin: say it is a pickle and how to convert it.
      if (any.length === 0 && names.includes('pytorch_model.bin')) refusePickle(path.join(abs, 'pytorch_model.bin'), 'the CLIP vision model');
      if (any.length !== 1) throw new Error(`${abs}: expected model.safetensors (transformers CLIPVisionModelWithProjection) in this folder`);
      weights = path.join(abs, any[0]!); // exactly one (checked above)
    }
  }
  refusePickle(weights, 'the CLIP vision model');
  const file = SafetensorsFile.open(weights);
  let config = opts.config;
  const cfgFile = path.join(dir, 'config.json');
  if (!config && fs.existsSync(cfgFile)) {
    const c = readClipVisionConfig(cfgFile);
    try {
      checkClipVisionWeights(c, file, weights);
      config = c;
    } catch (e) {
      // A folder-level config.json that does not fit is an error only for a folder.
      if (dir === abs) throw e;
    }
  }
  config ??= inferClipVisionConfig(file, weights);
  checkClipVisionWeights(config, file, weights);
  const ppFile = path.join(dir, 'preprocessor_config.json');
  const preprocess = fs.existsSync(ppFile)
    ? readPreprocessorConfig(ppFile)
    : { ...CLIP_DEFAULTS, size: { shortestEdge: config.imageSize }, crop: { height: config.imageSize, width: config.imageSize } };
  return { weights, config, preprocess, file };
}

export interface LoadOptions {
  cacheDir: string;
  provider?: Provider;
  log?: (msg: string) => void;
  config?: ClipVisionConfig;
}

/** Output of ClipVision.encode. */
export interface VisionOutput {
  imageEmbeds: Tensor | null;
  penultimate: Tensor;
}

/** ONNX Runtime options of the vision encoder session: the weights are used in place (onnx/session.ts). */
export const CLIP_VISION_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = IN_PLACE_SESSION_OPTIONS;

/** A CLIP vision encoder ready to run. */
export class ClipVision {
  private constructor(
    readonly weightsFile: string,
    readonly config: ClipVisionConfig,
    readonly preprocess: ClipPreprocessConfig,
    private readonly session: ort.InferenceSession,
  ) {}

  /** Loads a transformers folder or a single .safetensors file and creates its session. */
  static async load(src: string, opts: LoadOptions): Promise<ClipVision> {
    const r = resolveClipVision(src, opts);
    const session = await createSession(buildClipVision(r.config, r.file).build(), { ...opts, sessionOptions: CLIP_VISION_SESSION_OPTIONS });
    return new ClipVision(r.weights, r.config, r.preprocess, session);
  }

  /** Runs the encoder on pixel_values (B, 3, S, S). */
  async encode(pixels: Tensor): Promise<VisionOutput> {
    const S = this.config.imageSize;
    const d = pixels.dims;
    if (d.length !== 4 || d[1] !== this.config.numChannels || d[2] !== S || d[3] !== S) {
      throw new Error(`${this.weightsFile}: pixel_values must be (B, ${this.config.numChannels}, ${S}, ${S}), got (${d.join(', ')})`);
    }
    const out = await this.session.run({ pixel_values: new ort.Tensor('float32', pixels.data, d) });
    const t = (name: string): Tensor | null => {
      const v = out[name];
      return v ? { data: v.data as Float32Array, dims: [...v.dims] } : null;
    };
    return { imageEmbeds: t('image_embeds'), penultimate: t('penultimate_hidden_states')! };
  }

  /** All-zero pixel_values (the unconditional input of IP-Adapter Plus). */
  zeroPixels(batch = 1): Tensor {
    const S = this.config.imageSize;
    return { data: new Float32Array(batch * this.config.numChannels * S * S), dims: [batch, this.config.numChannels, S, S] };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
