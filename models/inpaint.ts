/**
 * Inpainting arithmetic, shared by VAE Encode (with a mask), Set Latent Noise Mask and the
 * DDIM sampler. Masks are (batch, H, W) in [0, 1], 1 = repaint (diffusers' and ComfyUI's
 * convention; Load Image gives 1 - alpha, so transparent pixels are repainted).
 *
 * Standard (4-channel) UNet, diffusers StableDiffusionInpaintPipeline (num_channels_unet == 4),
 * after each DDIM step i of n:
 *     init = i < n - 1 ? add_noise(image_latents, noise, timesteps[i + 1]) : image_latents
 *     x    = (1 - mask) * init + mask * x
 * with `noise` the draw that started the loop and the mask at latent size.
 * 9-channel inpainting UNet: no blending; the UNet input is cat([x, mask, masked_image_latents])
 * along channels, masked_image_latents = VAE(image * (mask < 0.5)) (the masked area grey).
 */

const fr = Math.fround;

/** dims as (B, C, h, w); anything but 4 dims is an error naming `what`. */
function latentDims(dims: readonly number[], what: string): readonly [number, number, number, number] {
  if (dims.length !== 4) throw new Error(`${what}: expected latents shaped [B, C, h, w], got [${dims}]`);
  return dims as readonly [number, number, number, number];
}

/** A mask plane stack, as MASK values carry it. */
export interface MaskPlanes {
  batch: number;
  width: number;
  height: number;
  data: Float32Array;
}

/**
 * Resamples a mask to w x h. `binary` is diffusers' rule (binarize at 0.5, then PyTorch
 * nearest: src = floor(dst * in / out)); otherwise ComfyUI's SetLatentNoiseMask rule (PyTorch
 * bilinear, align_corners = False), which keeps soft edges.
 */
export function resampleMask(m: MaskPlanes, w: number, h: number, binary: boolean): Float32Array {
  const out = new Float32Array(m.batch * h * w);
  const sx = fr(m.width / w);
  const sy = fr(m.height / h);
  const src = (b: number, y: number, x: number) => {
    const v = m.data[(b * m.height + y) * m.width + x]!;
    return binary ? (v >= 0.5 ? 1 : 0) : v;
  };
  for (let b = 0; b < m.batch; b++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let v: number;
        if (binary) {
          v = src(b, Math.min(Math.floor(fr(y * sy)), m.height - 1), Math.min(Math.floor(fr(x * sx)), m.width - 1));
        } else {
          const fy = Math.max(fr(fr(sy * fr(y + 0.5)) - 0.5), 0);
          const fx = Math.max(fr(fr(sx * fr(x + 0.5)) - 0.5), 0);
          const y0 = Math.floor(fy);
          const x0 = Math.floor(fx);
          const y1 = Math.min(y0 + 1, m.height - 1);
          const x1 = Math.min(x0 + 1, m.width - 1);
          const ly = fy - y0;
          const lx = fx - x0;
          v = (1 - ly) * ((1 - lx) * src(b, y0, x0) + lx * src(b, y0, x1)) + ly * ((1 - lx) * src(b, y1, x0) + lx * src(b, y1, x1));
        }
        out[(b * h + y) * w + x] = v;
      }
    }
  }
  return out;
}

/**
 * x = (1 - mask) * init + mask * x, in place, for latents (B, C, h, w) and a mask (1 or B, h, w),
 * rounding each operation to float32 as PyTorch does. A mask of 1 leaves x bit-identical.
 */
export function blendByMask(x: Float32Array, init: Float32Array, mask: Float32Array, dims: readonly number[]): void {
  const [B, C, h, w] = latentDims(dims, 'blend by mask');
  const plane = h * w;
  const mb = mask.length / plane;
  if (mb !== 1 && mb !== B) throw new Error(`the noise mask has ${mb} planes for ${B} latents; give 1 mask or one per latent`);
  for (let b = 0; b < B; b++) {
    const mo = (mb === 1 ? 0 : b) * plane;
    for (let c = 0; c < C; c++) {
      const o = (b * C + c) * plane;
      for (let i = 0; i < plane; i++) {
        const m = mask[mo + i]!;
        x[o + i] = fr(fr(fr(1 - m) * init[o + i]!) + fr(m * x[o + i]!));
      }
    }
  }
}

/** The 9-channel inpainting UNet's input for one branch: cat([x, mask, masked], dim = 1) -> (B, 9, h, w). */
export function inpaintUNetInput(x: Float32Array, mask: Float32Array, masked: Float32Array, dims: readonly number[]): Float32Array {
  const [B, C, h, w] = latentDims(dims, 'inpainting UNet input');
  const plane = h * w;
  const mb = mask.length / plane;
  const cin = 2 * C + 1;
  const out = new Float32Array(B * cin * plane);
  for (let b = 0; b < B; b++) {
    const o = b * cin * plane;
    out.set(x.subarray(b * C * plane, (b + 1) * C * plane), o);
    out.set(mask.subarray((mb === 1 ? 0 : b) * plane, ((mb === 1 ? 0 : b) + 1) * plane), o + C * plane);
    out.set(masked.subarray(b * C * plane, (b + 1) * C * plane), o + (C + 1) * plane);
  }
  return out;
}

/**
 * Pixels with the masked area grey, for the masked-image latents: image (B, H, W, 3) in [0, 1]
 * and its mask at the same size; diffusers' image * (mask < 0.5) in [-1, 1] is 0.5 grey in [0, 1].
 */
export function greyMasked(rgb: Float32Array, maskAtImage: Float32Array, batch: number, plane: number): Float32Array {
  const out = new Float32Array(rgb);
  const mb = maskAtImage.length / plane;
  for (let b = 0; b < batch; b++) {
    const mo = (mb === 1 ? 0 : b) * plane;
    for (let i = 0; i < plane; i++) {
      if (maskAtImage[mo + i]! >= 0.5) for (let c = 0; c < 3; c++) out[(b * plane + i) * 3 + c] = 0.5;
    }
  }
  return out;
}
