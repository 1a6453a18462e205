/**
 * Building blocks of the SD1.5-family UNet (and of the ControlNet, which reuses the encoder half),
 * mirroring diffusers 0.30 module by module so weight keys map one-to-one:
 *   - timestep embedding: diffusers/models/embeddings.py (get_timestep_embedding, Timesteps, TimestepEmbedding)
 *   - ResnetBlock2D, Downsample2D, Upsample2D: diffusers/models/resnet.py, downsampling.py, upsampling.py
 *   - Transformer2DModel, BasicTransformerBlock, GEGLU, Attention: diffusers/models/transformers/transformer_2d.py,
 *     attention.py, attention_processor.py (AttnProcessor, IPAdapterAttnProcessor)
 *   - CrossAttnDownBlock2D / DownBlock2D / UNetMidBlock2DCrossAttn / CrossAttnUpBlock2D / UpBlock2D:
 *     diffusers/models/unets/unet_2d_blocks.py
 *
 * All tensors are float32; shapes in comments use B batch, C channels, H/W spatial, T tokens.
 */
import type { TensorRef } from './safetensors.js';
import { type Graph, Module, attention, conv2d, f, gelu, groupNorm, layerNorm, linear, silu } from './onnx/graph.js';

/** How scaled-dot-product attention is expressed in the graph. */
export type AttentionImpl =
  /** Plain ONNX ops (MatMul, Softmax, MatMul): the reference's eager formula, materialises (B, heads, T, S). */
  | 'onnx'
  /** com.microsoft MultiHeadAttention: fused (flash attention on CPU), far less memory at 64x64 latents. */
  | 'mha';

/**
 * One adapter's image branch in one decoupled cross-attention layer (IP-Adapter). Every field but
 * the weights is a graph value fed at run time, so λ, masks, routing and scaling never rebuild.
 */
export interface IpLayer {
  /** ip_adapter.<index> of the h94 layout, used to name the initializers. */
  index: number;
  toK: TensorRef; // (C_layer, C_cross)
  toV: TensorRef; // (C_layer, C_cross)
  /** Graph value of the image tokens, (B, S, N, C_cross): S attention groups of N tokens, each with its own softmax. */
  tokens: string;
  /** Tokens this layer takes instead when `route` is true (precise weight types), same shape as `tokens`. */
  routedTokens: string;
  /** Graph value, a bool scalar: this layer attends to `routedTokens`. */
  route: string;
  /** Graph value (3,): K' = a · K, V' = b · V + c · mean over the group's tokens of V (embeds_scaling). */
  kvScale: string;
  /** Graph value of this layer's output scale, a float32 scalar (λ for 'V only', 1 for the K+V modes). */
  scale: string;
  /** Graph value (Bm, S, T or 1): each group's attention mask on this layer's query grid (Bm = 1 or B). */
  mask: string;
}

/** Options shared by the blocks of one network. */
export interface BlockOptions {
  /** GroupNorm groups of resnets and Transformer2DModel (config norm_num_groups). */
  groups: number;
  /** GroupNorm eps of the resnets (config norm_eps). Transformer2DModel always uses 1e-6. */
  eps: number;
  attention: AttentionImpl;
  /** Decoupled cross-attention for attn2 of the module named (diffusers name): one branch per adapter; undefined or [] = text only. */
  ipFor?: (attn2Name: string) => IpLayer[] | undefined;
}

// ---------------------------------------------------------------------------------------
// 1. time: Timesteps (sinusoidal) + TimestepEmbedding (linear_1, SiLU, linear_2)
// ---------------------------------------------------------------------------------------

/**
 * Frequencies of diffusers' get_timestep_embedding, computed in float32 as torch does:
 * exp(-ln(10000) * arange(half) / (half - shift)).
 */
export function timestepFrequencies(dim: number, downscaleFreqShift: number, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const out = new Float32Array(half);
  const c = Math.fround(-Math.log(maxPeriod));
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(c * i) / Math.fround(half - downscaleFreqShift));
    out[i] = Math.fround(Math.exp(exponent));
  }
  return out;
}

/** Timesteps: t (B,) float32 -> (B, dim) as [sin, cos] or, with flipSinToCos, [cos, sin]. */
export function timestepProjection(g: Graph, t: string, dim: number, flipSinToCos: boolean, freqShift: number): string {
  if (dim % 2 !== 0) throw new Error(`timestep embedding: odd dimension ${dim} is not supported`);
  const freqs = timestepFrequencies(dim, freqShift);
  const arg = g.op('Mul', [g.op('Unsqueeze', [t, g.constI([1])]), g.constF(freqs, [1, freqs.length])]); // (B, half)
  const sin = g.op('Sin', [arg]);
  const cos = g.op('Cos', [arg]);
  return g.op('Concat', flipSinToCos ? [cos, sin] : [sin, cos], { axis: 1 }); // (B, dim)
}

