/**
 * Load Image: a PNG/JPEG/WebP file -> IMAGE (RGB) and MASK. The MASK is 1 - alpha (ComfyUI's
 * rule: transparent pixels are repainted), or, when the optional `mask` param names a mask image
 * (the editor's painted mask), that image: white = 1 = repaint, black = 0 = keep.
 */
import { loadImageRGBA, type RgbaImage } from '../models/image-preprocess.js';
import { resampleMask } from '../models/inpaint.js';
import type { NodeDef } from './types.js';
import type { ImageValue, MaskValue } from './values.js';

/**
 * A mask image as a plane in [0, 1]: PIL's convert('L') luma ((19595 R + 38470 G + 7471 B +
 * 2^15) >> 16, so white is exactly 1), times alpha, so white strokes on a transparent layer work
 * as well as white on black. Resized bilinearly (soft edges kept) when its size differs.
 */
export function maskFromImage(img: RgbaImage, width: number, height: number): Float32Array {
  const n = img.width * img.height;
  const plane = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const d = img.data;
    const luma = (d[i * 4] * 19595 + d[i * 4 + 1] * 38470 + d[i * 4 + 2] * 7471 + 0x8000) >> 16;
    const a = d[i * 4 + 3];
    plane[i] = a === 255 ? luma / 255 : (luma * a) / (255 * 255);
  }
  if (img.width === width && img.height === height) return plane;
  return resampleMask({ batch: 1, width: img.width, height: img.height, data: plane }, width, height, false);
}

export const loadImage: NodeDef = {
  type: 'load-image',
  title: 'Load Image',
  category: 'Image',
  description:
    'Reads an image file (relative paths are looked up next to the workflow file). The mask is 1 (repaint) where the image is transparent, as in ComfyUI; ' +
    'or, when a mask image is set (painted in the editor), 1 where that mask is white and 0 where it is black, scaled to the image.',
  inputs: [],
  outputs: [
    { name: 'image', type: 'IMAGE' },
    { name: 'mask', type: 'MASK' },
  ],
  params: [
    { name: 'image', kind: 'image', default: '' },
    { name: 'mask', kind: 'image', default: '', optional: true, mask: true },
  ],
  async execute(_inputs, params) {
    const rgba = await loadImageRGBA(params.image as string);
    const n = rgba.width * rgba.height;
    const rgb = new Float32Array(n * 3);
    let mask: Float32Array = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      // float32(u / 255), as numpy's astype(float32) / 255 gives.
      rgb[i * 3] = rgba.data[i * 4] / 255;
      rgb[i * 3 + 1] = rgba.data[i * 4 + 1] / 255;
      rgb[i * 3 + 2] = rgba.data[i * 4 + 2] / 255;
      mask[i] = 1 - rgba.data[i * 4 + 3] / 255;
    }
    const maskFile = typeof params.mask === 'string' ? params.mask : '';
    if (maskFile) mask = maskFromImage(await loadImageRGBA(maskFile), rgba.width, rgba.height);
    const image: ImageValue = { kind: 'IMAGE', batch: 1, width: rgba.width, height: rgba.height, data: rgb };
    const m: MaskValue = { kind: 'MASK', batch: 1, width: rgba.width, height: rgba.height, data: mask };
    return { image, mask: m };
  },
};
