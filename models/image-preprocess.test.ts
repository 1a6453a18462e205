import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLIP_DEFAULTS,
  PIL_RESAMPLE,
  clipPreprocess,
  loadImageRGBA,
  parsePreprocessorConfig,
  pillowResize,
  resizeAndCrop,
  shortestEdgeSize,
} from './image-preprocess.js';
import { DEFAULT_MAX_IMAGE_PIXELS, maxImagePixels } from './image-limits.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'image-preprocess-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A PNG of w x h filled with one RGBA colour. */
async function solidPng(file: string, w: number, h: number, rgba: [number, number, number, number]): Promise<void> {
  const data = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) data.set(rgba, i * 4);
  await sharp(data, { raw: { width: w, height: h, channels: 4 } })
    .png()
    .toFile(file);
}

/** A PNG that claims w x h in its IHDR and holds no pixels (a decoder would have to allocate them). */
function headerOnlyPng(w: number, h: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(zlib.crc32(td), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(0))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('loadImageRGBA', () => {
  it('refuses an image above the pixel limit from its header, before decoding, with the limit in the message', async () => {
    expect(DEFAULT_MAX_IMAGE_PIXELS).toBe(50_000_000);
    const big = path.join(root, 'big.png');
    fs.writeFileSync(big, headerOnlyPng(8192, 8192));
    await expect(loadImageRGBA(big)).rejects.toThrow(
      /big\.png: the image is 8192x8192 = 67,108,864 pixels, above the limit of 50,000,000 pixels \(set IPA_MAX_IMAGE_PIXELS/,
    );
    // The limit is configurable: per call, and through IPA_MAX_IMAGE_PIXELS; a real small image over it is refused too.
    const small = path.join(root, 'small.png');
    await solidPng(small, 40, 30, [9, 9, 9, 255]);
    await expect(loadImageRGBA(small, { maxPixels: 1000 })).rejects.toThrow(/40x30 = 1,200 pixels, above the limit of 1,000 pixels/);
    expect(maxImagePixels({ IPA_MAX_IMAGE_PIXELS: '1000' })).toBe(1000);
    expect(maxImagePixels({ IPA_MAX_IMAGE_PIXELS: 'lots' })).toBe(DEFAULT_MAX_IMAGE_PIXELS);
    const before = process.env.IPA_MAX_IMAGE_PIXELS;
    process.env.IPA_MAX_IMAGE_PIXELS = '1199';
    try {
      await expect(loadImageRGBA(small)).rejects.toThrow(/above the limit of 1,199 pixels/);
    } finally {
      if (before === undefined) delete process.env.IPA_MAX_IMAGE_PIXELS;
      else process.env.IPA_MAX_IMAGE_PIXELS = before;
    }
    expect((await loadImageRGBA(small, { maxPixels: 1200 })).width).toBe(40);
  });

  it('refuses a non-image file with its name, and stays usable afterwards', async () => {
    const bad = path.join(root, 'notes.png');
    fs.writeFileSync(bad, 'this is text, not pixels');
    await expect(loadImageRGBA(bad)).rejects.toThrow(/notes\.png: not a readable image/);
    await expect(loadImageRGBA(path.join(root, 'missing.png'))).rejects.toThrow(/missing\.png: not a readable image/);
    const ok = path.join(root, 'ok.png');
    await solidPng(ok, 3, 2, [1, 2, 3, 255]);
    const img = await loadImageRGBA(ok);
    expect([img.width, img.height, ...img.data.slice(0, 4)]).toEqual([3, 2, 1, 2, 3, 255]);
  });

  it('replicates a grey image to RGB', async () => {
    const f = path.join(root, 'grey.png');
    await sharp(Buffer.from([7, 9]), { raw: { width: 2, height: 1, channels: 1 } })
      .png()
      .toFile(f);
    const img = await loadImageRGBA(f);
    expect([...img.data]).toEqual([7, 7, 7, 255, 9, 9, 9, 255]);
  });
});

describe('clipPreprocess', () => {
  it('drops alpha (PIL convert("RGB")), never composites', async () => {
    const f = path.join(root, 'transparent.png');
    await solidPng(f, 40, 30, [200, 10, 50, 0]);
    const px = clipPreprocess(await loadImageRGBA(f));
    expect(px.dims).toEqual([1, 3, 224, 224]);
    const plane = 224 * 224;
    [200, 10, 50].forEach((v, c) => {
      const want = Math.fround(Math.fround(Math.fround(v / 255) - Math.fround(CLIP_DEFAULTS.mean[c])) / Math.fround(CLIP_DEFAULTS.std[c]));
      expect(px.data[c * plane + 1234]).toBe(want);
    });
  });

  it('computes the reference resize size and keeps solid colours exact', () => {
    expect(shortestEdgeSize(200, 300, 224)).toEqual([224, 336]);
    expect(shortestEdgeSize(240, 180, 224)).toEqual([298, 224]);
    const img = { width: 5, height: 7, data: new Uint8Array(5 * 7 * 3).fill(123) };
    for (const r of [PIL_RESAMPLE.BICUBIC, PIL_RESAMPLE.BILINEAR, PIL_RESAMPLE.LANCZOS]) {
      const out = pillowResize(img, 11, 3, r);
      expect(out.data.every((v) => v === 123)).toBe(true);
    }
  });

  it('supports pad and squash modes and reads configs', () => {
    const cfg = parsePreprocessorConfig({ size: { shortest_edge: 8 }, crop_size: { height: 8, width: 8 }, resample: 2 });
    expect(cfg.resample).toBe(2);
    const img = { width: 16, height: 8, data: new Uint8Array(16 * 8 * 4).fill(255) };
    const pad = resizeAndCrop(img, cfg, { crop: 'pad' });
    expect([pad.width, pad.height, pad.data[0]]).toEqual([8, 8, 0]); // top row is padding
    const sq = resizeAndCrop(img, cfg, { crop: 'squash' });
    expect([sq.width, sq.height, sq.data[0]]).toEqual([8, 8, 255]);
  });
});
