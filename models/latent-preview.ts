/**
 * A cheap RGB preview of SD latents for progress events: each latent pixel's 4 channels times a fixed
 * 4x3 matrix (the linear fit of the SD1.5 VAE decoder used by ComfyUI's Latent2RGB previewer), so a
 * step can show something without running the VAE. One preview pixel per latent pixel (1/8 scale).
 */
import sharp from 'sharp';

/** SD1.5 latent -> RGB factors: rows are latent channels, columns R, G, B. */
export const SD15_LATENT_RGB_FACTORS: readonly (readonly [number, number, number])[] = [
  [0.3512, 0.2297, 0.3227],
  [0.325, 0.4974, 0.235],
  [-0.2829, 0.1762, 0.2721],
  [-0.212, -0.2616, -0.7177],
];

export interface LatentPreview {
  width: number;
  height: number;
  /** Interleaved RGB, width * height * 3 bytes, row-major. */
  rgb: Uint8Array;
}

/**
 * latents (B, C, h, w) -> RGB preview of batch item `index`: rgb = clamp(sum_c z_c F[c], -1, 1)
 * mapped from [-1, 1] to 0..255.
 */
export function latentPreview(latents: Float32Array, dims: readonly number[], index = 0, factors = SD15_LATENT_RGB_FACTORS): LatentPreview {
  if (dims.length !== 4) throw new Error(`latent preview: expected latents shaped [B, C, h, w], got [${dims}]`);
  const [B, C, h, w] = dims as readonly [number, number, number, number];
  if (C !== factors.length) throw new Error(`latent preview: latents have ${C} channels but the factors have ${factors.length} rows`);
  if (latents.length !== B * C * h * w) throw new Error(`latent preview: shape [${dims}] needs ${B * C * h * w} values, got ${latents.length}`);
  if (!(index >= 0 && index < B)) throw new Error(`latent preview: batch index ${index} is outside 0..${B - 1}`);
  const hw = h * w;
  const base = index * C * hw;
  const rgb = new Uint8Array(hw * 3);
  for (let p = 0; p < hw; p++) {
    for (let j = 0; j < 3; j++) {
      let v = 0;
      for (let c = 0; c < C; c++) v += latents[base + c * hw + p]! * factors[c]![j]!;
      const clamped = Math.min(1, Math.max(-1, v));
      rgb[p * 3 + j] = Math.round(((clamped + 1) / 2) * 255);
    }
  }
  return { width: w, height: h, rgb };
}

/** Encodes a preview as PNG (optionally enlarged `scale` times, nearest neighbour) and returns base64. */
export async function previewPngBase64(p: LatentPreview, scale = 1): Promise<string> {
  let img = sharp(Buffer.from(p.rgb.buffer, p.rgb.byteOffset, p.rgb.byteLength), { raw: { width: p.width, height: p.height, channels: 3 } });
  if (scale !== 1) img = img.resize(Math.max(1, Math.round(p.width * scale)), Math.max(1, Math.round(p.height * scale)), { kernel: 'nearest' });
  const png = await img.png().toBuffer();
  return png.toString('base64');
}
