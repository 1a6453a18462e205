/**
 * IP-Adapter Encoder: IP_ADAPTER + CLIP_VISION + IMAGE [+ MASK] -> IP_EMBEDS (positive, negative), as
 * ComfyUI_IPAdapter_plus' IPAdapterEncoder: what the adapter's projection takes (image_embeds for a base
 * adapter, the penultimate vision states for Plus / full-face), times `weight`; the negative output is
 * the unconditional embeds (zeros for base, the states of all-zero pixels for Plus / full-face).
 *
 * Any number of images: an image batch (Image Batch, chainable) gives one row per image; several encoders
 * meet in Combine Embeds (chained with concat, then any method, for more than five). Per-image weights:
 * `image_weights`, one factor per image of the batch, multiplied with `weight`. The mask (1 = keep) is brought to the encoder's input as the image is (centre crop,
 * pad or squash) and multiplies the normalised pixel values, as encode_image_masked does.
 */
import { clipPreprocess, type CropMode } from '../models/image-preprocess.js';
import { checkAdapterMatchesVision } from '../models/ip-adapter.js';
import { resizeTo, type ResizeMode } from '../models/preprocessors/resize.js';
import { checkAborted } from '../engine/context.js';
import { imageToRgb8 } from './clip-vision-encode.js';
import { previewOnNode } from './image-resize.js';
import { clipVisionRuntime, projectorRuntime } from './runtime/networks.js';
import { unconditionalEmbeds } from './runtime/ip-embeds.js';
import type { NodeDef } from './types.js';
import { expectValue, type ClipVisionValue, type ImageValue, type IpAdapterValue, type IpEmbedsValue, type MaskValue } from './values.js';

/** Parses "1, 0.5, 2": one factor per image ('' = none); throws a sentence. */
export function parseImageWeights(text: string): number[] {
  const items = text
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  return items.map((s) => {
    const v = Number(s);
    if (!Number.isFinite(v)) throw new Error(`"${s}" in image_weights is not a number (give one factor per image of the batch, e.g. "1, 0.5")`);
    return v;
  });
}

const RESIZE: Record<CropMode, ResizeMode> = { center: 'crop', pad: 'pad', squash: 'stretch' };

/** The mask of image b at the encoder's S x S input, in [0, 1] (8-bit, Pillow bilinear, the image's crop mode). */
function maskAtInput(mask: MaskValue, b: number, S: number, crop: CropMode): Float32Array {
  const i = mask.batch === 1 ? 0 : b;
  const n = mask.width * mask.height;
  const gray = new Uint8Array(n);
  for (let k = 0; k < n; k++) gray[k] = Math.round(Math.min(1, Math.max(0, mask.data[i * n + k]!)) * 255);
  const r = resizeTo({ width: mask.width, height: mask.height, channels: 1, data: gray }, S, S, { mode: RESIZE[crop], filter: 'bilinear', padValue: 0 });
  return Float32Array.from(r.data, (v) => v / 255);
}

/** A MASK batch as grey RGB images. */
function maskAsImage(m: MaskValue): ImageValue {
  const n = m.width * m.height;
  const data = new Float32Array(m.batch * n * 3);
  for (let i = 0; i < m.batch * n; i++) data.fill(m.data[i]!, i * 3, i * 3 + 3);
  return { kind: 'IMAGE', batch: m.batch, width: m.width, height: m.height, data };
}

