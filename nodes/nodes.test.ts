/** Node behaviour that needs no models: image loading, latents, adapter application rules. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { ExecContext } from '../engine/context.js';
import { applyIpAdapter } from './apply-ip-adapter.js';
import { adapterActive } from './runtime/sampler-unet.js';
import { emptyLatentImage } from './empty-latent-image.js';
import { imageToMask } from './image-to-mask.js';
import { setLatentNoiseMask } from './set-latent-noise-mask.js';
import { loadImage } from './load-image.js';
import type { ImageValue, IpAdapterValue, IpTokensValue, LatentValue, MaskValue, ModelValue } from './values.js';

const ctx = {} as ExecContext; // these nodes use no context

describe('Load Image', () => {
  it('gives RGB in [0, 1] (u8 / 255) and a mask of 1 - alpha', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-img-')), 'a.png');
    const px = Buffer.from([255, 0, 0, 255, 0, 128, 0, 0, 0, 0, 255, 51]); // 3 pixels RGBA
    await sharp(px, { raw: { width: 3, height: 1, channels: 4 } })
      .png()
      .toFile(file);
    const out = await loadImage.execute({}, { image: file }, ctx);
    const img = out.image as ImageValue;
    const mask = out.mask as MaskValue;
    expect([img.batch, img.width, img.height]).toEqual([1, 3, 1]);
    expect(Array.from(img.data)).toEqual([1, 0, 0, 0, Math.fround(128 / 255), 0, 0, 0, 1]);
    expect(Array.from(mask.data)).toEqual([0, 1, Math.fround(1 - 51 / 255)]);
  });

  it('names the file when it is not an image', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-img-')), 'b.png');
    fs.writeFileSync(file, 'not an image');
    await expect(loadImage.execute({}, { image: file }, ctx)).rejects.toThrow(/b\.png: not a readable image/);
  });
});

describe('Empty Latent Image', () => {
  it('makes (batch, 4, h/8, w/8) zeros marked empty, and refuses sizes that are not multiples of 8', async () => {
    const out = (await emptyLatentImage.execute({}, { width: 64, height: 128, batch_size: 2 }, ctx)).latent as LatentValue;
    expect(out.dims).toEqual([2, 4, 16, 8]);
    expect(out.empty).toBe(true);
    expect(emptyLatentImage.check!({ width: 100, height: 64, batch_size: 1 })).toEqual([
      { param: 'width', message: expect.stringMatching(/not a multiple of 8/) },
    ]);
  });
});

describe('Apply IP-Adapter', () => {
  const adapter: IpAdapterValue = { kind: 'IP_ADAPTER', path: '/m/a.safetensors', adapterKind: 'base', tokensPerImage: 4, crossDim: 8 };
  const tokens = (p: string, n = 4): IpTokensValue => ({
    kind: 'IP_TOKENS',
    adapterPath: p,
    tokens: n,
    dim: 8,
    cond: new Float32Array(n * 8),
    uncond: new Float32Array(n * 8),
  });
  const model: ModelValue = { kind: 'MODEL', checkpoint: { path: '/m/ckpt', configDir: '' }, adapters: [] };

  it('records the adapter, its tokens, λ and window on a new model value (the input is untouched)', async () => {
    const out = (await applyIpAdapter.execute({ model, ip_adapter: adapter, tokens: tokens(adapter.path) }, { weight: 0.6, start_at: 0.1, end_at: 0.9 }, ctx))
      .model as ModelValue;
    expect(out.adapters).toHaveLength(1);
    expect(out.adapters[0]).toMatchObject({ scale: 0.6, start: 0.1, end: 0.9 });
    expect(model.adapters).toHaveLength(0);
  });

  it('refuses tokens from another adapter, mismatched negative tokens, and stacks a second adapter file as its own branch', async () => {
    const p = { weight: 1, start_at: 0, end_at: 1 };
    await expect(applyIpAdapter.execute({ model, ip_adapter: adapter, tokens: tokens('/m/other.safetensors') }, p, ctx)).rejects.toThrow(
      /projected by \/m\/other/,
    );
    await expect(
      applyIpAdapter.execute({ model, ip_adapter: adapter, tokens: tokens(adapter.path), negative: tokens(adapter.path, 8) }, p, ctx),
    ).rejects.toThrow(/8 tokens but the image prompt has 4/);
    const withOther: ModelValue = {
      ...model,
      adapters: [{ adapter: { ...adapter, path: '/m/b.safetensors' }, tokens: tokens('/m/b.safetensors'), scale: 1, start: 0, end: 1 }],
    };
    // several adapters on one model (issue 12): the second file is appended, the first kept
    const stacked = (await applyIpAdapter.execute({ model: withOther, ip_adapter: adapter, tokens: tokens(adapter.path) }, p, ctx)).model as ModelValue;
    expect(stacked.adapters.map((a) => a.adapter.path)).toEqual(['/m/b.safetensors', adapter.path]);
    expect(applyIpAdapter.check!({ weight: 1, start_at: 0.8, end_at: 0.2 })[0].message).toMatch(/before start_at/);
  });

  it('acts while step / steps is inside [start, end]', () => {
    const w = { start: 0.2, end: 0.6 };
    expect(Array.from({ length: 10 }, (_, i) => adapterActive(w, i, 10))).toEqual([false, false, true, true, true, true, true, false, false, false]);
    expect(Array.from({ length: 4 }, (_, i) => adapterActive({ start: 0, end: 1 }, i, 4))).toEqual([true, true, true, true]);
  });
});

describe('masks for inpainting', () => {
  it('Image To Mask takes a channel (or the luminance), optionally inverted', async () => {
    const image: ImageValue = { kind: 'IMAGE', batch: 1, width: 2, height: 1, data: Float32Array.from([1, 0, 0, 0, 1, 1]) };
    const m = async (channel: string, invert = false) => Array.from(((await imageToMask.execute({ image }, { channel, invert }, ctx)).mask as MaskValue).data);
    expect(await m('red')).toEqual([1, 0]);
    expect(await m('blue', true)).toEqual([1, 0]);
    expect((await m('luminance')).map((v) => Number(v.toFixed(3)))).toEqual([0.299, 0.701]);
  });

  it('Set Latent Noise Mask scales the mask to the latent (binarized, or soft) and refuses a wrong batch', async () => {
    const latent = (await emptyLatentImage.execute({}, { width: 64, height: 64, batch_size: 1 }, ctx)).latent as LatentValue;
    const mask: MaskValue = { kind: 'MASK', batch: 1, width: 64, height: 64, data: new Float32Array(64 * 64).fill(0.6) };
    const hard = (await setLatentNoiseMask.execute({ samples: latent, mask }, { binarize: true }, ctx)).latent as LatentValue;
    expect(hard.noiseMask!.data).toEqual(new Float32Array(8 * 8).fill(1));
    expect(hard.samples).toBe(latent.samples);
    const soft = (await setLatentNoiseMask.execute({ samples: latent, mask }, { binarize: false }, ctx)).latent as LatentValue;
    expect(soft.noiseMask!.data).toEqual(new Float32Array(8 * 8).fill(0.6));
    await expect(setLatentNoiseMask.execute({ samples: latent, mask: { ...mask, batch: 2 } }, { binarize: true }, ctx)).rejects.toThrow(
      /2 planes for 1 latents/,
    );
  });
});
