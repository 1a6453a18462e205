/**
 * Several IP-Adapters in one graph, tested as the formulas they implement:
 *   attention:  out = to_out(attn(Q, K, V) + Σ_k Σ_g d_k · m_kg ⊙ attn(Q, a_k K'_kg, b_k V'_kg + c_k mean(V'_kg)))
 *               with embeds_scaling's (a, b, c, d) from ComfyUI_IPAdapter_plus's CrossAttentionPatch.py;
 *   masks:      IPAdapterMaskProcessor.downsample's grid (h = int(sqrt(Q / aspect)) (+1 if Q % h), w = Q // h);
 *   UNet:       an adapter at λ = 0 adds exactly nothing; a mask of ones is no mask; λ per layer all equal is λ;
 *               at most MAX_IP_ADAPTERS branches.
 * The attention module is checked against a plain JavaScript evaluation of the formula; the UNet as a whole
 * is not linear in its branches, so "two regional runs add up" is stated at the attention module, where it holds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataType, Graph, Module } from './onnx/graph.js';
import { createSession, ort } from './onnx/session.js';
import { SafetensorsFile, encodeSafetensors, readTensorF32, type TensorToWrite } from './safetensors.js';
import { attentionModule, type IpLayer } from './unet-blocks.js';
import { MAX_IP_ADAPTERS, UNetModel, buildUNet, unetParameterShapes } from './unet.js';
import { crossAttnLayers, crossAttnLevels, parseUNetConfig } from './unet-config.js';
import { embedsScalingCoefficients, EMBEDS_SCALING, type EmbedsScaling } from './ip-adapter.js';
import { bicubicResize, downsampleIpMask, ipMaskGrid } from './ip-adapter-mask.js';
import type { IpAdapterInputs } from './unet-call.js';
import { seededUniform } from '../test/helpers/random.js';

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

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'unet-ip-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeRandom(file: string, shapes: Map<string, number[]>, seed: number): SafetensorsFile {
  const r = seededUniform(seed);
  const t: Record<string, TensorToWrite> = {};
  for (const [k, shape] of shapes) {
    const n = shape.reduce((a, d) => a * d, 1);
    const fanIn = shape.length > 1 ? n / shape[0]! : 1;
    t[k] = { dtype: 'F32', shape, data: new Float32Array(n).map(() => (/norm\d?\.weight$/.test(k) ? 1 + 0.1 * r() : (2 * r()) / Math.sqrt(fanIn))) };
  }
  fs.writeFileSync(path.join(tmp, file), encodeSafetensors(t));
  return SafetensorsFile.open(path.join(tmp, file));
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('IPAdapterMaskProcessor.downsample', () => {
  it('picks the grid as diffusers does: h = int(sqrt(Q / aspect)) (+1 if Q % h), w = Q // h', () => {
    expect(ipMaskGrid(128, 128, 4096)).toEqual([64, 64]);
    expect(ipMaskGrid(128, 128, 256)).toEqual([16, 16]);
    // 300 x 200 (aspect 1.5), Q = 256: h = int(sqrt(170.67)) = 13, 256 % 13 = 9 -> 14, w = 256 // 14 = 18 (252 values, padded).
    expect(ipMaskGrid(200, 300, 256)).toEqual([14, 18]);
    // A 96 x 64 latent grid (Q = 6144) with a mask of the same aspect: exact.
    expect(ipMaskGrid(512, 768, 96 * 64)).toEqual([64, 96]);
  });

  it("is torch's bicubic (A = -0.75, half-pixel centres, clamped taps): a constant stays constant, 8x down is the 4-tap mean at t = 0.5", () => {
    const ones = new Float32Array(128 * 128).fill(1);
    expect(Array.from(bicubicResize(ones, 128, 128, 16, 16)).every((v) => v === 1)).toBe(true);
    // Row-constant ramp x: at t = 0.5 the taps are x0-1..x0+2 with weights (-3/32, 19/32, 19/32, -3/32).
    const ramp = new Float32Array(16 * 16).map((_, i) => i % 16);
    const out = bicubicResize(ramp, 16, 16, 2, 2); // scale 8: source 8i + 3.5
    const at = (x: number) => Math.min(Math.max(x, 0), 15);
    const want = (x0: number) => (-3 / 32) * at(x0 - 1) + (19 / 32) * at(x0) + (19 / 32) * at(x0 + 1) + (-3 / 32) * at(x0 + 2);
    expect(out[0]).toBeCloseTo(want(3), 6);
    expect(out[1]).toBeCloseTo(want(11), 6);
  });

  it('pads with zeros where the grid has fewer cells than queries', () => {
    const m = downsampleIpMask({ data: new Float32Array(200 * 300).fill(1), dims: [1, 1, 200, 300] }, 256);
    expect(m.length).toBe(256);
    expect(Array.from(m.subarray(0, 252)).every((v) => Math.abs(v - 1) < 1e-6)).toBe(true);
    expect(Array.from(m.subarray(252))).toEqual([0, 0, 0, 0]);
  });
});

describe('embeds_scaling coefficients (CrossAttentionPatch.py)', () => {
  it('V only is λ on the output; the K+V modes scale keys and values, the C penalty by width / 1280', () => {
    const lam = [0.5, 0, 2];
    const widths = [320, 640, 1280];
    const c = (m: EmbedsScaling) => embedsScalingCoefficients(m, lam, widths);
    expect(Array.from(c('V only').kv)).toEqual([1, 1, 0, 1, 1, 0, 1, 1, 0]);
    expect(Array.from(c('V only').out)).toEqual([0.5, 0, 2]);
    expect(Array.from(c('K+V').kv)).toEqual([0.5, 0.5, 0, 0, 0, 0, 2, 2, 0]);
    expect(Array.from(c('K+V').out)).toEqual([1, 0, 1]);
    expect(Array.from(c('K+V w/ C penalty').kv)).toEqual([0.125, 0.125, 0, 0, 0, 0, 2, 2, 0]); // 0.5 * 320/1280, 2 * 1280/1280
    // K+mean(V): K' = λ'K, V' = V - mean + λ' mean = 1 · V + (λ' - 1) · mean.
    expect(Array.from(c('K+mean(V) w/ C penalty').kv)).toEqual([0.125, 1, -0.875, 0, 0, 0, 2, 1, 1]);
    expect(() => embedsScalingCoefficients('K only' as EmbedsScaling, lam, widths)).toThrow(/not one of V only/);
  });
});

// ---------------------------------------------------------------------------------------
// One attn2 module with image branches, against the formula evaluated in JavaScript.
// ---------------------------------------------------------------------------------------

const C = 8; // channels (= hidden size)
const HEADS = 2;
const CX = 6; // cross-attention (context) width
const T = 6; // queries: a 2 x 3 grid
const S_TXT = 5;
const N = 3; // image tokens per group

/** softmax(q k^T / sqrt(d)) v per head on row-major (T, C), (S, C), (S, C). */
function jsAttention(q: Float32Array, k: Float32Array, v: Float32Array, t: number, s: number): Float64Array {
  const d = C / HEADS;
  const out = new Float64Array(t * C);
  for (let h = 0; h < HEADS; h++) {
    for (let i = 0; i < t; i++) {
      const logits = Array.from({ length: s }, (_, j) => {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[i * C + h * d + c]! * k[j * C + h * d + c]!;
        return dot / Math.sqrt(d);
      });
      const mx = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - mx));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < s; j++) for (let c = 0; c < d; c++) out[i * C + h * d + c]! += (e[j]! / z) * v[j * C + h * d + c]!;
    }
  }
  return out;
}

