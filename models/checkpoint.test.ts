import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, detectCheckpoint, loadCheckpoint } from './checkpoint.js';
import { ldmUnetName } from './keymaps/ldm-unet.js';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from './safetensors.js';
import { unetParameterShapes } from './unet.js';
import { parseUNetConfig, type UNetConfig } from './unet-config.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

const tinyConfig = (cross: number, linearProj = false): UNetConfig =>
  parseUNetConfig({
    block_out_channels: [32, 64],
    layers_per_block: 1,
    attention_head_dim: 8,
    norm_num_groups: 32,
    cross_attention_dim: cross,
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    use_linear_projection: linearProj,
  });

/** Zero-filled tensors (only keys and shapes matter to detection). */
function zeros(shapes: Iterable<[string, number[]]>): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [k, shape] of shapes) out[k] = { dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, d) => a * d, 1)) };
  return out;
}

/** The UNet of `cfg` in the original single-file layout, plus extra keys. */
function ldmTensors(cfg: UNetConfig, extra: [string, number[]][] = []): Record<string, TensorToWrite> {
  const shapes = [...unetParameterShapes(cfg)].map(([k, s]) => [`model.diffusion_model.${ldmUnetName(cfg, k)}`, s] as [string, number[]]);
  return zeros([...shapes, ...extra]);
}

describe('detectCheckpoint', () => {
  let dir: string;
  const write = (name: string, t: Record<string, TensorToWrite>) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, encodeSafetensors(t));
    return p;
  };
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-test-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads an SD1.5-family single file: widths and depths from shapes', () => {
    const file = write(
      'sd15.safetensors',
      ldmTensors(tinyConfig(768), [
        ['first_stage_model.decoder.conv_in.weight', [4]],
        ['cond_stage_model.transformer.text_model.final_layer_norm.weight', [4]],
      ]),
    );
    const d = detectCheckpoint(file);
    expect(d).toMatchObject({ family: 'sd15', layout: 'ldm', hasVae: true, hasTextEncoder: true });
    expect(d.unet).toMatchObject({
      inChannels: 4,
      outChannels: 4,
      blockOutChannels: [32, 64],
      layersPerBlock: 1,
      crossAttentionDim: 768,
      downBlockTypes: ['CrossAttnDownBlock2D', 'DownBlock2D'],
      upBlockTypes: ['UpBlock2D', 'CrossAttnUpBlock2D'],
      hasMidBlock: true,
    });
    const loaded = loadCheckpoint(file);
    expect(loaded.unet.config.numAttentionHeads).toEqual([8, 8]); // SD1.5 standard values for what shapes cannot tell
    expect(loaded.unet.weights.get('up_blocks.1.attentions.0.proj_in.weight').key).toBe('model.diffusion_model.output_blocks.2.1.proj_in.weight');
    expect(loaded.vae).toMatchObject({ weightsFile: file, prefix: 'first_stage_model.' });
    expect(loaded.textEncoder).toMatchObject({ weightsFile: file, prefix: 'cond_stage_model.transformer.' });
  });

  it('refuses SDXL-shaped files: conditioner embedders, label_emb, or a 2048-wide context', () => {
    const a = write('xl-a.safetensors', ldmTensors(tinyConfig(2048), [['conditioner.embedders.0.transformer.text_model.final_layer_norm.weight', [4]]]));
    expect(() => detectCheckpoint(a)).toThrow(CheckpointError);
    expect(() => detectCheckpoint(a)).toThrow(/xl-a\.safetensors is an SDXL checkpoint.*conditioner\.embedders/);
    const b = write('xl-b.safetensors', ldmTensors(tinyConfig(2048), [['model.diffusion_model.label_emb.0.0.weight', [4, 4]]]));
    expect(() => detectCheckpoint(b)).toThrow(/xl-b\.safetensors looks like an SDXL UNet.*label_emb/);
    const c = write('xl-c.safetensors', ldmTensors(tinyConfig(2048)));
    expect(() => detectCheckpoint(c)).toThrow(/xl-c\.safetensors has a 2048-wide cross-attention context, as SDXL does/);
    expect(() => loadCheckpoint(c)).toThrow(/SDXL/);
  });

  it('refuses SD2-shaped files: OpenCLIP text encoder keys, or a 1024-wide context with linear projections', () => {
    const a = write('sd2-a.safetensors', ldmTensors(tinyConfig(1024, true), [['cond_stage_model.model.ln_final.weight', [4]]]));
    expect(() => detectCheckpoint(a)).toThrow(/sd2-a\.safetensors is a Stable Diffusion 2\.x checkpoint.*OpenCLIP/);
    const b = write('sd2-b.safetensors', ldmTensors(tinyConfig(1024, true)));
    expect(() => detectCheckpoint(b)).toThrow(
      /sd2-b\.safetensors has a 1024-wide cross-attention context and linear transformer projections, as Stable Diffusion 2\.x does/,
    );
  });

  it('refuses unknown files, naming them and what was found', () => {
    const a = write('random.safetensors', zeros([['foo.bar', [2]]]));
    expect(() => detectCheckpoint(a)).toThrow(/random\.safetensors is not a Stable Diffusion 1\.5 checkpoint: no UNet found.*foo\.bar/);
    const b = write(
      'adapter.safetensors',
      zeros([
        ['image_proj.proj.weight', [2, 2]],
        ['ip_adapter.1.to_k_ip.weight', [2, 2]],
      ]),
    );
    expect(() => detectCheckpoint(b)).toThrow(/adapter\.safetensors is an IP-Adapter/);
    // A torch.save pickle is read (models/pickle.ts); a VAE-only one is named as such.
    expect(() => detectCheckpoint('/work/shared/fixtures/model-files/pickles/vae-ft-mse-tiny.ckpt')).toThrow(/vae-ft-mse-tiny\.ckpt holds only a VAE/);
  });

  it('refuses an explicit config that does not match the shapes', () => {
    const file = write('sd15-b.safetensors', ldmTensors(tinyConfig(768)));
    const cfgDir = path.join(dir, 'cfg');
    fs.mkdirSync(path.join(cfgDir, 'unet'), { recursive: true });
    fs.writeFileSync(
      path.join(cfgDir, 'unet', 'config.json'),
      JSON.stringify({
        block_out_channels: [32, 32],
        layers_per_block: 1,
        cross_attention_dim: 768,
        down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
        up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
      }),
    );
    expect(() => loadCheckpoint(file, { configDir: cfgDir })).toThrow(
      /sd15-b\.safetensors does not match the config .*block_out_channels: \[32,64\] in the file, \[32,32\] in the config/,
    );
  });
});

const fixtures = fixtureFolder('tiny-sd15');
describe.skipIf(!fs.existsSync(path.join(fixtures, 'checkpoint-ldm.safetensors')))('fixture checkpoint', () => {
  it('maps every diffusers UNet key one-to-one onto the LDM file, same shapes', () => {
    const ldm = loadCheckpoint(path.join(fixtures, 'checkpoint-ldm.safetensors'), { configDir: path.join(fixtures, 'diffusers') });
    const diff = SafetensorsFile.open(path.join(fixtures, 'diffusers', 'unet', 'diffusion_pytorch_model.safetensors'));
    const used = new Set<string>();
    for (const k of diff.keys()) {
      const r = ldm.unet.weights.get(k);
      expect(r.shape).toEqual(diff.get(k).shape);
      used.add(r.key);
    }
    const ldmUnetKeys = SafetensorsFile.open(ldm.source.path)
      .keys()
      .filter((k) => k.startsWith('model.diffusion_model.'));
    expect(used.size).toBe(ldmUnetKeys.length);
  });
});
