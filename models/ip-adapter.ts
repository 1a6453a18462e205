/**
 * IP-Adapter files (h94/IP-Adapter single-file layout) and their image projection.
 *
 * Keys:
 *   base ("ip-adapter_sd15"):  image_proj.proj.{weight [N*C, D], bias}, image_proj.norm.*  (ImageProjModel)
 *   plus ("ip-adapter-plus"):  image_proj.latents [1, Nq, W], proj_in, proj_out, norm_out,
 *                              layers.<d>.0.{norm1, norm2, to_q, to_kv, to_out}  (PerceiverAttention)
 *                              layers.<d>.1.{0: LayerNorm, 1: Linear, 3: Linear}   (FeedForward, GELU)
 *   full-face ("ip-adapter-full-face"): image_proj.proj.{0: Linear [D', D], 2: Linear [C, D'], 3: LayerNorm [C]}
 *                              (MLPProjModel: Linear -> GELU -> Linear -> LayerNorm on every vision token)
 *   both:                      ip_adapter.<n>.to_k_ip.weight / to_v_ip.weight [hidden, C], n = 1, 3, ..., 31
 *
 * The projection math mirrors diffusers' ImageProjection / IPAdapterPlusImageProjection /
 * IPAdapterFullImageProjection (diffusers/models/embeddings.py), which equal h94's ImageProjModel /
 * Resampler / MLPProjModel. The kind is read from the keys (never from the file name).
 * Unconditional (CFG) tokens: base = projection of an all-zero image_embeds; plus and full-face =
 * projection of the vision model's penultimate states for all-zero pixel_values (not of zeros).
 */
import * as path from 'node:path';
import { Graph, Module, DataType, attention, dimOf, gelu, layerNorm, linear } from './onnx/graph.js';
import { IN_PLACE_SESSION_OPTIONS, createSession, ort, type Provider } from './onnx/session.js';
import { SafetensorsFile, type TensorRef } from './safetensors.js';
import type { ClipVision, ClipVisionConfig } from './clip-vision.js';
import { openTensorFile } from './pickle.js';
import type { Tensor } from './image-preprocess.js';
import { checkImageProj } from './shape-check.js';

/** The per-layer image key/value projections of one attention processor. */
export interface IpLayerWeights {
  toK: TensorRef;
  toV: TensorRef;
}

/** Resampler ("plus") hyper-parameters, all read from shapes. */
export interface ResamplerConfig {
  /** Latent width (dim). */
  dim: number;
  depth: number;
  heads: number;
  dimHead: number;
  numQueries: number;
  /** FeedForward inner width (dim * ff_mult). */
  ffInner: number;
  outputDim: number;
}

/** dim_head of the h94 Resampler; diffusers infers heads = to_q rows // 64 from it. */
const RESAMPLER_DIM_HEAD = 64;

/** The image projections: ImageProjModel, Resampler, MLPProjModel over all vision tokens. */
export type IpAdapterKind = 'base' | 'plus' | 'full-face';

/** Image tokens per image of a full-face adapter: the vision tokens of a 224 / 14 encoder (1 + 16 x 16). */
export const FULL_FACE_TOKENS = 257;

/** A loaded IP-Adapter file: its kind, widths and layer weights (by reference). */
export class IpAdapterModel {
  private constructor(
    readonly file: string,
    readonly kind: IpAdapterKind,
    /**
     * Image tokens produced per image: 4 for base, 16 for plus; full-face keeps every vision token,
     * 257 for the 224 / 14 encoders it is trained with (diffusers hard-codes that count too).
     */
    readonly numTokens: number,
    /** Width of the CLIP input it expects: image_embeds (base) or hidden states (plus, full-face). */
    readonly embedDim: number,
    /** Width of the tokens = the UNet's cross_attention_dim. */
    readonly crossAttentionDim: number,
    /** Processor index -> to_k_ip / to_v_ip. */
    readonly layers: Map<number, { to_k_ip: TensorRef; to_v_ip: TensorRef }>,
    readonly weights: SafetensorsFile,
    readonly resampler: ResamplerConfig | null,
  ) {}