/** x (rows, in) @ W^T (out, in) [+ b]. */
function jsLinear(x: Float32Array, rows: number, w: Float32Array, outF: number, inF: number, b?: Float32Array): Float32Array {
  const y = new Float32Array(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let acc = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) acc += x[r * inF + i]! * w[o * inF + i]!;
      y[r * outF + o] = acc;
    }
  return y;
}

describe('the decoupled cross-attention module with several branches', () => {
  let w: SafetensorsFile;
  let session: ort.InferenceSession;
  const read = (k: string) => readTensorF32(w.get(k));
  beforeAll(async () => {
    const shapes = new Map<string, number[]>([
      ['attn.to_q.weight', [C, C]],
      ['attn.to_k.weight', [C, CX]],
      ['attn.to_v.weight', [C, CX]],
      ['attn.to_out.0.weight', [C, C]],
      ['attn.to_out.0.bias', [C]],
      ['ip_adapter.1.to_k_ip.weight', [C, CX]],
      ['ip_adapter.1.to_v_ip.weight', [C, CX]],
      ['ip_adapter.3.to_k_ip.weight', [C, CX]],
      ['ip_adapter.3.to_v_ip.weight', [C, CX]],
    ]);
    w = writeRandom('attn.safetensors', shapes, 11);
    const g = new Graph('attn_ip');
    const x = g.input('x', DataType.FLOAT, [1, T, C]);
    const ctx = g.input('context', DataType.FLOAT, [1, S_TXT, CX]);
    const branch = (k: number, index: number): IpLayer => ({
      index,
      toK: w.get(`ip_adapter.${index}.to_k_ip.weight`),
      toV: w.get(`ip_adapter.${index}.to_v_ip.weight`),
      tokens: g.input(`tokens_${k}`, DataType.FLOAT, [1, `s${k}`, N, CX]),
      routedTokens: g.input(`routed_${k}`, DataType.FLOAT, [1, `s${k}`, N, CX]),
      route: g.input(`route_${k}`, DataType.BOOL, []),
      kvScale: g.input(`kv_${k}`, DataType.FLOAT, [3]),
      scale: g.input(`scale_${k}`, DataType.FLOAT, []),
      mask: g.input(`mask_${k}`, DataType.FLOAT, [1, `ms${k}`, `mq${k}`]),
    });
    const out = attentionModule(new Module(g, w, 'attn'), x, ctx, HEADS, 'onnx', [branch(0, 1), branch(1, 3)]);
    g.output('out', out, DataType.FLOAT, [1, T, C]);
    session = await createSession(g.build(), { cacheDir: path.join(tmp, 'cache') });
  });
  afterAll(() => session?.release());

  const r = seededUniform(5);
  const X = new Float32Array(T * C).map(() => 2 * r() - 1);
  const CTX = new Float32Array(S_TXT * CX).map(() => 2 * r() - 1);
  const TOK = [0, 1].map(() => new Float32Array(2 * N * CX).map(() => 2 * r() - 1)); // two groups per branch available

  interface B {
    tokens: Float32Array;
    groups: number;
    routed?: Float32Array;
    route?: boolean;
    mode?: EmbedsScaling;
    lambda?: number;
    mask?: Float32Array;
  }
  async function run(branches: [B, B]): Promise<Float32Array> {
    const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', X, [1, T, C]), context: new ort.Tensor('float32', CTX, [1, S_TXT, CX]) };
    branches.forEach((b, k) => {
      const { kv, out } = embedsScalingCoefficients(b.mode ?? 'V only', [b.lambda ?? 1], [C * 160]); // width 1280: no C penalty
      feeds[`tokens_${k}`] = new ort.Tensor('float32', b.tokens, [1, b.groups, N, CX]);
      feeds[`routed_${k}`] = new ort.Tensor('float32', b.routed ?? b.tokens, [1, b.groups, N, CX]);
      feeds[`route_${k}`] = new ort.Tensor('bool', Uint8Array.of(b.route ? 1 : 0), []);
      feeds[`kv_${k}`] = new ort.Tensor('float32', kv, [3]);
      feeds[`scale_${k}`] = new ort.Tensor('float32', out, []);
      feeds[`mask_${k}`] = b.mask ? new ort.Tensor('float32', b.mask, [1, b.groups, T]) : new ort.Tensor('float32', Float32Array.of(1), [1, 1, 1]);
    });
    return (await session.run(feeds)).out!.data as Float32Array;
  }

  /** The formula in JavaScript (float64): to_out(attn(Q,K,V) + Σ d · m ⊙ attn(Q, aK', bV' + c mean V')). */
  function formula(branches: [B, B]): Float64Array {
    const q = jsLinear(X, T, read('attn.to_q.weight'), C, C);
    let h = jsAttention(q, jsLinear(CTX, S_TXT, read('attn.to_k.weight'), C, CX), jsLinear(CTX, S_TXT, read('attn.to_v.weight'), C, CX), T, S_TXT);
    branches.forEach((b, k) => {
      const idx = k === 0 ? 1 : 3;
      const { kv, out } = embedsScalingCoefficients(b.mode ?? 'V only', [b.lambda ?? 1], [C * 160]);
      const src = b.route ? b.routed! : b.tokens;
      for (let gI = 0; gI < b.groups; gI++) {
        const tok = src.subarray(gI * N * CX, (gI + 1) * N * CX);
        const K = jsLinear(tok, N, read(`ip_adapter.${idx}.to_k_ip.weight`), C, CX).map((v) => v * kv[0]!);
        const V0 = jsLinear(tok, N, read(`ip_adapter.${idx}.to_v_ip.weight`), C, CX);
        const mean = Array.from({ length: C }, (_, c) => Array.from({ length: N }, (_, j) => V0[j * C + c]!).reduce((a, v) => a + v, 0) / N);
        const V = V0.map((v, i) => v * kv[1]! + mean[i % C]! * kv[2]!);
        const a = jsAttention(q, K, V, T, N);
        const m = b.mask ? b.mask.subarray(gI * T, (gI + 1) * T) : null;
        h = h.map((v, i) => v + out[0]! * (m ? m[Math.floor(i / C)]! : 1) * a[i]!);
      }
    });
    const y = jsLinear(Float32Array.from(h), T, read('attn.to_out.0.weight'), C, C, read('attn.to_out.0.bias'));
    return Float64Array.from(y);
  }

  it('equals the formula for every embeds_scaling mode, with groups, masks and routing', async () => {
    const left = Float32Array.from({ length: T }, (_, i) => (i % 3 < 2 ? 1 : 0.25));
    for (const mode of EMBEDS_SCALING) {
      const bs: [B, B] = [
        { tokens: TOK[0]!, groups: 2, mode, lambda: 0.7, mask: Float32Array.from([...left, ...left.map((v) => 1 - v)]) },
        { tokens: TOK[1]!.subarray(0, N * CX), groups: 1, mode, lambda: 1.3, route: true, routed: TOK[0]!.subarray(N * CX) },
      ];
      expect(maxDiff(await run(bs), formula(bs)), mode).toBeLessThan(2e-5);
    }
  });

  it('two disjoint half masks give, on each half, exactly that half’s regional run; the sum of the two regional terms overall', async () => {
    const leftMask = Float32Array.from({ length: T }, (_, i) => (i % 3 < 2 ? 1 : 0)); // columns 0-1 of the 2 x 3 grid
    const rightMask = leftMask.map((v) => 1 - v);
    const one = (tokens: Float32Array, mask: Float32Array, lambda: number): B => ({ tokens, groups: 1, mask, lambda });
    const tok0 = TOK[0]!.subarray(0, N * CX);
    const tok1 = TOK[1]!.subarray(0, N * CX);
    const both = await run([one(tok0, leftMask, 0.7), one(tok1, rightMask, 0.5)]);
    const onlyLeft = await run([one(tok0, leftMask, 0.7), one(tok1, rightMask, 0)]);
    const onlyRight = await run([one(tok0, leftMask, 0), one(tok1, rightMask, 0.5)]);
    const none = await run([one(tok0, leftMask, 0), one(tok1, rightMask, 0)]);
    for (let i = 0; i < T; i++) {
      const rows = (a: Float32Array) => Array.from(a.subarray(i * C, (i + 1) * C));
      expect(rows(both)).toEqual(rows(leftMask[i] ? onlyLeft : onlyRight)); // bit for bit
    }
    // Z - Z0 = (Z_left - Z0) + (Z_right - Z0): the regional terms add (to_out is linear).
    const sum = none.map((z0, i) => onlyLeft[i]! - z0 + (onlyRight[i]! - z0) + z0);
    expect(maxDiff(both, sum)).toBeLessThan(1e-6);
  });

  it('a routed layer attends to the routed tokens, bit for bit as if they were its tokens', async () => {
    const a = TOK[0]!.subarray(0, N * CX);
    const b = TOK[1]!.subarray(0, N * CX);
    const routed = await run([
      { tokens: a, groups: 1, route: true, routed: b },
      { tokens: a, groups: 1, lambda: 0 },
    ]);
    const direct = await run([
      { tokens: b, groups: 1 },
      { tokens: a, groups: 1, lambda: 0 },
    ]);
    expect(Array.from(routed)).toEqual(Array.from(direct));
  });
});

