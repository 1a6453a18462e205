/**
 * The merged UNet + ControlNets graph (models/unet-controlnet.ts) against today's separate sessions, on the tiny
 * SD1.5 fixtures: same inputs, one and two ControlNets (one of them stored in F16), strengths per CFG row and
 * windows (a strength of 0 at a step), max abs difference of the noise prediction <= 1e-5.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint.js';
import { ControlNet, type ControlResiduals, buildControlNet, controlNetParameterShapes, sumResiduals, zeroResiduals } from './controlnet.js';
import { type LoadedControlNet, loadControlNet, parseControlNetConfig } from './controlnet-load.js';
import { applyProfile } from './onnx/apply-profile.js';
import { inferTypes } from './onnx/fp16.js';
import { PROFILES } from './onnx/profile.js';
import { unsupportedNodes } from './onnx/provider-ops.js';
import { IpAdapterModel } from './ip-adapter.js';
import { DataType, type BuiltModel } from './onnx/graph.js';
import { createSession, type ort } from './onnx/session.js';
import { SafetensorsFile, encodeSafetensors, readTensorF32, roundToHalf, type TensorToWrite } from './safetensors.js';
import { UNET_SESSION_OPTIONS, buildUNet, unetParameterShapes } from './unet.js';
import { type F32Tensor, type UNetSession, callUNet } from './unet-call.js';
import { controlNetCondInput, controlNetScaleInput, unetControlNet, unetControlNetKey } from './unet-controlnet.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';
import { seededUniform } from '../test/helpers/random.js';
import { SD15_UNET, unreadWeights } from '../test/helpers/profile-graphs.js';
import { SD15_UNET_JSON } from '../scripts/bench/unet.js';

const fixture = fixtureFolder('tiny-sd15');
const have = fs.existsSync(path.join(fixture, 'controlnet')) && fs.existsSync(path.join(fixture, 'diffusers'));
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/** The fixture ControlNet's tensors, scaled and stored as F16 in another file: a second, different ControlNet. */
function writeHalfTwin(src: string, dst: string): void {
  const st = SafetensorsFile.open(src);
  const out: Record<string, TensorToWrite> = {};
  for (const k of st.keys()) {
    const t = st.get(k);
    const f32 = readTensorF32(t).map((v) => v * 0.9);
    const data = new Uint16Array(f32.length);
    roundToHalf(f32, 'F16', data);
    out[k] = { dtype: 'F16', shape: t.shape, data };
  }
  fs.writeFileSync(dst, encodeSafetensors(out));
}

