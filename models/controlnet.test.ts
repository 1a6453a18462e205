import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from './safetensors.js';
import { UNetModel, unetParameterShapes } from './unet.js';
import { numDownResiduals, parseUNetConfig } from './unet-config.js';
import { ControlNet, type ControlResiduals, controlNetParameterShapes, sumResiduals, zeroResiduals } from './controlnet.js';
import { type ControlNetConfig, checkControlNetFitsUNet, loadControlNet, looksLikeT2IAdapter, parseControlNetConfig } from './controlnet-load.js';
import { ldmControlNetName } from './keymaps/ldm-controlnet.js';
import { seededUniform } from '../test/helpers/random.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

/** A tiny SD1.5-shaped ControlNet config (as diffusers config.json): 2 levels, 1 layer, context 8. */
const TINY_JSON = {
  block_out_channels: [8, 16],
  layers_per_block: 1,
  attention_head_dim: 2,
  norm_num_groups: 4,
  cross_attention_dim: 8,
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  conditioning_embedding_out_channels: [4, 8],
};
const TINY_UNET = parseUNetConfig({ ...TINY_JSON, sample_size: 8, up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'] });

const SD15_JSON = {
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  attention_head_dim: 8,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
};

function randomTensors(shapes: Map<string, number[]>, seed: number, rename: (k: string) => string = (k) => k): Record<string, TensorToWrite> {
  const r = seededUniform(seed);
  const out: Record<string, TensorToWrite> = {};
  for (const [k, shape] of shapes) {
    const n = shape.reduce((a, d) => a * d, 1);
    const fanIn = shape.length > 1 ? n / shape[0] : 1;
    const data = new Float32Array(n).map(() => (/norm\d?\.weight$/.test(k) ? 1 + 0.1 * r() : (2 * r()) / Math.sqrt(fanIn)));
    out[rename(k)] = { dtype: 'F32', shape, data };
  }
  return out;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('ControlNet config and key names', () => {
  const sd15 = parseControlNetConfig(SD15_JSON);
  it('maps the original layout as convert_controlnet_checkpoint does', () => {
    expect(ldmControlNetName(sd15, 'controlnet_down_blocks.11.weight', 6)).toBe('zero_convs.11.0.weight');
    expect(ldmControlNetName(sd15, 'controlnet_mid_block.bias', 6)).toBe('middle_block_out.0.bias');
    expect(ldmControlNetName(sd15, 'controlnet_cond_embedding.conv_in.weight', 6)).toBe('input_hint_block.0.weight');
    expect(ldmControlNetName(sd15, 'controlnet_cond_embedding.blocks.0.weight', 6)).toBe('input_hint_block.2.weight');
    expect(ldmControlNetName(sd15, 'controlnet_cond_embedding.blocks.5.bias', 6)).toBe('input_hint_block.12.bias');
    expect(ldmControlNetName(sd15, 'controlnet_cond_embedding.conv_out.weight', 6)).toBe('input_hint_block.14.weight');
    expect(() => ldmControlNetName(sd15, 'controlnet_cond_embedding.blocks.6.weight', 6)).toThrow(/6 hint blocks/);
    expect(ldmControlNetName(sd15, 'down_blocks.1.downsamplers.0.conv.weight', 6)).toBe('input_blocks.6.0.op.weight');
    const names = [...controlNetParameterShapes(sd15).keys()];
    expect(new Set(names.map((n) => ldmControlNetName(sd15, n, 6))).size).toBe(names.length);
    expect(names.filter((n) => n.startsWith('controlnet_down_blocks.') && n.endsWith('.weight'))).toHaveLength(12);
  });

  const fixture = fixtureFolder('tiny-sd15');
  it.skipIf(!fs.existsSync(path.join(fixture, 'controlnet')))('parameter list equals the fixture ControlNet state dict', () => {
    const loaded = loadControlNet(path.join(fixture, 'controlnet'));
    const st = loaded.weights as SafetensorsFile;
    const want = new Map(st.keys().map((k) => [k, st.get(k).shape]));
    expect(new Map(controlNetParameterShapes(loaded.config))).toEqual(want);
  });

  it('refuses SDXL and SD2 ControlNets by config, naming the file and width', () => {
    expect(() => parseControlNetConfig({ ...SD15_JSON, cross_attention_dim: 2048, addition_embed_type: 'text_time' }, 'xl/config.json')).toThrow(
      /xl\/config.json is an SDXL ControlNet \(2048-wide/,
    );
    expect(() => parseControlNetConfig({ ...SD15_JSON, cross_attention_dim: 1024, use_linear_projection: true }, 'sd2/config.json')).toThrow(
      /sd2\/config.json is a Stable Diffusion 2.x ControlNet \(1024-wide/,
    );
  });
});

describe('ControlNet on a tiny random model', () => {
  let dir: string;
  let cfg: ControlNetConfig;
  const cache = () => path.join(dir, 'cache');
  const B = 2;
  const r = seededUniform(5);
  const inputs = {
    sample: { data: new Float32Array(B * 4 * 8 * 8).map(() => 2 * r()), dims: [B, 4, 8, 8] },
    timestep: Float32Array.from([901, 901]),
    encoderHiddenStates: { data: new Float32Array(B * 7 * 8).map(() => 2 * r()), dims: [B, 7, 8] },
    cond: { data: new Float32Array(B * 3 * 16 * 16).map(() => r() + 0.5), dims: [B, 3, 16, 16] },
  };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'controlnet-test-'));
    cfg = parseControlNetConfig(TINY_JSON);
    const shapes = controlNetParameterShapes(cfg);
    fs.mkdirSync(path.join(dir, 'diffusers'));
    fs.writeFileSync(path.join(dir, 'diffusers', 'config.json'), JSON.stringify(TINY_JSON));
    fs.writeFileSync(path.join(dir, 'diffusers', 'diffusion_pytorch_model.safetensors'), encodeSafetensors(randomTensors(shapes, 1)));
    const hint = 2 * (cfg.conditioningEmbeddingOutChannels.length - 1);
    fs.writeFileSync(path.join(dir, 'ldm.safetensors'), encodeSafetensors(randomTensors(shapes, 1, (k) => `control_model.${ldmControlNetName(cfg, k, hint)}`)));
    fs.writeFileSync(path.join(dir, 'unet.safetensors'), encodeSafetensors(randomTensors(unetParameterShapes(TINY_UNET), 2)));
    // An SDXL-style original-layout file: size conditioning (label_emb) next to the usual keys.
    const xl = randomTensors(shapes, 1, (k) => `control_model.${ldmControlNetName(cfg, k, hint)}`);
    xl['control_model.label_emb.0.0.weight'] = { dtype: 'F32', shape: [4, 4], data: new Float32Array(16) };
    fs.writeFileSync(path.join(dir, 'xl.safetensors'), encodeSafetensors(xl));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('diffusers folder and original single file give identical residuals, of the UNet skip shapes', async () => {
    const a = await ControlNet.load(loadControlNet(path.join(dir, 'diffusers')), { cacheDir: cache() });
    const b = await ControlNet.load(loadControlNet(path.join(dir, 'ldm.safetensors'), { configPath: path.join(dir, 'diffusers', 'config.json') }), {
      cacheDir: cache(),
    });
    const ra = await a.run({ ...inputs, scale: 0.8 });
    const rb = await b.run({ ...inputs, scale: 0.8 });
    expect(ra.down).toHaveLength(numDownResiduals(cfg));
    const z = zeroResiduals(cfg, B, 8, 8);
    expect(ra.down.map((d) => d.dims)).toEqual(z.down.map((d) => d.dims));
    expect(ra.mid.dims).toEqual(z.mid.dims);
    ra.down.forEach((d, i) => expect(maxDiff(d.data, rb.down[i].data)).toBe(0));
    expect(maxDiff(ra.mid.data, rb.mid.data)).toBe(0);
    // Residuals are linear in the scale.
    const half = await a.run({ ...inputs, scale: 0.4 });
    expect(
      maxDiff(
        half.mid.data.map((v) => 2 * v),
        ra.mid.data,
      ),
    ).toBeLessThan(1e-6);
    expect(maxDiff(ra.mid.data, new Float32Array(ra.mid.data.length))).toBeGreaterThan(1e-3);
  });

  it('strength 0 gives exactly the UNet output without a ControlNet', async () => {
    const cn = await ControlNet.load(loadControlNet(path.join(dir, 'diffusers')), { cacheDir: cache() });
    const weights = SafetensorsFile.open(path.join(dir, 'unet.safetensors'));
    const plain = await UNetModel.create(TINY_UNET, weights, { cacheDir: cache() });
    const withCn = await UNetModel.create(TINY_UNET, weights, { cacheDir: cache(), controlnet: true });
    const res = await cn.run({ ...inputs, scale: 0 });
    for (const d of [...res.down, res.mid]) expect(d.data.every((v) => v === 0)).toBe(true);
    const unetIn = { sample: inputs.sample, timestep: inputs.timestep, encoderHiddenStates: inputs.encoderHiddenStates };
    const base = await plain.run(unetIn);
    const zero = await withCn.run({ ...unetIn, downResiduals: res.down, midResidual: res.mid });
    expect(maxDiff(zero.data, base.data)).toBe(0);
    const full = await cn.run({ ...inputs, scale: 1 });
    const controlled = await withCn.run({ ...unetIn, downResiduals: full.down, midResidual: full.mid });
    expect(maxDiff(controlled.data, base.data)).toBeGreaterThan(1e-3);
    await Promise.all([plain.release(), withCn.release()]);
  });

  it('refuses a ControlNet for another base, naming both files and widths', () => {
    const loaded = loadControlNet(path.join(dir, 'diffusers'));
    expect(() => checkControlNetFitsUNet(loaded, TINY_UNET, 'tiny.safetensors')).not.toThrow();
    const sd15 = parseUNetConfig({ ...SD15_JSON, up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'] });
    expect(() => checkControlNetFitsUNet(loaded, sd15, '/m/v1-5.safetensors')).toThrow(
      "ControlNet diffusers was made for a base model with a 8-wide text context, but checkpoint v1-5.safetensors uses a 768-wide context (SD1.5); choose a ControlNet made for the checkpoint's base model.",
    );
    expect(() => checkControlNetFitsUNet(loaded, { ...TINY_UNET, blockOutChannels: [8, 32] }, 'other.safetensors')).toThrow(
      /block widths \[8,16\].*other.safetensors has \[8,32\]/,
    );
    expect(() => loadControlNet(path.join(dir, 'xl.safetensors'))).toThrow(/xl.safetensors is an SDXL ControlNet/);
    expect(() => loadControlNet(path.join(dir, 'unet.safetensors'))).toThrow(/unet.safetensors is not a ControlNet/);
  });

  it('checks the control image size against the latent', async () => {
    const cn = await ControlNet.load(loadControlNet(path.join(dir, 'diffusers')), { cacheDir: cache() });
    await expect(cn.run({ ...inputs, cond: { data: new Float32Array(B * 3 * 64), dims: [B, 3, 8, 8] }, scale: 1 })).rejects.toThrow(
      /expected \[2, 3, 16, 16\] \(2x the 8x8 latent\)/,
    );
  });

  it('several ControlNets: residuals are summed', () => {
    const one = (v: number): ControlResiduals => ({
      down: [{ data: Float32Array.of(v, v), dims: [1, 2, 1, 1] }],
      mid: { data: Float32Array.of(v), dims: [1, 1, 1, 1] },
    });
    const s = sumResiduals(sumResiduals(null, one(1)), one(2));
    expect(Array.from(s.down[0].data)).toEqual([3, 3]);
    expect(Array.from(s.mid.data)).toEqual([3]);
  });
});

describe('T2I-Adapter files given to the ControlNet loader', () => {
  const t = (shape: number[]): TensorToWrite => ({ dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, d) => a * d, 1)) });
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 't2i-test-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('are refused as T2I-Adapters, not with a list of keys (TencentARC, diffusers and light layouts)', () => {
    const files: Record<string, Record<string, TensorToWrite>> = {
      // TencentARC t2iadapter_canny_sd15v2: conv_in + body.N.block1/2 (+ in_conv at the down steps).
      't2iadapter_canny_sd15v2.safetensors': {
        'conv_in.weight': t([8, 64, 3, 3]),
        'conv_in.bias': t([8]),
        'body.0.block1.weight': t([8, 8, 3, 3]),
        'body.2.in_conv.weight': t([16, 8, 1, 1]),
      },
      // diffusers T2IAdapter (full_adapter) weights.
      'diffusion_pytorch_model.safetensors': { 'adapter.conv_in.weight': t([8, 64, 3, 3]), 'adapter.body.0.resnets.0.block1.weight': t([8, 8, 3, 3]) },
      // light adapter: body.N.in_conv / body.N.body.M.
      't2iadapter_light.safetensors': { 'body.0.in_conv.weight': t([8, 64, 1, 1]), 'body.0.body.0.block1.weight': t([8, 8, 3, 3]) },
    };
    for (const [name, tensors] of Object.entries(files)) {
      const f = path.join(dir, name);
      fs.writeFileSync(f, encodeSafetensors(tensors));
      expect(looksLikeT2IAdapter(Object.keys(tensors)), name).toBe(true);
      let msg = '';
      try {
        loadControlNet(f);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg, name).toMatch(/T2I-Adapters are not supported/);
      expect(msg, name).toContain(name);
      expect(msg, name).not.toMatch(/expected control_model/);
    }
  });

  it('a diffusers T2IAdapter folder is refused by its config', () => {
    const d = path.join(dir, 't2i-adapter-canny-sd15');
    fs.mkdirSync(d);
    fs.writeFileSync(
      path.join(d, 'config.json'),
      JSON.stringify({ _class_name: 'T2IAdapter', adapter_type: 'full_adapter', channels: [320, 640, 1280, 1280] }),
    );
    expect(() => loadControlNet(d)).toThrow(/t2i-adapter-canny-sd15 is a T2I-Adapter .*T2I-Adapters are not supported/);
  });

  it('ControlNets, UNets and other files are not taken for T2I-Adapters', () => {
    expect(looksLikeT2IAdapter(['control_model.input_hint_block.0.weight', 'control_model.input_blocks.0.0.weight'])).toBe(false);
    expect(looksLikeT2IAdapter(['conv_in.weight', 'controlnet_cond_embedding.conv_in.weight', 'controlnet_down_blocks.0.weight'])).toBe(false);
    expect(looksLikeT2IAdapter(['conv_in.weight', 'down_blocks.0.resnets.0.conv1.weight'])).toBe(false);
    expect(looksLikeT2IAdapter(['image_proj.proj.weight', 'ip_adapter.1.to_k_ip.weight'])).toBe(false);
    const f = path.join(dir, 'other.safetensors');
    fs.writeFileSync(f, encodeSafetensors({ 'foo.weight': t([2]) }));
    expect(() => loadControlNet(f)).toThrow(/is not a ControlNet: expected control_model/);
  });
});
