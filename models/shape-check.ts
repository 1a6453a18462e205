/**
 * What each network's tensors must look like, checked before its graph is built: a tensor with the
 * right byte count but the wrong shape (a transposed or damaged file, or one made for another model)
 * would otherwise reach ONNX Runtime and fail there naming neither the file nor the tensor (issue 13).
 *
 * The builders read their widths from the weights, so the expected shapes come from the network's
 * config: the UNet's, VAE's and ControlNet's parameter lists live beside their builders
 * (unetParameterShapes, vaeParameterShapes, controlNetParameterShapes); the CLIP towers' and the
 * IP-Adapter's are here (the demo model set writes its files from the same lists).
 * A tensor counts as fitting when its shape is the expected one up to trailing 1s beyond the second
 * axis (a [C, C, 1, 1] conv weight where a [C, C] linear is read: the LDM VAE's attention, proj_in).
 */
import * as path from 'node:path';
import type { TensorRef } from './safetensors.js';
import { crossAttnLayers, type UNetConfig } from './unet-config.js';

export type Shapes = Map<string, number[]>;

/** A weight map as the builders read it: canonical name -> the file's tensor. */
interface Weights {
  has(name: string): boolean;
  get(name: string): TensorRef;
}

const squeeze = (s: readonly number[]) => {
  const t = [...s];
  while (t.length > 2 && t[t.length - 1] === 1) t.pop();
  return t.join(',');
};

/** The sentence for tensors that do not have their expected shapes (null when all fit). */
export function shapeMismatch(network: string, w: Weights, expected: Shapes): string | null {
  const bad: { name: string; ref: TensorRef; want: number[] }[] = [];
  for (const [name, want] of expected) {
    if (!w.has(name)) continue; // a missing tensor is the builder's to name (some are optional)
    const ref = w.get(name);
    if (squeeze(ref.shape) !== squeeze(want)) bad.push({ name, ref, want });
  }
  const first = bad[0];
  if (!first) return null;
  const alias = first.ref.key !== first.name ? ` (${first.name})` : '';
  const more = bad.length > 1 ? ` (and ${bad.length - 1} more tensor${bad.length > 2 ? 's' : ''} that do not fit)` : '';
  return (
    `${path.basename(first.ref.file)}: tensor "${first.ref.key}"${alias} has shape [${first.ref.shape.join(', ')}], but the ${network} needs ` +
    `[${first.want.join(', ')}] there${more}; the file is damaged or made for another model`
  );
}

/**
 * Runs `load`; an error whose message does not name `file` (a builder's or a reader's message names the tensor
 * only, e.g. "up_blocks.2.attentions.0: no transformer_blocks found") gets `<file name>: ` in front, so a damaged
 * file is always named. Found by the fuzz run (scripts/fuzz.ts).
 */
export function namingFile<T>(file: string, load: () => T): T {
  const name = path.basename(file);
  const named = (e: unknown) => {
    const msg = (e as Error)?.message ?? String(e);
    if (msg.includes(name)) return e;
    const out = new Error(`${name}: ${msg}`);
    out.stack = (e as Error)?.stack;
    return out;
  };
  try {
    const v = load();
    return (v instanceof Promise ? v.catch((e: unknown) => Promise.reject(named(e))) : v) as T;
  } catch (e) {
    throw named(e);
  }
}

/** The file a weight map reads `probe` from (to name it in errors), or `fallback`. */
export function weightsFileOf(w: Weights, probe: string, fallback: string): string {
  try {
    return w.has(probe) ? w.get(probe).file : fallback;
  } catch {
    return fallback;
  }
}

/** Throws the shapeMismatch sentence when a tensor of `w` does not have its expected shape. */
export function checkShapes(network: string, w: Weights, expected: Shapes): void {
  const why = shapeMismatch(network, w, expected);
  if (why) throw new Error(why);
}

// ---------------------------------------------------------------------------------------
// Parameter lists (transformers / h94 names and shapes)
// ---------------------------------------------------------------------------------------

