/**
 * LoRA files (models/lora.ts) and LoRA graphs (models/lora-graph.ts): key mapping of the kohya,
 * PEFT and older diffusers layouts, unknown keys reported by name, other model families refused
 * by shape; strength 0 equal to the plain network bit for bit, side branches and in-graph merge
 * equal to weights merged by hand, stacked LoRAs adding.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, encodeSafetensors, halfToFloat, readTensorF32, type TensorToWrite } from './safetensors.js';
import { buildUNet, unetParameterShapes } from './unet.js';
import { parseUNetConfig, readUNetConfig } from './unet-config.js';
import { callUNet } from './unet-call.js';
import { createSession } from './onnx/session.js';
import { UNET_SESSION_OPTIONS } from './unet.js';
import { ClipTextEncoder, loadClipTextConfig } from './clip-text.js';
import { clipTextWeights } from './keymaps/clip-text.js';
import {
  ATTENTION_FF_MODULES,
  type LoraTargets,
  clipTextLoraTargets,
  describeLoraMatch,
  loraParameterShapes,
  loraStrengths,
  matchLora,
  unetLoraTargets,
} from './lora.js';
import { type LoraMode, loraModuleHook, unetReferenceRows } from './lora-graph.js';
import { seededUniform } from '../test/helpers/random.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const cacheDir = path.join(root, 'cache');

/** A tiny SD1.5-shaped UNet: 2 levels, attention in the first, a conv shortcut, a downsampler and an upsampler. */
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

function random(shapes: Map<string, number[]>, seed: number, scale = 0.5): Record<string, TensorToWrite> {
  const r = seededUniform(seed);
  const out: Record<string, TensorToWrite> = {};
  for (const [k, shape] of shapes) {
    const n = shape.reduce((a, d) => a * d, 1);
    const fanIn = shape.length > 1 ? n / shape[0] : 1;
    const norm = /norm\d?\.weight$/.test(k);
    out[k] = { dtype: 'F32', shape, data: Float32Array.from({ length: n }, () => (norm ? 1 + 0.1 * r() : (2 * scale * r()) / Math.sqrt(fanIn))) };
  }
  return out;
}

const write = (name: string, t: Record<string, TensorToWrite>, meta?: Record<string, string>) => {
  const f = path.join(root, name);
  fs.writeFileSync(f, encodeSafetensors(t, meta));
  return f;
};

const unetFile = write('unet.safetensors', random(unetParameterShapes(TINY), 1));
const unetWeights = SafetensorsFile.open(unetFile);
const unetTargets = unetLoraTargets(TINY, unetWeights, unetFile);

/** A random LoRA for `targets` (alpha = rank / 2 for kohya). */
function loraFile(name: string, targets: LoraTargets[], format: 'kohya' | 'peft', seed: number, select?: (m: string) => boolean, rank = 2): string {
  const t = random(loraParameterShapes(targets, format, rank, select), seed, 1);
  for (const k of Object.keys(t)) if (k.endsWith('.alpha')) t[k] = { dtype: 'F32', shape: [], data: Float32Array.of(rank / 2) };
  return write(name, t);
}

