import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { sd15Graphs, tinyGraphs } from '../../test/helpers/profile-graphs.js';
import { applyProfile } from './apply-profile.js';
import { inferTypes, islandNodes, ISLANDS } from './fp16.js';
import { applyFusions } from './fusions.js';
import { DataType, Graph, Module, type BuiltModel, groupNorm, silu } from './graph.js';
import { type GraphProfile, PROFILES, defaultProfile, fallbackChain, profileFor } from './profile.js';
import { PROVIDER_OPS, unsupportedNodes } from './provider-ops.js';
import { createSession, sessionProfile } from './session.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-profile-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('graph profiles', () => {
  it('each provider gets its profile: CPU today’s graph, CUDA / WebGPU / DirectML fp16 with their fused ops', () => {
    expect(profileFor('cpu')).toBe(PROFILES['cpu-fp32']);
    expect(profileFor('cpu', 'fp16').fusions).toEqual(['mha']);
    expect(profileFor('cuda', 'fp16').fusions).toEqual(['mha', 'group-norm', 'skip-group-norm', 'nhwc-conv', 'bias-split-gelu', 'bias-add', 'skip-layer-norm']);
    expect(profileFor('webgpu', 'fp16').fusions).toEqual(['mha', 'bias-split-gelu', 'bias-add', 'skip-layer-norm']); // GroupNorm stays decomposed
    expect(profileFor('dml', 'fp16').id).toBe('dml-fp16-fused');
    expect(() => profileFor('webgpu', 'int8')).toThrow(/no graph profile for provider webgpu at precision int8/);
  });

  it('the fallback order: the profile, the same precision without fusions, then the provider’s fp32 graph', () => {
    expect(fallbackChain(profileFor('cuda', 'fp16')).map((p) => p.id)).toEqual(['cuda-fp16-fused', 'cuda-fp16', 'cuda-fp32']);
    expect(fallbackChain(profileFor('webgpu', 'fp16')).map((p) => p.id)).toEqual(['webgpu-fp16-fused', 'webgpu-fp16', 'webgpu-fp32']);
    expect(fallbackChain(PROFILES['cuda-fp16']!).map((p) => p.id)).toEqual(['cuda-fp16', 'cuda-fp32']);
    expect(fallbackChain(profileFor('cpu', 'fp16')).map((p) => p.id)).toEqual(['cpu-fp16', 'cpu-fp32']);
    expect(fallbackChain(defaultProfile('cpu')).map((p) => p.id)).toEqual(['cpu-fp32']);
  });
});

/** Node name -> does it compute in fp16 (an output of it is FLOAT16). */
function fp16Nodes(m: BuiltModel): Set<string> {
  const t = inferTypes(m.spec);
  return new Set(m.spec.nodes.filter((n) => n.outputs.some((o) => t.get(o) === DataType.FLOAT16)).map((n) => n.name));
}

