/**
 * Image Resize: brings an image to a target size (or to the size a latent decodes to, latent x 8)
 * by cropping, padding or stretching. Also the per-image 8-bit mapping and the on-node preview
 * shared by the preprocessor nodes (Canny, Lineart, Scribble); the IMAGE <-> 8-bit pixel
 * conversions themselves are in runtime/pixels.ts.
 */
import { saveImages } from './runtime/images.js';
import { imageToPixels, pixelsToImage } from './runtime/pixels.js';
import type { ExecContext } from '../engine/context.js';
import { type Pixels, type ResampleFilter, type ResizeMode, resizeTo } from '../models/preprocessors/resize.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue, type LatentValue } from './values.js';

/** Applies an 8-bit operation to every image of a batch. */
export function mapImages(img: ImageValue, f: (p: Pixels) => Pixels): ImageValue {
  const out: Pixels[] = [];
  for (let b = 0; b < img.batch; b++) out.push(f(imageToPixels(img, b)));
  return pixelsToImage(out);
}

/**
 * Shows a preprocessor's result on its node: the images go to the engine's temp folder and are
 * reported as this node's images (the editor draws a node's images on its card).
 */
export async function previewOnNode(img: ImageValue, ctx: ExecContext): Promise<void> {
  ctx.previewOnNode(await saveImages(img, ctx, ctx.tempDir, `preview/${ctx.runId}_${ctx.nodeId}`));
}

export const imageResize: NodeDef = {
  type: 'image-resize',
  title: 'Image Resize',
  category: 'Image',
  description:
    'Resizes an image to width x height, or to the size a connected latent decodes to (latent x 8), so a control image matches the output. crop: fill the target and cut the overflow (centred); pad: fit inside and fill the rest with black; stretch: change the aspect ratio. Resampling as Pillow does it.',
  inputs: [
    { name: 'image', type: 'IMAGE' },
    { name: 'latent', type: 'LATENT', optional: true, label: 'size from latent' },
  ],
  outputs: [{ name: 'image', type: 'IMAGE' }],
  params: [
    { name: 'width', kind: 'number', default: 512, min: 8, max: 8192, step: 8, integer: true },
    { name: 'height', kind: 'number', default: 512, min: 8, max: 8192, step: 8, integer: true },
    { name: 'mode', kind: 'enum', default: 'crop', options: ['crop', 'pad', 'stretch'] },
    { name: 'filter', kind: 'enum', default: 'lanczos', options: ['lanczos', 'bilinear', 'nearest'] },
  ],
  async execute(inputs, params, ctx) {
    const img = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    let width = params.width as number;
    let height = params.height as number;
    if (inputs.latent !== undefined) {
      const lat = expectValue<LatentValue>(inputs.latent, 'LATENT', 'latent');
      width = lat.dims[3] * 8;
      height = lat.dims[2] * 8;
    }
    if (img.width === width && img.height === height) return { image: img };
    const mode = params.mode as ResizeMode;
    const filter = params.filter as ResampleFilter;
    const out = mapImages(img, (p) => resizeTo(p, width, height, { mode, filter }));
    await previewOnNode(out, ctx);
    return { image: out };
  },
};
