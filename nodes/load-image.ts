/** Load Image: a PNG/JPEG/WebP file -> IMAGE (RGB) and MASK (1 - alpha). */
import { loadImageRGBA } from '../models/image-preprocess.js';
import type { NodeDef } from './types.js';
import type { ImageValue, MaskValue } from './values.js';

export const loadImage: NodeDef = {
  type: 'load-image',
  title: 'Load Image',
  category: 'Image',
  description: 'Reads an image file (relative paths are looked up next to the workflow file). The mask is 1 where the image is transparent, as in ComfyUI.',
  inputs: [],
  outputs: [
    { name: 'image', type: 'IMAGE' },
    { name: 'mask', type: 'MASK' },
  ],
  params: [{ name: 'image', kind: 'image', default: '' }],
  async execute(_inputs, params) {
    const rgba = await loadImageRGBA(params.image as string);
    const n = rgba.width * rgba.height;
    const rgb = new Float32Array(n * 3);
    const mask = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      // float32(u / 255), as numpy's astype(float32) / 255 gives.
      rgb[i * 3] = rgba.data[i * 4] / 255;
      rgb[i * 3 + 1] = rgba.data[i * 4 + 1] / 255;
      rgb[i * 3 + 2] = rgba.data[i * 4 + 2] / 255;
      mask[i] = 1 - rgba.data[i * 4 + 3] / 255;
    }
    const image: ImageValue = { kind: 'IMAGE', batch: 1, width: rgba.width, height: rgba.height, data: rgb };
    const m: MaskValue = { kind: 'MASK', batch: 1, width: rgba.width, height: rgba.height, data: mask };
    return { image, mask: m };
  },
};
