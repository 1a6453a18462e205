/**
 * The unified loader's search (findPreset): by tensor shapes only, on the tiny fixtures copied under other
 * names into a temp models folder (a base adapter named like nothing, a Plus under the base adapter's usual
 * name, a full-face adapter, a file that is no adapter), plus small synthetic headers for vit-G and SDXL.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureFolder } from '../test/helpers/fixtures.js';
import { findPreset, scanAdapters } from './ip-adapter-presets.js';
import { encodeSafetensors } from './safetensors.js';

const tiny = fixtureFolder('tiny-sd15');
const files = fixtureFolder('model-files');
const have =
  fs.existsSync(path.join(tiny, 'ip-adapter_sd15-tiny.safetensors')) && fs.existsSync(path.join(files, 'ip-adapter-full-face_sd15-tiny.safetensors'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-presets-'));
const ad = (n: string) => path.join(tmp, 'ipadapter', n);

/** A base adapter header: proj (4 * C, D), norm (C), one layer's to_k_ip / to_v_ip (C, C). */
function baseAdapter(D: number, C: number): Buffer {
  const t = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  return encodeSafetensors({
    'image_proj.proj.weight': t([4 * C, D]),
    'image_proj.proj.bias': t([4 * C]),
    'image_proj.norm.weight': t([C]),
    'image_proj.norm.bias': t([C]),
    'ip_adapter.1.to_k_ip.weight': t([C, C]),
    'ip_adapter.1.to_v_ip.weight': t([C, C]),
  });
}

beforeAll(() => {
  if (!have) return;
  fs.mkdirSync(path.join(tmp, 'ipadapter'), { recursive: true });
  fs.mkdirSync(path.join(tmp, 'clip_vision'), { recursive: true });
  fs.copyFileSync(path.join(tiny, 'ip-adapter_sd15-tiny.safetensors'), ad('mystery.safetensors'));
  fs.copyFileSync(path.join(tiny, 'ip-adapter-plus_sd15-tiny.safetensors'), ad('ip-adapter_sd15.safetensors')); // a Plus under the base name
  fs.copyFileSync(path.join(files, 'ip-adapter-full-face_sd15-tiny.safetensors'), ad('x.safetensors'));
  fs.copyFileSync(path.join(tiny, 'image_encoder', 'model.safetensors'), ad('ip-adapter-plus-face_sd15.safetensors')); // a CLIP vision model, no adapter
  fs.writeFileSync(ad('ip-adapter_sdxl.safetensors'), baseAdapter(32, 64)); // another cross-attention width (an SDXL-like adapter)
  fs.cpSync(path.join(tiny, 'image_encoder'), path.join(tmp, 'clip_vision', 'encoder-renamed'), { recursive: true });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!have)('unified loader presets, found by tensor shapes', () => {
  it('classifies every file by its header, whatever its name', () => {
    const { found, skipped } = scanAdapters(path.join(tmp, 'ipadapter'));
    const by = Object.fromEntries(found.map((a) => [path.basename(a.file), `${a.family}/${a.tokens}/${a.crossDim}`]));
    expect(by).toEqual({
      'mystery.safetensors': 'base ViT-H/4/32',
      'ip-adapter_sd15.safetensors': 'plus ViT-H/16/32',
      'x.safetensors': 'full face ViT-H/257/32',
      'ip-adapter_sdxl.safetensors': 'base ViT-H/4/64',
    });
    expect(skipped.map((s) => path.basename(s.file))).toEqual(['ip-adapter-plus-face_sd15.safetensors']);
  });

  it('standard and light take the base adapter (named "mystery"), not the file named ip-adapter_sd15 (a Plus); plus and plus face the Plus; full face the MLP one', () => {
    for (const p of ['standard', 'light'] as const) expect(path.basename(findPreset(tmp, p, 32).adapter.file)).toBe('mystery.safetensors');
    for (const p of ['plus', 'plus face'] as const) expect(path.basename(findPreset(tmp, p, 32).adapter.file)).toBe('ip-adapter_sd15.safetensors');
    const ff = findPreset(tmp, 'full face', 32);
    expect(path.basename(ff.adapter.file)).toBe('x.safetensors');
    expect(path.basename(ff.vision.file)).toBe('encoder-renamed');
    expect(findPreset(tmp, 'light', 32).how).toMatch(
      /"light": ipadapter\/mystery\.safetensors \(base ViT-H, 4 tokens, cross 32\) \(by shape one of light \/ standard\) and the CLIP vision model clip_vision\/encoder-renamed/,
    );
  });

  it('says what is missing: vit-G with no bigG-wide adapter, then with one but no bigG encoder; a UNet of another width', () => {
    expect(() => findPreset(tmp, 'vit-G', 32)).toThrow(
      /no IP-Adapter in .*ipadapter has the shapes of the "vit-G" preset \(base ViT-bigG, cross-attention 32: a base projection, 4 tokens\); found: ipadapter\/ip-adapter_sd15\.safetensors \(plus ViT-H/,
    );
    fs.writeFileSync(ad('g.safetensors'), baseAdapter(1280, 32));
    try {
      expect(() => findPreset(tmp, 'vit-G', 32)).toThrow(
        /found the adapter ipadapter\/g\.safetensors \(base ViT-bigG, 4 tokens, cross 32\) for "vit-G", but no CLIP vision model in .*clip_vision gives image embeddings \(projection_dim\) 1280 wide \(OpenCLIP ViT-bigG\/14\); found: clip_vision\/encoder-renamed \(hidden 32, projection 32\)/,
      );
    } finally {
      fs.rmSync(ad('g.safetensors'));
    }
    expect(() => findPreset(tmp, 'plus', 768)).toThrow(/no IP-Adapter .* "plus" preset \(plus ViT-H, cross-attention 768/);
  });

  it('several files of one family are listed (light and standard cannot be told apart by shapes); a choice picks one and is checked by shape', () => {
    fs.copyFileSync(path.join(tiny, 'ip-adapter_sd15-tiny.safetensors'), ad('another.safetensors'));
    try {
      expect(() => findPreset(tmp, 'light', 32)).toThrow(
        /2 files in .* have the shapes of the "light" preset \(base ViT-H\): ipadapter\/another\.safetensors, ipadapter\/mystery\.safetensors; light and standard share these shapes, so they cannot be told apart by them; choose one in "ipadapter_file"/,
      );
      expect(path.basename(findPreset(tmp, 'light', 32, { adapter: ad('another.safetensors') }).adapter.file)).toBe('another.safetensors');
      expect(() => findPreset(tmp, 'light', 32, { adapter: ad('x.safetensors') })).toThrow(
        /the chosen adapter ipadapter\/x\.safetensors \(full face ViT-H.*does not have the shapes of the "light" preset/,
      );
    } finally {
      fs.rmSync(ad('another.safetensors'));
    }
  });
});
