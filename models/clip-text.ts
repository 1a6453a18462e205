/**
 * CLIP text encoder (transformers `CLIPTextModel`, as Stable Diffusion 1.x uses it) as an
 * ONNX graph: token + position embeddings, pre-norm transformer layers with a causal mask,
 * final layer norm. Output `last_hidden_state` (B, T, C) is SD1.5's `encoder_hidden_states`.
 *
 * Mirrors transformers/models/clip/modeling_clip.py (4.44): CLIPTextEmbeddings,
 * CLIPEncoderLayer, CLIPAttention (eager: q scaled before the matmul, additive causal mask of
 * finfo(float32).min above the diagonal), CLIPMLP, CLIPTextTransformer.
 */
import * as path from 'node:path';
import { DataType, Graph, Module, type ModuleHook, attention, gelu, layerNorm, linear, quickGelu, type WeightMap } from './onnx/graph.js';
import { IN_PLACE_SESSION_OPTIONS, createSession, ort, type SessionConfig } from './onnx/session.js';
import { readJsonFile } from './json-file.js';
import { checkShapes, clipTextShapes } from './shape-check.js';

/** transformers CLIPTextConfig fields the graph needs (snake_case, as in config.json). */
export interface ClipTextConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: 'quick_gelu' | 'gelu';
  layer_norm_eps: number;
  vocab_size: number;
}

/**
 * SD1.x's text encoder (openai/clip-vit-large-patch14's text tower), used for single-file
 * checkpoints, whose shapes give widths and depth but not the head count.
 */
export const SD15_TEXT_CONFIG: Readonly<ClipTextConfig> = Object.freeze({
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  vocab_size: 49408,
});

