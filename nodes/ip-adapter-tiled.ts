/**
 * IP-Adapter Tiled: MODEL + IP_ADAPTER + CLIP_VISION + IMAGE [+ MASK, negative IMAGE] -> MODEL, tiles, masks
 * (ComfyUI_IPAdapter_plus' IPAdapterTiled, IPAdapterPlus.py apply_tiled): a reference that is not square is
 * not centre-cropped away but cut into 256² tiles, each its own image prompt limited to its region of the
 * picture by an attention mask. Geometry (tileLayout): a near-square image (3:4 to 4:3) is centre-cropped to a
 * square and resized to 512² (4 tiles); otherwise the short side goes to 256 (Lanczos, on 8-bit as ComfyUI's
 * PIL resize) and a side longer than 4:1 is centre-cropped to 1024; tiles_x = ceil(w / 256) overlapping
 * evenly. Each tile's mask is the (resized) attention mask inside the tile and 0 outside.
 *
 * ComfyUI applies one IPAdapter per tile; here the tiles are the images of one Apply IP-Adapter, each with
 * its own softmax and mask (Σ_tiles λ · mask_t · Attention(Q, K'_t, V'_t): the same sum), through Apply
 * IP-Adapter's own params and path. Sharpening is not offered.
 */
import * as path from 'node:path';
import { clipPreprocess } from '../models/image-preprocess.js';
import { checkAdapterMatchesVision } from '../models/ip-adapter.js';
import { resample, resizeTo, type Pixels } from '../models/preprocessors/resize.js';
import { checkAborted } from '../engine/context.js';
import { applyIpAdapter } from './apply-ip-adapter.js';
import { embedsToTokens } from './runtime/ip-embeds.js';
import { clipVisionRuntime, projectorRuntime } from './runtime/networks.js';
import { imageToPixels, pixelsToImage } from './runtime/pixels.js';
import type { NodeDef } from './types.js';
import { expectValue, type ClipVisionValue, type ImageValue, type IpAdapterValue, type IpEmbedsValue, type MaskValue } from './values.js';

const TILE = 256;

/** Python's round (half to even), as torchvision's CenterCrop offsets use it. */
const pyRound = (x: number) => {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
};

/** A centre crop box [left, top, right, bottom] of (h, w) in an H x W image (torchvision CenterCrop). */
const centreBox = (H: number, W: number, h: number, w: number): [number, number, number, number] => {
  const top = pyRound((H - h) / 2);
  const left = pyRound((W - w) / 2);
  return [left, top, left + w, top + h];
};

export interface TileLayout {
  /** Crop of the original image before resizing (near-square images), or null. */
  crop: [number, number, number, number] | null;
  /** Size after resizing. */
  width: number;
  height: number;
  /** Crop of the resized image (longer than 4:1), or null. */
  crop2: [number, number, number, number] | null;
  /** Final size, and each tile's top-left corner in it (tiles are TILE x TILE). */
  finalWidth: number;
  finalHeight: number;
  tiles: { x: number; y: number }[];
}

/** apply_tiled's geometry for an oh x ow reference. */
export function tileLayout(oh: number, ow: number): TileLayout {
  let crop: TileLayout['crop'] = null;
  let width: number;
  let height: number;
  if (oh / ow > 0.75 && oh / ow < 1.33) {
    const s = Math.min(oh, ow);
    crop = centreBox(oh, ow, s, s);
    width = height = TILE * 2;
  } else if (oh < ow) {
    width = Math.trunc((TILE * ow) / oh);
    height = TILE;
  } else {
    width = TILE;
    height = Math.trunc((TILE * oh) / ow);
  }
  let crop2: TileLayout['crop2'] = null;
  if (oh / ow > 4 || oh / ow < 0.25) {
    const [ch, cw] = oh < ow ? [TILE, TILE * 4] : [TILE * 4, TILE];
    crop2 = centreBox(height, width, ch, cw);
  }
  const fw = crop2 ? crop2[2] - crop2[0] : width;
  const fh = crop2 ? crop2[3] - crop2[1] : height;
  const tx = Math.ceil(fw / TILE);
  const ty = Math.ceil(fh / TILE);
  const ox = Math.max(0, (tx * TILE - fw) / (tx > 1 ? tx - 1 : 1));
  const oy = Math.max(0, (ty * TILE - fh) / (ty > 1 ? ty - 1 : 1));
  const tiles: TileLayout['tiles'] = [];
  for (let y = 0; y < ty; y++) for (let x = 0; x < tx; x++) tiles.push({ x: Math.trunc(x * (TILE - ox)), y: Math.trunc(y * (TILE - oy)) });
  return { crop, width, height, crop2, finalWidth: fw, finalHeight: fh, tiles };
}

