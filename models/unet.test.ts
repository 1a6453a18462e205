import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from './safetensors.js';
import { UNetModel, unetParameterShapes } from './unet.js';
import { attnProcessors, crossAttnLayers, numDownResiduals, parseUNetConfig, type UNetConfig } from './unet-config.js';
import { ldmUnetName } from './keymaps/ldm-unet.js';
import { seededUniform } from '../test/helpers/random.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

const SD15 = parseUNetConfig({
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  attention_head_dim: 8,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
});

/** A tiny random SD1.5-shaped UNet: 2 levels, 1 layer, 2 heads, 4 groups, context 8. */
const TINY = parseUNetConfig({
  sample_size: 8,
  block_out_channels: [8, 16],
  layers_per_block: 1,
  attention_head_dim: 2,
  norm_num_groups: 4,
  cross_attention_dim: 8,
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
});

function randomTensors(shapes: Map<string, number[]>, seed: number): Record<string, TensorToWrite> {
  const r = seededUniform(seed);
  const out: Record<string, TensorToWrite> = {};
  for (const [k, shape] of shapes) {
    const n = shape.reduce((a, d) => a * d, 1);
    const fanIn = shape.length > 1 ? n / shape[0] : 1;
    const data = new Float32Array(n).map(() => (k.endsWith('norm1.weight') || /norm\d?\.weight$/.test(k) ? 1 + 0.1 * r() : (2 * r()) / Math.sqrt(fanIn)));
    out[k] = { dtype: 'F32', shape, data };
  }
  return out;
}

describe('attention processor numbering', () => {
  it('lists SD1.5 processors in diffusers order: down, up, mid; attn2 odd', () => {
    const all = attnProcessors(SD15);
    expect(all).toHaveLength(32);
    const cross = crossAttnLayers(SD15);
    expect(cross.map((p) => p.index)).toEqual(Array.from({ length: 16 }, (_, i) => 2 * i + 1));
    expect(cross[0].name).toBe('down_blocks.0.attentions.0.transformer_blocks.0.attn2');
    expect(cross[5].name).toBe('down_blocks.2.attentions.1.transformer_blocks.0.attn2');
    expect(cross[6].name).toBe('up_blocks.1.attentions.0.transformer_blocks.0.attn2');
    expect(cross[14].name).toBe('up_blocks.3.attentions.2.transformer_blocks.0.attn2');
    expect(cross[15]).toMatchObject({ index: 31, name: 'mid_block.attentions.0.transformer_blocks.0.attn2', hiddenSize: 1280, heads: 8 });
    expect(numDownResiduals(SD15)).toBe(12);
  });

  const cases = path.join(fixtureFolder('tiny-sd15'), 'cases', 'cases.json');
  it.skipIf(!fs.existsSync(cases))('agrees with the fixture cases.json ip_adapter_layers', () => {
    const json = JSON.parse(fs.readFileSync(cases, 'utf8'));
    const dir = path.resolve(path.dirname(cases), json.model_dir ?? '..');
    const cfg = parseUNetConfig(JSON.parse(fs.readFileSync(path.join(dir, json.models.unet.path, 'config.json'), 'utf8')));
    const want = json.ip_adapter_layers.map((l: { ip_adapter_index: number; diffusers: string; hidden_size: number; heads: number; ldm: string }) => ({
      index: l.ip_adapter_index,
      name: l.diffusers,
      hiddenSize: l.hidden_size,
      heads: l.heads,
      ldm: l.ldm,
    }));
    const got = crossAttnLayers(cfg).map((p) => ({
      index: p.index,
      name: p.name,
      hiddenSize: p.hiddenSize,
      heads: p.heads,
      ldm: `model.diffusion_model.${ldmUnetName(cfg, `${p.name}.to_k.weight`).replace(/\.to_k\.weight$/, '')}`,
    }));
    expect(got).toEqual(want);
  });
});

describe('LDM names', () => {
  it('maps SD1.5 resamplers and resnets as convert_ldm_unet_checkpoint does', () => {
    expect(ldmUnetName(SD15, 'down_blocks.0.downsamplers.0.conv.weight')).toBe('input_blocks.3.0.op.weight');
    expect(ldmUnetName(SD15, 'down_blocks.3.resnets.1.conv1.bias')).toBe('input_blocks.11.0.in_layers.2.bias');
    expect(ldmUnetName(SD15, 'up_blocks.0.upsamplers.0.conv.weight')).toBe('output_blocks.2.1.conv.weight');
    expect(ldmUnetName(SD15, 'up_blocks.1.upsamplers.0.conv.weight')).toBe('output_blocks.5.2.conv.weight');
    expect(ldmUnetName(SD15, 'up_blocks.3.resnets.2.conv_shortcut.weight')).toBe('output_blocks.11.0.skip_connection.weight');
    expect(ldmUnetName(SD15, 'mid_block.resnets.1.time_emb_proj.weight')).toBe('middle_block.2.emb_layers.1.weight');
    expect(ldmUnetName(SD15, 'time_embedding.linear_2.bias')).toBe('time_embed.2.bias');
    const names = [...unetParameterShapes(SD15).keys()];
    expect(new Set(names.map((n) => ldmUnetName(SD15, n))).size).toBe(names.length);
    expect(names.length).toBe(686); // SD1.5 UNet parameter count (diffusers state dict)
  });
});