  /** Opens and classifies an adapter file: safetensors, or an h94 `.bin` pickle (read without running it; nested keys joined). */
  static load(file: string): IpAdapterModel {
    const abs = path.resolve(file);
    const w = openTensorFile(abs);
    const fail = (why: string): never => {
      throw new Error(`${abs}: not a supported IP-Adapter file: ${why}`);
    };
    const axis = (key: string, i: number): number => dimOf(w.get(key).shape, i, key);

    // 1. image key/value projections: ip_adapter.<n>.to_{k,v}_ip.weight (hidden, C).
    const layers = new Map<number, { to_k_ip: TensorRef; to_v_ip: TensorRef }>();
    for (const key of w.keys()) {
      const m = /^ip_adapter\.(\d+)\.to_k_ip\.weight$/.exec(key);
      if (!m) continue;
      const n = Number(m[1]);
      const vKey = `ip_adapter.${n}.to_v_ip.weight`;
      if (!w.has(vKey)) fail(`"${key}" has no matching "${vKey}"`);
      layers.set(n, { to_k_ip: w.get(key), to_v_ip: w.get(vKey) });
    }
    if (layers.size === 0) fail('no "ip_adapter.<n>.to_k_ip.weight" tensors (expected the h94 layout)');
    const sorted = new Map([...layers].sort((a, b) => a[0] - b[0]));
    const widths = new Set([...sorted.values()].flatMap((l) => [dimOf(l.to_k_ip.shape, 1, l.to_k_ip.key), dimOf(l.to_v_ip.shape, 1, l.to_v_ip.key)]));
    if (widths.size !== 1) fail(`to_k_ip/to_v_ip in-features differ between layers (${[...widths].join(', ')})`);
    const crossDim = [...widths][0]!; // exactly one (checked above)

    // 2. projection kind.
    if (w.has('image_proj.proj.weight')) {
      const rows = axis('image_proj.proj.weight', 0); // (N*C, D)
      const D = axis('image_proj.proj.weight', 1);
      if (rows % crossDim) fail(`image_proj.proj.weight has ${rows} rows, not a multiple of the cross-attention width ${crossDim}`);
      const normW = w.get('image_proj.norm.weight').shape[0];
      if (normW !== crossDim) fail(`image_proj.norm.weight has width ${normW}, expected ${crossDim}`);
      return new IpAdapterModel(abs, 'base', rows / crossDim, D, crossDim, sorted, w, null);
    }
    if (w.has('image_proj.latents')) {
      const numQueries = axis('image_proj.latents', 1); // (1, Nq, W)
      const dim = axis('image_proj.latents', 2);
      let depth = 0;
      while (w.has(`image_proj.layers.${depth}.0.to_q.weight`)) depth++;
      if (depth === 0) fail('image_proj.latents present but no "image_proj.layers.0.0.to_q.weight" (Resampler)');
      const inner = axis('image_proj.layers.0.0.to_q.weight', 0);
      if (inner % RESAMPLER_DIM_HEAD) fail(`Resampler to_q has ${inner} rows, not a multiple of dim_head ${RESAMPLER_DIM_HEAD}`);
      const embedDim = axis('image_proj.proj_in.weight', 1);
      const outputDim = axis('image_proj.proj_out.weight', 0);
      if (outputDim !== crossDim) fail(`Resampler output width ${outputDim} differs from the to_k_ip width ${crossDim}`);
      const resampler: ResamplerConfig = {
        dim,
        depth,
        heads: inner / RESAMPLER_DIM_HEAD,
        dimHead: RESAMPLER_DIM_HEAD,
        numQueries,
        ffInner: axis('image_proj.layers.0.1.1.weight', 0),
        outputDim,
      };
      return new IpAdapterModel(abs, 'plus', numQueries, embedDim, crossDim, sorted, w, resampler);
    }
    if (w.has('image_proj.proj.3.weight')) {
      // MLPProjModel: proj.0 Linear (D -> D'), proj.1 GELU, proj.2 Linear (D' -> C), proj.3 LayerNorm (C).
      for (const k of ['proj.0.weight', 'proj.0.bias', 'proj.2.weight', 'proj.2.bias', 'proj.3.bias']) {
        if (!w.has(`image_proj.${k}`)) fail(`image_proj.proj.3.weight present (full-face MLP projection) but no "image_proj.${k}"`);
      }
      const hidden = w.get('image_proj.proj.0.weight').shape[0];
      const D = axis('image_proj.proj.0.weight', 1);
      const [out, in2] = w.get('image_proj.proj.2.weight').shape;
      if (in2 !== hidden) fail(`image_proj.proj.2.weight takes width ${in2}, but image_proj.proj.0 gives ${hidden}`);
      if (out !== crossDim) fail(`image_proj.proj.2 output width ${out} differs from the to_k_ip width ${crossDim}`);
      const normW = w.get('image_proj.proj.3.weight').shape[0];
      if (normW !== crossDim) fail(`image_proj.proj.3.weight (LayerNorm) has width ${normW}, expected ${crossDim}`);
      return new IpAdapterModel(abs, 'full-face', FULL_FACE_TOKENS, D, crossDim, sorted, w, null);
    }
    if (w.has('image_proj.proj.0.weight'))
      fail('an MLP image projection without its LayerNorm (a FaceID adapter, fed by InsightFace face embeddings), which is not supported');
    if (w.keys().some((k) => k.startsWith('image_proj.perceiver_resampler'))) fail('a FaceID-Plus projection, which is not supported');
    return fail('no "image_proj.proj.weight" (base) or "image_proj.latents" (plus) tensor');
  }