export const ipAdapterEncoder: NodeDef = {
  type: 'ip-adapter-encoder',
  title: 'IP-Adapter Encoder',
  category: 'IP-Adapter',
  description:
    'Encodes images into the embeds the adapter\'s projection takes (ComfyUI\'s IPAdapterEncoder), times "weight". One row per image of the batch (make one with Image Batch); "image weights" gives each image its own factor ("1, 0.5" for a batch of two). The optional mask (1 = keep, one for all images or one per image) blanks the rest of the image before encoding; it is shown on the card. "negative" is the unconditional embeds, for Apply IP-Adapter (embeds). Several encoders meet in IP-Adapter Combine Embeds.',
  inputs: [
    { name: 'ip_adapter', type: 'IP_ADAPTER' },
    { name: 'clip_vision', type: 'CLIP_VISION' },
    { name: 'image', type: 'IMAGE' },
    { name: 'mask', type: 'MASK', optional: true },
  ],
  outputs: [
    { name: 'embeds', type: 'IP_EMBEDS' },
    { name: 'negative', type: 'IP_EMBEDS' },
  ],
  params: [
    { name: 'weight', kind: 'number', default: 1, min: -1, max: 3, step: 0.01 },
    { name: 'image_weights', label: 'image weights', kind: 'string', default: '' },
    { name: 'crop', kind: 'enum', options: ['center', 'pad', 'squash'], default: 'center' },
  ],
  check(params) {
    try {
      parseImageWeights(String(params.image_weights ?? ''));
      return [];
    } catch (e) {
      return [{ param: 'image_weights', message: (e as Error).message }];
    }
  },
  async execute(inputs, params, ctx) {
    const ad = expectValue<IpAdapterValue>(inputs.ip_adapter, 'IP_ADAPTER', 'ip_adapter');
    const cv = expectValue<ClipVisionValue>(inputs.clip_vision, 'CLIP_VISION', 'clip_vision');
    const img = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const mask = inputs.mask === undefined ? undefined : expectValue<MaskValue>(inputs.mask, 'MASK', 'mask');
    const B = img.batch;
    const perImage = parseImageWeights(String(params.image_weights ?? ''));
    if (perImage.length && perImage.length !== B) {
      throw new Error(`image_weights lists ${perImage.length} factors but the image batch has ${B} images; give one per image (or none)`);
    }
    if (mask && mask.batch !== 1 && mask.batch !== B) {
      throw new Error(`the mask batch has ${mask.batch} masks but the image batch has ${B} images; give one mask for all or one per image`);
    }
    if (mask && Math.abs(mask.width / mask.height - img.width / img.height) > 0.01) {
      ctx.log(
        'warn',
        `the mask is ${mask.width}x${mask.height}, the image ${img.width}x${img.height}: the mask is fitted to the encoder's input on its own (${params.crop})`,
      );
    }
    // The mask as a thumbnail on the card (grey: 1 = kept), so the node shows what it blanks.
    if (mask) await previewOnNode(maskAsImage(mask), ctx);
    const vision = await clipVisionRuntime(ctx.models, cv.path);
    const proj = await projectorRuntime(ctx.models, ad.path);
    checkAdapterMatchesVision(proj.adapter, vision.config, vision.weightsFile);
    checkAborted(ctx.signal);
    const S = vision.config.imageSize;
    const C = vision.config.numChannels;
    const crop = params.crop as CropMode;
    const pixels = new Float32Array(B * C * S * S);
    for (let b = 0; b < B; b++) {
      const t = clipPreprocess(imageToRgb8(img, b), vision.preprocess, { crop });
      if (mask) {
        const m = maskAtInput(mask, b, S, crop);
        for (let c = 0; c < C; c++) for (let k = 0; k < S * S; k++) t.data[c * S * S + k] = Math.fround(t.data[c * S * S + k]! * m[k]!);
      }
      pixels.set(t.data, b * C * S * S);
    }
    const out = await vision.encode({ data: pixels, dims: [B, C, S, S] });
    const base = ad.adapterKind === 'base';
    const src = base ? out.imageEmbeds : out.penultimate;
    if (!src) throw new Error(`${vision.weightsFile} has no visual projection, so it gives no image_embeds for a base IP-Adapter`);
    const data = Float32Array.from(src.data);
    const len = data.length / B;
    const w = params.weight as number;
    for (let b = 0; b < B; b++) {
      const f = Math.fround(w * (perImage[b] ?? 1));
      if (f !== 1) for (let k = b * len; k < (b + 1) * len; k++) data[k] = Math.fround(data[k]! * f);
    }
    const embeds: IpEmbedsValue = {
      kind: 'IP_EMBEDS',
      adapterPath: ad.path,
      adapterKind: ad.adapterKind,
      visionPath: cv.path,
      count: B,
      rowDims: src.dims.slice(1),
      data,
    };
    // IPAdapterEncoder: zeros_like(cond) for base (one row per image), vision(zero pixels) once for Plus / full-face.
    const negative = (await unconditionalEmbeds(ctx.models, ad, cv.path, base ? B : 1))!;
    ctx.trace?.({ node: ctx.nodeId, name: 'embeds', data, shape: [B, ...embeds.rowDims] });
    return { embeds, negative };
  },
};
