/**
 * Image Resize: brings an image to a target size (or to the size a latent decodes to, latent x 8)
 * by cropping, padding or stretching. Also the IMAGE <-> 8-bit pixel conversions and the
 * on-node preview shared by the preprocessor nodes (Canny, Lineart, Scribble).
 */
import { saveImages } from './runtime/images.js';
import type { ExecContext } from '../engine/context.js';
import { type Pixels, type ResampleFilter, type ResizeMode, resizeTo } from '../models/preprocessors/resize.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue, type LatentValue } from './values.js';

/** Image `index` of an IMAGE batch as 8-bit RGB (round(clamp(x) * 255), exact for Load Image's u / 255). */
export function imageToPixels(img: ImageValue, index = 0): Pixels {
  const n = img.width * img.height * 3;
  const data = new Uint8Array(n);
  const off = index * n;
  for (let i = 0; i < n; i++) data[i] = Math.round(Math.min(1, Math.max(0, img.data[off + i])) * 255);
  return { width: img.width, height: img.height, channels: 3, data };
}

/** 8-bit images (all the same size; gray replicated) -> an IMAGE batch in [0, 1]. */
export function pixelsToImage(list: Pixels[]): ImageValue {
  const { width, height } = list[0];
  const n = width * height;
  const data = new Float32Array(list.length * n * 3);
  list.forEach((p, b) => {
    if (p.width !== width || p.height !== height) throw new Error(`images of one batch differ in size: ${p.width}x${p.height} vs ${width}x${height}`);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) {
        const v = p.channels === 1 ? p.data[i] : p.data[i * p.channels + c];
        data[(b * n + i) * 3 + c] = v / 255;
      }
    }
  });
  return { kind: 'IMAGE', batch: list.length, width, height, data };
}

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
  description: 'Resizes an image to width x height, or to the size a connected latent decodes to (latent x 8), so a control image matches the output. crop: fill the target and cut the overflow (centred); pad: fit inside and fill the rest with black; stretch: change the aspect ratio. Resampling as Pillow does it.',
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
