/** IP-Adapter Tiled: apply_tiled's geometry as ComfyUI computes it, and a run through the engine (demo models). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../engine/api.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import { tileLayout } from './ip-adapter-tiled.js';
import type { ImageValue, MaskValue } from './values.js';

describe('tileLayout (IPAdapterPlus.py apply_tiled, tile 256)', () => {
  it('near square (3:4 .. 4:3): centre-cropped to a square, resized to 512², 2x2 tiles without overlap', () => {
    const L = tileLayout(480, 600); // oh / ow = 0.8
    expect(L.crop).toEqual([60, 0, 540, 480]); // round((600 - 480) / 2) = 60
    expect([L.width, L.height, L.crop2]).toEqual([512, 512, null]);
    expect(L.tiles).toEqual([
      { x: 0, y: 0 },
      { x: 256, y: 0 },
      { x: 0, y: 256 },
      { x: 256, y: 256 },
    ]);
  });

  it('wide: the short side to 256, the long one in proportion (int), tiles_x = ceil(w / 256) overlapping by (tiles·256 − w) / (tiles − 1)', () => {
    const L = tileLayout(200, 300); // 0.667: resize (int(256·300/200), 256) = (384, 256)
    expect([L.crop, L.width, L.height]).toEqual([null, 384, 256]);
    expect(L.tiles).toEqual([
      { x: 0, y: 0 },
      { x: 128, y: 0 },
    ]); // overlap (512 - 384) / 1 = 128
    const tall = tileLayout(700, 200); // 3.5: (256, int(256·3.5)) = (256, 896), 4 tiles, overlap (1024 - 896) / 3
    expect([tall.width, tall.height]).toEqual([256, 896]);
    expect(tall.tiles.map((t) => t.y)).toEqual([0, Math.trunc(256 - 128 / 3), Math.trunc(2 * (256 - 128 / 3)), Math.trunc(3 * (256 - 128 / 3))]);
  });

  it('longer than 4:1: centre-cropped to 1024 x 256 after resizing, 4 tiles', () => {
    const L = tileLayout(100, 900); // (int(256·9), 256) = (2304, 256) -> crop (256, 1024)
    expect([L.width, L.height]).toEqual([2304, 256]);
    expect(L.crop2).toEqual([640, 0, 1664, 256]);
    expect([L.finalWidth, L.finalHeight]).toEqual([1024, 256]);
    expect(L.tiles.map((t) => t.x)).toEqual([0, 256, 512, 768]);
  });
});

describe('IP-Adapter Tiled through the engine', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-tiled-'));
  let engine: Engine;
  beforeAll(async () => {
    const w = 96;
    const h = 48;
    const px = Buffer.from(Array.from({ length: w * h }, (_, i) => [(i % w) * 2, 120, 255 - (i % w) * 2]).flat());
    await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toFile(path.join(tmp, 'wide.png'));
    engine = createEngine({
      modelsDir: path.join(tmp, 'none'),
      outputDir: path.join(tmp, 'out'),
      provider: 'cpu',
      userDataDir: path.join(tmp, 'user'),
      demo: true,
    });
  });
  afterAll(async () => {
    await engine.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a 2:1 reference becomes 2 tiles of 256² with region masks that cover the picture; the sampler runs with them', async () => {
    const wf: Workflow = ipAdapterWorkflow({ image: path.join(tmp, 'wide.png'), steps: 2, output: 'preview' });
    wf.nodes = wf.nodes.filter((n) => !['projection', 'apply', 'vision_encode'].includes(n.id));
    wf.edges = wf.edges.filter((e) => ![e.from.node, e.to.node].some((x) => ['projection', 'apply', 'vision_encode'].includes(x)));
    wf.nodes.push({ id: 'tiled', type: 'ip-adapter-tiled', params: { weight: 0.8 } });
    const link = (a: string, ap: string, b: string, bp: string) => wf.edges.push({ from: { node: a, port: ap }, to: { node: b, port: bp } });
    link('checkpoint', 'model', 'tiled', 'model');
    link('ip_adapter', 'ip_adapter', 'tiled', 'ip_adapter');
    link('clip_vision', 'clip_vision', 'tiled', 'clip_vision');
    link('image', 'image', 'tiled', 'image');
    link('tiled', 'model', 'sampler', 'model');
    const out: Record<string, unknown> = {};
    const r = await engine.run(wf, { onNodeOutputs: (node, o) => node === 'tiled' && Object.assign(out, o) });
    expect(r.error ?? '').toBe('');
    const tiles = out.tiles as ImageValue;
    const masks = out.masks as MaskValue;
    expect([tiles.batch, tiles.width, tiles.height]).toEqual([2, 256, 256]);
    expect([masks.batch, masks.width, masks.height]).toEqual([2, 512, 256]);
    const at = (b: number, x: number) => masks.data[b * 512 * 256 + 100 * 512 + x];
    expect([at(0, 0), at(0, 255), at(0, 256), at(1, 255), at(1, 256), at(1, 511)]).toEqual([1, 1, 0, 0, 1, 1]);
  });
});