  /** to_k_ip / to_v_ip of attention processor `n` (odd numbers for SD1.5's attn2 layers). */
  layerWeights(n: number): IpLayerWeights {
    const l = this.layers.get(n);
    if (!l) throw new Error(`${this.file}: no ip_adapter.${n}.to_k_ip/to_v_ip weights (this adapter has processors ${[...this.layers.keys()].join(', ')})`);
    return { toK: l.to_k_ip, toV: l.to_v_ip };
  }
}

/** Opens an IP-Adapter file (see IpAdapterModel.load). */
export function loadIpAdapter(file: string): IpAdapterModel {
  return IpAdapterModel.load(file);
}

/** to_k_ip / to_v_ip for processor index `n` (same as adapter.layerWeights(n)). */
export function ipAdapterWeightsFor(adapter: IpAdapterModel, n: number): IpLayerWeights {
  return adapter.layerWeights(n);
}

/** The CLIP image encoders IP-Adapters are trained with, by what they feed (base: projection_dim, plus / full-face: hidden_size). */
const ENCODERS: Record<'base' | 'plus', Record<number, string>> = {
  base: {
    1024: 'OpenCLIP ViT-H/14 (CLIP-ViT-H-14-laion2B-s32B-b79K), as the SD1.5 adapters are',
    1280: 'OpenCLIP ViT-bigG/14 (CLIP-ViT-bigG-14-laion2B-39B-b160k), as the vit-G adapters are',
    768: 'OpenAI CLIP ViT-L/14',
  },
  plus: {
    1280: 'OpenCLIP ViT-H/14 (CLIP-ViT-H-14-laion2B-s32B-b79K), as the SD1.5 adapters are',
    1664: 'OpenCLIP ViT-bigG/14 (CLIP-ViT-bigG-14-laion2B-39B-b160k), as the vit-G adapters are',
    1024: 'OpenAI CLIP ViT-L/14',
  },
};

/**
 * Refuses an adapter whose input width does not match the CLIP vision model: base adapters
 * take image_embeds (projection_dim), plus and full-face adapters take hidden states (hidden_size). The sentence
 * names the encoder the adapter's width points to (ViT-H/14 for 1024, ViT-bigG/14 for vit-G's 1280, ...).
 */
export function checkAdapterMatchesVision(adapter: IpAdapterModel, vision: ClipVisionConfig, visionFile: string): void {
  const [what, width] =
    adapter.kind === 'base' ? ['image embeddings (projection_dim)', vision.projectionDim] : ['hidden states (hidden_size)', vision.hiddenSize];
  if (width === adapter.embedDim) return;
  const src = { base: 'image_proj.proj', plus: 'image_proj.proj_in', 'full-face': 'image_proj.proj.0' }[adapter.kind];
  throw new Error(
    `The IP-Adapter ${adapter.file} expects CLIP ${what} of width ${adapter.embedDim} (${src} in-features), ` +
      `but the CLIP vision model ${visionFile} gives width ${width ?? 'none (it has no visual_projection)'}; ` +
      `choose the image encoder this adapter was trained with: ${ENCODERS[adapter.kind === 'base' ? 'base' : 'plus'][adapter.embedDim] ?? `one whose ${what} have width ${adapter.embedDim}`}.`,
  );
}

/** Name of the projection graph's input for an adapter kind. */
export function imageProjInputName(kind: IpAdapterKind): 'image_embeds' | 'penultimate_hidden_states' {
  return kind === 'base' ? 'image_embeds' : 'penultimate_hidden_states';
}

/**
 * The image projection graph: base `image_embeds` (B, D) -> `ip_tokens` (B, N, C);
 * plus `penultimate_hidden_states` (B, T, D) -> `ip_tokens` (B, Nq, C);
 * full-face `penultimate_hidden_states` (B, T, D) -> `ip_tokens` (B, T, C).
 */