/** TimestepEmbedding (module time_embedding): linear_1 -> SiLU -> linear_2, (B, C0) -> (B, 4*C0). */
export function timestepEmbedding(m: Module, tEmb: string): string {
  return linear(m.child('linear_2'), silu(m.g, linear(m.child('linear_1'), tEmb)));
}

// ---------------------------------------------------------------------------------------
// Resnets and resampling
// ---------------------------------------------------------------------------------------

/**
 * ResnetBlock2D ("default" time-embedding norm): x (B, Cin, H, W), `embAct` = SiLU(temb) (B, Ct)
 * computed once by the caller (every resnet applies the same SiLU to the same temb).
 */
export function resnetBlock2D(m: Module, x: string, embAct: string | null, o: BlockOptions, outputScaleFactor = 1): string {
  const g = m.g;
  let h = silu(g, groupNorm(m.child('norm1'), x, o.groups, o.eps));
  h = conv2d(m.child('conv1'), h); // (B, Cout, H, W)
  if (embAct && m.has('time_emb_proj.weight')) {
    const t = linear(m.child('time_emb_proj'), embAct); // (B, Cout)
    h = g.op('Add', [h, g.op('Unsqueeze', [t, g.constI([2, 3])])]);
  }
  h = silu(g, groupNorm(m.child('norm2'), h, o.groups, o.eps));
  h = conv2d(m.child('conv2'), h); // dropout is identity at inference
  const shortcut = m.has('conv_shortcut.weight') ? conv2d(m.child('conv_shortcut'), x, { padding: 0 }) : x;
  const out = g.op('Add', [shortcut, h]);
  return outputScaleFactor === 1 ? out : g.op('Div', [out, g.scalar(outputScaleFactor)]);
}

/** Downsample2D with use_conv and padding 1: conv 3x3 stride 2. (B, C, H, W) -> (B, C, H/2, W/2). */
export function downsample2D(m: Module, x: string): string {
  return conv2d(m.child('conv'), x, { stride: 2, padding: 1 });
}

/**
 * Upsample2D: nearest-neighbour resize, then conv 3x3. `sizeLike` (a skip tensor (B, C', H', W'))
 * gives the output size, as diffusers passes `upsample_size` when the latent is not a multiple of
 * the overall factor; otherwise that size is exactly 2x.
 */
