/**
 * Lineart-style control image without a model: the image's dark strokes and contours become
 * white lines on black, the form lineart ControlNets are trained on (lllyasviel's annotator
 * draws black-on-white lines and inverts them before the ControlNet; we produce the inverted
 * form directly, and `blackOnWhite` gives the drawing form for previews).
 *
 * Line strength is a difference of the gray image from its local mean (5x5 Gaussian): a pixel
 * darker than its surroundings is part of a stroke. Thin dark lines come out whole; filled dark
 * regions give their outline, like an ink drawing. Strengths at or below `threshold` are
 * dropped (paper texture, noise); the rest are scaled by `gain` and clipped to 255.
 */
import { gaussianBlur5 } from './canny.js';
import { type Pixels, checkPixels, grayImage, toGray } from './resize.js';

export interface LineartOptions {
  /** Sigma of the local mean (5x5 Gaussian). Larger -> thicker strokes found. Default 1.4. */
  sigma?: number;
  /** Gray levels below the local mean that still count as paper. Default 4. */
  threshold?: number;
  /** Contrast of the lines: strength = (difference - threshold) * gain. Default 6. */
  gain?: number;
  /** Return black lines on white instead of the ControlNet's white on black. Default false. */
  blackOnWhite?: boolean;
}

/** Soft line map of `img` as a 1-channel image. */
export function lineart(img: Pixels, opts: LineartOptions = {}): Pixels {
  checkPixels(img, 'lineart input');
  const sigma = opts.sigma ?? 1.4;
  const threshold = opts.threshold ?? 4;
  const gain = opts.gain ?? 6;
  if (!(sigma > 0) || !(threshold >= 0) || !(gain > 0)) {
    throw new Error(`lineart: expected sigma > 0, threshold >= 0, gain > 0; got ${sigma}, ${threshold}, ${gain}`);
  }
  const { width: W, height: H } = img;
  const gray = toGray(img);
  const mean = gaussianBlur5(gray, W, H, sigma);
  const out = new Uint8Array(W * H);
  for (let i = 0; i < out.length; i++) {
    const d = mean[i]! - gray[i]! - threshold;
    const v = d <= 0 ? 0 : Math.min(255, Math.round(d * gain));
    out[i] = opts.blackOnWhite ? 255 - v : v;
  }
  return grayImage(W, H, out);
}
