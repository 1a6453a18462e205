/** The mask painter's pixel rules (renderer/mask.ts). */
import { describe, expect, it } from 'vitest';
import { invertOverlay, maskToOverlay, OVERLAY_RGB, overlayEmpty, overlayToMask, toCanvasPoint } from './mask.js';

const overlay = (alphas: number[]) => new Uint8ClampedArray(alphas.flatMap((a) => [...OVERLAY_RGB, a]));
const alphas = (px: Uint8ClampedArray) => Array.from(px).filter((_, i) => i % 4 === 3);

describe('mask painter pixels', () => {
  it('saves coverage as opaque grey (white strokes on black) and reads it back', () => {
    const o = overlay([0, 64, 255]);
    const m = overlayToMask(o);
    expect(Array.from(m)).toEqual([0, 0, 0, 255, 64, 64, 64, 255, 255, 255, 255, 255]);
    expect(alphas(maskToOverlay(m))).toEqual([0, 64, 255]);
  });

  it('invert swaps painted and unpainted; empty means nothing painted', () => {
    const o = overlay([0, 64, 255]);
    invertOverlay(o);
    expect(alphas(o)).toEqual([255, 191, 0]);
    expect(overlayEmpty(overlay([0, 0]))).toBe(true);
    expect(overlayEmpty(overlay([0, 1]))).toBe(false);
  });

  it('maps pointer positions on a scaled canvas to canvas pixels', () => {
    const rect = { left: 100, top: 50, width: 640, height: 320 };
    expect(toCanvasPoint(100, 50, rect, { width: 64, height: 32 })).toEqual({ x: 0, y: 0 });
    expect(toCanvasPoint(420, 210, rect, { width: 64, height: 32 })).toEqual({ x: 32, y: 16 });
  });
});
