/**
 * SkipGroupNorm and NhwcConv (the cuda-fp16-fused profile). Neither has a CPU kernel (nor has GroupNorm), so they are
 * checked structurally on the SD1.5-size UNet, by ONNX Runtime's own graph resolution (type and shape inference pass:
 * a CPU session fails only for want of the kernels), and numerically through a test-side emulation of each contrib op
 * by its schema's definition (diffusion_defs.cc / contrib_defs.cc) in standard ops, run on the CPU against the plain graph.
 * None of this executes ORT's CUDA kernels.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { writeRandomSafetensors } from '../../scripts/bench/random-weights.js';
import { sd15Graphs } from '../../test/helpers/profile-graphs.js';
import { SafetensorsFile } from '../safetensors.js';
import { type BlockOptions, resnetBlock2D } from '../unet-blocks.js';
import { applyProfile } from './apply-profile.js';
import { inferTypes } from './fp16.js';
import { applyFusions } from './fusions.js';
import { type BuiltModel, DataType, Graph, Module, type ModelSpec, type NodeSpec, conv2d } from './graph.js';
import { type GraphProfile, profileFor } from './profile.js';
import { unsupportedNodes } from './provider-ops.js';
import { materialize } from './session.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-fusions-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const count = (m: { nodes: readonly NodeSpec[] }, op: string) => m.nodes.filter((n) => n.opType === op).length;
const CUDA_FUSIONS = profileFor('cuda', 'fp16').fusions;

describe('SkipGroupNorm and NhwcConv on the SD1.5-size UNet (cuda-fp16-fused)', () => {
  const sd = sd15Graphs('F16');
  const plain = sd.unet_ip!.spec;
  const cuda = applyProfile(sd.unet_ip!, profileFor('cuda', 'fp16'));
  const producer = new Map(cuda.spec.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));

  it('the profile names them', () => {
    expect(CUDA_FUSIONS).toEqual(['mha', 'group-norm', 'skip-group-norm', 'nhwc-conv', 'bias-split-gelu', 'bias-add', 'skip-layer-norm']);
  });

  it('counts: 22 SkipGroupNorm (every resnet norm2 after its time embedding), 39 GroupNorm, every Conv a NhwcConv', () => {
    expect(count(plain, 'InstanceNormalization')).toBe(61);
    expect(count(cuda.spec, 'SkipGroupNorm')).toBe(22); // 8 down + 2 mid + 12 up resnets
    expect(count(cuda.spec, 'GroupNorm')).toBe(61 - 22);
    expect(count(cuda.spec, 'NhwcConv')).toBe(count(plain, 'Conv'));
    expect(count(cuda.spec, 'Conv')).toBe(0);
    expect(count(cuda.spec, 'BiasSplitGelu')).toBe(16);
    expect(count(cuda.spec, 'SkipLayerNormalization')).toBe(32);
    expect(count(cuda.spec, 'MultiHeadAttention')).toBe(48);
  });

  it('every node is in the CUDA list (provider-ops.ts)', () => {
    const t = inferTypes(cuda.spec);
    const half = new Set(cuda.spec.nodes.filter((n) => n.outputs.some((o) => t.get(o) === DataType.FLOAT16)).map((n) => n.name));
    expect(unsupportedNodes('cuda', cuda.spec.nodes, (n) => half.has(n))).toEqual([]);
  });

  it('wiring: the skip is the (B, C) time embedding, γ / β are float32, the sums of norms feeding convs stay NHWC, no self-cancelling Transpose is left', () => {
    const t = inferTypes(cuda.spec);
    for (const n of cuda.spec.nodes.filter((n) => n.opType === 'SkipGroupNorm')) {
      expect(n.inputs).toHaveLength(4);
      expect(producer.get(n.inputs[3]!)?.opType).toBe('Reshape'); // time_emb_proj's linear (B, C), not the Unsqueeze
      expect(producer.get(n.inputs[0]!)?.opType).toBe('NhwcConv'); // conv1's NHWC output, its Transposes cancelled
      expect(n.attrs.activation).toEqual({ kind: 'int', v: 1 });
    }
    for (const n of cuda.spec.nodes.filter((n) => n.opType === 'GroupNorm' || n.opType === 'SkipGroupNorm')) {
      expect([t.get(n.inputs[1]!), t.get(n.inputs[2]!)]).toEqual([DataType.FLOAT, DataType.FLOAT]);
      expect(t.get(n.inputs[0]!)).toBe(DataType.FLOAT16);
    }
    // Every norm + SiLU feeds its conv directly in NHWC (the resnets' conv1 / conv2 and the transformers' proj_in).
    const normToConv = cuda.spec.nodes.filter((n) => n.opType === 'NhwcConv' && /GroupNorm/.test(producer.get(n.inputs[0]!)?.opType ?? ''));
    expect(normToConv.length).toBe(61); // each norm feeds one conv: 22 resnets x (conv1, conv2), 16 proj_in, conv_out
    for (const n of cuda.spec.nodes.filter((n) => n.opType === 'Transpose')) {
      const p = producer.get(n.inputs[0]!);
      expect(p?.opType === 'Transpose' && p.attrs.perm?.kind === 'ints' && n.attrs.perm?.kind === 'ints' && inverse(p.attrs.perm.v, n.attrs.perm.v)).toBe(
        false,
      );
    }
  });

  it('ONNX Runtime resolves the fused fp16 graph (types and shapes): a CPU session fails only for want of the CUDA kernels', async () => {
    // A resnet block at SD1.5 width (320 channels, 1280-wide time embedding) after conv_in, weights written here.
    const m = resnetModel(320, 'F16');
    const fused = applyProfile(m, profileFor('cuda', 'fp16'));
    expect(count(fused.spec, 'SkipGroupNorm')).toBe(1);
    expect(count(fused.spec, 'NhwcConv')).toBe(3);
    const { modelPath } = materialize(fused, { cacheDir: tmp });
    await expect(ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'], graphOptimizationLevel: 'disabled' })).rejects.toThrow(
      /(Could not find an implementation for |Failed to find kernel for com\.microsoft\.)(GroupNorm|SkipGroupNorm|NhwcConv)\(1\)/,
    );
  });
});

const inverse = (a: readonly number[], b: readonly number[]) => a.length === b.length && b.every((d, i) => a[d] === i);

/** conv_in (4 -> C) then a ResnetBlock2D (C -> C) with a time embedding (B, 1280): x (2, 4, 8, 8), temb (2, 1280) -> (2, C, 8, 8). */
function resnetModel(C: number, dtype: 'F16' | 'F32'): BuiltModel {
  const shapes = new Map<string, number[]>([
    ['conv_in.weight', [C, 4, 3, 3]],
    ['conv_in.bias', [C]],
    ['r.norm1.weight', [C]],
    ['r.norm1.bias', [C]],
    ['r.conv1.weight', [C, C, 3, 3]],
    ['r.conv1.bias', [C]],
    ['r.time_emb_proj.weight', [C, 1280]],
    ['r.time_emb_proj.bias', [C]],
    ['r.norm2.weight', [C]],
    ['r.norm2.bias', [C]],
    ['r.conv2.weight', [C, C, 3, 3]],
    ['r.conv2.bias', [C]],
  ]);
  const file = path.join(tmp, `resnet-${C}-${dtype}.safetensors`);
  if (!fs.existsSync(file)) writeRandomSafetensors(file, shapes, 11, { dtype });
  const st = SafetensorsFile.open(file);
  const g = new Graph(`resnet${C}`);
  const x = g.input('x', DataType.FLOAT, ['batch', 4, 'height', 'width']);
  const temb = g.input('temb', DataType.FLOAT, ['batch', 1280]);
  const root = new Module(g, st);
  const h = conv2d(root.child('conv_in'), x);
  const opts = { groups: 32, eps: 1e-5 } as BlockOptions; // resnetBlock2D reads only these
  g.output('y', resnetBlock2D(root.child('r'), h, temb, opts), DataType.FLOAT, ['batch', C, 'height', 'width']);
  return g.build();
}