describe('LoRA key mapping', () => {
  it("maps kohya names through the model's own module names: to_out_0, ff_net_0_proj, conv LoRA (3x3 down, 1x1 up), conv_shortcut, time_emb_proj", () => {
    const f = loraFile('kohya.safetensors', [unetTargets], 'kohya', 2);
    const m = matchLora(SafetensorsFile.open(f), [unetTargets]);
    expect(m.unmatched).toEqual([]);
    expect(m.formats).toEqual(['kohya']);
    const mods = new Map(m.modules.map((x) => [x.module, x]));
    expect(mods.get('down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0')?.down.key).toBe(
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_down.weight',
    );
    expect(mods.get('down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj')?.up.key).toBe(
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_0_proj.lora_up.weight',
    );
    const conv = mods.get('down_blocks.0.resnets.0.conv1')!;
    expect(conv.down.shape).toEqual([2, 8, 3, 3]);
    expect(conv.up.shape).toEqual([8, 2, 1, 1]);
    expect(mods.get('down_blocks.0.downsamplers.0.conv')).toBeDefined();
    expect(mods.get('up_blocks.0.resnets.0.conv_shortcut')).toBeDefined();
    expect(mods.get('up_blocks.0.upsamplers.0.conv')).toBeDefined();
    expect(mods.get('down_blocks.0.resnets.0.time_emb_proj')).toBeDefined();
    expect(mods.get('down_blocks.0.attentions.0.proj_in')?.down.shape).toEqual([2, 8, 1, 1]);
    expect(mods.has('conv_in')).toBe(false); // not a kohya default module
    expect(conv.alpha).toBe(1);
    expect(conv.rank).toBe(2);
  });

  it('reads PEFT, older diffusers (lora.down / lora_linear_layer) and attention-processor keys; missing alpha = rank', () => {
    const t: Record<string, TensorToWrite> = {};
    const pair = (down: string, up: string, i: number, o: number) => {
      t[down] = { dtype: 'F32', shape: [2, i], data: new Float32Array(2 * i).fill(0.1) };
      t[up] = { dtype: 'F32', shape: [o, 2], data: new Float32Array(2 * o).fill(0.1) };
    };
    const a = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1';
    pair(`unet.${a}.to_q.lora_A.weight`, `unet.${a}.to_q.lora_B.weight`, 8, 8);
    pair(`unet.${a}.to_k.lora.down.weight`, `unet.${a}.to_k.lora.up.weight`, 8, 8);
    pair(`${a}.processor.to_out_lora.down.weight`, `${a}.processor.to_out_lora.up.weight`, 8, 8);
    t[`unet.${a}.to_k.alpha`] = { dtype: 'F16', shape: [], data: Uint16Array.of(0x3c00) }; // fp16 1.0
    const m = matchLora(SafetensorsFile.open(write('diffusers.safetensors', t)), [unetTargets]);
    expect(m.unmatched).toEqual([]);
    expect(m.formats).toEqual(['diffusers', 'peft']);
    const by = new Map(m.modules.map((x) => [x.module, x]));
    expect(by.get(`${a}.to_q`)).toMatchObject({ rank: 2, alpha: 2 });
    expect(by.get(`${a}.to_k`)).toMatchObject({ rank: 2, alpha: 1 });
    expect(by.get(`${a}.to_out.0`)?.down.key).toBe(`${a}.processor.to_out_lora.down.weight`);
  });

  it('reports keys that name no module by name, with how many matched', () => {
    const good = loraParameterShapes([unetTargets], 'kohya', 2, (n) => n === 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q');
    const t = random(good, 3);
    t['lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight'] = { dtype: 'F32', shape: [2, 8], data: new Float32Array(16) };
    t['lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.hada_w1_a'] = { dtype: 'F32', shape: [2, 8], data: new Float32Array(16) };
    t['unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.lora_A.weight'] = { dtype: 'F32', shape: [2, 8], data: new Float32Array(16) }; // no lora_B
    const m = matchLora(SafetensorsFile.open(write('unknown.safetensors', t)), [unetTargets]);
    expect(m.modules).toHaveLength(1);
    expect(m.unmatched.sort()).toEqual([
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.hada_w1_a',
      'lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.lora_A.weight',
    ]);
    expect(describeLoraMatch(m)).toMatch(/3 of 6 keys matched, 1 UNet and 0 text encoder modules; 3 key\(s\) match no module.*hada_w1_a/);
  });

  it('refuses an SDXL LoRA by shape, naming both files', () => {
    // SDXL's attn2 to_k reads 2048-wide text features: [640, 2048] where this UNet has [8, 8].
    const t: Record<string, TensorToWrite> = {
      // A feed-forward pair that does not fit either (read first): the message names attn2's, which tells the family.
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2.lora_down.weight': {
        dtype: 'F16',
        shape: [4, 2560],
        data: new Uint16Array(4 * 2560),
      },
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2.lora_up.weight': { dtype: 'F16', shape: [640, 4], data: new Uint16Array(640 * 4) },
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight': {
        dtype: 'F16',
        shape: [4, 2048],
        data: new Uint16Array(4 * 2048),
      },
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight': { dtype: 'F16', shape: [640, 4], data: new Uint16Array(640 * 4) },
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha': { dtype: 'F16', shape: [], data: Uint16Array.of(0x4400) },
      'lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight': { dtype: 'F16', shape: [4, 768], data: new Uint16Array(4 * 768) },
    };
    const f = write('sdxl-lora.safetensors', t);
    expect(() => matchLora(SafetensorsFile.open(f), [unetTargets])).toThrow(
      /the LoRA sdxl-lora\.safetensors does not fit unet\.safetensors: down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn2\.to_k is \[8,8\].*\[4,2048\].*SDXL.*model: .*unet\.safetensors\) \(2 modules of the LoRA do not fit\)/,
    );
    // Only SGM / text-encoder-2 names: nothing matches, and the message says SDXL.
    const only = write('sdxl-te.safetensors', {
      'lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight': t['lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight'],
    });
    expect(() => matchLora(SafetensorsFile.open(only), [unetTargets])).toThrow(/none of its 1 keys names a module of unet\.safetensors.*SDXL/);
  });

  it('sums the strengths of one file chained twice', () => {
    expect(
      loraStrengths([
        { path: 'a', strength: 0.5 },
        { path: 'b', strength: -1 },
        { path: 'a', strength: 0.25 },
      ]),
    ).toEqual({ files: ['a', 'b'], strengths: [0.75, -1] });
  });
});