describe('the fp16 pass on the SD1.5-size graphs', () => {
  const sd = sd15Graphs('F16');
  const unet = applyProfile(sd.unet_ip!, PROFILES['cpu-fp16']!);

  it('keeps float32 graph inputs and outputs, uses the F16 weights as stored and computes convs, matmuls and attention in fp16', () => {
    expect(unet.spec.inputs).toEqual(sd.unet_ip!.spec.inputs);
    expect(unet.spec.outputs).toEqual(sd.unet_ip!.spec.outputs);
    expect(unet.halfWeights).toEqual([]); // no F16 weight is cast to float32 any more
    expect(sd.unet_ip!.halfWeights.length).toBeGreaterThan(600);
    const half = fp16Nodes(unet);
    const heavy = unet.spec.nodes.filter((n) => ['Conv', 'Gemm', 'MatMul', 'MultiHeadAttention'].includes(n.opType));
    expect(heavy.length).toBeGreaterThan(300);
    expect(heavy.filter((n) => !half.has(n.name))).toEqual([]);
    expect(unet.name).toBe('unet-cpu-fp16');
    expect(unet.key).not.toBe(sd.unet_ip!.key);
  });

  it('keeps the islands in float32: GroupNorm statistics, the timestep projection, the VAE decoder’s last up block', () => {
    const half = fp16Nodes(unet);
    const t = inferTypes(unet.spec);
    const inorm = unet.spec.nodes.filter((n) => n.opType === 'InstanceNormalization');
    expect(inorm.length).toBe(61);
    for (const n of inorm) expect(t.get(n.outputs[0]!)).toBe(DataType.FLOAT);
    for (const n of unet.spec.nodes.filter((n) => n.opType === 'Sin' || n.opType === 'Cos')) expect(half.has(n.name)).toBe(false);
    const dec = applyProfile(sd.vae_decoder!, PROFILES['cpu-fp16']!);
    const convs = dec.spec.nodes.filter((n) => n.opType === 'Conv');
    const t2 = inferTypes(dec.spec);
    const f32Convs = convs.filter((n) => t2.get(n.outputs[0]!) === DataType.FLOAT).length;
    expect(f32Convs).toBe(8); // up_blocks.3: 3 resnets x 2 convs + conv_shortcut, conv_out
    expect(convs.length - f32Convs).toBeGreaterThan(20);
  });

  it('lists its islands: every rule-based island is found on the UNet', () => {
    const keep = islandNodes(sd.unet_ip!.spec, ISLANDS, new Set());
    expect(keep.size).toBeGreaterThan(61 + 2);
  });
});

describe('every op of every built profile graph is one its provider supports (provider-ops.ts)', () => {
  const graphs = { ...sd15Graphs('F16'), ...(tinyGraphs() ?? {}) };
  for (const p of Object.values(PROFILES)) {
    it(`${p.id}`, () => {
      for (const [name, g] of Object.entries(graphs)) {
        const m = applyProfile(g, p);
        const half = fp16Nodes(m);
        expect({ name, bad: unsupportedNodes(p.provider, m.spec.nodes, (n) => half.has(n)) }).toEqual({ name, bad: [] });
      }
    });
  }

  it('the fused profiles contain the fused ops at SD1.5 size', () => {
    const sd = sd15Graphs('F16');
    const count = (m: BuiltModel, op: string) => m.spec.nodes.filter((n) => n.opType === op).length;
    const cuda = applyProfile(sd.unet_ip!, profileFor('cuda', 'fp16'));
    expect(count(cuda, 'GroupNorm') + count(cuda, 'SkipGroupNorm')).toBe(61); // 22 SkipGroupNorm: fusions.test.ts
    expect(count(cuda, 'InstanceNormalization')).toBe(0);
    expect(count(cuda, 'BiasSplitGelu')).toBe(16);
    expect(count(cuda, 'SkipLayerNormalization')).toBe(32); // norm2 and norm3 of 16 transformer blocks
    expect(count(cuda, 'BiasAdd')).toBe(16); // ff.net.2 + residual (the attn1 / attn2 residual Adds went into SkipLayerNormalization)
    expect(count(cuda, 'MultiHeadAttention')).toBe(16 * 3);
    const webgpu = applyProfile(sd.unet_ip!, profileFor('webgpu', 'fp16'));
    expect(count(webgpu, 'GroupNorm')).toBe(0);
    expect(count(webgpu, 'BiasSplitGelu')).toBe(16);
    expect(count(webgpu, 'Identity')).toBe(0);
    const vae = applyProfile(sd.vae_decoder!, profileFor('cuda', 'fp16'));
    expect(count(vae, 'GroupNorm')).toBe(30);
  });

  it('each provider list names every op the builders emit (a missing one would make every profile fail above)', () => {
    for (const ops of Object.values(PROVIDER_OPS)) expect(ops.Conv).toEqual({ fp16: true });
  });
});