/**
 * The contrib ops of a fused graph written back as the standard ops their schemas define (test-only emulation):
 * GroupNorm / SkipGroupNorm (NHWC in and out: s = x + skip (+ bias); per-group mean and variance of s over (H, W, C/G);
 * γ, β per channel; SiLU when activation = 1; output 1 = s) and NhwcConv (the Conv of the NCHW views with the weight
 * back in (M, C/group, kH, kW)). The result runs on the CPU.
 */
function emulateContribOps(spec: ModelSpec): ModelSpec {
  const nodes: NodeSpec[] = [];
  const inits = [...spec.initializers];
  let k = 0;
  const v = (p: string) => `emu__${p}__${k++}`;
  const op = (opType: string, inputs: string[], attrs: NodeSpec['attrs'] = {}, out = v(opType)): string => {
    nodes.push({ opType, inputs, outputs: [out], name: out, attrs });
    return out;
  };
  const perm = (p: number[]) => ({ perm: { kind: 'ints' as const, v: p } });
  const ints = (vals: number[]) => {
    const name = v('c');
    inits.push({ name, dataType: DataType.INT64, dims: [vals.length], raw: new Uint8Array(BigInt64Array.from(vals.map(BigInt)).buffer) });
    return name;
  };
  const floats = (vals: number[]) => {
    const name = v('f');
    inits.push({ name, dataType: DataType.FLOAT, dims: [vals.length], raw: new Uint8Array(Float32Array.from(vals).buffer) });
    return name;
  };
  for (const n of spec.nodes) {
    if (n.domain !== 'com.microsoft' || !['GroupNorm', 'SkipGroupNorm', 'NhwcConv'].includes(n.opType)) {
      nodes.push(n);
      continue;
    }
    if (n.opType === 'NhwcConv') {
      const x = op('Transpose', [n.inputs[0]!], perm([0, 3, 1, 2]));
      const w = op('Transpose', [n.inputs[1]!], perm([0, 3, 1, 2]));
      const y = op('Conv', [x, w, ...n.inputs.slice(2)], n.attrs);
      op('Transpose', [y], perm([0, 2, 3, 1]), n.outputs[0]!);
      continue;
    }
    const G = n.attrs.groups?.kind === 'int' ? n.attrs.groups.v : 0;
    const eps = n.attrs.epsilon?.kind === 'float' ? n.attrs.epsilon.v : 1e-5;
    let s = n.inputs[0]!; // (N, H, W, C)
    if (n.opType === 'SkipGroupNorm') {
      let skip = n.inputs[3]!;
      skip = op('Reshape', [skip, op('Concat', [op('Slice', [op('Shape', [skip]), ints([0]), ints([1])]), ints([1, 1, -1])], { axis: { kind: 'int', v: 0 } })]); // (N, 1, 1, C)
      s = op('Add', [s, skip]);
      if (n.inputs[4]) s = op('Add', [s, n.inputs[4]]);
      if (n.outputs[1]) op('Identity', [s], {}, n.outputs[1]);
    }
    const nchw = op('Transpose', [s], perm([0, 3, 1, 2]));
    const grouped = op('Reshape', [nchw, ints([0, G, -1])]);
    const normed = op('InstanceNormalization', [grouped, floats(new Array(G).fill(1)), floats(new Array(G).fill(0))], { epsilon: { kind: 'float', v: eps } });
    const back = op('Transpose', [op('Reshape', [normed, op('Shape', [nchw])])], perm([0, 2, 3, 1])); // (N, H, W, C)
    let y = op('Add', [op('Mul', [back, n.inputs[1]!]), n.inputs[2]!]);
    if (n.attrs.activation?.kind === 'int' && n.attrs.activation.v === 1) y = op('Mul', [y, op('Sigmoid', [y])]);
    op('Identity', [y], {}, n.outputs[0]!);
  }
  return { ...spec, nodes, initializers: inits };
}

