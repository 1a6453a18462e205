import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededUniform } from '../../test/helpers/random.js';
import { SafetensorsFile, encodeSafetensors, floatToHalf } from '../safetensors.js';
import { applyProfile } from './apply-profile.js';
import { DataType, Graph, Module, conv2d, groupNorm, linear, silu } from './graph.js';
import { PROFILES } from './profile.js';
import { RANGE_SIGMAS, convOutputRange, int8Spec, quantizeRows, removeStaleInt8Copies } from './quantize.js';
import { createSession, ort } from './session.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'int8-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const IN = 64;
const OUT = 48;
const N = 37;

/** Two linears: `down_blocks.0.ff` (quantized) and `time_embedding.linear_1` (kept float32), weights in F32 or F16. */
function writeWeights(file: string, dtype: 'F32' | 'F16', seed = 1): void {
  const u = seededUniform(seed);
  const vals = (n: number, amp: number) => Float32Array.from({ length: n }, () => amp * (2 * u() - 1));
  const t = (shape: number[], amp: number) => {
    const v = vals(
      shape.reduce((a, d) => a * d, 1),
      amp,
    );
    return dtype === 'F32' ? { dtype, shape, data: v } : { dtype, shape, data: Uint16Array.from(v, floatToHalf) };
  };
  fs.writeFileSync(
    file,
    encodeSafetensors({
      'down_blocks.0.ff.weight': t([OUT, IN], 0.2),
      'down_blocks.0.ff.bias': t([OUT], 0.1),
      'time_embedding.linear_1.weight': t([OUT, OUT], 0.2),
    }),
  );
}

function build(file: string, name = 'unet_int8_test') {
  const g = new Graph(name);
  const w = SafetensorsFile.open(file);
  const x = g.input('x', DataType.FLOAT, ['N', IN]);
  const h = linear(new Module(g, w, 'down_blocks.0.ff'), x);
  g.output('y', linear(new Module(g, w, 'time_embedding.linear_1'), h), DataType.FLOAT, ['N', OUT]);
  return g.build();
}

const C = 16;
const CO = 24;
const HW = 12;

/** A resnet's norm1 -> SiLU -> conv1 (3x3), weights F32. */
function writeConvWeights(file: string, seed = 5): void {
  const u = seededUniform(seed);
  const vals = (n: number, amp: number, off = 0) => Float32Array.from({ length: n }, () => off + amp * (2 * u() - 1));
  fs.writeFileSync(
    file,
    encodeSafetensors({
      'down_blocks.0.resnets.0.norm1.weight': { dtype: 'F32', shape: [C], data: vals(C, 0.5, 1) },
      'down_blocks.0.resnets.0.norm1.bias': { dtype: 'F32', shape: [C], data: vals(C, 0.5) },
      'down_blocks.0.resnets.0.conv1.weight': { dtype: 'F32', shape: [CO, C, 3, 3], data: vals(CO * C * 9, 0.15) },
      'down_blocks.0.resnets.0.conv1.bias': { dtype: 'F32', shape: [CO], data: vals(CO, 0.2) },
    }),
  );
}

function buildConv(file: string) {
  const g = new Graph('unet_int8_conv_test');
  const w = SafetensorsFile.open(file);
  const x = g.input('x', DataType.FLOAT, [2, C, HW, HW]);
  const m = new Module(g, w, 'down_blocks.0.resnets.0');
  const h = silu(g, groupNorm(m.child('norm1'), x, 4, 1e-5));
  g.output('y', conv2d(m.child('conv1'), h, { padding: 1 }), DataType.FLOAT, [2, CO, HW, HW]);
  return g.build();
}

/** Standard normal numbers from `seed` (Box-Muller on seededUniform). */
function normals(n: number, seed: number): Float32Array {
  const u = seededUniform(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u() + 0.5 + 1e-12)) * Math.cos(2 * Math.PI * (u() + 0.5)));
}

const X = Float32Array.from({ length: N * IN }, (_, i) => Math.sin(i * 0.37) + 0.3 * Math.cos(i * 1.3));