describe('fusions keep the numbers (on the CPU, which has SkipLayerNormalization)', () => {
  it('LayerNormalization(a + b) and SkipLayerNormalization(a, b) agree; the sum stays available', async () => {
    const C = 8;
    const g = new Graph('sln');
    const a = g.input('a', DataType.FLOAT, [2, 3, C]);
    const b = g.input('b', DataType.FLOAT, [2, 3, C]);
    const x = g.op('Add', [g.op('Mul', [a, g.scalar(1.5)]), g.op('Sub', [b, g.scalar(0.25)])]);
    const gamma = g.constF(
      Array.from({ length: C }, (_, i) => 1 + i / 10),
      [C],
    );
    const beta = g.constF(
      Array.from({ length: C }, (_, i) => i / 20),
      [C],
    );
    g.output('y', g.op('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: { kind: 'float', v: 1e-5 } }), DataType.FLOAT, null);
    g.output('s', g.op('Mul', [x, g.scalar(2)]), DataType.FLOAT, null);
    const plain = g.build();
    const fused = plain.withSpec(applyFusions(plain.spec, { id: 't', provider: 'cpu', precision: 'fp32', fusions: ['skip-layer-norm'] }));
    expect(fused.spec.nodes.map((n) => n.opType)).toContain('SkipLayerNormalization');
    const feeds = {
      a: new ort.Tensor(
        'float32',
        Float32Array.from({ length: 6 * C }, (_, i) => Math.sin(i)),
        [2, 3, C],
      ),
      b: new ort.Tensor(
        'float32',
        Float32Array.from({ length: 6 * C }, (_, i) => Math.cos(i * 0.7)),
        [2, 3, C],
      ),
    };
    const run = async (m: BuiltModel) => (await ort.InferenceSession.create(m.bytes)).run(feeds);
    const [p, q] = [await run(plain), await run(fused)];
    for (const k of ['y', 's']) {
      const d = (p[k]!.data as Float32Array).map((v, i) => Math.abs(v - (q[k]!.data as Float32Array)[i]!));
      expect(Math.max(...d)).toBeLessThan(1e-5);
    }
  });
});

describe('createSession walks the fallback chain', () => {
  it('a profile with an op the provider lacks falls back to the next one, with a notice naming the provider and the op', async () => {
    // GroupNorm of 320 channels in 32 groups + SiLU: the group-norm fusion applies, and the CPU has no GroupNorm kernel.
    const g = new Graph('gn');
    const x = g.input('x', DataType.FLOAT, [1, 320, 2, 2]);
    const shapes = new Map([
      ['norm.weight', [320]],
      ['norm.bias', [320]],
    ]);
    const file = path.join(tmp, 'gn.safetensors');
    const { writeRandomSafetensors } = await import('../../scripts/bench/random-weights.js');
    writeRandomSafetensors(file, shapes, 7);
    const { SafetensorsFile } = await import('../safetensors.js');
    const st = SafetensorsFile.open(file);
    g.output('y', silu(g, groupNorm(new Module(g, st, 'norm'), x, 32, 1e-5)), DataType.FLOAT, [1, 320, 2, 2]);
    const model = g.build();
    const fusedCpu: GraphProfile = { id: 'cpu-fp16-fused', provider: 'cpu', precision: 'fp16', fusions: ['mha', 'group-norm'] };
    expect(applyProfile(model, fusedCpu).spec.nodes.some((n) => n.opType === 'GroupNorm')).toBe(true);
    const notices: string[] = [];
    const s = await createSession(model, { cacheDir: tmp, profile: fusedCpu, onProfileFallback: (n) => notices.push(n) });
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^provider cpu: graph profile cpu-fp16-fused failed to build \(op GroupNorm: Could not find an implementation for GroupNorm/);
    expect(notices[0]).toMatch(/; using cpu-fp16$/);
    expect(sessionProfile(s)?.id).toBe('cpu-fp16');
    const out = await s.run({
      x: new ort.Tensor(
        'float32',
        new Float32Array(1280).map((_, i) => Math.sin(i)),
        [1, 320, 2, 2],
      ),
    });
    expect(out.y!.type).toBe('float32');
    expect([...(out.y!.data as Float32Array)].every(Number.isFinite)).toBe(true);
    await s.release();
  });
});
