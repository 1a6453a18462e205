/**
 * CLIP Vision Encode: IMAGE -> IMAGE_EMBEDS (the paper's image encoder). Each image is resized
 * and cropped to the encoder's input as transformers' CLIPImageProcessor does (or padded /
 * squashed), then all images run in one batch.
 */
import { clipPreprocess, type CropMode, type RgbImage } from '../models/image-preprocess.js';
import { checkAborted } from '../engine/context.js';
import { clipVisionRuntime } from './runtime/networks.js';
import type { NodeDef } from './types.js';
import { expectValue, type ClipVisionValue, type ImageEmbedsValue, type ImageValue } from './values.js';

/** One image of a batch as 8-bit RGB (round(x * 255), as diffusers' numpy_to_pil). */
export function imageToRgb8(img: ImageValue, index: number): RgbImage {
  const n = img.width * img.height;
  const data = new Uint8Array(n * 3);
  const off = index * n * 3;
  for (let i = 0; i < n * 3; i++) data[i] = Math.round(Math.min(1, Math.max(0, img.data[off + i])) * 255);
  return { width: img.width, height: img.height, data };
}

export const clipVisionEncode: NodeDef = {
  type: 'clip-vision-encode',
  title: 'CLIP Vision Encode',
  category: 'IP-Adapter',
  description:
    'Encodes the image prompt with the CLIP image encoder. crop: "center" = shortest side to the input size then centre crop (the reference preprocessing), "pad" = pad to a square first (keeps the whole image), "squash" = resize without keeping the aspect ratio.',
  inputs: [
    { name: 'clip_vision', type: 'CLIP_VISION' },
    { name: 'image', type: 'IMAGE' },
  ],
  outputs: [{ name: 'embeds', type: 'IMAGE_EMBEDS' }],
  params: [{ name: 'crop', kind: 'enum', options: ['center', 'pad', 'squash'], default: 'center' }],
  async execute(inputs, params, ctx) {
    const cv = expectValue<ClipVisionValue>(inputs.clip_vision, 'CLIP_VISION', 'clip_vision');
    const img = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const vision = await clipVisionRuntime(ctx.models, cv.path);
    checkAborted(ctx.signal);
    const S = vision.config.imageSize;
    const C = vision.config.numChannels;
    const pixels = new Float32Array(img.batch * C * S * S);
    for (let b = 0; b < img.batch; b++) {
      const t = clipPreprocess(imageToRgb8(img, b), vision.preprocess, { crop: params.crop as CropMode });
      pixels.set(t.data, b * C * S * S);
    }
    const out = await vision.encode({ data: pixels, dims: [img.batch, C, S, S] });
    const p = out.penultimate.dims; // (n, T, Dh)
    const v: ImageEmbedsValue = {
      kind: 'IMAGE_EMBEDS',
      count: img.batch,
      imageEmbeds: out.imageEmbeds?.data ?? null,
      embedDim: out.imageEmbeds?.dims[1] ?? 0,
      penultimate: out.penultimate.data,
      hiddenTokens: p[1],
      hiddenDim: p[2],
      vision: cv,
    };
    ctx.trace?.({ node: ctx.nodeId, name: 'pixel_values', data: pixels, shape: [img.batch, C, S, S] });
    if (out.imageEmbeds) ctx.trace?.({ node: ctx.nodeId, name: 'image_embeds', data: out.imageEmbeds.data, shape: out.imageEmbeds.dims });
    return { embeds: v };
  },
};
