/**
 * The largest image the app decodes, in pixels, checked from the file's header before any pixel
 * is decoded (models/image-preprocess.ts loadImageRGBA) and when an image is uploaded.
 *
 * Default 50,000,000 (50 MP): a little above the largest photos people commonly have (a 50 MP
 * phone mode is 8160 x 6120 = 49.9 MP, a 45 MP camera 8256 x 5504), far above what SD1.5 works
 * at (0.26 MP at 512 x 512; images are resized to the latent size or to 224 x 224 for CLIP).
 * Decoding costs about 24 bytes per pixel on our side (8-bit RGBA twice, float RGB and a mask),
 * so the cap bounds one image at about 1.2 GB; an 8192 x 8192 PNG of 196 KB (67 MP) used to take
 * 38 s and 1.7 GB, and sharp's own default allows 268 MP. Set IPA_MAX_IMAGE_PIXELS to change it.
 * Pure (no imports), so hosts can check uploads without loading the decoder.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 50_000_000;

/** The pixel limit in force: IPA_MAX_IMAGE_PIXELS when it is a positive integer, else the default. */
export function maxImagePixels(env: Record<string, string | undefined> = process.env): number {
  const v = Number(env.IPA_MAX_IMAGE_PIXELS);
  return Number.isSafeInteger(v) && v > 0 ? v : DEFAULT_MAX_IMAGE_PIXELS;
}

/** A sentence when a `width` x `height` image is above `limit` pixels (or has no pixels), else null. */
export function imageSizeProblem(width: number, height: number, limit = maxImagePixels()): string | null {
  if (!(width > 0 && height > 0)) return `the image is ${width}x${height}: it has no pixels`;
  const n = width * height;
  if (n > limit) {
    return `the image is ${width}x${height} = ${n.toLocaleString('en-US')} pixels, above the limit of ${limit.toLocaleString('en-US')} pixels (set IPA_MAX_IMAGE_PIXELS to raise it)`;
  }
  return null;
}
