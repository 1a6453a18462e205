/**
 * Scribble / threshold control image: a binary map, white strokes on black, as scribble
 * ControlNets expect. A person usually draws dark strokes on white paper; `invert: 'auto'`
 * detects that from the mean gray and picks the dark pixels as strokes.
 */
import { type Pixels, checkPixels, grayImage, toGray } from './resize.js';

export interface ScribbleOptions {
  /** Gray level separating strokes from background (0..255). Default 128. */
  threshold?: number;
  /**
   * Which side of the threshold is a stroke: 'dark' (gray < threshold), 'light' (gray >= threshold),
   * or 'auto' (dark strokes when the image is mostly light, i.e. mean gray >= 128). Default 'auto'.
   */
  strokes?: 'auto' | 'dark' | 'light';
  /** Dilation radius in pixels (disc) to thicken thin strokes. Default 0. */
  thickness?: number;
}

/** Binary stroke map of `img` as a 1-channel image (255 = stroke). */
export function scribble(img: Pixels, opts: ScribbleOptions = {}): Pixels {
  checkPixels(img, 'scribble input');
  const threshold = opts.threshold ?? 128;
  const r = opts.thickness ?? 0;
  if (!(threshold >= 0 && threshold <= 256)) throw new Error(`scribble: threshold must be in 0..256, got ${threshold}`);
  if (!Number.isInteger(r) || r < 0 || r > 64) throw new Error(`scribble: thickness must be an integer in 0..64, got ${r}`);
  const { width: W, height: H } = img;
  const gray = toGray(img);
  let strokes = opts.strokes ?? 'auto';
  if (strokes === 'auto') {
    let sum = 0;
    for (let i = 0; i < gray.length; i++) sum += gray[i]!;
    strokes = sum / gray.length >= 128 ? 'dark' : 'light';
  }
  let out: Uint8Array = new Uint8Array(W * H);
  for (let i = 0; i < out.length; i++) out[i] = (strokes === 'dark' ? gray[i]! < threshold : gray[i]! >= threshold) ? 255 : 0;
  if (r > 0) out = dilate(out, W, H, r);
  return grayImage(W, H, out);
}

/** Binary dilation by a disc of radius r (pixels within Euclidean distance r). */
function dilate(src: Uint8Array, W: number, H: number, r: number): Uint8Array {
  const out = new Uint8Array(W * H);
  const offs: [number, number][] = [];
  for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= r * r) offs.push([dx, dy]);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (!src[y * W + x]) continue;
      for (const [dx, dy] of offs) {
        const xx = x + dx,
          yy = y + dy;
        if (xx >= 0 && xx < W && yy >= 0 && yy < H) out[yy * W + xx] = 255;
      }
    }
  }
  return out;
}
