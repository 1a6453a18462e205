import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInsideReal, listModels, modelsFolderEmpty, outputPath, realPathOf } from './paths.js';

let dir: string;
let out: string;
beforeAll(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-paths-')));
  out = path.join(dir, 'out');
  fs.mkdirSync(path.join(out, 'real-sub'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'elsewhere'));
  fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(out, 'escape')); // a subfolder that leads outside
  fs.symlinkSync(path.join(out, 'real-sub'), path.join(out, 'alias')); // one that stays inside
  fs.symlinkSync(path.join(dir, 'not-there'), path.join(out, 'dangling'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('output paths', () => {
  it('joins a prefix under the output folder, subfolders (existing or not) included', () => {
    expect(outputPath(out, 'img')).toBe(path.join(out, 'img'));
    expect(outputPath(out, 'sweeps/a/img')).toBe(path.join(out, 'sweeps', 'a', 'img'));
    expect(outputPath(out, 'alias/img')).toBe(path.join(out, 'alias', 'img'));
  });

  it('refuses .., absolute prefixes, and symlinked subfolders that lead outside', () => {
    expect(() => outputPath(out, '../img')).toThrow(/contains "\.\."/);
    expect(() => outputPath(out, '/etc/img')).toThrow(/absolute path/);
    expect(() => outputPath(out, 'escape/img')).toThrow(/leads outside the output folder .* symbolic link/);
    expect(() => outputPath(out, 'escape/new/deeper/img')).toThrow(/symbolic link/);
    expect(() => outputPath(out, 'dangling/img')).toThrow(/symbolic link/);
  });

  it('works when the output folder itself is reached through a symlink', () => {
    const linkToOut = path.join(dir, 'out-link');
    fs.symlinkSync(out, linkToOut);
    expect(outputPath(linkToOut, 'a/img')).toBe(path.join(linkToOut, 'a', 'img'));
    expect(() => outputPath(linkToOut, 'escape/img')).toThrow(/symbolic link/);
    // A folder that does not exist yet is fine too (created on the first save).
    expect(outputPath(path.join(dir, 'fresh'), 'img')).toBe(path.join(dir, 'fresh', 'img'));
  });

  it('real paths resolve the deepest existing ancestor', () => {
    expect(realPathOf(path.join(out, 'alias', 'x', 'y'))).toBe(path.join(out, 'real-sub', 'x', 'y'));
    expect(realPathOf(path.join(out, 'dangling', 'x'))).toBeNull();
    expect(isInsideReal(out, out)).toBe(true);
    expect(isInsideReal(out, out, false)).toBe(false);
    expect(isInsideReal(out, path.join(dir, 'out2'))).toBe(false); // a sibling sharing the prefix
  });
});

describe('model lists', () => {
  it('list safetensors and, where the loader reads them, .ckpt/.pt/.pth/.bin pickles; CLIP vision only safetensors', () => {
    const models = path.join(dir, 'models');
    const put = (rel: string) => {
      fs.mkdirSync(path.dirname(path.join(models, rel)), { recursive: true });
      fs.writeFileSync(path.join(models, rel), '');
    };
    expect(modelsFolderEmpty(models)).toBe(true);
    for (const f of [
      'checkpoints/a.safetensors',
      'checkpoints/b.ckpt',
      'checkpoints/notes.txt',
      'vae/vae-ft-mse.pt',
      'vae/sub/v.pth',
      'ipadapter/ip-adapter_sd15_light_v11.bin',
      'controlnet/control_v11p_sd15_canny.pth',
      'clip_vision/model.safetensors',
      'clip_vision/pytorch_model.bin',
      'vae/sd-vae-ft-mse/config.json',
      'vae/sd-vae-ft-mse/diffusion_pytorch_model.bin',
    ])
      put(f);
    const m = listModels(models);
    expect(m.checkpoints).toEqual(['a.safetensors', 'b.ckpt']);
    expect(m.vae).toEqual(['sd-vae-ft-mse', 'sub/v.pth', 'vae-ft-mse.pt']);
    expect(m.ipadapter).toEqual(['ip-adapter_sd15_light_v11.bin']);
    expect(m.controlnet).toEqual(['control_v11p_sd15_canny.pth']);
    expect(m.clip_vision).toEqual(['model.safetensors']);
    expect(modelsFolderEmpty(models)).toBe(false);
  });

  it("a folder holding only pickles is not empty (no demo set over the user's models)", () => {
    const models = path.join(dir, 'models-pickles');
    fs.mkdirSync(path.join(models, 'checkpoints'), { recursive: true });
    fs.writeFileSync(path.join(models, 'checkpoints', 'v1-5-pruned-emaonly.ckpt'), '');
    expect(modelsFolderEmpty(models)).toBe(false);
  });
});