export function upsample2D(m: Module, x: string, sizeLike?: string): string {
  const g = m.g;
  let up: string;
  if (sizeLike) {
    const hw = g.op('Slice', [g.op('Shape', [sizeLike]), g.constI([2]), g.constI([4])]);
    const sizes = g.op('Concat', [g.op('Slice', [g.op('Shape', [x]), g.constI([0]), g.constI([2])]), hw], { axis: 0 });
    up = g.op('Resize', [x, '', '', sizes], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
  } else {
    up = g.op('Resize', [x, '', g.constF([1, 1, 2, 2], [4])], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
  }
  return conv2d(m.child('conv'), up);
}

// ---------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------

/** softmax(Q K^T / sqrt(d)) V on (B, T, C) / (B, S, C) with `heads` heads -> (B, T, C). */
export function sdpa(g: Graph, q: string, k: string, v: string, heads: number, channels: number, impl: AttentionImpl): string {
  const headDim = channels / heads;
  if (impl === 'mha') {
    return g.op('MultiHeadAttention', [q, k, v], { num_heads: heads, scale: f(1 / Math.sqrt(headDim)) }, undefined, 'com.microsoft');
  }
  return attention(g, q, k, v, heads, headDim);
}

/**
 * diffusers Attention with AttnProcessor, or IPAdapterAttnProcessor with one image branch per
 * adapter k (`ip`), each over S_k token groups g with their own softmax:
 *   out = to_out(softmax(Q K^T/√d) V + Σ_k Σ_g d_k · m_kg ⊙ softmax(Q K'_kg^T/√d) V'_kg),
 *   K'_kg = a_k · tokens_kg W'_k,  V'_kg = b_k · tokens_kg W'_v + c_k · mean_tokens(tokens_kg W'_v),
 * the same heads and query; tokens_kg are the routed tokens on a layer whose route flag is set.
 * With a = b = 1, c = 0, d = λ, one group and a mask of ones this is diffusers' formula
 * (h + λ · h_ip) bit for bit. x (B, T, C); context (B, S, Cctx) or null for self-attention.
 */
export function attentionModule(m: Module, x: string, context: string | null, heads: number, impl: AttentionImpl, ip: IpLayer[] = []): string {
  const g = m.g;
  const channels = m.dim('to_q.weight', 0);
  const ctx = context ?? x;
  const q = linear(m.child('to_q'), x); // (B, T, C)
  const k = linear(m.child('to_k'), ctx); // (B, S, C)
  const v = linear(m.child('to_v'), ctx);
  let h = sdpa(g, q, k, v, heads, channels, impl);
  for (const l of ip) h = g.op('Add', [h, imageBranch(m, q, heads, channels, impl, l)]);
  return linear(m.child('to_out').child(0), h); // to_out.1 is dropout
}

/** One adapter's term of attentionModule: Σ_g d · m_g ⊙ softmax(Q K'_g^T/√d) V'_g, (B, T, C). */
function imageBranch(m: Module, q: string, heads: number, channels: number, impl: AttentionImpl, ip: IpLayer): string {
  const g = m.g;
  const tokens = g.op('Where', [ip.route, ip.routedTokens, ip.tokens]); // (B, S, N, Cctx)
  // (B, S, N, Cctx) -> (B, S, N, C) with the adapter's (C, Cctx) weights, no bias.
  const proj = (ref: TensorRef, name: string) => linear(m, tokens, { weight: { name: `ip_adapter.${ip.index}.${name}.weight`, ref } });
  const coef = (i: number) => g.op('Gather', [ip.kvScale, g.constI([i], [])], { axis: 0 });
  const kIp = g.op('Mul', [proj(ip.toK, 'to_k_ip'), coef(0)]);
  const vRaw = proj(ip.toV, 'to_v_ip');
  const vMean = g.op('ReduceMean', [vRaw, g.constI([2])], { keepdims: 1 }); // (B, S, 1, C)
  const vIp = g.op('Add', [g.op('Mul', [vRaw, coef(1)]), g.op('Mul', [vMean, coef(2)])]);
  // Groups into the batch: Q (B, T, C) -> (B*S, T, C); K', V' (B, S, N, C) -> (B*S, N, C).
  const qShape = g.op('Shape', [q]); // [B, T, C]
  const groups = g.op('Shape', [ip.tokens], { start: 1, end: 2 }); // [S]
  const bstc = g.op('Concat', [g.op('Slice', [qShape, g.constI([0]), g.constI([1])]), groups, g.op('Slice', [qShape, g.constI([1]), g.constI([3])])], {
    axis: 0,
  }); // [B, S, T, C]
  const flat = (t: string) => g.op('Reshape', [t, g.op('Concat', [g.constI([-1]), g.op('Shape', [t], { start: 2, end: 4 })], { axis: 0 })]);
  const qs = g.op('Reshape', [
    g.op('Expand', [g.op('Unsqueeze', [q, g.constI([1])]), bstc]),
    g.op('Concat', [g.constI([-1]), g.op('Shape', [q], { start: 1, end: 3 })], { axis: 0 }),
  ]);
  const hIp = g.op('Reshape', [sdpa(g, qs, flat(kIp), flat(vIp), heads, channels, impl), bstc]); // (B, S, T, C)
  const weight = g.op('Mul', [g.op('Unsqueeze', [ip.mask, g.constI([3])]), ip.scale]); // (Bm, S, T, 1)
  return g.op('ReduceSum', [g.op('Mul', [hIp, weight]), g.constI([1])], { keepdims: 0 }); // (B, T, C)
}

/** FeedForward with GEGLU: proj (C -> 2I), hidden * gelu(gate), Linear (I -> C). */
export function feedForwardGEGLU(m: Module, x: string): string {
  const g = m.g;
  const inner = m.dim('net.0.proj.weight', 0) / 2;
  const p = linear(m.child('net').child(0).child('proj'), x); // (B, T, 2I)
  const [hidden, gate] = g.opN('Split', [p, g.constI([inner, inner])], 2, { axis: -1 }) as [string, string];
  return linear(m.child('net').child(2), g.op('Mul', [hidden, gelu(g, gate)]));
}

/** BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward, each pre-LayerNorm + residual. */
export function basicTransformerBlock(m: Module, x: string, context: string, heads: number, o: BlockOptions): string {
  const g = m.g;
  const eps = 1e-5; // norm_eps default of BasicTransformerBlock
  let h = g.op('Add', [attentionModule(m.child('attn1'), layerNorm(m.child('norm1'), x, eps), null, heads, o.attention), x]);
  const ip = o.ipFor?.(m.child('attn2').prefix);
  h = g.op('Add', [attentionModule(m.child('attn2'), layerNorm(m.child('norm2'), h, eps), context, heads, o.attention, ip), h]);
  return g.op('Add', [feedForwardGEGLU(m.child('ff'), layerNorm(m.child('norm3'), h, eps)), h]);
}

/**
 * Transformer2DModel (continuous input): GroupNorm(eps 1e-6), proj_in (1x1 conv, or linear with
 * use_linear_projection), transformer blocks on (B, HW, C), proj_out, + residual.
 */
export function transformer2D(m: Module, x: string, context: string, heads: number, o: BlockOptions): string {
  const g = m.g;
  // use_linear_projection stores proj_in/proj_out as Linear (C, C); the 1x1 conv form is (C, C, 1, 1).
  const linearProjection = m.shape('proj_in.weight').length === 2;
  const shape = g.op('Shape', [x]); // [B, C, H, W]
  const toTokens = (t: string) => g.op('Transpose', [g.op('Reshape', [t, g.constI([0, 0, -1])])], { perm: [0, 2, 1] }); // (B, HW, C)
  const n = groupNorm(m.child('norm'), x, o.groups, 1e-6);
  let h = linearProjection ? linear(m.child('proj_in'), toTokens(n)) : toTokens(conv2d(m.child('proj_in'), n, { padding: 0 }));
  let i = 0;
  while (m.has(`transformer_blocks.${i}.norm1.weight`)) {
    h = basicTransformerBlock(m.child('transformer_blocks').child(i), h, context, heads, o);
    i++;
  }
  if (i === 0) throw new Error(`${m.prefix}: no transformer_blocks found`);
  const toImage = (t: string) => g.op('Reshape', [g.op('Transpose', [t], { perm: [0, 2, 1] }), shape]); // (B, C, H, W)
  const out = linearProjection ? toImage(linear(m.child('proj_out'), h)) : conv2d(m.child('proj_out'), toImage(h), { padding: 0 });
  return g.op('Add', [out, x]);
}

// ---------------------------------------------------------------------------------------
// UNet blocks (unet_2d_blocks.py)
// ---------------------------------------------------------------------------------------

/** Description of one down/up block, derived from the config. */
export interface BlockSpec {
  type: string;
  /** Resnets in this block (layers_per_block down, layers_per_block + 1 up). */
  layers: number;
  hasAttention: boolean;
  /** Heads of its Transformer2DModels. */
  heads: number;
  /** Down blocks: has a downsampler; up blocks: has an upsampler. */
  resample: boolean;
}

/**
 * CrossAttnDownBlock2D / DownBlock2D: (resnet [, attention]) x layers [, downsampler].
 * Returns the block output and the skip tensors it contributes (one per layer, plus the downsampler's).
 */
export function downBlock(m: Module, x: string, embAct: string, context: string, spec: BlockSpec, o: BlockOptions): { out: string; skips: string[] } {
  const skips: string[] = [];
  let h = x;
  for (let l = 0; l < spec.layers; l++) {
    h = resnetBlock2D(m.child('resnets').child(l), h, embAct, o);
    if (spec.hasAttention) h = transformer2D(m.child('attentions').child(l), h, context, spec.heads, o);
    skips.push(h);
  }
  if (spec.resample) {
    h = downsample2D(m.child('downsamplers').child(0), h);
    skips.push(h);
  }
  return { out: h, skips };
}

/** UNetMidBlock2DCrossAttn: resnet, then (attention, resnet) pairs. */
export function midBlockCrossAttn(m: Module, x: string, embAct: string, context: string, heads: number, o: BlockOptions, outputScaleFactor = 1): string {
  let h = resnetBlock2D(m.child('resnets').child(0), x, embAct, o, outputScaleFactor);
  for (let i = 0; m.has(`attentions.${i}.norm.weight`); i++) {
    h = transformer2D(m.child('attentions').child(i), h, context, heads, o);
    h = resnetBlock2D(m.child('resnets').child(i + 1), h, embAct, o, outputScaleFactor);
  }
  return h;
}

/**
 * CrossAttnUpBlock2D / UpBlock2D: for each layer concat the last skip on channels, resnet
 * [, attention]; then the upsampler, sized like the next skip (`nextSkip`) when there is one.
 */
export function upBlock(m: Module, x: string, skips: string[], embAct: string, context: string, spec: BlockSpec, o: BlockOptions, nextSkip?: string): string {
  const g = m.g;
  if (skips.length !== spec.layers) throw new Error(`${m.prefix}: expected ${spec.layers} skip tensors, got ${skips.length}`);
  let h = x;
  for (let l = 0; l < spec.layers; l++) {
    const skip = skips[skips.length - 1 - l]!; // res_hidden_states_tuple[-1] first (skips.length === spec.layers)
    h = g.op('Concat', [h, skip], { axis: 1 }); // (B, C + Cskip, H, W)
    h = resnetBlock2D(m.child('resnets').child(l), h, embAct, o);
    if (spec.hasAttention) h = transformer2D(m.child('attentions').child(l), h, context, spec.heads, o);
  }
  if (spec.resample) h = upsample2D(m.child('upsamplers').child(0), h, nextSkip);
  return h;
}

export { Module };