export function buildImageProj(adapter: IpAdapterModel): Graph {
  checkImageProj(adapter); // models/shape-check.ts
  const g = new Graph(`image_proj_${adapter.kind}`);
  const m = new Module(g, adapter.weights, 'image_proj');
  const C = adapter.crossAttentionDim;
  const N = adapter.numTokens;
  if (adapter.kind === 'base') {
    // ImageProjModel: LayerNorm(reshape(proj(x), (B, N, C))).
    const x = g.input('image_embeds', DataType.FLOAT, ['B', adapter.embedDim]);
    const y = g.op('Reshape', [linear(m.child('proj'), x), g.constI([-1, N, C])]); // (B, N, C)
    g.output('ip_tokens', layerNorm(m.child('norm'), y, 1e-5), DataType.FLOAT, ['B', N, C]);
    return g;
  }
  if (adapter.kind === 'full-face') {
    // MLPProjModel on every token: LayerNorm(Linear2(GELU(Linear1(h)))), GELU exact (erf).
    const x = g.input('penultimate_hidden_states', DataType.FLOAT, ['B', 'T', adapter.embedDim]);
    const p = m.child('proj');
    const h = linear(p.child(2), gelu(g, linear(p.child(0), x)));
    g.output('ip_tokens', layerNorm(p.child(3), h, 1e-5), DataType.FLOAT, ['B', 'T', C]);
    return g;
  }
  const r = adapter.resampler!;
  const inner = r.heads * r.dimHead;
  const input = g.input('penultimate_hidden_states', DataType.FLOAT, ['B', 'T', adapter.embedDim]);
  const x = linear(m.child('proj_in'), input); // (B, T, W)
  const batch = g.op('Shape', [input], { start: 0, end: 1 });
  let latents = g.op('Expand', [m.param('latents'), g.op('Concat', [batch, g.constI([r.numQueries, r.dim])], { axis: 0 })]); // (B, Nq, W)
  for (let d = 0; d < r.depth; d++) {
    // PerceiverAttention: queries from the latents, keys/values over cat(x, latents).
    const a = m.child('layers').child(d).child(0);
    const xn = layerNorm(a.child('norm1'), x, 1e-5);
    const ln = layerNorm(a.child('norm2'), latents, 1e-5);
    const q = linear(a.child('to_q'), ln, { bias: false }); // (B, Nq, inner)
    const kv = linear(a.child('to_kv'), g.op('Concat', [xn, ln], { axis: 1 }), { bias: false }); // (B, T+Nq, 2*inner)
    const [k, v] = g.opN('Split', [kv, g.constI([inner, inner])], 2, { axis: -1 }) as [string, string];
    const o = attention(g, q, k, v, r.heads, r.dimHead); // (B, Nq, inner)
    latents = g.op('Add', [linear(a.child('to_out'), o, { bias: false }), latents]);
    // FeedForward: LayerNorm, Linear, GELU, Linear (no biases), residual.
    const ff = m.child('layers').child(d).child(1);
    let h = layerNorm(ff.child(0), latents, 1e-5);
    h = linear(ff.child(3), gelu(g, linear(ff.child(1), h, { bias: false })), { bias: false });
    latents = g.op('Add', [h, latents]);
  }
  const out = layerNorm(m.child('norm_out'), linear(m.child('proj_out'), latents), 1e-5);
  g.output('ip_tokens', out, DataType.FLOAT, ['B', N, C]);
  return g;
}

export interface ProjectorOptions {
  cacheDir: string;
  provider?: Provider;
  log?: (msg: string) => void;
}

/** An adapter's image projection, ready to run. */
export class ImageProjector {
  private constructor(
    readonly adapter: IpAdapterModel,
    private readonly session: ort.InferenceSession,
  ) {}

  /** Loads an adapter file (or an already opened adapter) and creates the projection session. */
  static async load(src: string | IpAdapterModel, opts: ProjectorOptions): Promise<ImageProjector> {
    const adapter = typeof src === 'string' ? IpAdapterModel.load(src) : src;
    return new ImageProjector(adapter, await createSession(buildImageProj(adapter).build(), { ...opts, sessionOptions: IN_PLACE_SESSION_OPTIONS }));
  }

  /** The graph input this adapter takes: image_embeds (base) or penultimate_hidden_states (plus, full-face). */
  get inputName(): 'image_embeds' | 'penultimate_hidden_states' {
    return imageProjInputName(this.adapter.kind);
  }