// ---------------------------------------------------------------------------------------
// Graphs: the tiny UNet
// ---------------------------------------------------------------------------------------

/** W' = W + Σ s · alpha / rank · up @ down per module, in float64, written as a new weights file. */
function mergedWeights(name: string, loras: { file: string; strength: number }[]): string {
  const t: Record<string, TensorToWrite> = {};
  for (const k of unetWeights.keys()) t[k] = { dtype: 'F32', shape: unetWeights.get(k).shape, data: readTensorF32(unetWeights.get(k)) };
  for (const l of loras) {
    for (const m of matchLora(SafetensorsFile.open(l.file), [unetTargets]).modules) {
      const w = t[`${m.module}.weight`].data as Float32Array;
      const up = readTensorF32(m.up);
      const down = readTensorF32(m.down);
      const out = m.up.shape[0];
      const inner = down.length / m.rank;
      const f = (l.strength * m.alpha) / m.rank;
      const merged = new Float32Array(w.length);
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inner; i++) {
          let acc = 0;
          for (let r = 0; r < m.rank; r++) acc += up[o * m.rank + r] * down[r * inner + i];
          merged[o * inner + i] = w[o * inner + i] + f * acc;
        }
      }
      t[`${m.module}.weight`] = { dtype: 'F32', shape: unetWeights.get(`${m.module}.weight`).shape, data: merged };
    }
  }
  return write(name, t);
}

const feeds = (() => {
  const r = seededUniform(9);
  const rnd = (n: number) => Float32Array.from({ length: n }, () => r());
  return { sample: { data: rnd(2 * 4 * 8 * 8), dims: [2, 4, 8, 8] }, timestep: 500, encoderHiddenStates: { data: rnd(2 * 5 * 8), dims: [2, 5, 8] } };
})();

async function runUNet(weightsFile: string, loras: string[] = [], strengths: number[] = [], mode?: LoraMode): Promise<Float32Array> {
  const w = SafetensorsFile.open(weightsFile);
  const matches = loras.map((f) => matchLora(SafetensorsFile.open(f), [unetTargets]));
  const hook = loraModuleHook(matches, { part: 'unet', mode, rowsFor: unetReferenceRows(TINY.blockOutChannels.length) });
  const built = buildUNet(TINY, w, { moduleHook: hook, name: loras.length ? `unet_lora_${mode}` : 'unet' }).build();
  const session = await createSession(built, { cacheDir, sessionOptions: UNET_SESSION_OPTIONS });
  try {
    return (await callUNet({ session, config: TINY }, { ...feeds, loraScale: loras.length ? strengths : undefined })).data;
  } finally {
    await session.release();
  }
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let m = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return m / s;
}

describe('LoRA graphs (tiny UNet)', () => {
  const kohya = loraFile('kohya-all.safetensors', [unetTargets], 'kohya', 11);
  const peft = loraFile('peft-attn.safetensors', [unetTargets], 'peft', 12, ATTENTION_FF_MODULES);
  let plain: Float32Array;

  it('strength 0 gives the plain UNet bit for bit, with side branches, merged ΔW and both (auto)', async () => {
    plain = await runUNet(unetFile);
    for (const mode of ['side', 'merge', 'auto'] as const) {
      const zero = await runUNet(unetFile, [kohya, peft], [0, 0], mode);
      expect(Buffer.from(zero.buffer).equals(Buffer.from(plain.buffer)), mode).toBe(true);
    }
  });

  it('side branches and the in-graph merge equal weights merged by hand; negative strengths too', async () => {
    const want = await runUNet(mergedWeights('merged-kohya.safetensors', [{ file: kohya, strength: -0.7 }]));
    expect(maxRel(want, plain)).toBeGreaterThan(1e-3); // the LoRA changes the output
    for (const mode of ['side', 'merge', 'auto'] as const) {
      expect(maxRel(await runUNet(unetFile, [kohya], [-0.7], mode), want), mode).toBeLessThan(2e-5);
    }
  });

  it('an fp16 LoRA is upcast to fp32: the same values in an fp32 file give the same output bit for bit', async () => {
    const r = seededUniform(21);
    const t16: Record<string, TensorToWrite> = {};
    const t32: Record<string, TensorToWrite> = {};
    for (const [k, shape] of loraParameterShapes([unetTargets], 'kohya', 2)) {
      const n = shape.reduce((a, d) => a * d, 1);
      // Half patterns with exponents 2^-6 .. 2^-2, random sign and mantissa (alpha: 1.0).
      const bits = Uint16Array.from({ length: n }, () =>
        k.endsWith('.alpha') ? 0x3c00 : (r() < 0 ? 0x8000 : 0) | ((9 + Math.floor((r() + 0.5) * 5)) << 10) | Math.floor((r() + 0.5) * 1024),
      );
      t16[k] = { dtype: 'F16', shape, data: bits };
      t32[k] = { dtype: 'F32', shape, data: Float32Array.from(bits, halfToFloat) };
    }
    const a = await runUNet(unetFile, [write('lora-f16.safetensors', t16)], [0.9], 'auto');
    const b = await runUNet(unetFile, [write('lora-f32.safetensors', t32)], [0.9], 'auto');
    expect(maxRel(a, plain)).toBeGreaterThan(1e-4);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });

  it('stacked LoRAs add their deltas', async () => {
    const want = await runUNet(
      mergedWeights('merged-both.safetensors', [
        { file: kohya, strength: 0.8 },
        { file: peft, strength: 0.6 },
      ]),
    );
    expect(maxRel(await runUNet(unetFile, [kohya, peft], [0.8, 0.6], 'auto'), want)).toBeLessThan(2e-5);
  });
});