/** Parses a transformers CLIPTextConfig (a CLIPTextModel's config.json, or a CLIPConfig's `text_config`). */
export function clipTextConfigFromJson(json: unknown, source = 'config.json'): ClipTextConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: expected a JSON object with the CLIP text config`);
  let j = json as Record<string, unknown>;
  if (j.text_config && typeof j.text_config === 'object') j = j.text_config as Record<string, unknown>;
  const int = (k: keyof ClipTextConfig, dflt?: number): number => {
    const v = j[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`${source}: ${k} must be a positive integer (got ${JSON.stringify(j[k])})`);
    return v;
  };
  // Defaults are transformers' CLIPTextConfig defaults, for fields a config may omit.
  const act = j.hidden_act ?? 'quick_gelu';
  if (act !== 'quick_gelu' && act !== 'gelu') throw new Error(`${source}: hidden_act "${String(act)}" is not supported (expected quick_gelu or gelu)`);
  const eps = j.layer_norm_eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) throw new Error(`${source}: layer_norm_eps must be a positive number`);
  const cfg: ClipTextConfig = {
    hidden_size: int('hidden_size', 512),
    intermediate_size: int('intermediate_size', 2048),
    num_hidden_layers: int('num_hidden_layers', 12),
    num_attention_heads: int('num_attention_heads', 8),
    max_position_embeddings: int('max_position_embeddings', 77),
    hidden_act: act,
    layer_norm_eps: eps,
    vocab_size: int('vocab_size', 49408),
  };
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    throw new Error(`${source}: hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`);
  }
  return cfg;
}

/** Reads `config.json` of a transformers text encoder folder (e.g. a diffusers `text_encoder/`). */
export function loadClipTextConfig(dirOrFile: string): ClipTextConfig {
  const file = dirOrFile.endsWith('.json') ? dirOrFile : path.join(dirOrFile, 'config.json');
  const json = readJsonFile(file, 'text encoder config');
  return clipTextConfigFromJson(json, file);
}

/**
 * Checks that the weights have the shapes `cfg` implies (an SD2/SDXL text encoder or a wrong
 * explicit config fails here with the tensor, its file and both shapes, not inside ORT).
 */
export function checkClipTextWeights(cfg: ClipTextConfig, w: WeightMap): void {
  const C = cfg.hidden_size;
  const expect = (name: string, shape: number[]) => {
    const ref = w.get(name);
    if (ref.shape.join(',') !== shape.join(',')) {
      throw new Error(
        `${path.basename(ref.file)}: ${ref.key} has shape [${ref.shape}], but the text encoder config (hidden_size ${C}, ` +
          `intermediate_size ${cfg.intermediate_size}, vocab_size ${cfg.vocab_size}) expects [${shape}]`,
      );
    }
  };
  expect('text_model.embeddings.token_embedding.weight', [cfg.vocab_size, C]);
  expect('text_model.embeddings.position_embedding.weight', [cfg.max_position_embeddings, C]);
  expect(`text_model.encoder.layers.${cfg.num_hidden_layers - 1}.mlp.fc1.weight`, [cfg.intermediate_size, C]);
  const shapes = { vocab: cfg.vocab_size, positions: cfg.max_position_embeddings, hidden: C, inner: cfg.intermediate_size, layers: cfg.num_hidden_layers };
  checkShapes('CLIP text encoder', w, clipTextShapes(shapes)); // every other tensor (models/shape-check.ts)
  if (w.has(`text_model.encoder.layers.${cfg.num_hidden_layers}.mlp.fc1.weight`)) {
    const ref = w.get(`text_model.encoder.layers.${cfg.num_hidden_layers}.mlp.fc1.weight`);
    throw new Error(`${path.basename(ref.file)}: the text encoder has more than num_hidden_layers = ${cfg.num_hidden_layers} layers (found ${ref.key})`);
  }
}

export interface ClipTextBuildOptions {
  /**
   * "CLIP skip": drop this many final layers and apply final_layer_norm to the output of the
   * last kept one (ComfyUI's CLIPSetLastLayer -1 - n, A1111's "clip skip" n + 1). Default 0.
   */
  skipLastLayers?: number;
  /** Changes modules by name, declaring its own graph inputs (LoRA: models/lora-graph.ts, input lora_scale). */
  moduleHook?: (g: Graph) => ModuleHook;
}

/** transformers' float32 causal mask value: torch.finfo(torch.float32).min. */
const FINFO_MIN = -3.4028234663852886e38;

/**
 * Builds the text encoder graph. Input `input_ids` int64 (B, T) with T = max_position_embeddings
 * (77 for SD); output `last_hidden_state` float32 (B, T, hidden_size).
 */
export function buildClipTextEncoder(cfg: ClipTextConfig, w: WeightMap, opts: ClipTextBuildOptions = {}): Graph {
  checkClipTextWeights(cfg, w);
  const skip = opts.skipLastLayers ?? 0;
  if (!Number.isInteger(skip) || skip < 0 || skip >= cfg.num_hidden_layers) {
    throw new Error(`skipLastLayers ${skip}: must be an integer in 0..${cfg.num_hidden_layers - 1}`);
  }
  const g = new Graph(skip ? `clip_text_skip${skip}` : 'clip_text');
  const T = cfg.max_position_embeddings;
  const C = cfg.hidden_size;
  const heads = cfg.num_attention_heads;
  const headDim = C / heads;
  const eps = cfg.layer_norm_eps;
  // 1. embeddings: token (Gather) + position (positions 0..T-1, a constant).
  const ids = g.input('input_ids', DataType.INT64, ['batch', T]); // (B, T)
  const tm = new Module(g, w, 'text_model', opts.moduleHook?.(g));
  const emb = tm.child('embeddings');
  const tok = g.op('Gather', [emb.child('token_embedding').param('weight'), ids], { axis: 0 }); // (B, T, C)
  const pos = g.op('Gather', [emb.child('position_embedding').param('weight'), g.constI(Array.from({ length: T }, (_, i) => i))], { axis: 0 }); // (T, C)
  let h = g.op('Add', [tok, pos]); // (B, T, C)

  // 2. causal mask: 0 on and below the diagonal, finfo.min above (added to the scores).
  const maskData = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = FINFO_MIN;
  const mask = g.constF(maskData, [1, 1, T, T]);

  // 3. encoder layers (pre-norm): h += attn(ln1(h)); h += mlp(ln2(h)).
  const act = cfg.hidden_act === 'gelu' ? gelu : quickGelu;
  for (let i = 0; i < cfg.num_hidden_layers - skip; i++) {
    const layer = tm.child('encoder').child('layers').child(i);
    const sa = layer.child('self_attn');
    const x = layerNorm(layer.child('layer_norm1'), h, eps);
    const q = g.op('Mul', [linear(sa.child('q_proj'), x), g.scalar(headDim ** -0.5)]); // (B, T, C), scaled as CLIPAttention does
    const k = linear(sa.child('k_proj'), x);
    const v = linear(sa.child('v_proj'), x);
    const a = attention(g, q, k, v, heads, headDim, mask, 1); // (B, T, C)
    h = g.op('Add', [h, linear(sa.child('out_proj'), a)]);
    const mlp = layer.child('mlp');
    const y = linear(mlp.child('fc2'), act(g, linear(mlp.child('fc1'), layerNorm(layer.child('layer_norm2'), h, eps)))); // (B, T, C)
    h = g.op('Add', [h, y]);
  }

  // 4. final layer norm.
  const out = layerNorm(tm.child('final_layer_norm'), h, eps);
  g.output('last_hidden_state', out, DataType.FLOAT, ['batch', T, C]);
  return g;
}

/** ONNX Runtime options of the text encoder session: the weights are used in place (onnx/session.ts). */
export const CLIP_TEXT_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = IN_PLACE_SESSION_OPTIONS;

/** A text encoder session: token ids in, hidden states out. */
export class ClipTextEncoder {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly config: ClipTextConfig,
  ) {}

  /** Builds (or reuses from `cacheDir`) the graph for these weights and opens a session. */
  static async load(weights: WeightMap, cfg: ClipTextConfig, opts: SessionConfig & ClipTextBuildOptions): Promise<ClipTextEncoder> {
    const built = buildClipTextEncoder(cfg, weights, opts).build();
    return new ClipTextEncoder(await createSession(built, { ...opts, sessionOptions: { ...CLIP_TEXT_SESSION_OPTIONS, ...opts.sessionOptions } }), cfg);
  }

  /**
   * ids: B rows of T = max_position_embeddings token ids -> (B, T, C) float32, row-major.
   * `loraScale`: one strength per LoRA of a graph built with them (its lora_scale input).
   */
  async encode(ids: number[][], opts: { loraScale?: ArrayLike<number> } = {}): Promise<{ data: Float32Array; dims: [number, number, number] }> {
    const T = this.config.max_position_embeddings;
    const B = ids.length;
    if (B === 0) throw new Error('text encoder: no token rows to encode');
    const flat = new BigInt64Array(B * T);
    ids.forEach((row, b) => {
      if (row.length !== T) throw new Error(`text encoder: row ${b} has ${row.length} token ids, expected ${T}`);
      row.forEach((id, t) => {
        if (!Number.isInteger(id) || id < 0 || id >= this.config.vocab_size)
          throw new Error(`text encoder: token id ${id} is outside the vocabulary (0..${this.config.vocab_size - 1})`);
        flat[b * T + t] = BigInt(id);
      });
    });
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', flat, [B, T]) };
    if (this.session.inputNames.includes('lora_scale')) {
      if (!opts.loraScale) throw new Error('text encoder: this graph has LoRAs; their strengths (loraScale) are required');
      feeds.lora_scale = new ort.Tensor('float32', Float32Array.from(opts.loraScale), [opts.loraScale.length]);
    }
    const res = await this.session.run(feeds);
    const out = res.last_hidden_state;
    if (!out) throw new Error('text encoder: the session returned no last_hidden_state output');
    return { data: out.data as Float32Array, dims: [B, T, this.config.hidden_size] };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The brief's name for the runtime class (prefer ClipTextEncoder: it does not shadow the global TextEncoder). */
export { ClipTextEncoder as TextEncoder };
