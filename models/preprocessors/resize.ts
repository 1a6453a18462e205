/**
 * Raw pixel images for the control preprocessors, and resizing / cropping a control image to
 * the size the sampler works at (latent size x 8).
 *
 * Resampling follows Pillow's `Image.resize` (separable convolution, the filter's support
 * widened by the scale factor when shrinking so that every source pixel contributes, Q22
 * integer weights, each pass rounded to uint8). diffusers prepares control images with PIL LANCZOS at the target size, so
 * 'lanczos' is the default filter; 'bilinear' is Pillow's triangle filter.
 */

/** An 8-bit image, row-major, channels interleaved (1 = gray, 3 = RGB, 4 = RGBA). */
export interface Pixels {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

/** How the image reaches the target size. */
export type ResizeMode =
  /** Scale to cover the target, centre-crop the overflow (keeps aspect, loses borders). */
  | 'crop'
  /** Scale to fit inside the target, pad the rest with `padValue` (keeps aspect and content). */
  | 'pad'
  /** Scale each axis independently (distorts aspect). */
  | 'stretch';

export type ResampleFilter = 'lanczos' | 'bilinear' | 'nearest';

export interface ResizeOptions {
  mode?: ResizeMode;
  filter?: ResampleFilter;
  /** Fill of padded pixels (0..255, every channel). Default 0 (black: "no structure" for edge maps). */
  padValue?: number;
}

/** Checks the buffer length against width x height x channels; errors name what was expected. */
export function checkPixels(img: Pixels, what = 'image'): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${what}: size must be positive integers, got ${width}x${height}`);
  }
  if (![1, 3, 4].includes(channels)) throw new Error(`${what}: channels must be 1, 3 or 4, got ${channels}`);
  if (data.length !== width * height * channels) {
    throw new Error(`${what}: expected ${width}x${height}x${channels} = ${width * height * channels} bytes, got ${data.length}`);
  }
}

/**
 * Grayscale with OpenCV's RGB2GRAY fixed-point weights (ITU-R BT.601:
 * 0.299 R + 0.587 G + 0.114 B, as (R*4899 + G*9617 + B*1868 + 8192) >> 14), so Canny on a
 * colour image sees the same gray values as `cv2.Canny(cv2.cvtColor(img, COLOR_RGB2GRAY))`.
 * Alpha is ignored (not composited), as PIL's convert("RGB").
 */
export function toGray(img: Pixels): Uint8Array {
  checkPixels(img);
  const { width, height, channels, data } = img;
  if (channels === 1) return data.slice();
  const n = width * height;
  const out = new Uint8Array(n);
  for (let i = 0, p = 0; i < n; i++, p += channels) {
    out[i] = (data[p]! * 4899 + data[p + 1]! * 9617 + data[p + 2]! * 1868 + 8192) >> 14;
  }
  return out;
}

/** Gray / RGBA -> RGB (gray replicated; alpha dropped). ControlNets take 3-channel images. */
export function toRGB(img: Pixels): Pixels {
  checkPixels(img);
  const { width, height, channels, data } = img;
  if (channels === 3) return img;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    if (channels === 1) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = data[i]!;
    else for (let c = 0; c < 3; c++) out[3 * i + c] = data[4 * i + c]!;
  }
  return { width, height, channels: 3, data: out };
}

/** A gray buffer as a 1-channel image. */
export function grayImage(width: number, height: number, data: Uint8Array): Pixels {
  return { width, height, channels: 1, data };
}

/**
 * The ControlNet conditioning tensor: RGB / 255 in [0, 1], NCHW (1, 3, H, W), as diffusers'
 * VaeImageProcessor(do_normalize=False) produces it. Gray images are replicated to 3 channels.
 */
export function controlTensor(img: Pixels): { data: Float32Array; dims: [1, 3, number, number] } {
  const rgb = toRGB(img);
  const { width: w, height: h, data } = rgb;
  const plane = w * h;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = data[3 * i + c]! / 255;
  return { data: out, dims: [1, 3, h, w] };
}

// ---------------------------------------------------------------------------------------
// Resampling (Pillow's ImagingResample, in floating point).
// ---------------------------------------------------------------------------------------

const FILTERS: Record<Exclude<ResampleFilter, 'nearest'>, { support: number; fn: (x: number) => number }> = {
  bilinear: { support: 1, fn: (x) => Math.max(0, 1 - Math.abs(x)) },
  lanczos: {
    support: 3,
    fn: (x) => {
      if (x === 0) return 1;
      if (x <= -3 || x >= 3) return 0;
      const px = Math.PI * x;
      return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
    },
  },
};

/** Pillow's PRECISION_BITS for 8-bit images: coefficients in Q22. */
const PRECISION_BITS = 32 - 8 - 2;

/**
 * Per output index: first source index and weights in Q22 (Pillow's precompute_coeffs and
 * normalize_coeffs_8bpc: float weights normalised to sum 1, then rounded half away from zero).
 */
function coeffs(inSize: number, inStart: number, inEnd: number, outSize: number, filter: Exclude<ResampleFilter, 'nearest'>) {
  const { support: baseSupport, fn } = FILTERS[filter];
  const scale = (inEnd - inStart) / outSize;
  const fscale = Math.max(scale, 1);
  const support = baseSupport * fscale;
  const bounds: number[] = [];
  const weights: Int32Array[] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = inStart + (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const k = new Float64Array(Math.max(0, xmax - xmin));
    let total = 0;
    for (let x = 0; x < k.length; x++) {
      const v = fn((x + xmin - center + 0.5) / fscale);
      k[x] = v;
      total += v;
    }
    const q = new Int32Array(k.length);
    for (let x = 0; x < k.length; x++) {
      const kx = k[x]!;
      const w = total !== 0 ? kx / total : kx;
      q[x] = Math.trunc(w * (1 << PRECISION_BITS) + (w < 0 ? -0.5 : 0.5));
    }
    bounds.push(xmin);
    weights.push(q);
  }
  return { bounds, weights };
}

/** Q22 accumulator (started at one half) back to uint8, clipped. */
const fromQ = (s: number) => {
  const v = Math.floor(s / (1 << PRECISION_BITS));
  return v <= 0 ? 0 : v >= 255 ? 255 : v;
};
const clamp8 = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v));

/**
 * Resamples the box [x0, x1) x [y0, y1) of `img` (fractional bounds allowed) to `w` x `h`.
 * Two passes (horizontal then vertical), each in Pillow's Q22 integer arithmetic and rounded
 * to uint8, so results equal Pillow's Image.resize(size, filter, box) byte for byte.
 */
export function resample(
  img: Pixels,
  w: number,
  h: number,
  filter: ResampleFilter = 'lanczos',
  box: [number, number, number, number] = [0, 0, img.width, img.height],
): Pixels {
  checkPixels(img);
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) throw new Error(`resize: target size must be positive integers, got ${w}x${h}`);
  const { width: W, height: H, channels: C, data } = img;
  const [bx0, by0, bx1, by1] = box;
  if (filter === 'nearest') {
    const out = new Uint8Array(w * h * C);
    for (let y = 0; y < h; y++) {
      const sy = Math.min(H - 1, Math.floor(by0 + ((y + 0.5) * (by1 - by0)) / h));
      for (let x = 0; x < w; x++) {
        const sx = Math.min(W - 1, Math.floor(bx0 + ((x + 0.5) * (bx1 - bx0)) / w));
        for (let c = 0; c < C; c++) out[(y * w + x) * C + c] = data[(sy * W + sx) * C + c]!;
      }
    }
    return { width: w, height: h, channels: C, data: out };
  }
  const half = 1 << (PRECISION_BITS - 1);
  // Horizontal pass: H rows x w columns.
  const hx = coeffs(W, bx0, bx1, w, filter);
  const tmp = new Uint8Array(H * w * C);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < w; x++) {
      const x0 = hx.bounds[x]!;
      const k = hx.weights[x]!;
      for (let c = 0; c < C; c++) {
        let s = half;
        for (let i = 0; i < k.length; i++) s += k[i]! * data[(y * W + x0 + i) * C + c]!;
        tmp[(y * w + x) * C + c] = fromQ(s);
      }
    }
  }
  // Vertical pass: h rows x w columns.
  const vy = coeffs(H, by0, by1, h, filter);
  const out = new Uint8Array(h * w * C);
  for (let y = 0; y < h; y++) {
    const y0 = vy.bounds[y]!;
    const k = vy.weights[y]!;
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < C; c++) {
        let s = half;
        for (let i = 0; i < k.length; i++) s += k[i]! * tmp[((y0 + i) * w + x) * C + c]!;
        out[(y * w + x) * C + c] = fromQ(s);
      }
    }
  }
  return { width: w, height: h, channels: C, data: out };
}

/**
 * Brings `img` to exactly `width` x `height` by the given mode. An image already at the
 * target size is returned unchanged (no resampling), so a control image prepared at the
 * right size reaches the ControlNet bit for bit.
 */
export function resizeTo(img: Pixels, width: number, height: number, opts: ResizeOptions = {}): Pixels {
  checkPixels(img);
  const mode = opts.mode ?? 'crop';
  const filter = opts.filter ?? 'lanczos';
  if (img.width === width && img.height === height) return img;
  const { width: W, height: H } = img;
  if (mode === 'stretch') return resample(img, width, height, filter);
  if (mode === 'crop') {
    // Source box of the target's aspect ratio, centred: the part that survives the crop.
    const s = Math.min(W / width, H / height);
    const bw = width * s;
    const bh = height * s;
    const x0 = (W - bw) / 2;
    const y0 = (H - bh) / 2;
    return resample(img, width, height, filter, [x0, y0, x0 + bw, y0 + bh]);
  }
  // pad: fit inside, centre on a filled canvas.
  const s = Math.min(width / W, height / H);
  const iw = Math.max(1, Math.min(width, Math.round(W * s)));
  const ih = Math.max(1, Math.min(height, Math.round(H * s)));
  const inner = iw === W && ih === H ? img : resample(img, iw, ih, filter);
  const C = img.channels;
  const out = new Uint8Array(width * height * C).fill(clamp8(opts.padValue ?? 0));
  const ox = Math.floor((width - iw) / 2);
  const oy = Math.floor((height - ih) / 2);
  for (let y = 0; y < ih; y++) {
    out.set(inner.data.subarray(y * iw * C, (y + 1) * iw * C), ((oy + y) * width + ox) * C);
  }
  return { width, height, channels: C, data: out };
}

/** The pixel size the sampler works at for a latent of `latentW` x `latentH` (VAE factor 8). */
export function latentToPixels(latentW: number, latentH: number): { width: number; height: number } {
  return { width: latentW * 8, height: latentH * 8 };
}