describe('the fused graph computes what the plain one does (contrib ops emulated from their schemas, CPU, float32)', () => {
  it('conv_in + a 320-channel resnet: GroupNorm, SkipGroupNorm and NhwcConv with the Transposes between them cancelled', async () => {
    const m = resnetModel(320, 'F32');
    const fusions: GraphProfile = { id: 'test-fused', provider: 'cuda', precision: 'fp32', fusions: CUDA_FUSIONS };
    const fusedSpec = applyFusions(m.spec, fusions);
    expect([count(fusedSpec, 'GroupNorm'), count(fusedSpec, 'SkipGroupNorm'), count(fusedSpec, 'NhwcConv'), count(fusedSpec, 'Transpose')]).toEqual([
      1, 1, 3, 6,
    ]);
    // Transposes left: x to NHWC, the 3 weights (folded by ORT), conv_in's output to NCHW for the resnet's shortcut Add,
    // and the block's output (conv2 + shortcut) to NCHW. The norm -> conv and conv -> norm ones cancelled.
    const emulated = m.withSpec(emulateContribOps(fusedSpec), { salt: 'emulated' });
    const feeds = {
      x: new ort.Tensor(
        'float32',
        Float32Array.from({ length: 2 * 4 * 64 }, (_, i) => Math.sin(i * 0.37)),
        [2, 4, 8, 8],
      ),
      temb: new ort.Tensor(
        'float32',
        Float32Array.from({ length: 2 * 1280 }, (_, i) => Math.cos(i * 0.11)),
        [2, 1280],
      ),
    };
    const run = async (b: BuiltModel) => {
      const s = await ort.InferenceSession.create(materialize(b, { cacheDir: tmp }).modelPath, { executionProviders: ['cpu'] });
      const y = (await s.run(feeds)).y!.data as Float32Array;
      await s.release();
      return y;
    };
    const [a, b] = [await run(m), await run(emulated)];
    let max = 0;
    let ref = 0;
    for (let i = 0; i < a.length; i++) {
      max = Math.max(max, Math.abs(a[i]! - b[i]!));
      ref = Math.max(ref, Math.abs(a[i]!));
    }
    expect(ref).toBeGreaterThan(0.1);
    expect(max).toBeLessThan(1e-4 * ref);
  });
});