describe('config parsing', () => {
  it('refuses features outside the SD1.5 family, naming the file', () => {
    expect(() => parseUNetConfig({ addition_embed_type: 'text_time' }, 'x/unet/config.json')).toThrow(/x\/unet\/config.json: addition_embed_type/);
    expect(() => parseUNetConfig({ down_block_types: ['SimpleCrossAttnDownBlock2D'], up_block_types: ['UpBlock2D'] }, 'c.json')).toThrow(
      /SimpleCrossAttnDownBlock2D/,
    );
  });
});

describe('decoupled cross-attention on a tiny random UNet', () => {
  let dir: string;
  let cfg: UNetConfig;
  let weights: SafetensorsFile;
  let adapter: SafetensorsFile;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unet-test-'));
    cfg = TINY;
    fs.writeFileSync(path.join(dir, 'unet.safetensors'), encodeSafetensors(randomTensors(unetParameterShapes(cfg), 1)));
    const ip = new Map<string, number[]>();
    for (const p of crossAttnLayers(cfg)) {
      ip.set(`ip_adapter.${p.index}.to_k_ip.weight`, [p.hiddenSize, cfg.crossAttentionDim]);
      ip.set(`ip_adapter.${p.index}.to_v_ip.weight`, [p.hiddenSize, cfg.crossAttentionDim]);
    }
    fs.writeFileSync(path.join(dir, 'ip.safetensors'), encodeSafetensors(randomTensors(ip, 2)));
    weights = SafetensorsFile.open(path.join(dir, 'unet.safetensors'));
    adapter = SafetensorsFile.open(path.join(dir, 'ip.safetensors'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('λ = 0 equals the graph without an adapter; λ = 1 differs; zero ControlNet residuals change nothing', async () => {
    const cache = path.join(dir, 'cache');
    const ipAdapter = {
      layerWeights: (i: number) => ({ toK: adapter.get(`ip_adapter.${i}.to_k_ip.weight`), toV: adapter.get(`ip_adapter.${i}.to_v_ip.weight`) }),
    };
    const plain = await UNetModel.create(cfg, weights, { cacheDir: cache });
    const withIp = await UNetModel.create(cfg, weights, { cacheDir: cache, ipAdapter });
    const withCn = await UNetModel.create(cfg, weights, { cacheDir: cache, controlnet: true, attention: 'onnx' });
    const r = seededUniform(3);
    const B = 2;
    const inp = {
      sample: { data: new Float32Array(B * 4 * 8 * 8).map(() => 2 * r()), dims: [B, 4, 8, 8] },
      timestep: Float32Array.from([981, 1]),
      encoderHiddenStates: { data: new Float32Array(B * 7 * 8).map(() => 2 * r()), dims: [B, 7, 8] },
    };
    const ipTokens = { data: new Float32Array(B * 4 * 8).map(() => 2 * r()), dims: [B, 4, 8] };
    const base = await plain.run(inp);
    const zero = await withIp.run({ ...inp, ipAdapter: { tokens: ipTokens, scale: 0 } });
    const one = await withIp.run({ ...inp, ipAdapter: { tokens: ipTokens, scale: 1 } });
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    expect(base.dims).toEqual([B, 4, 8, 8]);
    expect(maxDiff(zero.data, base.data)).toBeLessThan(1e-6);
    expect(maxDiff(one.data, base.data)).toBeGreaterThan(1e-3);

    // The skips' shapes: conv_in, down0 layer + downsample, down1 layer (8 / 8 / 4 / 4 spatial).
    const chans = [8, 8, 8, 16];
    const sizes = [8, 8, 4, 4];
    const downResiduals = chans.map((c, i) => ({ data: new Float32Array(B * c * sizes[i] ** 2), dims: [B, c, sizes[i], sizes[i]] }));
    const cn = await withCn.run({ ...inp, downResiduals, midResidual: { data: new Float32Array(B * 16 * 16), dims: [B, 16, 4, 4] } });
    expect(maxDiff(cn.data, base.data)).toBeLessThan(1e-5);
    // A latent that is not a multiple of the down factor: the upsamplers follow the skip sizes.
    const odd = await plain.run({ ...inp, sample: { data: new Float32Array(B * 4 * 7 * 9).map(() => r()), dims: [B, 4, 7, 9] } });
    expect(odd.dims).toEqual([B, 4, 7, 9]);
    expect(odd.data.every(Number.isFinite)).toBe(true);
    await Promise.all([plain.release(), withIp.release(), withCn.release()]);
  });
});
