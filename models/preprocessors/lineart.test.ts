import { describe, expect, it } from 'vitest';
import { lineart } from './lineart.js';
import { scribble } from './scribble.js';
import type { Pixels } from './resize.js';

/** White paper (230) with a 1-pixel dark line (30) in column `col`; odd size. */
function drawing(w = 21, h = 13, col = 10): Pixels {
  const data = new Uint8Array(w * h).fill(230);
  for (let y = 0; y < h; y++) data[y * w + col] = 30;
  return { width: w, height: h, channels: 1, data };
}

describe('lineart', () => {
  it('a dark line on paper becomes a white line on black', () => {
    const out = lineart(drawing());
    expect(out.data[6 * 21 + 10]).toBe(255);
    expect(out.data[6 * 21 + 2]).toBe(0);
    expect(out.data[6 * 21 + 18]).toBe(0);
  });
  it('blackOnWhite is the exact inverse', () => {
    const a = lineart(drawing()).data;
    const b = lineart(drawing(), { blackOnWhite: true }).data;
    for (let i = 0; i < a.length; i++) expect(a[i] + b[i]).toBe(255);
  });
  it('flat images and faint texture below the threshold give no lines', () => {
    const flat: Pixels = { width: 7, height: 5, channels: 3, data: new Uint8Array(105).fill(100) };
    expect(lineart(flat).data.every((v) => v === 0)).toBe(true);
    const faint = drawing(9, 9, 4);
    for (let y = 0; y < 9; y++) faint.data[y * 9 + 4] = 227; // 3 levels below the paper
    expect(lineart(faint, { threshold: 4 }).data.every((v) => v === 0)).toBe(true);
  });
  it('rejects bad parameters', () => {
    expect(() => lineart(drawing(), { gain: 0 })).toThrow(/gain > 0/);
  });
});

describe('scribble', () => {
  it('auto: dark strokes on light paper are the strokes', () => {
    const out = scribble(drawing());
    expect(out.data[3 * 21 + 10]).toBe(255);
    expect(out.data.reduce((s, v) => s + (v ? 1 : 0), 0)).toBe(13);
  });
  it('auto: light strokes on a dark image are the strokes', () => {
    const d = drawing();
    const inv = { ...d, data: d.data.map((v) => 255 - v) };
    expect(Array.from(scribble(inv).data)).toEqual(Array.from(scribble(d).data));
  });
  it('threshold decides which gray levels count', () => {
    const img: Pixels = { width: 4, height: 1, channels: 1, data: Uint8Array.from([10, 100, 150, 250]) };
    expect(Array.from(scribble(img, { threshold: 128, strokes: 'dark' }).data)).toEqual([255, 255, 0, 0]);
    expect(Array.from(scribble(img, { threshold: 200, strokes: 'dark' }).data)).toEqual([255, 255, 255, 0]);
    expect(Array.from(scribble(img, { threshold: 128, strokes: 'light' }).data)).toEqual([0, 0, 255, 255]);
  });
  it('thickness dilates by a disc and stays inside odd-sized images', () => {
    const out = scribble(drawing(), { thickness: 2 });
    const row = Array.from(out.data.subarray(6 * 21, 7 * 21))
      .map((v) => (v ? 1 : 0))
      .join('');
    expect(row).toBe('000000001111100000000');
    expect(() => scribble(drawing(), { thickness: 1.5 })).toThrow(/thickness/);
  });
});
