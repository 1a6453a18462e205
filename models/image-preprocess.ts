/**
 * CLIP image preprocessing, matching transformers' CLIPImageProcessor on PIL images.
 *
 *   decode (sharp) -> RGB (alpha dropped, as PIL .convert('RGB')) -> resize shortest side
 *   (Pillow's convolution resampler, reproduced here bit for bit) -> centre crop ->
 *   * rescale_factor -> (x - mean) / std -> CHW float32 (1, 3, H, W)
 *
 * Why our own resampler: sharp/libvips bicubic is a different kernel and rounding, which
 * moves pixels by several uint8 steps; the reference used Pillow 9.4 (Resample.c). Pillow
 * resizes in two separable passes, horizontal first, each rounding to uint8 with 22-bit
 * fixed-point coefficients; a pass is skipped when its axis keeps its size.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import sharp from 'sharp';
import { imageSizeProblem, maxImagePixels } from './image-limits.js';
import { readJsonFile } from './json-file.js';
import { openRegularFileSync } from './regular-file.js';

/** An 8-bit RGBA image, row-major, 4 bytes per pixel. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}
/** An 8-bit RGB image, row-major, 3 bytes per pixel (HWC). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A float32 tensor with its dims. */
export interface Tensor {
  data: Float32Array;
  dims: number[];
}

/**
 * Decodes any image sharp reads (PNG, JPEG, WebP, AVIF, TIFF, GIF...) to 8-bit RGBA.
 * EXIF orientation is applied (as diffusers' load_image does). Grey images are replicated to
 * RGB; an image without alpha gets alpha 255. Throws an Error naming the file when the
 * input is not a readable image.
 */
export async function loadImageRGBA(input: string | Uint8Array, opts: { maxPixels?: number } = {}): Promise<RgbaImage> {
  const name = typeof input === 'string' ? input : `image buffer (${input.byteLength} bytes)`;
  if (typeof input === 'string' && !fs.existsSync(input)) {
    throw new Error(`${name}: not a readable image (the file does not exist)`);
  }
  // A FIFO would block the decoder's open for good: refused here, without blocking.
  if (typeof input === 'string') fs.closeSync(openRegularFileSync(input));
  const source = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  // The pixel count from the header, before anything is decoded (sharp's own limit stays as a backstop).
  const limit = opts.maxPixels ?? maxImagePixels();
  let meta: { width?: number; height?: number };
  try {
    meta = await sharp(source, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new Error(`${name}: not a readable image (${(e as Error).message})`, { cause: e });
  }
  const tooLarge = imageSizeProblem(meta.width ?? 0, meta.height ?? 0, limit);
  if (tooLarge) throw new Error(`${name}: ${tooLarge}`);
  let raw: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    raw = await sharp(source, { limitInputPixels: limit }).autoOrient().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new Error(`${name}: not a readable image (${(e as Error).message})`, { cause: e });
  }
  const { width, height, channels } = raw.info;
  const src = raw.data;
  const n = width * height;
  const data = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    const s = i * channels;
    if (channels >= 3) {
      data[o] = src[s]!;
      data[o + 1] = src[s + 1]!;
      data[o + 2] = src[s + 2]!;
      data[o + 3] = channels === 4 ? src[s + 3]! : 255;
    } else {
      data[o] = data[o + 1] = data[o + 2] = src[s]!;
      data[o + 3] = channels === 2 ? src[s + 1]! : 255;
    }
  }
  return { width, height, data };
}

/** PIL .convert('RGB') of an RGBA image: the alpha channel is dropped, never composited. */
export function rgbaToRgb(img: RgbaImage): RgbImage {
  const n = img.width * img.height;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    data[i * 3] = img.data[i * 4]!;
    data[i * 3 + 1] = img.data[i * 4 + 1]!;
    data[i * 3 + 2] = img.data[i * 4 + 2]!;
  }
  return { width: img.width, height: img.height, data };
}

// ---------------------------------------------------------------------------------------
// Config (preprocessor_config.json of a CLIPImageProcessor)
// ---------------------------------------------------------------------------------------

/** PIL resampling filter ids as stored in preprocessor_config.json `resample`. */
export const PIL_RESAMPLE = { NEAREST: 0, LANCZOS: 1, BILINEAR: 2, BICUBIC: 3, BOX: 4, HAMMING: 5 } as const;

