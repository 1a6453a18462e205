import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Pixels, controlTensor, resample, resizeTo, toGray, toRGB } from './resize.js';

/**
 * Reference: Pillow 9.4.0 Image.resize (the Pillow of the tiny-sd15 reference environment) on a
 * 23x17 RGB image, from fixtures/make-resize-reference.py. resample() follows Pillow's Q22
 * integer arithmetic, so the test requires every byte identical.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const ref = JSON.parse(fs.readFileSync(path.join(here, 'fixtures', 'resize-reference.json'), 'utf8')) as {
  width: number;
  height: number;
  rgb: string;
  cases: { filter: 'lanczos' | 'bilinear'; width: number; height: number; box: [number, number, number, number] | null; rgb: string }[];
};
const src: Pixels = { width: ref.width, height: ref.height, channels: 3, data: new Uint8Array(Buffer.from(ref.rgb, 'base64')) };

describe('resample vs Pillow', () => {
  for (const c of ref.cases) {
    it(`${c.filter} ${ref.width}x${ref.height} -> ${c.width}x${c.height}${c.box ? ` box ${c.box}` : ''}`, () => {
      const got = resample(src, c.width, c.height, c.filter, c.box ?? undefined).data;
      const want = Buffer.from(c.rgb, 'base64');
      expect(got.length).toBe(want.length);
      let maxDiff = 0,
        same = 0;
      for (let i = 0; i < got.length; i++) {
        const d = Math.abs(got[i] - want[i]);
        maxDiff = Math.max(maxDiff, d);
        if (d === 0) same++;
      }
      expect(maxDiff).toBe(0);
      expect(same).toBe(got.length);
    });
  }
});

describe('resizeTo modes', () => {
  const solid = (w: number, h: number, v: number): Pixels => ({ width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3).fill(v) });
  it('same size is returned untouched', () => {
    expect(resizeTo(src, src.width, src.height)).toBe(src);
  });
  it('stretch, crop and pad all give the target size; a constant image stays constant', () => {
    for (const mode of ['stretch', 'crop', 'pad'] as const) {
      for (const [w, h] of [
        [64, 48],
        [31, 57],
        [8, 8],
        [1, 1],
      ]) {
        const out = resizeTo(solid(33, 21, 77), w, h, { mode, padValue: 77 });
        expect([out.width, out.height, out.channels]).toEqual([w, h, 3]);
        expect(out.data.every((v) => v === 77)).toBe(true);
      }
    }
  });
  it('pad keeps the whole image centred and fills the rest', () => {
    const out = resizeTo(solid(40, 20, 200), 40, 40, { mode: 'pad', padValue: 0 });
    const px = (x: number, y: number) => out.data[(y * 40 + x) * 3];
    expect(px(20, 0)).toBe(0); // band above
    expect(px(20, 39)).toBe(0); // band below
    expect(px(20, 20)).toBe(200);
    expect(px(0, 10)).toBe(200); // full width kept
  });
  it('crop keeps the centre: a left/right split image keeps its split in the middle', () => {
    const w = 60,
      h = 20;
    const data = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = w / 2; x < w; x++) data[y * w + x] = 255;
    const out = resizeTo({ width: w, height: h, channels: 1, data }, 16, 16, { mode: 'crop', filter: 'nearest' });
    expect(out.data[8 * 16 + 2]).toBe(0);
    expect(out.data[8 * 16 + 13]).toBe(255);
  });
  it('rejects bad sizes naming them', () => {
    expect(() => resizeTo(src, 0, 8)).toThrow(/positive integers, got 0x8/);
  });
});

describe('conversions', () => {
  it('gray uses OpenCV RGB2GRAY weights', () => {
    const g = toGray({ width: 3, height: 1, channels: 3, data: Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255]) });
    expect(Array.from(g)).toEqual([76, 150, 29]);
  });
  it('control tensor is RGB/255 NCHW, gray replicated, alpha dropped', () => {
    const t = controlTensor({ width: 2, height: 1, channels: 4, data: Uint8Array.from([255, 0, 51, 9, 0, 255, 0, 9]) });
    expect(t.dims).toEqual([1, 3, 1, 2]);
    expect(Array.from(t.data)).toEqual([1, 0, 0, 1, 0.2, 0].map((v) => Math.fround(v)));
    expect(toRGB({ width: 1, height: 1, channels: 1, data: Uint8Array.from([9]) }).data).toEqual(Uint8Array.from([9, 9, 9]));
  });
});
