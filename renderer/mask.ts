/**
 * Pixel rules of the mask painter, without React or the DOM (tests run them in Node). The
 * painter's canvas holds an overlay: the paint colour, with alpha = how much of the pixel is
 * painted. Saved, that becomes the mask image Load Image reads: white = repaint, black = keep.
 */

/** The overlay colour (shown half transparent over the image). */
export const OVERLAY_RGB = [255, 48, 96] as const;

type Pixels = Uint8ClampedArray | Uint8Array;

/** Overlay RGBA -> mask RGBA: grey level = painted coverage (white strokes on black), opaque. */
export function overlayToMask(overlay: Pixels): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(overlay.length);
  for (let i = 0; i < overlay.length; i += 4) {
    const a = overlay[i + 3];
    out[i] = out[i + 1] = out[i + 2] = a;
    out[i + 3] = 255;
  }
  return out;
}

/**
 * Mask RGBA (a saved mask, or any black/white image) -> overlay RGBA, to keep painting on it.
 * Coverage = luma x alpha, the rule Load Image applies (nodes/load-image.ts maskFromImage).
 */
export function maskToOverlay(mask: Pixels): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(mask.length);
  for (let i = 0; i < mask.length; i += 4) {
    const luma = (mask[i] * 19595 + mask[i + 1] * 38470 + mask[i + 2] * 7471 + 0x8000) >> 16;
    out[i] = OVERLAY_RGB[0];
    out[i + 1] = OVERLAY_RGB[1];
    out[i + 2] = OVERLAY_RGB[2];
    out[i + 3] = Math.round((luma * mask[i + 3]) / 255);
  }
  return out;
}

/** Swaps painted and unpainted, in place. */
export function invertOverlay(overlay: Pixels): void {
  for (let i = 0; i < overlay.length; i += 4) {
    overlay[i] = OVERLAY_RGB[0];
    overlay[i + 1] = OVERLAY_RGB[1];
    overlay[i + 2] = OVERLAY_RGB[2];
    overlay[i + 3] = 255 - overlay[i + 3];
  }
}

/** True when nothing is painted. */
export function overlayEmpty(overlay: Pixels): boolean {
  for (let i = 3; i < overlay.length; i += 4) if (overlay[i] !== 0) return false;
  return true;
}

/** A pointer position (client pixels) -> canvas pixels, for a canvas drawn scaled into `rect`. */
export function toCanvasPoint(
  clientX: number,
  clientY: number,
  rect: { left: number; top: number; width: number; height: number },
  canvas: { width: number; height: number },
): { x: number; y: number } {
  return { x: ((clientX - rect.left) * canvas.width) / rect.width, y: ((clientY - rect.top) * canvas.height) / rect.height };
}

/** A default brush diameter (canvas pixels) for an image: about 1/20 of its larger side. */
export function defaultBrush(width: number, height: number): number {
  return Math.max(2, Math.round(Math.max(width, height) / 20));
}

/** The largest brush the slider offers: half the larger side, at least 8. */
export function maxBrush(width: number, height: number): number {
  return Math.max(8, Math.round(Math.max(width, height) / 2));
}
