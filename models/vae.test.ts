import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ldmVaeKeyToDiffusers, ldmVaeWeights, vaeWeightsFromFile } from './keymaps/ldm-vae.js';
import { SafetensorsFile, type TensorToWrite, encodeSafetensors } from './safetensors.js';
import { Vae, type VaeConfig, parseVaeConfig, vaeConfigFromWeights, vaeParameterShapes } from './vae.js';
import { seededUniform } from '../test/helpers/random.js';

const cfg: VaeConfig = parseVaeConfig({
  block_out_channels: [4, 8],
  layers_per_block: 1,
  latent_channels: 4,
  norm_num_groups: 2,
  in_channels: 3,
  out_channels: 3,
  scaling_factor: 0.18215,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
});

/** diffusers AutoencoderKL parameter names and shapes for a config. */
const vaeParams = (c: VaeConfig): Record<string, number[]> => Object.fromEntries(vaeParameterShapes(c));

/** diffusers name -> LDM name, written independently of the key map under test. */
function toLdm(name: string, upBlocks: number): string {
  const attn: Record<string, string> = { group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out' };
  return name
    .replace(/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\./, 'encoder.down.$1.block.$2.')
    .replace(/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\./, 'encoder.down.$1.downsample.')
    .replace(/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\./, (_, i, j) => `decoder.up.${upBlocks - 1 - Number(i)}.block.${j}.`)
    .replace(/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\./, (_, i) => `decoder.up.${upBlocks - 1 - Number(i)}.upsample.`)
    .replace(/\.mid_block\.resnets\.(\d)\./, (_, k) => `.mid.block_${Number(k) + 1}.`)
    .replace(/\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\./, (_, l: string) => `.mid.attn_1.${attn[l]}.`)
    .replace('.conv_shortcut.', '.nin_shortcut.')
    .replace(/^(encoder|decoder)\.conv_norm_out\./, '$1.norm_out.');
}

/** Seeded uniform numbers in [-1, 1). */
function rand(seed: number): () => number {
  const u = seededUniform(seed);
  return () => 2 * u();
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeFiles(): { diffusers: string; ldm: string } {
  const params = vaeParams(cfg);
  const r = rand(7);
  const d: Record<string, TensorToWrite> = {};
  const l: Record<string, TensorToWrite> = {};
  for (const [k, shape] of Object.entries(params)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNormWeight = /norm.*\.weight$/.test(k);
    const data = Float32Array.from({ length: n }, () => (isNormWeight ? 1 + 0.1 * r() : 0.3 * r()));
    d[k] = { dtype: 'F32', shape, data };
    const ldmKey = `first_stage_model.${toLdm(k, cfg.block_out_channels.length)}`;
    l[ldmKey] = { dtype: 'F32', shape: /attentions\.0\.to_.*weight$/.test(k) ? [...shape, 1, 1] : shape, data };
  }
  l['model.diffusion_model.conv_in.weight'] = { dtype: 'F32', shape: [1], data: Float32Array.of(0) }; // other networks' keys are ignored
  const files = { diffusers: path.join(dir, 'vae.safetensors'), ldm: path.join(dir, 'ckpt.safetensors') };
  fs.writeFileSync(files.diffusers, encodeSafetensors(d));
  fs.writeFileSync(files.ldm, encodeSafetensors(l));
  return files;
}

describe('VAE', () => {
  const files = writeFiles();

  it('LDM key map inverts the independent diffusers -> LDM naming', () => {
    for (const k of Object.keys(vaeParams(cfg))) expect(ldmVaeKeyToDiffusers(toLdm(k, 2), 2)).toBe(k);
    const w = ldmVaeWeights(SafetensorsFile.open(files.ldm));
    expect(w.get('decoder.mid_block.attentions.0.to_q.weight').shape).toEqual([8, 8]);
    expect(w.keys().length).toBe(Object.keys(vaeParams(cfg)).length);
    expect(() => w.get('decoder.nope.weight')).toThrow(/ckpt\.safetensors.*decoder\.nope\.weight/);
  });

  it('reads the config from the weights', () => {
    const w = vaeWeightsFromFile(SafetensorsFile.open(files.ldm));
    const derived = vaeConfigFromWeights(w, { norm_num_groups: 2 });
    expect(derived).toEqual(cfg);
    expect(() => vaeConfigFromWeights(w, { layers_per_block: 2 })).toThrow(/layers_per_block = 2 but the weights have 1/);
  });

  it('decodes and encodes with the right shapes, same numbers from both layouts', async () => {
    const cacheDir = path.join(dir, 'cache');
    const a = await Vae.load(vaeWeightsFromFile(SafetensorsFile.open(files.diffusers)), cfg, { cacheDir });
    const b = await Vae.load(vaeWeightsFromFile(SafetensorsFile.open(files.ldm)), cfg, { cacheDir, parts: [] });
    const r = rand(3);
    const z = Float32Array.from({ length: 1 * 4 * 6 * 5 }, () => r());
    const da = await a.decode(z, [1, 4, 6, 5]);
    expect(da.dims).toEqual([1, 3, 12, 10]);
    expect(da.image.every(Number.isFinite)).toBe(true);
    da.image.forEach((v, i) => expect(da.image01[i]).toBeCloseTo(Math.min(1, Math.max(0, v / 2 + 0.5)), 6));
    const db = await b.decode(z, [1, 4, 6, 5]);
    expect(Array.from(db.image)).toEqual(Array.from(da.image));

    const x = Float32Array.from({ length: 2 * 3 * 12 * 10 }, () => r());
    const ea = await a.encode(x, [2, 3, 12, 10]);
    expect(ea.dims).toEqual([2, 4, 6, 5]);
    expect(ea.std.every((s) => s > 0)).toBe(true);
    const eb = await b.encode(x, [2, 3, 12, 10]);
    expect(Array.from(eb.mean)).toEqual(Array.from(ea.mean));
    await expect(a.decode(z, [1, 3, 6, 5])).rejects.toThrow(/\[B, 4, H, W\]/);
    await a.release();
    await b.release();
  });

  it('refuses configs and files it cannot handle', () => {
    expect(() => parseVaeConfig({ block_out_channels: [4], down_block_types: ['DownBlock2D'] })).toThrow(/down_block_types/);
    const other = path.join(dir, 'other.safetensors');
    fs.writeFileSync(other, encodeSafetensors({ 'foo.weight': { dtype: 'F32', shape: [1], data: Float32Array.of(1) } }));
    expect(() => vaeWeightsFromFile(SafetensorsFile.open(other))).toThrow(/other\.safetensors: not a VAE/);
  });
});