/** transformers CLIP encoder layers (shared by the text and vision towers). */
function clipEncoder(p: Shapes, prefix: string, layers: number, C: number, inner: number): void {
  for (let i = 0; i < layers; i++) {
    const l = `${prefix}.encoder.layers.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      p.set(`${l}.self_attn.${proj}.weight`, [C, C]);
      p.set(`${l}.self_attn.${proj}.bias`, [C]);
    }
    p.set(`${l}.layer_norm1.weight`, [C]);
    p.set(`${l}.layer_norm1.bias`, [C]);
    p.set(`${l}.mlp.fc1.weight`, [inner, C]);
    p.set(`${l}.mlp.fc1.bias`, [inner]);
    p.set(`${l}.mlp.fc2.weight`, [C, inner]);
    p.set(`${l}.mlp.fc2.bias`, [C]);
    p.set(`${l}.layer_norm2.weight`, [C]);
    p.set(`${l}.layer_norm2.bias`, [C]);
  }
}

/** CLIPTextModel (transformers names). */
export function clipTextShapes(c: { vocab: number; positions: number; hidden: number; inner: number; layers: number }): Shapes {
  const p: Shapes = new Map();
  p.set('text_model.embeddings.token_embedding.weight', [c.vocab, c.hidden]);
  p.set('text_model.embeddings.position_embedding.weight', [c.positions, c.hidden]);
  clipEncoder(p, 'text_model', c.layers, c.hidden, c.inner);
  p.set('text_model.final_layer_norm.weight', [c.hidden]);
  p.set('text_model.final_layer_norm.bias', [c.hidden]);
  return p;
}

/** CLIPVisionModelWithProjection (transformers names, including its "pre_layrnorm" spelling); no projection when `projection` is 0. */
export function clipVisionShapes(c: {
  hidden: number;
  inner: number;
  layers: number;
  imageSize: number;
  patch: number;
  projection: number;
  channels?: number;
}): Shapes {
  const p: Shapes = new Map();
  const C = c.hidden;
  const grid = Math.floor(c.imageSize / c.patch);
  p.set('vision_model.embeddings.class_embedding', [C]);
  p.set('vision_model.embeddings.patch_embedding.weight', [C, c.channels ?? 3, c.patch, c.patch]);
  p.set('vision_model.embeddings.position_embedding.weight', [grid * grid + 1, C]);
  p.set('vision_model.pre_layrnorm.weight', [C]);
  p.set('vision_model.pre_layrnorm.bias', [C]);
  clipEncoder(p, 'vision_model', c.layers, C, c.inner);
  p.set('vision_model.post_layernorm.weight', [C]);
  p.set('vision_model.post_layernorm.bias', [C]);
  if (c.projection) p.set('visual_projection.weight', [c.projection, C]);
  return p;
}

/** IP-Adapter (h94 layout, base "ImageProjModel"): layer hidden sizes by processor index. */
export function ipAdapterShapes(c: { embedDim: number; crossDim: number; tokens: number; layers: { index: number; hidden: number }[] }): Shapes {
  const p = imageProjShapes({ kind: 'base', numTokens: c.tokens, embedDim: c.embedDim, crossAttentionDim: c.crossDim, resampler: null }, 'image_proj.');
  for (const l of c.layers) {
    p.set(`ip_adapter.${l.index}.to_k_ip.weight`, [l.hidden, c.crossDim]);
    p.set(`ip_adapter.${l.index}.to_v_ip.weight`, [l.hidden, c.crossDim]);
  }
  return p;
}

/** What models/ip-adapter.ts IpAdapterModel read from an adapter's projection (its kind and widths). */
export interface ImageProjLayout {
  kind: 'base' | 'plus' | 'full-face';
  numTokens: number;
  embedDim: number;
  crossAttentionDim: number;
  resampler: { dim: number; depth: number; heads: number; dimHead: number; numQueries: number; ffInner: number; outputDim: number } | null;
}

/**
 * The image projection's tensors (under `prefix`: 'image_proj.' in an adapter file). The full-face MLP's
 * hidden width is its first linear's rows (`mlpHidden`; the embedding width when not given).
 */
export function imageProjShapes(a: ImageProjLayout, prefix = '', mlpHidden = a.embedDim): Shapes {
  const p: Shapes = new Map();
  const C = a.crossAttentionDim;
  const lin = (n: string, o: number, i: number, bias = true) => {
    p.set(`${prefix}${n}.weight`, [o, i]);
    if (bias) p.set(`${prefix}${n}.bias`, [o]);
  };
  const norm = (n: string, c: number) => {
    p.set(`${prefix}${n}.weight`, [c]);
    p.set(`${prefix}${n}.bias`, [c]);
  };
  if (a.kind === 'base') {
    lin('proj', a.numTokens * C, a.embedDim);
    norm('norm', C);
  } else if (a.kind === 'full-face') {
    lin('proj.0', mlpHidden, a.embedDim);
    lin('proj.2', C, mlpHidden);
    norm('proj.3', C);
  } else if (a.resampler) {
    const r = a.resampler;
    const inner = r.heads * r.dimHead;
    p.set(`${prefix}latents`, [1, r.numQueries, r.dim]);
    lin('proj_in', r.dim, a.embedDim);
    lin('proj_out', r.outputDim, r.dim);
    norm('norm_out', r.outputDim);
    for (let d = 0; d < r.depth; d++) {
      norm(`layers.${d}.0.norm1`, r.dim);
      norm(`layers.${d}.0.norm2`, r.dim);
      lin(`layers.${d}.0.to_q`, inner, r.dim, false);
      lin(`layers.${d}.0.to_kv`, 2 * inner, r.dim, false);
      lin(`layers.${d}.0.to_out`, r.dim, inner, false);
      norm(`layers.${d}.1.0`, r.dim);
      lin(`layers.${d}.1.1`, r.ffInner, r.dim, false);
      lin(`layers.${d}.1.3`, r.dim, r.ffInner, false);
    }
  }
  return p;
}

/** Checks an adapter's image projection (models/ip-adapter.ts IpAdapterModel: its layout and its file's tensors). */
export function checkImageProj(a: ImageProjLayout & { weights: Weights }): void {
  const hidden = a.kind === 'full-face' && a.weights.has('image_proj.proj.0.weight') ? a.weights.get('image_proj.proj.0.weight').shape[0] : undefined;
  checkShapes('IP-Adapter image projection', a.weights, imageProjShapes(a, 'image_proj.', hidden));
}

/** The IP-Adapter's to_k_ip / to_v_ip for the cross-attention layers of a UNet (processor index -> (hidden, cross width)). */
export function ipLayerShapes(cfg: UNetConfig, crossDim: number): Shapes {
  const p: Shapes = new Map();
  for (const l of crossAttnLayers(cfg)) {
    p.set(`${l.index}.to_k_ip`, [l.hiddenSize, crossDim]);
    p.set(`${l.index}.to_v_ip`, [l.hiddenSize, crossDim]);
  }
  return p;
}

/**
 * Checks an IP-Adapter's layers against the UNet it is applied to (`layers`: processor index ->
 * to_k_ip / to_v_ip, as IpAdapterModel holds them): a layer the UNet has no cross-attention
 * processor for, or one of another width, is refused naming the tensor and both shapes.
 */
export function checkIpAdapterLayers(
  layers: Map<number, { to_k_ip: TensorRef; to_v_ip: TensorRef }>,
  crossDim: number,
  cfg: UNetConfig,
  unetFile: string,
): void {
  const expected = ipLayerShapes(cfg, crossDim);
  const refs = new Map<string, TensorRef>();
  for (const [i, l] of layers) {
    refs.set(`${i}.to_k_ip`, l.to_k_ip);
    refs.set(`${i}.to_v_ip`, l.to_v_ip);
    if (!expected.has(`${i}.to_k_ip`)) {
      throw new Error(
        `${path.basename(l.to_k_ip.file)}: tensor "${l.to_k_ip.key}" is for cross-attention layer ${i}, but the UNet of ${path.basename(unetFile)} has ${expected.size / 2} (0 to ${expected.size / 2 - 1}); the adapter is made for another model`,
      );
    }
  }
  checkShapes(`UNet of ${path.basename(unetFile)}`, { has: (k) => refs.has(k), get: (k) => refs.get(k)! }, expected);
}