export interface ClipPreprocessConfig {
  /** Resize target: the shortest side (aspect kept), or an exact size. */
  size: { shortestEdge: number } | { height: number; width: number };
  crop: { height: number; width: number };
  /** PIL filter id (3 = bicubic). */
  resample: number;
  rescaleFactor: number;
  mean: [number, number, number];
  std: [number, number, number];
  doResize: boolean;
  doCenterCrop: boolean;
  doRescale: boolean;
  doNormalize: boolean;
}

/** OpenAI CLIP defaults (CLIPImageProcessor's defaults). */
export const CLIP_DEFAULTS: ClipPreprocessConfig = {
  size: { shortestEdge: 224 },
  crop: { height: 224, width: 224 },
  resample: PIL_RESAMPLE.BICUBIC,
  rescaleFactor: 1 / 255,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
  doResize: true,
  doCenterCrop: true,
  doRescale: true,
  doNormalize: true,
};

/** Parses a preprocessor_config.json object (transformers' keys); missing keys take CLIP defaults. */
export function parsePreprocessorConfig(j: Record<string, unknown>): ClipPreprocessConfig {
  const d = CLIP_DEFAULTS;
  const num = (v: unknown, dflt: number) => (typeof v === 'number' ? v : dflt);
  const bool = (v: unknown, dflt: boolean) => (typeof v === 'boolean' ? v : dflt);
  const isTriple = (v: unknown): v is [number, number, number] => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number');
  const triple = (v: unknown, dflt: [number, number, number]): [number, number, number] =>
    isTriple(v) ? [v[0], v[1], v[2]] : typeof v === 'number' ? [v, v, v] : dflt;
  let size = d.size;
  const s = j.size as Record<string, number> | number | undefined;
  if (typeof s === 'number') size = { shortestEdge: s };
  else if (s && typeof s.shortest_edge === 'number') size = { shortestEdge: s.shortest_edge };
  else if (s && typeof s.height === 'number' && typeof s.width === 'number') size = { height: s.height, width: s.width };
  let crop = d.crop;
  const c = j.crop_size as Record<string, number> | number | undefined;
  if (typeof c === 'number') crop = { height: c, width: c };
  else if (c && typeof c.height === 'number' && typeof c.width === 'number') crop = { height: c.height, width: c.width };
  return {
    size,
    crop,
    resample: num(j.resample, d.resample),
    rescaleFactor: num(j.rescale_factor, d.rescaleFactor),
    mean: triple(j.image_mean, d.mean),
    std: triple(j.image_std, d.std),
    doResize: bool(j.do_resize, d.doResize),
    doCenterCrop: bool(j.do_center_crop, d.doCenterCrop),
    doRescale: bool(j.do_rescale, d.doRescale),
    doNormalize: bool(j.do_normalize, d.doNormalize),
  };
}

/** Reads `preprocessor_config.json` (a file, or a folder holding it). */
export function readPreprocessorConfig(fileOrDir: string): ClipPreprocessConfig {
  const file = fs.existsSync(fileOrDir) && fs.statSync(fileOrDir).isDirectory() ? path.join(fileOrDir, 'preprocessor_config.json') : fileOrDir;
  const j = readJsonFile(file, 'image preprocessor config');
  if (!j || typeof j !== 'object') throw new Error(`${file}: expected a JSON object (CLIPImageProcessor config)`);
  return parsePreprocessorConfig(j as Record<string, unknown>);
}

// ---------------------------------------------------------------------------------------
// Pillow's convolution resampler (libImaging/Resample.c, 8 bits per channel)
// ---------------------------------------------------------------------------------------

interface Filter {
  support: number;
  fn: (x: number) => number;
}

