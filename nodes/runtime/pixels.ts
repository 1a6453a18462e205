/**
 * IMAGE values <-> 8-bit RGB pixels (the preprocessors' and resamplers' format): used by the
 * preprocessor nodes (image-resize.ts mapImages) and by the ControlNet runtime for control images.
 */
import type { Pixels } from '../../models/preprocessors/resize.js';
import type { ImageValue } from '../values.js';

/** Image `index` of an IMAGE batch as 8-bit RGB (round(clamp(x) * 255), exact for Load Image's u / 255). */
export function imageToPixels(img: ImageValue, index = 0): Pixels {
  const n = img.width * img.height * 3;
  const data = new Uint8Array(n);
  const off = index * n;
  for (let i = 0; i < n; i++) data[i] = Math.round(Math.min(1, Math.max(0, img.data[off + i])) * 255);
  return { width: img.width, height: img.height, channels: 3, data };
}

/** 8-bit images (all the same size; gray replicated) -> an IMAGE batch in [0, 1]. */
export function pixelsToImage(list: Pixels[]): ImageValue {
  const { width, height } = list[0];
  const n = width * height;
  const data = new Float32Array(list.length * n * 3);
  list.forEach((p, b) => {
    if (p.width !== width || p.height !== height) throw new Error(`images of one batch differ in size: ${p.width}x${p.height} vs ${width}x${height}`);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) {
        const v = p.channels === 1 ? p.data[i] : p.data[i * p.channels + c];
        data[(b * n + i) * 3 + c] = v / 255;
      }
    }
  });
  return { kind: 'IMAGE', batch: list.length, width, height, data };
}