describe.skipIf(!have)('UNet with its ControlNets in one graph (tiny SD1.5)', () => {
  let dir: string;
  let unetBuilt: BuiltModel;
  let cn: LoadedControlNet[];
  let cnBuilt: BuiltModel[];
  let separate: { unet: UNetSession; nets: ControlNet[] };
  let config: UNetSession['config'];
  const B = 2; // CFG rows [uncond, cond]
  const h = 8;
  const w = 8;
  const r = seededUniform(11);
  const rand = (n: number, a = 2) => new Float32Array(n).map(() => a * (r() - 0.5));
  let text: F32Tensor;
  let tokens: F32Tensor;
  const sample = { data: rand(B * 4 * h * w), dims: [B, 4, h, w] };
  const conds: F32Tensor[] = [0, 1].map(() => ({ data: new Float32Array(B * 3 * 8 * h * 8 * w).map(() => r()), dims: [B, 3, 8 * h, 8 * w] }));
  const session = (m: BuiltModel): Promise<ort.InferenceSession> =>
    createSession(m, { cacheDir: path.join(dir, 'cache'), sessionOptions: UNET_SESSION_OPTIONS });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unet-controlnet-'));
    const ck = loadCheckpoint(path.join(fixture, 'diffusers'));
    config = ck.unet.config;
    const ipAdapter = IpAdapterModel.load(path.join(fixture, 'ip-adapter_sd15-tiny.safetensors'));
    unetBuilt = buildUNet(config, ck.unet.weights, { ipAdapter, controlnet: true, name: 'unet_ip' }).build();
    const half = path.join(dir, 'controlnet-f16.safetensors');
    writeHalfTwin(path.join(fixture, 'controlnet', 'diffusion_pytorch_model.safetensors'), half);
    cn = [loadControlNet(path.join(fixture, 'controlnet')), loadControlNet(half, { configPath: path.join(fixture, 'controlnet', 'config.json') })];
    cnBuilt = cn.map((c, j) => buildControlNet(c.config, c.weights, { name: `controlnet${j}` }).build());
    separate = {
      unet: { session: await session(unetBuilt), config },
      nets: await Promise.all(cn.map(async (c, j) => ControlNet.fromSession(c, await session(cnBuilt[j]!)))),
    };
    const T = 7;
    text = { data: rand(B * T * config.crossAttentionDim), dims: [B, T, config.crossAttentionDim] };
    tokens = { data: rand(B * 4 * config.crossAttentionDim), dims: [B, 4, config.crossAttentionDim] };
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const base = (t: number) => ({ sample, timestep: t, encoderHiddenStates: text, ipAdapter: { tokens, scale: 0.6 } });

  /** Today's path: each ControlNet on the CPU with its strength, row strengths as a scatter with zeros, summed, fed to the UNet. */
  async function separateStep(t: number, scales: number[][]): Promise<Float32Array> {
    let acc: ControlResiduals | null = null;
    for (const [j, rows] of scales.entries()) {
      if (rows.every((s) => s === 0)) continue; // outside its window
      const res = await separate.nets[j]!.run({ sample, timestep: new Float32Array(B).fill(t), encoderHiddenStates: text, cond: conds[j]!, scale: 1 });
      const scaleRows = (x: F32Tensor): F32Tensor => {
        const row = x.data.length / B;
        return { dims: x.dims, data: x.data.map((v, i) => v * rows[Math.floor(i / row)]!) };
      };
      acc = sumResiduals(acc, { down: res.down.map(scaleRows), mid: scaleRows(res.mid) });
    }
    const z = acc ?? zeroResiduals(config, B, h, w);
    return (await callUNet(separate.unet, { ...base(t), downResiduals: z.down, midResidual: z.mid })).data;
  }

  it('one ControlNet: the same noise prediction as separate sessions, and the graph keeps its weight files by reference', async () => {
    const merged = unetControlNet(unetBuilt, [cnBuilt[0]!]);
    expect(merged.name).toBe('unet_ip_cn1');
    expect(merged.inputNames).toContain(controlNetCondInput(0));
    expect(merged.inputNames).toContain(controlNetScaleInput(0));
    expect(merged.inputNames.some((n) => /additional_residual/.test(n))).toBe(false);
    expect(merged.outputNames).toEqual(['noise_pred']);
    // Every initializer of the ControlNet reads its own file, by reference.
    const files = Object.values(merged.externalFiles);
    expect(files).toEqual(expect.arrayContaining([...Object.values(unetBuilt.externalFiles), ...Object.values(cnBuilt[0]!.externalFiles)]));
    expect(merged.spec.initializers.filter((t) => t.external).length).toBe(
      unetBuilt.spec.initializers.filter((t) => t.external).length + cnBuilt[0]!.spec.initializers.filter((t) => t.external).length,
    );
    const s = { session: await session(merged), config };
    for (const [t, strength] of [
      [901, 0.8],
      [301, 1.5],
    ] as const) {
      const got = await callUNet(s, { ...base(t), controlNets: [{ cond: conds[0]!, scale: Float32Array.of(strength, strength) }] });
      expect(maxDiff(got.data, await separateStep(t, [[strength, strength]]))).toBeLessThanOrEqual(1e-5);
    }
    // Outside its window (strength 0): the UNet without residuals.
    const off = await callUNet(s, { ...base(501), controlNets: [{ cond: conds[0]!, scale: new Float32Array(B) }] });
    expect(maxDiff(off.data, await separateStep(501, [[0, 0]]))).toBeLessThanOrEqual(1e-5);
    // The ControlNet does change the prediction (the comparisons above are not between two unconditioned UNets).
    const on = await callUNet(s, { ...base(501), controlNets: [{ cond: conds[0]!, scale: Float32Array.of(1, 1) }] });
    expect(maxDiff(on.data, off.data)).toBeGreaterThan(1e-2);
    await s.session.release();
  }, 120_000);

  it('two ControlNets (one F16): summed residuals, strengths per row and windows match separate sessions', async () => {
    const merged = unetControlNet(unetBuilt, cnBuilt);
    expect(merged.name).toBe('unet_ip_cn2');
    // The F16 ControlNet's weights stay listed as half weights (they get float32 copies like the separate session's).
    expect(merged.halfWeights.length).toBe(cnBuilt[1]!.halfWeights.length + unetBuilt.halfWeights.length);
    expect(merged.halfWeights.length).toBeGreaterThan(0);
    expect(new Set(Object.values(merged.externalFiles)).size).toBe(Object.keys(merged.externalFiles).length);
    const s = { session: await session(merged), config };
    const cases: number[][][] = [
      [
        [0.7, 0.7],
        [1.3, 1.3],
      ], // both acting
      [
        [0, 0],
        [1.3, 1.3],
      ], // the first outside its window
      [
        [0.7, 0.7],
        [0, 1.1],
      ], // the second on the positive row only
      [
        [0, 0],
        [0, 0],
      ], // neither
    ];
    for (const [n, scales] of cases.entries()) {
      const t = 901 - 200 * n;
      const got = await callUNet(s, { ...base(t), controlNets: scales.map((rows, j) => ({ cond: conds[j]!, scale: Float32Array.from(rows) })) });
      expect(maxDiff(got.data, await separateStep(t, scales)), `case ${n}`).toBeLessThanOrEqual(1e-5);
    }
    await expect(callUNet(s, { ...base(1), controlNets: [{ cond: conds[0]!, scale: new Float32Array(B) }] })).rejects.toThrow(
      /holds 2 ControlNets; the call gives inputs for 1/,
    );
    await s.session.release();
  }, 180_000);

  it('the same ControlNet twice reads its file once; the key names both models and k', () => {
    const twice = unetControlNet(unetBuilt, [cnBuilt[0]!, cnBuilt[0]!]);
    const files = Object.values(twice.externalFiles);
    expect(new Set(files).size).toBe(files.length);
    expect(files.filter((f) => f === Object.values(cnBuilt[0]!.externalFiles)[0])).toHaveLength(1);
    expect(unetControlNetKey('unet|a', ['controlnet|b', 'controlnet|c'])).toBe('unet-cn|unet|a|[controlnet|b][controlnet|c]|k=2');
    expect(twice.key).not.toBe(unetControlNet(unetBuilt, [cnBuilt[0]!]).key);
  });

  it('refuses a UNet built without residual inputs, naming it', () => {
    const ck = loadCheckpoint(path.join(fixture, 'diffusers'));
    const plain = buildUNet(ck.unet.config, ck.unet.weights, { name: 'unet' }).build();
    expect(() => unetControlNet(plain, [cnBuilt[0]!])).toThrow(/the UNet graph unet has no ControlNet residual inputs; build it with controlnet: true/);
  });
});

