/**
 * IP-Adapter attention masks on the UNet's query grids, as diffusers 0.30 does it
 * (diffusers/image_processor.py IPAdapterMaskProcessor.downsample):
 *   ratio = w_mask / h_mask;  h = int(sqrt(Q / ratio)), + 1 if Q % h;  w = Q // h
 *   mask_q = F.interpolate(mask, size=(h, w), mode="bicubic") flattened row-major (torch's bicubic:
 *            align_corners=False, A = -0.75, edge taps clamped, no antialias), then zero-padded or
 *            cut to Q values when h * w differs from Q (a mask of another aspect ratio than the latent).
 * The UNet multiplies each image's attention output by it (models/unet-blocks.ts attentionModule).
 * Bicubic values at an edge are not 0 / 1 and may over- or undershoot, as the reference's are.
 */

/** A mask batch: (B, G, H, W) float32, G = one mask per image group. */
export interface MaskTensor {
  data: Float32Array;
  dims: [number, number, number, number];
}

/** The (h, w) grid diffusers downsamples a (maskH, maskW) mask to for `numQueries` queries. */
export function ipMaskGrid(maskH: number, maskW: number, numQueries: number): [number, number] {
  const ratio = maskW / maskH;
  let h = Math.trunc(Math.sqrt(numQueries / ratio));
  if (h < 1) h = 1; // diffusers would divide by zero here (a mask far wider than the latent)
  h += numQueries % h !== 0 ? 1 : 0;
  return [h, Math.floor(numQueries / h)];
}

const f = Math.fround;
const A = -0.75;
const cubic1 = (x: number) => f(f(f(f(f((A + 2) * x) - (A + 3)) * x) * x) + 1); // |x| <= 1
const cubic2 = (x: number) => f(f(f(f(f(f(A * x) - 5 * A) * x) + 8 * A) * x) - 4 * A); // 1 < |x| < 2

/** torch's bicubic taps for one axis: 4 clamped source indices and weights per output index. */
function cubicTaps(inSize: number, outSize: number): { idx: Int32Array; w: Float32Array } {
  const scale = f(inSize / outSize);
  const idx = new Int32Array(outSize * 4);
  const w = new Float32Array(outSize * 4);
  for (let i = 0; i < outSize; i++) {
    const src = f(f(scale * f(i + 0.5)) - 0.5);
    const i0 = Math.floor(src);
    const t = f(src - i0);
    const ws = [cubic2(f(t + 1)), cubic1(t), cubic1(f(1 - t)), cubic2(f(f(1 - t) + 1))];
    for (let j = 0; j < 4; j++) {
      idx[i * 4 + j] = Math.min(Math.max(i0 - 1 + j, 0), inSize - 1);
      w[i * 4 + j] = ws[j]!;
    }
  }
  return { idx, w };
}

/** F.interpolate(plane, size=(h, w), mode="bicubic") of one (H, W) plane, float32 as torch's CPU kernel sums it. */
export function bicubicResize(plane: Float32Array, H: number, W: number, h: number, w: number): Float32Array {
  const ty = cubicTaps(H, h);
  const tx = cubicTaps(W, w);
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let j = 0; j < 4; j++) {
        const row = ty.idx[y * 4 + j]! * W;
        let r = 0;
        for (let i = 0; i < 4; i++) r = f(r + f(plane[row + tx.idx[x * 4 + i]!]! * tx.w[x * 4 + i]!));
        acc = f(acc + f(r * ty.w[y * 4 + j]!));
      }
      out[y * w + x] = acc;
    }
  }
  return out;
}

/** Every (B, G) mask downsampled to `numQueries` values (IPAdapterMaskProcessor.downsample): (B, G, numQueries). */
export function downsampleIpMask(mask: MaskTensor, numQueries: number): Float32Array {
  const [B, G, H, W] = mask.dims;
  const [h, w] = ipMaskGrid(H, W, numQueries);
  const out = new Float32Array(B * G * numQueries); // zero padding where h * w < numQueries
  for (let p = 0; p < B * G; p++) {
    const q = bicubicResize(mask.data.subarray(p * H * W, (p + 1) * H * W), H, W, h, w);
    out.set(q.subarray(0, Math.min(q.length, numQueries)), p * numQueries);
  }
  return out;
}

/** Whether a mask (H, W) has another aspect ratio than a (height, width) latent, beyond a rounding of one latent pixel. */
export function maskAspectDiffers(maskH: number, maskW: number, height: number, width: number): boolean {
  return Math.abs((maskW / maskH) * height - width) >= 1;
}
