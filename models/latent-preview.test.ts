import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { latentPreview, previewPngBase64 } from './latent-preview.js';

describe('latent preview', () => {
  it('maps a (B, 4, h, w) latent to h x w RGB bytes', async () => {
    const [B, C, h, w] = [2, 4, 3, 5];
    const z = new Float32Array(B * C * h * w);
    z[1 * C * h * w + 0] = 10; // batch 1, channel 0, pixel 0: saturates every channel with a positive factor
    const p0 = latentPreview(z, [B, C, h, w]);
    expect(p0.width).toBe(5);
    expect(p0.height).toBe(3);
    expect(p0.rgb.length).toBe(3 * 5 * 3);
    expect(p0.rgb[0]).toBe(128); // zero latent -> mid grey
    const p1 = latentPreview(z, [B, C, h, w], 1);
    expect(Array.from(p1.rgb.subarray(0, 3))).toEqual([255, 255, 255]);
    expect(() => latentPreview(z, [B, 3, h, w])).toThrow(/channels/);

    const png = Buffer.from(await previewPngBase64(p1, 2), 'base64');
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 10, 6]);
  });
});
