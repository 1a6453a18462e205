/**
 * VAE Encode: IMAGE -> LATENT for image-to-image. The image is mapped to [-1, 1]
 * (uint8 / 255 * 2 - 1), encoded to the latent distribution, and sampled as diffusers does
 * (mean + std * noise, noise from the seed) or its mean taken; then scaled by scaling_factor.
 */
import { vaeRuntime } from '../engine/runtime.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue, type LatentValue, type VaeValue } from './values.js';

const fr = Math.fround;

export const vaeEncode: NodeDef = {
  type: 'vae-encode',
  title: 'VAE Encode',
  category: 'Latent',
  description: 'Turns an image into a latent for image-to-image (width and height must be multiples of 8). "sample" draws from the latent distribution with the seed, as diffusers does; "mean" takes its mean.',
  inputs: [
    { name: 'pixels', type: 'IMAGE' },
    { name: 'vae', type: 'VAE' },
  ],
  outputs: [{ name: 'latent', type: 'LATENT' }],
  params: [
    { name: 'mode', kind: 'enum', options: ['sample', 'mean'], default: 'sample' },
    { name: 'seed', kind: 'number', default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, step: 1, integer: true, widget: 'seed' },
  ],
  async execute(inputs, params, ctx) {
    const img = expectValue<ImageValue>(inputs.pixels, 'IMAGE', 'pixels');
    const v = expectValue<VaeValue>(inputs.vae, 'VAE', 'vae');
    const { batch: B, width: W, height: H } = img;
    if (W % 8 || H % 8) throw new Error(`the image is ${W}x${H}; VAE Encode needs width and height that are multiples of 8 (resize or crop it first)`);
    const vae = await vaeRuntime(ctx.models, v);
    // (B, H, W, 3) in [0, 1] -> (B, 3, H, W) in [-1, 1].
    const plane = H * W;
    const x = new Float32Array(B * 3 * plane);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < plane; i++) {
        for (let c = 0; c < 3; c++) x[(b * 3 + c) * plane + i] = fr(fr(2 * img.data[(b * plane + i) * 3 + c]) - 1);
      }
    }
    ctx.trace?.({ node: ctx.nodeId, name: 'image_tensor', data: x, shape: [B, 3, H, W] });
    const enc = await vae.encode(x, [B, 3, H, W]);
    const dims = enc.dims as LatentValue['dims'];
    const scale = fr(vae.config.scaling_factor);
    let sample = enc.mean;
    if (params.mode === 'sample') {
      const noise = ctx.noise({ node: ctx.nodeId, purpose: 'posterior', seed: params.seed as number, shape: [...dims] });
      sample = enc.mean.map((m, i) => fr(m + fr(enc.std[i] * noise[i])));
    }
    const samples = sample.map((s) => fr(scale * s));
    ctx.trace?.({ node: ctx.nodeId, name: 'init_latents', data: samples, shape: [...dims] });
    const latent: LatentValue = { kind: 'LATENT', dims, samples };
    return { latent };
  },
};
