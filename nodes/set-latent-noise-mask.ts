/**
 * Set Latent Noise Mask: LATENT + MASK -> LATENT that the sampler inpaints, changing only where
 * the mask is 1 (models/inpaint.ts has the per-step rule). The mask is resampled to the latent's
 * size: "binarize" is diffusers' rule (threshold 0.5, nearest), off keeps soft edges (bilinear,
 * as ComfyUI's node of the same name does).
 *
 * For a 9-channel inpainting UNet, prefer VAE Encode's mask input: it also encodes the image
 * with the masked area grey; here the latent itself stands in for it (ComfyUI's fallback).
 */
import { resampleMask } from '../models/inpaint.js';
import type { NodeDef } from './types.js';
import { expectValue, type LatentValue, type MaskValue } from './values.js';

export const setLatentNoiseMask: NodeDef = {
  type: 'set-latent-noise-mask',
  title: 'Set Latent Noise Mask',
  category: 'Latent',
  description:
    'Inpainting: the sampler repaints only where the mask is 1 (white, or transparent in Load Image) and keeps the rest of the latent. The mask is scaled to the latent size.',
  inputs: [
    { name: 'samples', type: 'LATENT' },
    { name: 'mask', type: 'MASK' },
  ],
  outputs: [{ name: 'latent', type: 'LATENT' }],
  params: [{ name: 'binarize', label: 'binarize (threshold 0.5)', kind: 'boolean', default: true }],
  async execute(inputs, params) {
    const latent = expectValue<LatentValue>(inputs.samples, 'LATENT', 'samples');
    const mask = expectValue<MaskValue>(inputs.mask, 'MASK', 'mask');
    const [B, , h, w] = latent.dims;
    if (mask.batch !== 1 && mask.batch !== B) throw new Error(`the mask has ${mask.batch} planes for ${B} latents; give 1 mask or one per latent`);
    const out: LatentValue = { ...latent, noiseMask: { batch: mask.batch, data: resampleMask(mask, w, h, params.binarize !== false) } };
    return { latent: out };
  },
};