// ---------------------------------------------------------------------------------------
// The reference fixtures: their LoRA files against set A's models
// ---------------------------------------------------------------------------------------

const tiny = fixtureFolder('tiny-sd15');
const loras = path.join(fixtureFolder('model-files'), 'loras');
const haveFixtures = fs.existsSync(path.join(tiny, 'diffusers', 'unet', 'config.json')) && fs.existsSync(path.join(loras, 'kohya-lora-tiny.safetensors'));

describe.skipIf(!haveFixtures)('the fixture LoRA files on set A', () => {
  const cfg = haveFixtures ? readUNetConfig(path.join(tiny, 'diffusers', 'unet', 'config.json')) : TINY;
  const uFile = path.join(tiny, 'diffusers', 'unet', 'diffusion_pytorch_model.safetensors');
  const tFile = path.join(tiny, 'diffusers', 'text_encoder', 'model.safetensors');
  const targets = () => {
    const textCfg = loadClipTextConfig(path.join(tiny, 'diffusers', 'text_encoder'));
    return [
      unetLoraTargets(cfg, SafetensorsFile.open(uFile), uFile),
      clipTextLoraTargets(textCfg.num_hidden_layers, clipTextWeights(SafetensorsFile.open(tFile)), tFile),
    ];
  };

  it("kohya-lora-tiny: all 921 keys matched (307 modules); its keys are kohya's default modules of this model", () => {
    const file = SafetensorsFile.open(path.join(loras, 'kohya-lora-tiny.safetensors'));
    const m = matchLora(file, targets());
    expect(m.unmatched).toEqual([]);
    expect(m.modules).toHaveLength(307);
    expect(m.modules.filter((x) => x.part === 'text_encoder')).toHaveLength(30);
    expect(new Set(m.modules.map((x) => `${x.rank}/${x.alpha}/${x.down.shape.length === 4 && x.down.shape[2] === 3 ? '3x3' : 'lin'}`))).toEqual(
      new Set(['4/2/lin', '4/1/3x3']),
    );
    expect([...loraParameterShapes(targets(), 'kohya', 4).keys()].sort()).toEqual(file.keys().sort());
  });

  it('pytorch_lora_weights (PEFT): every key matched, factor 1', () => {
    const m = matchLora(SafetensorsFile.open(path.join(loras, 'pytorch_lora_weights.safetensors')), targets());
    expect(m.unmatched).toEqual([]);
    expect(m.formats).toEqual(['peft']);
    expect(m.modules.every((x) => x.alpha === x.rank)).toBe(true);
    expect(m.modules.some((x) => x.part === 'text_encoder')).toBe(true);
  });

  it('text encoder: strength 0 gives the plain encoder bit for bit; a strength changes it', async () => {
    const textCfg = loadClipTextConfig(path.join(tiny, 'diffusers', 'text_encoder'));
    const w = clipTextWeights(SafetensorsFile.open(tFile));
    const m = matchLora(SafetensorsFile.open(path.join(loras, 'kohya-lora-tiny.safetensors')), targets());
    const ids = [[49406, 320, 1125, 539, 320, 2368, ...Array.from({ length: 71 }, () => 49407)]];
    const plainEnc = await ClipTextEncoder.load(w, textCfg, { cacheDir });
    const loraEnc = await ClipTextEncoder.load(w, textCfg, { cacheDir, moduleHook: loraModuleHook([m], { part: 'text_encoder' }) });
    const a = (await plainEnc.encode(ids)).data;
    const b = (await loraEnc.encode(ids, { loraScale: [0] })).data;
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    expect(maxRel((await loraEnc.encode(ids, { loraScale: [0.8] })).data, a)).toBeGreaterThan(1e-3);
    await expect(loraEnc.encode(ids)).rejects.toThrow(/loraScale/);
    await plainEnc.release();
    await loraEnc.release();
  });
});