  /** x: image_embeds (B, D) or penultimate_hidden_states (B, T, D) -> ip_tokens (B, N, C). */
  async project(x: Tensor): Promise<Tensor> {
    const rank = this.adapter.kind === 'base' ? 2 : 3;
    const D = this.adapter.embedDim;
    if (x.dims.length !== rank || x.dims[rank - 1] !== D) {
      throw new Error(`${this.adapter.file}: ${this.inputName} must be ${rank === 2 ? `(B, ${D})` : `(B, T, ${D})`}, got (${x.dims.join(', ')})`);
    }
    const out = await this.session.run({ [this.inputName]: new ort.Tensor('float32', x.data, x.dims) });
    const t = out.ip_tokens;
    if (!t) throw new Error(`${this.adapter.file}: the image projection session returned no ip_tokens output`);
    return { data: t.data as Float32Array, dims: [...t.dims] };
  }

  /** Image tokens of an encoded image, from the vision output this adapter uses. */
  async fromVision(v: { imageEmbeds: Tensor | null; penultimate: Tensor }): Promise<Tensor> {
    if (this.adapter.kind === 'base') {
      if (!v.imageEmbeds) throw new Error(`${this.adapter.file}: a base IP-Adapter needs image_embeds, but the CLIP vision model has no visual_projection`);
      return this.project(v.imageEmbeds);
    }
    return this.project(v.penultimate);
  }

  /**
   * Unconditional tokens for CFG (the reference's rule): base = projection of an all-zero
   * image_embeds; plus and full-face = projection of vision(all-zero pixel_values).penultimate.
   */
  async unconditional(vision: ClipVision | null, batch = 1): Promise<Tensor> {
    if (this.adapter.kind === 'base') {
      const D = this.adapter.embedDim;
      return this.project({ data: new Float32Array(batch * D), dims: [batch, D] });
    }
    if (!vision)
      throw new Error(
        `${this.adapter.file}: the unconditional tokens of an IP-Adapter ${this.adapter.kind === 'plus' ? 'Plus' : 'full-face'} need the CLIP vision model`,
      );
    return this.project((await vision.encode(vision.zeroPixels(batch))).penultimate);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * ComfyUI_IPAdapter_plus's embeds_scaling (CrossAttentionPatch.py ipadapter_attention), per layer
 * with λ the layer's weight and C its width (320 / 640 / 1280 for SD1.5):
 *   'V only'                   out = λ · attn(Q, K, V)                        (diffusers, the default)
 *   'K+V'                      out = attn(Q, λK, λV)
 *   'K+V w/ C penalty'         out = attn(Q, λ'K, λ'V),  λ' = λ · C / 1280
 *   'K+mean(V) w/ C penalty'   out = attn(Q, λ'K, V - mean(V) + λ' mean(V)), mean over the tokens
 */
export const EMBEDS_SCALING = ['V only', 'K+V', 'K+V w/ C penalty', 'K+mean(V) w/ C penalty'] as const;
export type EmbedsScaling = (typeof EMBEDS_SCALING)[number];

/**
 * The UNet's per-layer coefficients for a mode (models/unet-blocks.ts attentionModule):
 * K' = a K, V' = b V + c mean(V), output × d; `kv` is (L, 3) [a, b, c] row per layer, `out` (L,) d.
 * 'V only' is a = b = 1, c = 0, d = λ: exactly diffusers' λ · attn. A layer with λ = 0 gets all zeros
 * in the K+V modes (ComfyUI skips it), so it adds exactly nothing.
 */
export function embedsScalingCoefficients(mode: EmbedsScaling, lambda: ArrayLike<number>, widths: ArrayLike<number>): { kv: Float32Array; out: Float32Array } {
  if (!EMBEDS_SCALING.includes(mode)) throw new Error(`embeds_scaling "${mode}" is not one of ${EMBEDS_SCALING.join(', ')}`);
  const n = lambda.length;
  const kv = new Float32Array(n * 3);
  const out = new Float32Array(n);
  for (let l = 0; l < n; l++) {
    const w = lambda[l]!;
    const penalised = mode === 'K+V w/ C penalty' || mode === 'K+mean(V) w/ C penalty' ? w * (widths[l]! / 1280) : w;
    let abc: [number, number, number];
    if (mode === 'V only') abc = [1, 1, 0];
    else if (w === 0) abc = [0, 0, 0];
    else if (mode === 'K+mean(V) w/ C penalty') abc = [penalised, 1, penalised - 1];
    else abc = [penalised, penalised, 0];
    kv.set(abc, l * 3);
    out[l] = mode === 'V only' ? w : w === 0 ? 0 : 1;
  }
  return { kv, out };
}
