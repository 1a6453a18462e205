/** models/preprocessors: ControlNet preprocessors and image resizing over raw pixels — Canny, lineart, scribble, resize. */
/**
 * Canny edge detector over raw 8-bit pixels, written to give the same edges as OpenCV's
 * `cv2.Canny(image, low, high, apertureSize=3, L2gradient)` (imgproc/src/canny.cpp, 4.x):
 *
 *   1. gray: OpenCV's RGB2GRAY fixed-point weights (or, `channels: 'max'`, every channel kept
 *      and each pixel's gradient taken from the channel with the largest magnitude, as
 *      cv2.Canny does on a colour image; lllyasviel's ControlNet annotator calls it that way)
 *   2. optional 5x5 Gaussian blur, bit-exact with cv2.GaussianBlur on 8-bit images
 *   3. Sobel 3x3 dx, dy with replicated borders (integers)
 *   4. magnitude |dx| + |dy| (L1, OpenCV's default) or dx^2 + dy^2 against squared thresholds (L2)
 *   5. non-maximum suppression along the gradient direction quantised to 0/45/90/135 degrees
 *      with OpenCV's fixed-point tangent test and its tie rule (strict > on one side,
 *      >= on the other for the axis directions; strict on both for the diagonals)
 *   6. double threshold (> low candidate, > high seed) and hysteresis over 8-neighbours.
 *
 * The output is a 1-channel image, 255 on edges and 0 elsewhere.
 */
import { type Pixels, checkPixels, grayImage, toGray } from './resize.js';

export interface CannyOptions {
  /** Lower hysteresis threshold on the gradient magnitude (0..~2000 for L1). Default 100. */
  low?: number;
  /** Upper threshold: pixels above it seed edges. Default 200. Swapped with `low` when smaller. */
  high?: number;
  /** L2 gradient magnitude (sqrt(dx^2 + dy^2)) instead of L1 (|dx| + |dy|). Default false. */
  l2?: boolean;
  /** Sigma of a 5x5 Gaussian blur applied first; 0 (default) = no blur. */
  blurSigma?: number;
  /** 'gray' (default): detect on the BT.601 luma. 'max': per-pixel strongest channel (cv2 on RGB). */
  channels?: 'gray' | 'max';
}

/** tan(22.5 deg) in Q15, as OpenCV's TG22. */
const TG22 = Math.floor(0.41421356237309503 * (1 << 15) + 0.5);