/** Cuts a (w x h) box out of 8-bit pixels. */
function cut(p: Pixels, [l, t, r, b]: [number, number, number, number]): Pixels {
  const C = p.channels;
  const w = r - l;
  const data = new Uint8Array(w * (b - t) * C);
  for (let y = t; y < b; y++) data.set(p.data.subarray((y * p.width + l) * C, (y * p.width + r) * C), (y - t) * w * C);
  return { width: w, height: b - t, channels: C, data };
}

/** An image or mask plane through the layout: crop, resize, crop (Lanczos for images, bilinear for masks). */
function laidOut(p: Pixels, L: TileLayout, filter: 'lanczos' | 'bilinear'): Pixels {
  let q = L.crop ? cut(p, L.crop) : p;
  q = q.width === L.width && q.height === L.height ? q : resample(q, L.width, L.height, filter);
  return L.crop2 ? cut(q, L.crop2) : q;
}

const INPUT_NAMES = new Set(['model', 'ip_adapter', 'tokens', 'negative', 'composition', 'mask']);

export const ipAdapterTiled: NodeDef = {
  type: 'ip-adapter-tiled',
  title: 'IP-Adapter Tiled',
  category: 'IP-Adapter',
  description:
    "For a reference that is not square (ComfyUI's IPAdapterTiled): instead of centre-cropping it to the encoder's square, it is cut into 256x256 tiles (up to 4: a near-square image becomes 2x2, a wide one a row), each an image prompt acting only on its part of the picture through an attention mask (the tile's region of the optional attention mask). Outputs the model, the tiles and their masks. The other params are Apply IP-Adapter's.",
  inputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'ip_adapter', type: 'IP_ADAPTER' },
    { name: 'clip_vision', type: 'CLIP_VISION' },
    { name: 'image', type: 'IMAGE' },
    { name: 'negative_image', label: 'negative image', type: 'IMAGE', optional: true },
    { name: 'attn_mask', label: 'attention mask', type: 'MASK', optional: true },
    ...applyIpAdapter.inputs.filter((p) => !INPUT_NAMES.has(p.name)),
  ],
  outputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'tiles', type: 'IMAGE' },
    { name: 'masks', type: 'MASK' },
  ],
  params: applyIpAdapter.params,
  check: applyIpAdapter.check,
  async execute(inputs, params, ctx) {
    const adapter = expectValue<IpAdapterValue>(inputs.ip_adapter, 'IP_ADAPTER', 'ip_adapter');
    const cv = expectValue<ClipVisionValue>(inputs.clip_vision, 'CLIP_VISION', 'clip_vision');
    const img = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const negImg = inputs.negative_image === undefined ? undefined : expectValue<ImageValue>(inputs.negative_image, 'IMAGE', 'negative_image');
    const attn = inputs.attn_mask === undefined ? undefined : expectValue<MaskValue>(inputs.attn_mask, 'MASK', 'attn_mask');
    const L = tileLayout(img.height, img.width);
    const W = L.finalWidth;
    const H = L.finalHeight;
    // 1. The image(s) and the attention mask (ones by default; resized to the image first, as apply_tiled does).
    const images = Array.from({ length: img.batch }, (_, b) => laidOut(imageToPixels(img, b), L, 'lanczos'));
    let maskPx: Pixels = { width: img.width, height: img.height, channels: 1, data: new Uint8Array(img.width * img.height).fill(255) };
    if (attn) {
      const m = Uint8Array.from(attn.data.subarray(0, attn.width * attn.height), (v) => Math.round(Math.min(1, Math.max(0, v)) * 255));
      maskPx = resizeTo({ width: attn.width, height: attn.height, channels: 1, data: m }, img.width, img.height, { mode: 'stretch', filter: 'bilinear' });
      if (attn.batch > 1) ctx.log('warn', `IP-Adapter Tiled: the attention mask has ${attn.batch} planes; the first is used`);
    }
    const mask = laidOut(maskPx, L, 'bilinear');
    // 2. Tiles (tile-major, then the batch) and their region masks.
    const n = L.tiles.length * img.batch;
    const tiles: Pixels[] = [];
    const masks = new Float32Array(n * W * H);
    L.tiles.forEach((t, k) => {
      const box: [number, number, number, number] = [t.x, t.y, Math.min(W, t.x + TILE), Math.min(H, t.y + TILE)];
      for (let b = 0; b < img.batch; b++) {
        tiles.push(cut(images[b]!, box));
        const plane = masks.subarray((k * img.batch + b) * W * H);
        for (let y = box[1]; y < box[3]; y++) for (let x = box[0]; x < box[2]; x++) plane[y * W + x] = mask.data[y * W + x]! / 255;
      }
    });
    // 3. Encode every tile (and the negative image), project, then Apply IP-Adapter with one mask per tile.
    const vision = await clipVisionRuntime(ctx.models, cv.path);
    const proj = await projectorRuntime(ctx.models, adapter.path);
    checkAdapterMatchesVision(proj.adapter, vision.config, vision.weightsFile);
    checkAborted(ctx.signal);
    const encode = async (list: Pixels[]): Promise<IpEmbedsValue> => {
      const S = vision.config.imageSize;
      const C = vision.config.numChannels;
      const px = new Float32Array(list.length * C * S * S);
      list.forEach((p, i) => px.set(clipPreprocess({ width: p.width, height: p.height, data: p.data }, vision.preprocess).data, i * C * S * S));
      const out = await vision.encode({ data: px, dims: [list.length, C, S, S] });
      const src = adapter.adapterKind === 'base' ? out.imageEmbeds : out.penultimate;
      if (!src) throw new Error(`${path.basename(vision.weightsFile)} has no visual projection, so it gives no image_embeds for a base IP-Adapter`);
      return {
        kind: 'IP_EMBEDS',
        adapterPath: adapter.path,
        adapterKind: adapter.adapterKind,
        visionPath: cv.path,
        count: list.length,
        rowDims: src.dims.slice(1),
        data: src.data,
      };
    };
    const pos = await encode(tiles);
    const neg = negImg ? await encode(Array.from({ length: negImg.batch }, (_, b) => imageToPixels(negImg, b))) : undefined;
    const tokens = await embedsToTokens(ctx.models, adapter, pos, neg, cv.path);
    const maskValue: MaskValue = { kind: 'MASK', batch: n, width: W, height: H, data: masks };
    ctx.log('info', `IP-Adapter Tiled: ${L.tiles.length} tile(s) of ${TILE}x${TILE} from the ${img.width}x${img.height} reference (${W}x${H} after resizing)`);
    const rest = Object.fromEntries(Object.entries(inputs).filter(([k]) => !['clip_vision', 'image', 'negative_image', 'attn_mask'].includes(k)));
    const { model } = await applyIpAdapter.execute({ ...rest, tokens, mask: maskValue }, params, ctx);
    return { model, tiles: pixelsToImage(tiles), masks: maskValue };
  },
};