const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
const FILTERS: Record<number, Filter> = {
  [PIL_RESAMPLE.BOX]: { support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  [PIL_RESAMPLE.BILINEAR]: {
    support: 1,
    fn: (x) => {
      x = Math.abs(x);
      return x < 1 ? 1 - x : 0;
    },
  },
  [PIL_RESAMPLE.HAMMING]: {
    support: 1,
    fn: (x) => {
      x = Math.abs(x);
      return x === 0 ? 1 : x >= 1 ? 0 : (Math.sin(Math.PI * x) / (Math.PI * x)) * (0.54 + 0.46 * Math.cos(Math.PI * x));
    },
  },
  [PIL_RESAMPLE.BICUBIC]: {
    support: 2,
    fn: (x) => {
      // Keys cubic with a = -0.5, as Pillow.
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  [PIL_RESAMPLE.LANCZOS]: { support: 3, fn: (x) => (x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

const PRECISION_BITS = 32 - 8 - 2;

/** Per output index: first input index, tap count, and 22-bit fixed-point weights (ksize per row). */
interface Coeffs {
  ksize: number;
  bounds: Int32Array;
  k: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc for the box [in0, in1) of an axis of inSize. */
function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number, filter: Filter): Coeffs {
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1); // antialiasing: the kernel widens when downscaling
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const f = filter.fn((x + xmin - center + 0.5) * ss);
      w[x] = f;
      ww += f;
    }
    for (let x = 0; x < xmax; x++) {
      const wx = w[x]!;
      const v = ww !== 0 ? wx / ww : wx;
      // C's (int) truncation of v * 2^22 +- 0.5.
      k[xx * ksize + x] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, k };
}

/** Fixed-point accumulator -> uint8: arithmetic shift, then clip to [0, 255]. */
function clip8(ss: number): number {
  const v = Math.floor(ss / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Pillow's Image.resize((width, height), resample) for an RGB image (no box, no reducing_gap):
 * horizontal pass first (only over the rows the vertical pass reads), then vertical.
 */
export function pillowResize(img: RgbImage, width: number, height: number, resample: number = PIL_RESAMPLE.BICUBIC): RgbImage {
  const filter = FILTERS[resample];
  if (!filter) throw new Error(`image resize: PIL resample filter ${resample} is not supported (use 1 lanczos, 2 bilinear, 3 bicubic, 4 box or 5 hamming)`);
  if (width === img.width && height === img.height) return { width, height, data: img.data.slice() };
  const needH = width !== img.width;
  const needV = height !== img.height;
  const ch = precomputeCoeffs(img.width, 0, img.width, width, filter);
  const cv = precomputeCoeffs(img.height, 0, img.height, height, filter);
  let cur = img;
  let rowOffset = 0;
  if (needH) {
    // Only rows [yFirst, yLast) are needed by the vertical pass.
    const yFirst = needV ? cv.bounds[0]! : 0;
    const yLast = needV ? cv.bounds[height * 2 - 2]! + cv.bounds[height * 2 - 1]! : img.height;
    const rows = yLast - yFirst;
    const out = new Uint8Array(width * rows * 3);
    for (let y = 0; y < rows; y++) {
      const srcRow = (y + yFirst) * img.width * 3;
      for (let xx = 0; xx < width; xx++) {
        const xmin = ch.bounds[xx * 2]!;
        const xmax = ch.bounds[xx * 2 + 1]!;
        const kb = xx * ch.ksize;
        let s0 = 1 << (PRECISION_BITS - 1),
          s1 = s0,
          s2 = s0;
        for (let x = 0; x < xmax; x++) {
          const kv = ch.k[kb + x]!;
          const p = srcRow + (x + xmin) * 3;
          s0 += img.data[p]! * kv;
          s1 += img.data[p + 1]! * kv;
          s2 += img.data[p + 2]! * kv;
        }
        const o = (y * width + xx) * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    cur = { width, height: rows, data: out };
    rowOffset = yFirst;
  }
  if (!needV) return cur;
  const out = new Uint8Array(width * height * 3);
  const rowLen = width * 3;
  for (let yy = 0; yy < height; yy++) {
    const ymin = cv.bounds[yy * 2]! - rowOffset;
    const ymax = cv.bounds[yy * 2 + 1]!;
    const kb = yy * cv.ksize;
    for (let i = 0; i < rowLen; i++) {
      let s = 1 << (PRECISION_BITS - 1);
      for (let y = 0; y < ymax; y++) s += cur.data[(y + ymin) * rowLen + i]! * cv.k[kb + y]!;
      out[yy * rowLen + i] = clip8(s);
    }
  }
  return { width, height, data: out };
}

// ---------------------------------------------------------------------------------------
// CLIPImageProcessor steps
// ---------------------------------------------------------------------------------------

/** How the image is fitted to the crop: centre crop (reference), pad to square, or squash. */
export type CropMode = 'center' | 'pad' | 'squash';

export interface PreprocessOptions {
  crop?: CropMode;
  /** Fill colour for 'pad' (RGB 0..255); default black. */
  padColor?: [number, number, number];
}

/** transformers' get_resize_output_image_size(default_to_square=False): (height, width). */
export function shortestEdgeSize(h: number, w: number, shortest: number): [number, number] {
  const [short, long] = h <= w ? [h, w] : [w, h];
  const newLong = Math.trunc((shortest * long) / short);
  return h <= w ? [shortest, newLong] : [newLong, shortest];
}

/** transformers' center_crop (offsets floor((orig - crop) / 2)); pads with 0 where the image is smaller. */
export function centerCrop(img: RgbImage, height: number, width: number): RgbImage {
  if (img.width === width && img.height === height) return img;
  const top = Math.floor((img.height - height) / 2);
  const left = Math.floor((img.width - width) / 2);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= img.width) continue;
      const s = (sy * img.width + sx) * 3;
      const o = (y * width + x) * 3;
      out[o] = img.data[s]!;
      out[o + 1] = img.data[s + 1]!;
      out[o + 2] = img.data[s + 2]!;
    }
  }
  return { width, height, data: out };
}

/** Pads to a centred square with `color`. */
function padToSquare(img: RgbImage, color: [number, number, number]): RgbImage {
  const side = Math.max(img.width, img.height);
  if (img.width === side && img.height === side) return img;
  const out = new Uint8Array(side * side * 3);
  for (let i = 0; i < side * side; i++) out.set(color, i * 3);
  const top = Math.floor((side - img.height) / 2);
  const left = Math.floor((side - img.width) / 2);
  for (let y = 0; y < img.height; y++) {
    out.set(img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3), ((y + top) * side + left) * 3);
  }
  return { width: side, height: side, data: out };
}

/** Resize + crop stage, uint8 HWC (the fixture's `resized_cropped_uint8`). */
export function resizeAndCrop(img: RgbaImage | RgbImage, cfg: ClipPreprocessConfig = CLIP_DEFAULTS, opts: PreprocessOptions = {}): RgbImage {
  let rgb: RgbImage = img.data.length === img.width * img.height * 4 ? rgbaToRgb(img) : img;
  const mode = opts.crop ?? 'center';
  if (mode === 'pad') rgb = padToSquare(rgb, opts.padColor ?? [0, 0, 0]);
  if (mode === 'squash') {
    return pillowResize(rgb, cfg.crop.width, cfg.crop.height, cfg.resample);
  }
  if (cfg.doResize) {
    const [h, w] = 'shortestEdge' in cfg.size ? shortestEdgeSize(rgb.height, rgb.width, cfg.size.shortestEdge) : [cfg.size.height, cfg.size.width];
    rgb = pillowResize(rgb, w, h, cfg.resample);
  }
  if (cfg.doCenterCrop) rgb = centerCrop(rgb, cfg.crop.height, cfg.crop.width);
  return rgb;
}

/**
 * CLIPImageProcessor: `pixel_values` (1, 3, H, W) float32. Rescale is done in float64 then
 * stored as float32, normalisation in float32, as transformers does with numpy.
 */
export function clipPreprocess(img: RgbaImage | RgbImage, cfg: ClipPreprocessConfig = CLIP_DEFAULTS, opts: PreprocessOptions = {}): Tensor {
  const rgb = resizeAndCrop(img, cfg, opts);
  return rgbToPixelValues(rgb, cfg);
}

/** uint8 HWC -> normalised float32 (1, 3, H, W). */
export function rgbToPixelValues(rgb: RgbImage, cfg: ClipPreprocessConfig = CLIP_DEFAULTS): Tensor {
  const { width: W, height: H } = rgb;
  const plane = W * H;
  const data = new Float32Array(3 * plane);
  const fr = Math.fround;
  for (let c = 0; c < 3; c++) {
    const mean = fr(cfg.mean[c]!);
    const std = fr(cfg.std[c]!);
    for (let i = 0; i < plane; i++) {
      let v = rgb.data[i * 3 + c]!;
      if (cfg.doRescale) v = fr(v * cfg.rescaleFactor);
      if (cfg.doNormalize) v = fr(fr(v - mean) / std);
      data[c * plane + i] = v;
    }
  }
  return { data, dims: [1, 3, H, W] };
}

/** Loads and preprocesses an image file or buffer in one call. */
export async function preprocessImageFile(
  input: string | Uint8Array,
  cfg: ClipPreprocessConfig = CLIP_DEFAULTS,
  opts: PreprocessOptions = {},
): Promise<Tensor> {
  return clipPreprocess(await loadImageRGBA(input), cfg, opts);
}
