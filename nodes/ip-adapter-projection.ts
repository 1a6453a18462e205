/**
 * IP-Adapter Projection: IMAGE_EMBEDS -> IP_TOKENS, the adapter's trainable projection
 * (base: Linear -> 4 tokens -> LayerNorm; Plus: Perceiver resampler -> 16 tokens; full-face:
 * Linear -> GELU -> Linear -> LayerNorm on each of the encoder's 257 penultimate tokens).
 *
 * Several images (a batch, or the extra `embeds_2..4` inputs): "concat" puts each image's
 * tokens one after the other (N tokens per image, as diffusers does for a list of images);
 * "average" averages the encoder outputs first and projects once (N tokens).
 * Unconditional tokens for guidance follow the reference: base = projection of an all-zero
 * image_embeds; Plus and full-face = projection of the encoder's states for all-zero pixels; one copy per image.
 */
import { checkAdapterMatchesVision } from '../models/ip-adapter.js';
import { clipVisionRuntime, projectorRuntime } from './runtime/networks.js';
import type { ModelStore } from '../engine/model-store.js';
import type { NodeDef } from './types.js';
import { expectValue, type ClipVisionValue, type ImageEmbedsValue, type IpAdapterValue, type IpTokensValue } from './values.js';

const EXTRA = ['embeds_2', 'embeds_3', 'embeds_4'];

/** Vision penultimate states of all-zero pixels (1, T, Dh), cached per encoder. */
async function zeroImageStates(store: ModelStore, cv: ClipVisionValue): Promise<{ data: Float32Array; dims: number[] }> {
  return store.get(`clip-vision-zeros|${store.fileKey(cv.path)}`, async () => {
    const vision = await clipVisionRuntime(store, cv.path);
    return (await vision.encode(vision.zeroPixels(1))).penultimate;
  });
}

function mean(rows: Float32Array, n: number): Float32Array {
  const len = rows.length / n;
  const out = new Float32Array(len);
  for (let i = 0; i < n; i++) for (let j = 0; j < len; j++) out[j] += rows[i * len + j];
  for (let j = 0; j < len; j++) out[j] /= n;
  return out;
}

export const ipAdapterProjection: NodeDef = {
  type: 'ip-adapter-projection',
  title: 'IP-Adapter Projection',
  category: 'IP-Adapter',
  description:
    'Projects image embeddings into image tokens for the decoupled cross-attention. Several images: "concat" keeps every image\'s tokens (diffusers\' behaviour), "average" averages the embeddings first.',
  inputs: [
    { name: 'ip_adapter', type: 'IP_ADAPTER' },
    { name: 'embeds', type: 'IMAGE_EMBEDS' },
    ...EXTRA.map((name) => ({ name, type: 'IMAGE_EMBEDS' as const, optional: true })),
  ],
  outputs: [{ name: 'tokens', type: 'IP_TOKENS' }],
  params: [{ name: 'combine', label: 'several images', kind: 'enum', options: ['concat', 'average'], default: 'concat' }],
  async execute(inputs, params, ctx) {
    const ad = expectValue<IpAdapterValue>(inputs.ip_adapter, 'IP_ADAPTER', 'ip_adapter');
    const all = ['embeds', ...EXTRA].filter((k) => inputs[k] !== undefined).map((k) => expectValue<ImageEmbedsValue>(inputs[k], 'IMAGE_EMBEDS', k));
    const first = all[0];
    for (const e of all) {
      if (e.vision.path !== first.vision.path) throw new Error('all image embeddings must come from the same CLIP vision model');
    }
    const vision = await clipVisionRuntime(ctx.models, first.vision.path);
    const proj = await projectorRuntime(ctx.models, ad.path);
    checkAdapterMatchesVision(proj.adapter, vision.config, vision.weightsFile);
    const base = ad.adapterKind === 'base';
    // Rows of the projection input: image_embeds (n, D) or penultimate states (n, T, Dh).
    const rowLen = base ? first.embedDim : first.hiddenTokens * first.hiddenDim;
    let n = all.reduce((a, e) => a + e.count, 0);
    let x: Float32Array = new Float32Array(n * rowLen);
    let off = 0;
    for (const e of all) {
      const src = base ? e.imageEmbeds : e.penultimate;
      if (!src) throw new Error(`${vision.weightsFile} has no visual projection, so it gives no image_embeds for a base IP-Adapter`);
      x.set(src, off);
      off += src.length;
    }
    if (params.combine === 'average' && n > 1) {
      x = mean(x, n);
      n = 1;
    }
    const dims = base ? [n, first.embedDim] : [n, first.hiddenTokens, first.hiddenDim];
    const cond = await proj.project({ data: x, dims }); // (n, N, C)
    const uncondInput = base ? { data: new Float32Array(first.embedDim), dims: [1, first.embedDim] } : await zeroImageStates(ctx.models, first.vision);
    const uncondOne = await proj.project(uncondInput); // (1, N, C)
    const N = cond.dims[1];
    const C = cond.dims[2];
    const uncond = new Float32Array(n * N * C);
    for (let i = 0; i < n; i++) uncond.set(uncondOne.data, i * N * C);
    if (ctx.trace) {
      // What the projection was given, per image: image_embeds or penultimate states, and the unconditional input.
      const uncondIn = new Float32Array(n * uncondInput.data.length);
      for (let i = 0; i < n; i++) uncondIn.set(uncondInput.data, i * uncondInput.data.length);
      ctx.trace({ node: ctx.nodeId, name: 'input', data: x, shape: dims });
      ctx.trace({ node: ctx.nodeId, name: 'input_uncond', data: uncondIn, shape: dims });
    }
    ctx.trace?.({ node: ctx.nodeId, name: 'ip_tokens', data: cond.data, shape: [n, N, C] });
    ctx.trace?.({ node: ctx.nodeId, name: 'ip_tokens_uncond', data: uncond, shape: [n, N, C] });
    const v: IpTokensValue = { kind: 'IP_TOKENS', adapterPath: ad.path, tokens: n * N, dim: C, cond: cond.data, uncond };
    return { tokens: v };
  },
};
