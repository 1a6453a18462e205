/**
 * VAE Encode: IMAGE -> LATENT for image-to-image. The image is mapped to [-1, 1]
 * (uint8 / 255 * 2 - 1), encoded to the latent distribution, and sampled as diffusers does
 * (mean + std * noise, noise from the seed: nodes/runtime/seed.ts; with `noise` torch, randn from
 * manual_seed(seed) as diffusers' latent_dist.sample(generator) draws it) or its mean taken; then
 * scaled by scaling_factor.
 *
 * With a mask (inpainting, models/inpaint.ts): the latent also carries the mask at latent size
 * (diffusers' rule: binarized at 0.5, nearest) and the latents of the image with the masked
 * area grey (the VAE's mean), which a 9-channel inpainting UNet takes as extra input channels.
 */
import { greyMasked, resampleMask } from '../models/inpaint.js';
import type { ExecContext } from '../engine/context.js';
import { vaeRuntime } from './runtime/networks.js';
import { SEED_PARAMS, seededDraws, type SeededDraws } from './runtime/seed.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue, type LatentValue, type MaskValue, type VaeValue } from './values.js';

const fr = Math.fround;

/** Encodes (B, H, W, 3) pixels in [0, 1] to scaled latents (B, 4, H/8, W/8). */
async function encodePixels(
  rgb: Float32Array,
  B: number,
  H: number,
  W: number,
  v: VaeValue,
  mode: string,
  draws: SeededDraws,
  ctx: ExecContext,
  traceAs?: [string, string],
): Promise<{ dims: LatentValue['dims']; samples: Float32Array }> {
  const vae = await vaeRuntime(ctx.models, v);
  // (B, H, W, 3) in [0, 1] -> (B, 3, H, W) in [-1, 1].
  const plane = H * W;
  const x = new Float32Array(B * 3 * plane);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) x[(b * 3 + c) * plane + i] = fr(fr(2 * rgb[(b * plane + i) * 3 + c]) - 1);
    }
  }
  if (traceAs) ctx.trace?.({ node: ctx.nodeId, name: traceAs[0], data: x, shape: [B, 3, H, W] });
  const enc = await vae.encode(x, [B, 3, H, W]);
  const dims = enc.dims as LatentValue['dims'];
  const scale = fr(vae.config.scaling_factor);
  let sample = enc.mean;
  if (mode === 'sample') {
    const noise = draws.initial('posterior', [...dims]);
    sample = enc.mean.map((m, i) => fr(m + fr(enc.std[i] * noise[i])));
  }
  const samples = sample.map((s) => fr(scale * s));
  if (traceAs) ctx.trace?.({ node: ctx.nodeId, name: traceAs[1], data: samples, shape: [...dims] });
  return { dims, samples };
}

export const vaeEncode: NodeDef = {
  type: 'vae-encode',
  title: 'VAE Encode',
  category: 'Latent',
  description:
    'Turns an image into a latent for image-to-image (width and height must be multiples of 8). "sample" draws from the latent distribution with the seed, as diffusers does; "mean" takes its mean. With a mask (e.g. Load Image\'s alpha), the sampler inpaints: it repaints only where the mask is 1.',
  inputs: [
    { name: 'pixels', type: 'IMAGE' },
    { name: 'vae', type: 'VAE' },
    { name: 'mask', type: 'MASK', optional: true },
  ],
  outputs: [{ name: 'latent', type: 'LATENT' }],
  params: [{ name: 'mode', kind: 'enum', options: ['sample', 'mean'], default: 'sample' }, ...SEED_PARAMS],
  async execute(inputs, params, ctx) {
    const img = expectValue<ImageValue>(inputs.pixels, 'IMAGE', 'pixels');
    const v = expectValue<VaeValue>(inputs.vae, 'VAE', 'vae');
    const mask = inputs.mask === undefined ? undefined : expectValue<MaskValue>(inputs.mask, 'MASK', 'mask');
    const { batch: B, width: W, height: H } = img;
    if (W % 8 || H % 8) throw new Error(`the image is ${W}x${H}; VAE Encode needs width and height that are multiples of 8 (resize or crop it first)`);
    const mode = params.mode as string;
    const draws = seededDraws(ctx, params);
    const { dims, samples } = await encodePixels(img.data, B, H, W, v, mode, draws, ctx, ['image_tensor', 'init_latents']);
    const latent: LatentValue = { kind: 'LATENT', dims, samples };
    if (mask) {
      if (mask.batch !== 1 && mask.batch !== B) throw new Error(`the mask has ${mask.batch} planes for ${B} images; give 1 mask or one per image`);
      const atImage = mask.width === W && mask.height === H ? mask.data : resampleMask(mask, W, H, false);
      const grey = greyMasked(img.data, atImage, B, W * H);
      // The mean, as ComfyUI encodes (diffusers draws a second sample; the difference is the VAE's tiny std).
      latent.maskedImage = (await encodePixels(grey, B, H, W, v, 'mean', draws, ctx)).samples;
      latent.noiseMask = { batch: mask.batch, data: resampleMask({ ...mask, width: W, height: H, data: atImage }, dims[3], dims[2], true) };
    }
    return { latent };
  },
};
