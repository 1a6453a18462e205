/** VAE Decode: LATENT -> IMAGE, clamp(decode(latents / scaling_factor) / 2 + 0.5, 0, 1). */
import { vaeRuntime } from './runtime/networks.js';
import type { NodeDef } from './types.js';
import { nonFiniteCount } from '../models/weight-sanity.js';
import { expectValue, type ImageValue, type LatentValue, type VaeValue } from './values.js';

/** (B, 3, H, W) planar -> (B, H, W, 3) interleaved. */
export function nchwToNhwc(x: Float32Array, B: number, H: number, W: number): Float32Array {
  const out = new Float32Array(x.length);
  const plane = H * W;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < 3; c++) {
      const src = (b * 3 + c) * plane;
      for (let i = 0; i < plane; i++) out[(b * plane + i) * 3 + c] = x[src + i];
    }
  }
  return out;
}

export const vaeDecode: NodeDef = {
  type: 'vae-decode',
  title: 'VAE Decode',
  category: 'Latent',
  description: "Turns the sampler's latent into an image with the VAE decoder.",
  inputs: [
    { name: 'samples', type: 'LATENT' },
    { name: 'vae', type: 'VAE' },
  ],
  outputs: [{ name: 'image', type: 'IMAGE' }],
  params: [],
  async execute(inputs, _params, ctx) {
    const lat = expectValue<LatentValue>(inputs.samples, 'LATENT', 'samples');
    const vae = await vaeRuntime(ctx.models, expectValue<VaeValue>(inputs.vae, 'VAE', 'vae'));
    const out = await vae.decode(lat.samples, lat.dims);
    const [B, , H, W] = out.dims;
    const bad = nonFiniteCount(out.image01);
    if (bad) {
      const all = bad === out.image01.length;
      ctx.log(
        'warn',
        `${vaeDecode.title} (${ctx.nodeId}): ${all ? 'every value of the decoded image is' : `${bad} of ${out.image01.length} values of the decoded image are`} NaN or infinite (shown black): a model upstream (the VAE, the UNet, a LoRA or an adapter) has NaN / Inf weights or overflowed; see the loader nodes' warnings`,
      );
    }
    const image: ImageValue = { kind: 'IMAGE', batch: B, width: W, height: H, data: nchwToNhwc(out.image01, B, H, W) };
    return { image };
  },
};
