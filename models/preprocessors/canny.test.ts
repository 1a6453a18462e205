import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { canny, type CannyOptions } from './canny.js';
import type { Pixels } from './resize.js';

/**
 * Reference: OpenCV 4.6.0 cv2.Canny (Debian python3-opencv), edges of a 97x71 synthetic RGB
 * image, made by fixtures/make-canny-reference.py. Required agreement (share of pixels whose
 * edge / non-edge label equals OpenCV's): 100%, with and without the 5x5 Gaussian blur (both
 * pipelines are integer and follow OpenCV's arithmetic, blur included).
 */
interface RefCase extends Required<CannyOptions> {
  edges: string;
  edgeCount: number;
}
const here = path.dirname(fileURLToPath(import.meta.url));
const ref = JSON.parse(fs.readFileSync(path.join(here, 'fixtures', 'canny-reference.json'), 'utf8')) as {
  reference: string;
  width: number;
  height: number;
  rgb: string;
  cases: RefCase[];
};
const img: Pixels = { width: ref.width, height: ref.height, channels: 3, data: new Uint8Array(Buffer.from(ref.rgb, 'base64')) };

function unpack(b64: string, n: number): Uint8Array {
  const bits = Buffer.from(b64, 'base64');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (bits[i >> 3] >> (7 - (i & 7))) & 1 ? 255 : 0;
  return out;
}

function agreement(a: Uint8Array, b: Uint8Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

describe('canny vs OpenCV', () => {
  for (const c of ref.cases) {
    const label = `low ${c.low} high ${c.high} ${c.l2 ? 'L2' : 'L1'} ${c.channels}${c.blurSigma ? ` blur ${c.blurSigma}` : ''}`;
    it(label, () => {
      const got = canny(img, c);
      const want = unpack(c.edges, ref.width * ref.height);
      expect(got.channels).toBe(1);
      expect(c.edgeCount).toBeGreaterThan(100); // the fixture has real edges
      const agree = agreement(got.data, want);
      expect(agree).toBe(1);
    });
  }
});

describe('canny thresholds and sizes', () => {
  const base = ref.cases[0];
  it('higher thresholds never add edges', () => {
    const n = (o: CannyOptions) => canny(img, o).data.reduce((s, v) => s + (v ? 1 : 0), 0);
    const counts = [
      [20, 60],
      [50, 150],
      [100, 200],
      [300, 600],
      [2000, 4000],
    ].map(([low, high]) => n({ low, high }));
    for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeLessThanOrEqual(counts[i - 1]);
    expect(counts[0]).toBeGreaterThan(counts[3]);
    expect(counts[4]).toBe(0);
  });
  it('hysteresis: lowering only `low` extends edges that touch strong ones', () => {
    const a = canny(img, { low: base.low, high: base.high }).data;
    const b = canny(img, { low: 10, high: base.high }).data;
    for (let i = 0; i < a.length; i++) if (a[i]) expect(b[i]).toBe(255);
  });
  it('a flat image has no edges; a step has a line', () => {
    const flat: Pixels = { width: 9, height: 7, channels: 1, data: new Uint8Array(63).fill(128) };
    expect(canny(flat).data.every((v) => v === 0)).toBe(true);
    const step = new Uint8Array(63);
    for (let y = 0; y < 7; y++) for (let x = 5; x < 9; x++) step[y * 9 + x] = 255;
    const e = canny({ width: 9, height: 7, channels: 1, data: step }).data;
    for (let y = 0; y < 7; y++) expect(e[y * 9 + 4] || e[y * 9 + 5]).toBe(255);
  });
  it('odd and tiny sizes, RGBA input', () => {
    for (const [w, h] of [
      [1, 1],
      [1, 5],
      [5, 1],
      [3, 2],
      [13, 7],
    ]) {
      const data = new Uint8Array(w * h * 4).map((_, i) => (i * 37) & 255);
      const e = canny({ width: w, height: h, channels: 4, data });
      expect(e.width).toBe(w);
      expect(e.height).toBe(h);
      expect(e.data.length).toBe(w * h);
    }
  });
  it('rejects bad thresholds and buffers naming the problem', () => {
    expect(() => canny(img, { low: -1 })).toThrow(/thresholds/);
    expect(() => canny({ width: 4, height: 4, channels: 3, data: new Uint8Array(10) })).toThrow(/expected 4x4x3 = 48 bytes/);
  });
});