// ---------------------------------------------------------------------------------------
// The whole UNet with several adapters.
// ---------------------------------------------------------------------------------------

describe('a UNet graph with several adapters', () => {
  let weights: SafetensorsFile;
  let adapters: {
    file: string;
    layers: Map<number, unknown>;
    layerWeights(i: number): { toK: ReturnType<SafetensorsFile['get']>; toV: ReturnType<SafetensorsFile['get']> };
  }[];
  beforeAll(() => {
    weights = writeRandom('unet.safetensors', unetParameterShapes(TINY), 1);
    adapters = [2, 3].map((seed) => {
      const ip = new Map<string, number[]>();
      for (const p of crossAttnLayers(TINY)) {
        ip.set(`ip_adapter.${p.index}.to_k_ip.weight`, [p.hiddenSize, TINY.crossAttentionDim]);
        ip.set(`ip_adapter.${p.index}.to_v_ip.weight`, [p.hiddenSize, TINY.crossAttentionDim]);
      }
      const f = writeRandom(`ip${seed}.safetensors`, ip, seed);
      return {
        file: path.join(tmp, `ip${seed}.safetensors`),
        layers: new Map(crossAttnLayers(TINY).map((p) => [p.index, null])),
        layerWeights: (i: number) => ({ toK: f.get(`ip_adapter.${i}.to_k_ip.weight`), toV: f.get(`ip_adapter.${i}.to_v_ip.weight`) }),
      };
    });
  });

  const r = seededUniform(9);
  const B = 2;
  const inp = {
    sample: { data: new Float32Array(B * 4 * 8 * 8).map(() => 2 * r()), dims: [B, 4, 8, 8] },
    timestep: Float32Array.from([981, 1]),
    encoderHiddenStates: { data: new Float32Array(B * 7 * 8).map(() => 2 * r()), dims: [B, 7, 8] },
  };
  const tokens = (n: number) => ({ data: new Float32Array(B * n * 8).map(() => 2 * r()), dims: [B, n, 8] });
  const L = crossAttnLayers(TINY).length;

  it('a second adapter at λ = 0 adds exactly nothing; λ per layer all equal is the scalar λ; a mask of ones is no mask', async () => {
    const cache = path.join(tmp, 'cache');
    const one = await UNetModel.create(TINY, weights, { cacheDir: cache, ipAdapters: [adapters[0]!] });
    const two = await UNetModel.create(TINY, weights, { cacheDir: cache, ipAdapters: [adapters[0]!, adapters[1]!] });
    const a: IpAdapterInputs = { tokens: tokens(4), scale: 0.7 };
    const b: IpAdapterInputs = { tokens: tokens(16), scale: 0 };
    const single = await one.run({ ...inp, ipAdapters: [a] });
    expect(Array.from((await two.run({ ...inp, ipAdapters: [a, b] })).data)).toEqual(Array.from(single.data));
    expect(Array.from((await one.run({ ...inp, ipAdapters: [{ ...a, scale: new Array(L).fill(0.7) }] })).data)).toEqual(Array.from(single.data));
    // A 64 x 64 mask of ones: 8x and 16x down to the 8 x 8 and 4 x 4 grids, exactly 1 everywhere.
    const ones = { data: new Float32Array(64 * 64).fill(1), dims: [1, 1, 64, 64] };
    expect(crossAttnLevels(TINY)).toEqual([0, 1]);
    expect(Array.from((await one.run({ ...inp, ipAdapters: [{ ...a, mask: ones }] })).data)).toEqual(Array.from(single.data));
    // Both adapters acting differ from either alone; the adapters' order is the inputs' order.
    const both = await two.run({ ...inp, ipAdapters: [a, { ...b, scale: 0.5 }] });
    expect(maxDiff(both.data, single.data)).toBeGreaterThan(1e-4);
    await expect(one.run({ ...inp, ipAdapters: [a, b] })).rejects.toThrow(/takes 1 IP-Adapter; the call gives 2/);
    await Promise.all([one.release(), two.release()]);
  });

  it(`takes at most ${MAX_IP_ADAPTERS} adapters, naming their files`, () => {
    const five = [0, 0, 1, 1, 0].map((i) => adapters[i]!);
    expect(() => buildUNet(TINY, weights, { ipAdapters: five })).toThrow(
      new RegExp(`at most ${MAX_IP_ADAPTERS} IP-Adapters, 5 were given .*ip2\\.safetensors`),
    );
    const four = buildUNet(TINY, weights, { ipAdapters: five.slice(0, 4) });
    expect(four.inputs.filter((i) => /^ip_tokens_\d$/.test(i.name)).length).toBe(4);
  });
});
