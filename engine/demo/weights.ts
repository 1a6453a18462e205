/**
 * Parameter lists (diffusers / transformers names and shapes) of the networks the demo model
 * set needs, and a deterministic random initialisation. The lists are checked against the
 * reference fixtures' files in engine/demo/demo.test.ts, so the demo files have the real layouts.
 * The UNet's and the VAE's lists come from models/unet.ts (unetParameterShapes) and models/vae.ts
 * (vaeParameterShapes).
 */
import { encodeSafetensors, type TensorToWrite } from '../../models/safetensors.js';
import { philoxNormal } from '../rng.js';

export type Shapes = Map<string, number[]>;

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

/** CLIPVisionModelWithProjection (transformers names, including its "pre_layrnorm" spelling). */
export function clipVisionShapes(c: { hidden: number; inner: number; layers: number; imageSize: number; patch: number; projection: number }): Shapes {
  const p: Shapes = new Map();
  const C = c.hidden;
  const grid = c.imageSize / c.patch;
  p.set('vision_model.embeddings.class_embedding', [C]);
  p.set('vision_model.embeddings.patch_embedding.weight', [C, 3, c.patch, c.patch]);
  p.set('vision_model.embeddings.position_embedding.weight', [grid * grid + 1, C]);
  p.set('vision_model.pre_layrnorm.weight', [C]);
  p.set('vision_model.pre_layrnorm.bias', [C]);
  clipEncoder(p, 'vision_model', c.layers, C, c.inner);
  p.set('vision_model.post_layernorm.weight', [C]);
  p.set('vision_model.post_layernorm.bias', [C]);
  p.set('visual_projection.weight', [c.projection, C]);
  return p;
}

/** IP-Adapter (h94 layout, base "ImageProjModel"): layer hidden sizes by processor index. */
export function ipAdapterShapes(c: { embedDim: number; crossDim: number; tokens: number; layers: { index: number; hidden: number }[] }): Shapes {
  const p: Shapes = new Map();
  p.set('image_proj.proj.weight', [c.tokens * c.crossDim, c.embedDim]);
  p.set('image_proj.proj.bias', [c.tokens * c.crossDim]);
  p.set('image_proj.norm.weight', [c.crossDim]);
  p.set('image_proj.norm.bias', [c.crossDim]);
  for (const l of c.layers) {
    p.set(`ip_adapter.${l.index}.to_k_ip.weight`, [l.hidden, c.crossDim]);
    p.set(`ip_adapter.${l.index}.to_v_ip.weight`, [l.hidden, c.crossDim]);
  }
  return p;
}

/**
 * A VAE parameter list (diffusers names, models/vae.ts vaeParameterShapes) in the original LDM layout
 * of a standalone VAE file without prefix (vae-ft-mse-840000-ema-pruned.safetensors): encoder.down.N.block.M,
 * decoder.up numbered in reverse, mid.block_1/attn_1/block_2, nin_shortcut, norm_out, and the mid
 * attention's q/k/v/proj_out as [C, C, 1, 1] conv weights. models/keymaps/ldm-vae.ts reads it back.
 */
export function ldmVaeShapes(diffusers: Shapes): Shapes {
  let ups = 0;
  for (const k of diffusers.keys()) {
    const m = /^decoder\.up_blocks\.(\d+)\./.exec(k);
    if (m) ups = Math.max(ups, Number(m[1]) + 1);
  }
  const attn: Record<string, string> = { group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out' };
  const out: Shapes = new Map();
  for (const [k, shape] of diffusers) {
    const name = k
      .replace(/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\./, 'encoder.down.$1.block.$2.')
      .replace(/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\./, 'encoder.down.$1.downsample.')
      .replace(/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\./, (_, i: string, j: string) => `decoder.up.${ups - 1 - Number(i)}.block.${j}.`)
      .replace(/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\./, (_, i: string) => `decoder.up.${ups - 1 - Number(i)}.upsample.`)
      .replace(/\.mid_block\.resnets\.(\d)\./, (_, r: string) => `.mid.block_${Number(r) + 1}.`)
      .replace(/\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\./, (_, l: string) => `.mid.attn_1.${attn[l]}.`)
      .replace('.conv_shortcut.', '.nin_shortcut.')
      .replace(/^(encoder|decoder)\.conv_norm_out\./, '$1.norm_out.');
    out.set(name, /\.attn_1\.(q|k|v|proj_out)\.weight$/.test(name) ? [...shape, 1, 1] : shape);
  }
  return out;
}

/** A stable 32-bit hash of a string (FNV-1a), so each tensor has its own noise stream. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

const isNorm = (name: string) => /(norm|layrnorm)[^.]*\.weight$/.test(name);

/**
 * Deterministic random weights: norm scales 1 + 0.1 N, biases 0.02 N, embeddings 0.5 N, other
 * weights N(0, 1/fan_in) (variance-preserving, so activations stay finite through the network).
 */
export function randomTensors(shapes: Shapes, seed: number): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, d) => a * d, 1);
    const z = philoxNormal(seed, fnv1a(name), n); // one Philox stream per tensor name
    let scale: number;
    let offset = 0;
    if (isNorm(name) && shape.length === 1) {
      scale = 0.1;
      offset = 1;
    } else if (name.endsWith('.bias')) scale = 0.02;
    else if (/embedding|class_embedding/.test(name)) scale = 0.5;
    else scale = 1 / Math.sqrt(shape.slice(1).reduce((a, d) => a * d, 1));
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = offset + scale * z[i];
    out[name] = { dtype: 'F32', shape, data };
  }
  return out;
}

/** Random safetensors bytes for a parameter list. */
export function randomSafetensors(shapes: Shapes, seed: number, metadata?: Record<string, string>): Buffer {
  return encodeSafetensors(randomTensors(shapes, seed), metadata);
}
