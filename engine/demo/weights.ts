/**
 * Parameter lists (diffusers / transformers names and shapes) of the networks the demo model
 * set needs, and a deterministic random initialisation. The lists are checked against the
 * reference fixtures' files in engine/demo/demo.test.ts, so the demo files have the real layouts.
 * The UNet's and the VAE's lists come from models/unet.ts (unetParameterShapes) and models/vae.ts
 * (vaeParameterShapes), the CLIP towers' and the IP-Adapter's from models/shape-check.ts (which checks
 * loaded files against them).
 */
import { encodeSafetensors, type TensorToWrite } from '../../models/safetensors.js';
import type { Shapes } from '../../models/shape-check.js';
import { philoxNormal } from '../rng.js';

export type { Shapes } from '../../models/shape-check.js';
export { clipTextShapes, clipVisionShapes, ipAdapterShapes } from '../../models/shape-check.js';

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