/** Edge map of `img` (any of 1/3/4 channels; alpha ignored). */
export function canny(img: Pixels, opts: CannyOptions = {}): Pixels {
  checkPixels(img, 'canny input');
  const { width: W, height: H } = img;
  let low = opts.low ?? 100;
  let high = opts.high ?? 200;
  if (!Number.isFinite(low) || !Number.isFinite(high) || low < 0 || high < 0) {
    throw new Error(`canny: thresholds must be finite and >= 0, got low ${low}, high ${high}`);
  }
  if (low > high) [low, high] = [high, low];
  const l2 = opts.l2 ?? false;
  if (l2) {
    low = Math.min(32767, low);
    high = Math.min(32767, high);
    low *= low;
    high *= high;
  }
  low = Math.floor(low);
  high = Math.floor(high);

  // 1-2. Planes to differentiate: the gray image, or each colour channel.
  let planes: Uint8Array[];
  if ((opts.channels ?? 'gray') === 'max' && img.channels !== 1) {
    planes = [0, 1, 2].map((c) => {
      const p = new Uint8Array(W * H);
      for (let i = 0; i < W * H; i++) p[i] = img.data[i * img.channels + c]!;
      return p;
    });
  } else {
    planes = [toGray(img)];
  }
  const sigma = opts.blurSigma ?? 0;
  if (sigma > 0) planes = planes.map((p) => gaussianBlur5(p, W, H, sigma));

  // 3-4. Gradients and magnitude; with several planes keep the strongest (first on ties).
  const dx = new Int32Array(W * H);
  const dy = new Int32Array(W * H);
  const mag = new Int32Array((W + 2) * (H + 2)); // zero border of 1 pixel for NMS
  const M = W + 2;
  for (let pi = 0; pi < planes.length; pi++) {
    const p = planes[pi]!;
    for (let y = 0; y < H; y++) {
      const ym = y > 0 ? y - 1 : 0;
      const yp = y < H - 1 ? y + 1 : H - 1;
      for (let x = 0; x < W; x++) {
        const xm = x > 0 ? x - 1 : 0;
        const xp = x < W - 1 ? x + 1 : W - 1;
        const a = p[ym * W + xm]!,
          b = p[ym * W + x]!,
          c = p[ym * W + xp]!;
        const d = p[y * W + xm]!,
          e = p[y * W + xp]!;
        const f = p[yp * W + xm]!,
          g = p[yp * W + x]!,
          h = p[yp * W + xp]!;
        const gx = c + 2 * e + h - a - 2 * d - f;
        const gy = f + 2 * g + h - a - 2 * b - c;
        const m = l2 ? gx * gx + gy * gy : Math.abs(gx) + Math.abs(gy);
        const mi = (y + 1) * M + x + 1;
        if (pi === 0 || m > mag[mi]!) {
          mag[mi] = m;
          dx[y * W + x] = gx;
          dy[y * W + x] = gy;
        }
      }
    }
  }

  // 5. Non-maximum suppression into a map: 2 = edge, 0 = candidate, 1 = not an edge.
  const map = new Uint8Array(M * (H + 2)).fill(1);
  const stack: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const mi = (y + 1) * M + x + 1;
      const m = mag[mi]!;
      if (m <= low) continue;
      const xs = dx[y * W + x]!;
      const ys = dy[y * W + x]!;
      const ax = Math.abs(xs);
      const ay = Math.abs(ys) * 32768; // << 15
      const tg22x = ax * TG22;
      let keep: boolean;
      if (ay < tg22x) {
        keep = m > mag[mi - 1]! && m >= mag[mi + 1]!; // gradient ~horizontal: left / right
      } else if (ay > tg22x + ax * 65536) {
        keep = m > mag[mi - M]! && m >= mag[mi + M]!; // ~vertical: above / below
      } else {
        const s = xs < 0 !== ys < 0 ? -1 : 1; // diagonal: (x-s, y-1) and (x+s, y+1)
        keep = m > mag[mi - M - s]! && m > mag[mi + M + s]!;
      }
      if (!keep) continue;
      if (m > high) {
        map[mi] = 2;
        stack.push(mi);
      } else {
        map[mi] = 0;
      }
    }
  }

  // 6. Hysteresis: grow edges through 8-connected candidates.
  const nb = [-M - 1, -M, -M + 1, -1, 1, M - 1, M, M + 1];
  while (stack.length) {
    const mi = stack.pop()!;
    for (const o of nb) {
      if (map[mi + o] === 0) {
        map[mi + o] = 2;
        stack.push(mi + o);
      }
    }
  }
  const out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (map[(y + 1) * M + x + 1] === 2) out[y * W + x] = 255;
  return grayImage(W, H, out);
}

/**
 * OpenCV's 8-bit bit-exact 5x5 Gaussian kernel: exp(-(i-2)^2 / (2 sigma^2)) normalised, in
 * Q8 fixed point with the rounding error carried outward-in (getGaussianKernelFixedPoint_ED,
 * round half to even) and the centre tap taking the remainder so the taps sum to exactly 256.
 */
export function gaussianKernel5(sigma: number): Int32Array {
  if (!(sigma > 0)) throw new Error(`gaussian blur: sigma must be > 0, got ${sigma}`);
  const k = [0, 1, 2, 3, 4].map((i) => Math.exp(-((i - 2) ** 2) / (2 * sigma * sigma)));
  const sum = k.reduce((a, b) => a + b, 0);
  const out = new Int32Array(5);
  let err = 0;
  let total = 0;
  for (let i = 0; i < 2; i++) {
    const adj = (k[i]! / sum) * 256 + err;
    const v = roundHalfEven(adj);
    err = adj - v;
    out[i] = out[4 - i] = v;
    total += 2 * v;
  }
  out[2] = 256 - total;
  return out;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Index into [0, n) with BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba). */
function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

/**
 * Separable 5x5 Gaussian blur of a gray plane as cv2.GaussianBlur does it for 8-bit images:
 * integer taps (Q8), horizontal sums kept in Q8, vertical sums in Q16, rounded half up.
 */
export function gaussianBlur5(p: Uint8Array, W: number, H: number, sigma: number): Uint8Array {
  const k = gaussianKernel5(sigma);
  const tmp = new Int32Array(W * H); // Q8
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let s = 0;
      for (let i = -2; i <= 2; i++) s += k[i + 2]! * p[y * W + reflect101(x + i, W)]!;
      tmp[y * W + x] = s;
    }
  }
  const out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let s = 0; // Q16, at most 255 * 2^16
      for (let i = -2; i <= 2; i++) s += k[i + 2]! * tmp[reflect101(y + i, H) * W + x]!;
      out[y * W + x] = (s + 32768) >> 16;
    }
  }
  return out;
}