describe('the merged graph under the GPU profiles (SD1.5 size, weights by reference, never read)', () => {
  const cnConfig = parseControlNetConfig({ ...SD15_UNET_JSON, conditioning_embedding_out_channels: [16, 32, 96, 256] }, 'SD1.5 ControlNet config');
  const unetW = unreadWeights(unetParameterShapes(SD15_UNET), '/nonexistent/sd15-unet.safetensors');
  const cnW = unreadWeights(controlNetParameterShapes(cnConfig), '/nonexistent/sd15-controlnet.safetensors');
  const unet = buildUNet(SD15_UNET, unetW, { controlnet: true, name: 'unet' }).build();
  const cn = buildControlNet(cnConfig, cnW).build();
  const merged = unetControlNet(unet, [cn, cn]);
  const count = (m: BuiltModel, op: string) => m.spec.nodes.filter((n) => n.opType === op).length;

  it('lists every F16 weight of both parts as a half weight, each file once', () => {
    expect(merged.halfWeights.length).toBe(unet.halfWeights.length + 2 * cn.halfWeights.length);
    expect(Object.values(merged.externalFiles).sort()).toEqual(['/nonexistent/sd15-controlnet.safetensors', '/nonexistent/sd15-unet.safetensors']);
  });

  for (const id of ['webgpu-fp16-fused', 'cuda-fp16-fused', 'dml-fp16-fused', 'webgpu-fp32', 'cuda-fp32']) {
    it(`${id}: every op is one the provider supports; the fused ops of both parts`, () => {
      const p = PROFILES[id]!;
      const m = applyProfile(merged, p);
      const t = inferTypes(m.spec);
      const half = new Set(m.spec.nodes.filter((n) => n.outputs.some((o) => t.get(o) === DataType.FLOAT16)).map((n) => n.name));
      expect(unsupportedNodes(p.provider, m.spec.nodes, (n) => half.has(n))).toEqual([]);
      const parts = applyProfile(unet, p);
      const one = applyProfile(cn, p);
      for (const op of ['MultiHeadAttention', 'GroupNorm', 'BiasSplitGelu', 'SkipLayerNormalization']) {
        expect(count(m, op), op).toBe(count(parts, op) + 2 * count(one, op));
      }
      if (p.precision === 'fp16') expect(m.halfWeights).toEqual([]); // F16 weights used as stored
      expect(m.inputNames).toEqual(merged.inputNames);
    });
  }
});

describe('the merged graph is topologically sorted', () => {
  it('every node reads only graph inputs, initializers and values of nodes before it', () => {
    const unetW = unreadWeights(unetParameterShapes(SD15_UNET), '/nonexistent/sd15-unet.safetensors');
    const cnConfig = parseControlNetConfig({ ...SD15_UNET_JSON, conditioning_embedding_out_channels: [16, 32, 96, 256] }, 'SD1.5 ControlNet config');
    const cn = buildControlNet(cnConfig, unreadWeights(controlNetParameterShapes(cnConfig), '/nonexistent/cn.safetensors')).build();
    for (const k of [1, 2]) {
      const m = unetControlNet(
        buildUNet(SD15_UNET, unetW, { controlnet: true }).build(),
        Array.from({ length: k }, () => cn),
      );
      const known = new Set([...m.spec.inputs.map((i) => i.name), ...m.spec.initializers.map((t) => t.name), '']);
      const late: string[] = [];
      for (const n of m.spec.nodes) {
        for (const v of n.inputs) if (!known.has(v)) late.push(`${n.name} reads ${v}`);
        for (const v of n.outputs) known.add(v);
      }
      expect(late).toEqual([]);
      expect(m.spec.outputs.every((o) => known.has(o.name))).toBe(true);
    }
  });
});