async function run(file: string, cacheDir: string, precision: 'fp32' | 'int8') {
  const logs: string[] = [];
  const s = await createSession(build(file), { cacheDir, profile: PROFILES[`cpu-${precision}`], log: (m) => logs.push(m) });
  const y = (await s.run({ x: new ort.Tensor('float32', X, [N, IN]) })).y.data as Float32Array;
  await s.release();
  return { y: Float32Array.from(y), logs: logs.filter((l) => l.startsWith('int8')) };
}

const relL2 = (a: Float32Array, b: Float32Array) => {
  let d = 0;
  let r = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    r += b[i]! ** 2;
  }
  return Math.sqrt(d / r);
};

describe('int8 pass (cpu-int8)', () => {
  it('quantizes each output channel symmetrically: every weight within half a step, (in, out) layout', () => {
    const w = Float32Array.from({ length: 6 * 5 }, (_, i) => Math.sin(i * 0.9) * (1 + (i % 5)));
    const { q, scale } = quantizeRows(w, 6, 5);
    for (let o = 0; o < 6; o++) {
      const row = Array.from(w.subarray(o * 5, o * 5 + 5));
      expect(scale[o]).toBeCloseTo(Math.max(...row.map(Math.abs)) / 127, 7);
      for (let k = 0; k < 5; k++) expect(Math.abs(q[k * 6 + o]! * scale[o]! - row[k]!)).toBeLessThanOrEqual(scale[o]! / 2 + 1e-7);
    }
    expect(Math.max(...Array.from(q, Math.abs))).toBe(127);
  });

  it('turns the linear into DynamicQuantizeLinear + MatMulIntegerToFloat and keeps the time embedding in float32', () => {
    const file = path.join(root, 'struct.safetensors');
    writeWeights(file, 'F32');
    const m = applyProfile(build(file), PROFILES['cpu-int8']!);
    const ops = m.spec.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === 'MatMulIntegerToFloat')).toHaveLength(1);
    expect(ops.filter((o) => o === 'Gemm')).toHaveLength(1);
    expect(m.spec.nodes.find((n) => n.opType === 'Gemm')!.inputs[1]).toBe('time_embedding.linear_1.weight');
    expect(m.spec.initializers.some((t) => t.name === 'down_blocks.0.ff.weight')).toBe(false);
    // another network keeps its float32 graph
    const text = int8Spec(build(file, 'clip_text').spec, build(file).externalFiles, 'clip_text');
    expect(text.spec.nodes.some((n) => n.opType === 'MatMulIntegerToFloat')).toBe(false);
  });

  it('computes what float32 does within int8 rounding (F32 and F16 files), writing the copy once per file identity', async () => {
    for (const dtype of ['F32', 'F16'] as const) {
      const file = path.join(root, `w-${dtype}.safetensors`);
      writeWeights(file, dtype);
      const cache = path.join(root, `cache-${dtype}`);
      const ref = await run(file, cache, 'fp32');
      const first = await run(file, cache, 'int8');
      expect(first.logs.some((l) => /wrote the int8 copy of 1 linear weights/.test(l))).toBe(true);
      const err = relL2(first.y, ref.y);
      expect(err).toBeGreaterThan(0); // it did compute in int8
      expect(err).toBeLessThan(0.02);
      const copies = fs.readdirSync(path.join(cache, 'int8-weights'));
      expect(copies).toHaveLength(1);
      const again = await run(file, cache, 'int8');
      expect(again.logs.some((l) => l.includes('wrote'))).toBe(false);
      expect(Array.from(again.y)).toEqual(Array.from(first.y));
      // an edited file (other weights, other mtime) gets a new copy; the stale one goes
      writeWeights(file, dtype, 2);
      fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
      const edited = await run(file, cache, 'int8');
      expect(edited.logs.some((l) => l.includes('wrote'))).toBe(true);
      expect(relL2(edited.y, (await run(file, cache, 'fp32')).y)).toBeLessThan(0.02);
      const now = fs.readdirSync(path.join(cache, 'int8-weights'));
      expect(now).toHaveLength(1);
      expect(now[0]).not.toBe(copies[0]);
    }
  });

  it('sweeps the copies of deleted model files at start-up (and keeps the others)', async () => {
    const cache = path.join(root, 'cache-sweep');
    const keep = path.join(root, 'keep.safetensors');
    const gone = path.join(root, 'gone.safetensors');
    writeWeights(keep, 'F32', 3);
    writeWeights(gone, 'F32', 4);
    await run(keep, cache, 'int8');
    await run(gone, cache, 'int8');
    expect(fs.readdirSync(path.join(cache, 'int8-weights'))).toHaveLength(2);
    fs.rmSync(gone);
    const removed = removeStaleInt8Copies(cache);
    expect(removed.map((r) => path.basename(r.file).split('.')[0])).toEqual(['gone']);
    expect(fs.readdirSync(path.join(cache, 'int8-weights')).map((f) => f.split('.')[0])).toEqual(['keep']);
  });

  it("computes a conv's output range in closed form: it holds a sampled run's extremes on the synthetic input, without much to spare", () => {
    const u = seededUniform(9);
    const w = Float32Array.from({ length: 8 * 6 * 9 }, () => 0.3 * u());
    const bias = Float32Array.from({ length: 8 }, () => u());
    const gamma = Float32Array.from({ length: 6 }, () => 1 + u());
    const beta = Float32Array.from({ length: 6 }, () => u());
    const r = convOutputRange(w, [8, 6, 3, 3], bias, gamma, beta);
    // sampled: 4000 output positions, each from its own 6 x 3 x 3 patch of SiLU(gamma z + beta)
    const z = normals(4000 * 54, 3);
    let lo = 0;
    let hi = 0;
    for (let p = 0; p < 4000; p++)
      for (let o = 0; o < 8; o++) {
        let y = bias[o]!;
        for (let c = 0; c < 6; c++)
          for (let k = 0; k < 9; k++) {
            const a = beta[c]! + gamma[c]! * z[p * 54 + c * 9 + k]!;
            y += w[(o * 6 + c) * 9 + k]! * (a / (1 + Math.exp(-a)));
          }
        lo = Math.min(lo, y);
        hi = Math.max(hi, y);
      }
    expect(r.min).toBeLessThan(lo);
    expect(r.max).toBeGreaterThan(hi);
    // 32000 samples reach about 4 of the RANGE_SIGMAS standard deviations
    expect((hi - lo) / (r.max - r.min)).toBeGreaterThan(3 / RANGE_SIGMAS);
  });

  it("turns a resnet's conv into DynamicQuantizeLinear + QLinearConv + DequantizeLinear, within int8 rounding of float32", async () => {
    const file = path.join(root, 'conv.safetensors');
    writeConvWeights(file);
    const m = applyProfile(buildConv(file), PROFILES['cpu-int8']!);
    const ops = m.spec.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === 'QLinearConv')).toHaveLength(1);
    expect(ops).not.toContain('Conv');
    expect(ops).toContain('DequantizeLinear');
    const cache = path.join(root, 'cache-conv');
    const x = new ort.Tensor(
      'float32',
      normals(2 * C * HW * HW, 4).map((v, i) => 2 * v + (i % 7)),
      [2, C, HW, HW],
    );
    const out: Float32Array[] = [];
    const logs: string[] = [];
    for (const p of ['cpu-fp32', 'cpu-int8']) {
      const s = await createSession(buildConv(file), { cacheDir: cache, profile: PROFILES[p], log: (l) => logs.push(l) });
      out.push(Float32Array.from((await s.run({ x })).y.data as Float32Array));
      await s.release();
    }
    expect(logs.some((l) => /and 1 conv weights \(output ranges calibrated\)/.test(l))).toBe(true);
    const err = relL2(out[1]!, out[0]!);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(0.02);
  });
});
