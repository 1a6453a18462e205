/**
 * Image Batch: IMAGE x (2..4) -> one IMAGE batch (ComfyUI's ImageBatch, chainable), so an Encoder or CLIP
 * Vision Encode gets several reference images at once. Images of another size than the first are
 * resized to it (cover and centre-crop, as ComfyUI's common_upscale with crop "center"; Pillow bilinear on
 * 8-bit here); images of the first's size are taken as they are, bit for bit.
 */
import { resizeTo } from '../models/preprocessors/resize.js';
import { imageToPixels, pixelsToImage } from './runtime/pixels.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue } from './values.js';

const INPUTS = ['image_1', 'image_2', 'image_3', 'image_4'];

export const imageBatch: NodeDef = {
  type: 'image-batch',
  title: 'Image Batch',
  category: 'Image',
  description:
    'Puts images into one batch (ComfyUI\'s ImageBatch), e.g. several reference images for one IP-Adapter Encoder (its "image weights" then give each its own weight). Images of another size than image_1 are resized to it (cover, centre crop). Chain nodes for more than four.',
  inputs: INPUTS.map((name, i) => ({ name, type: 'IMAGE' as const, ...(i > 1 ? { optional: true } : {}) })),
  outputs: [{ name: 'image', type: 'IMAGE' }],
  params: [],
  async execute(inputs) {
    const all = INPUTS.filter((k) => inputs[k] !== undefined).map((k) => expectValue<ImageValue>(inputs[k], 'IMAGE', k));
    const first = all[0]!;
    const { width, height } = first;
    if (all.every((im) => im.width === width && im.height === height)) {
      const data = new Float32Array(all.reduce((a, im) => a + im.data.length, 0));
      let off = 0;
      for (const im of all) {
        data.set(im.data, off);
        off += im.data.length;
      }
      const out: ImageValue = { kind: 'IMAGE', batch: all.reduce((a, im) => a + im.batch, 0), width, height, data };
      return { image: out };
    }
    const px = all.flatMap((im) =>
      Array.from({ length: im.batch }, (_, b) => resizeTo(imageToPixels(im, b), width, height, { mode: 'crop', filter: 'bilinear' })),
    );
    return { image: pixelsToImage(px) };
  },
};
