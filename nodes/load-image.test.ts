/** Load Image's mask param: a painted mask image replaces the alpha mask (white = repaint). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { ExecContext } from '../engine/context.js';
import { PathResolver } from '../engine/paths.js';
import { validateWorkflow } from '../engine/validate.js';
import { resampleMask } from '../models/inpaint.js';
import { maskToOverlay, overlayToMask } from '../renderer/mask.js';
import { nodeSpecs } from './index.js';
import { loadImage } from './load-image.js';
import type { MaskValue } from './values.js';

const ctx = {} as ExecContext; // Load Image uses no context
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-mask-'));

async function png(file: string, width: number, height: number, channels: 3 | 4, px: ArrayLike<number>): Promise<string> {
  await sharp(Buffer.from(Uint8Array.from(px)), { raw: { width, height, channels } })
    .png()
    .toFile(file);
  return file;
}

/** A half-transparent 4x3 image: its alpha mask would be 0.5 everywhere. */
async function halfTransparent(dir: string): Promise<string> {
  return png(path.join(dir, 'image.png'), 4, 3, 4, Array.from({ length: 12 }, (_, i) => [i * 20, 100, 200, 128]).flat());
}

describe('Load Image with a mask image', () => {
  it('a mask saved by the painter (white strokes on black) gives MASK = painted coverage, not the alpha', async () => {
    const dir = tmp();
    // The painter's overlay: a fully painted column, a soft (antialiased) edge, the rest unpainted.
    const coverage = Array.from({ length: 12 }, (_, i) => [255, 140, 0, 0][i % 4]);
    const overlay = new Uint8ClampedArray(coverage.flatMap((a) => [255, 48, 96, a]));
    const mask = await png(path.join(dir, 'mask.png'), 4, 3, 4, overlayToMask(overlay));
    const out = await loadImage.execute({}, { image: await halfTransparent(dir), mask }, ctx);
    const m = out.mask as MaskValue;
    expect([m.batch, m.width, m.height]).toEqual([1, 4, 3]);
    expect(Array.from(m.data)).toEqual(coverage.map((a) => Math.fround(a / 255)));
    // Reopened in the painter, the saved mask gives back the same coverage.
    const { data } = await sharp(mask).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    expect(Array.from(maskToOverlay(data)).filter((_, i) => i % 4 === 3)).toEqual(coverage);
  });

  it('black or transparent is kept, opaque white is repainted (RGB and RGBA masks)', async () => {
    const dir = tmp();
    const image = await halfTransparent(dir);
    const rgb = await png(path.join(dir, 'rgb.png'), 2, 1, 3, [255, 255, 255, 0, 0, 0]);
    const rgba = await png(path.join(dir, 'rgba.png'), 2, 1, 4, [255, 255, 255, 255, 255, 255, 255, 0]);
    for (const mask of [rgb, rgba]) {
      const m = (await loadImage.execute({}, { image, mask }, ctx)).mask as MaskValue;
      expect([m.width, m.height]).toEqual([4, 3]); // scaled to the image
      // Column by column: left half repainted, right half kept, a bilinear ramp between.
      const row = Array.from(m.data.subarray(0, 4));
      expect(row[0]).toBe(1);
      expect(row[3]).toBe(0);
      expect(row[1]).toBeGreaterThan(row[2]);
      const expected = resampleMask({ batch: 1, width: 2, height: 1, data: new Float32Array([1, 0]) }, 4, 3, false);
      expect(Array.from(m.data)).toEqual(Array.from(expected));
    }
  });

  it('without a mask the MASK stays 1 - alpha', async () => {
    const dir = tmp();
    const m = (await loadImage.execute({}, { image: await halfTransparent(dir), mask: '' }, ctx)).mask as MaskValue;
    expect(Array.from(m.data)).toEqual(new Array(12).fill(Math.fround(1 - 128 / 255)));
  });

  it('validation: the mask may stay empty; a mask that is not there is named', async () => {
    const dir = tmp();
    const image = await halfTransparent(dir);
    const specs = new Map(nodeSpecs().map((s) => [s.type, s]));
    const wf = (mask: string) => ({
      format: 'ipadapter-studio/workflow' as const,
      version: 1 as const,
      nodes: [{ id: 'img', type: 'load-image', params: { image, mask } }],
      edges: [],
    });
    const paths = new PathResolver(dir, dir);
    // (The graph has no output node; only the node's own errors matter here.)
    const nodeErrors = (mask: string) => validateWorkflow(wf(mask), specs, { paths }).filter((e) => e.node === 'img');
    expect(nodeErrors('')).toEqual([]);
    expect(nodeErrors('painted.png')).toEqual([{ node: 'img', param: 'mask', message: expect.stringMatching(/^Load Image \(img\): missing: painted\.png/) }]);
  });
});
