import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ExecContext } from '../engine/context.js';
import { imageResize } from './image-resize.js';
import { imageToPixels, pixelsToImage } from './runtime/pixels.js';
import { canny } from './canny.js';
import { defaultProfile } from '../models/onnx/profile.js';
import type { ImageValue, LatentValue } from './values.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'image-resize-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const emitted: string[] = [];
const ctx = {
  emitImages: () => {
    throw new Error('a preprocessor preview is not a run output');
  },
  previewOnNode: (refs: { path: string }[]) => emitted.push(...refs.map((r) => r.path)),
  tempDir: tmp,
  runId: 'r',
  nodeId: 'n',
  workflow: { format: 'ipadapter-studio/workflow', version: 1, nodes: [], edges: [] },
  models: { profile: defaultProfile() }, // Save / preview images record the graph precision
} as unknown as ExecContext;

describe('IMAGE <-> 8-bit pixels', () => {
  it('round-trips Load Image values (u / 255) exactly; gray is replicated', () => {
    const u = Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => (i * 29) % 256);
    const img = pixelsToImage([
      { width: 3, height: 1, channels: 3, data: u.subarray(0, 9) },
      { width: 3, height: 1, channels: 3, data: u.subarray(9) },
    ]);
    expect(img.batch).toBe(2);
    expect(imageToPixels(img, 1).data).toEqual(u.subarray(9));
    const g = pixelsToImage([{ width: 1, height: 1, channels: 1, data: Uint8Array.of(51) }]);
    expect(Array.from(g.data)).toEqual([0.2, 0.2, 0.2].map(Math.fround));
  });
});

describe('Image Resize node', () => {
  const img: ImageValue = { kind: 'IMAGE', batch: 1, width: 30, height: 20, data: new Float32Array(30 * 20 * 3).fill(0.5) };
  it('takes the size from a connected latent (x 8), else from the params', async () => {
    const latent: LatentValue = { kind: 'LATENT', dims: [1, 4, 3, 5], samples: new Float32Array(60) };
    const a = (await imageResize.execute({ image: img, latent }, { width: 64, height: 64, mode: 'crop', filter: 'lanczos' }, ctx)).image as ImageValue;
    expect([a.width, a.height]).toEqual([40, 24]);
    expect(emitted).toHaveLength(1); // the preview on the node
    expect(fs.existsSync(emitted[0])).toBe(true);
    const same = (await imageResize.execute({ image: img }, { width: 30, height: 20, mode: 'pad', filter: 'lanczos' }, ctx)).image;
    expect(same).toBe(img);
  });
});

describe('Canny node', () => {
  it('refuses nothing but flags low > high', () => {
    expect(canny.check!({ low_threshold: 200, high_threshold: 100 })).toHaveLength(1);
    expect(canny.check!({ low_threshold: 100, high_threshold: 200 })).toHaveLength(0);
  });
});
