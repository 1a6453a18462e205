/**
 * Fused-op rewrites of a built float32 graph onto ONNX Runtime's com.microsoft diffusion / transformer kernels,
 * by pattern over the nodes the module helpers emit (onnx/graph.ts linear, groupNorm, silu, gelu; unet-blocks.ts
 * feedForwardGEGLU, basicTransformerBlock), the way ORT's own stable-diffusion optimizer fuses an exported UNet:
 * - 'skip-layer-norm': LayerNormalization(Add(a, b)) -> SkipLayerNormalization(a, b, γ, β) (+ the sum as output 3);
 * - 'bias-split-gelu': Split(Reshape(Gemm(x, W, b))) -> hidden · gelu(gate) -> BiasSplitGelu(Reshape(Gemm(x, W)), b);
 * - 'bias-add': Add(Reshape(Gemm(x, W, b)), skip) -> BiasAdd(Reshape(Gemm(x, W)), b, skip);
 * - 'group-norm': Reshape -> InstanceNormalization -> Reshape -> Mul γ -> Add β [-> SiLU] ->
 *   Transpose(NHWC) -> GroupNorm(channels_last, activation) -> Transpose(NCHW).
 * Each applies only where ORT's CUDA kernels accept the widths (the SD1.5 widths), so a tiny model keeps its plain
 * graph. 'mha' is emitted by the builders already; 'skip-group-norm' and 'nhwc-conv' are not rewritten yet.
 */
import type { ModelSpec, NodeSpec, TensorSpec } from './graph.js';
import { DataType } from './proto.js';
import type { Fusion, GraphProfile } from './profile.js';

/** Channel counts ORT's CUDA GroupNorm, BiasAdd and BiasSplitGelu kernels take (contrib_ops/cuda/diffusion). */
export const GROUP_NORM_CHANNELS = new Set([128, 256, 320, 384, 512, 640, 768, 960, 1024, 1280, 1920, 2560]);
export const BIAS_ADD_CHANNELS = new Set([320, 640, 1280]);
export const BIAS_SPLIT_GELU_WIDTHS = new Set([2560, 5120, 10240]);

class Editable {
  nodes: (NodeSpec | null)[];
  initializers: TensorSpec[];
  producer = new Map<string, number>();
  consumers = new Map<string, number[]>();
  private counter = 0;
  constructor(readonly spec: ModelSpec) {
    this.nodes = [...spec.nodes];
    this.initializers = [...spec.initializers];
    this.nodes.forEach((n, i) => {
      for (const o of n!.outputs) this.producer.set(o, i);
      for (const x of n!.inputs) this.consumers.set(x, [...(this.consumers.get(x) ?? []), i]);
    });
  }
  prod(v: string): NodeSpec | undefined {
    const i = this.producer.get(v);
    return i === undefined ? undefined : (this.nodes[i] ?? undefined);
  }
  uses(v: string): NodeSpec[] {
    return (this.consumers.get(v) ?? []).map((i) => this.nodes[i]).filter((n): n is NodeSpec => !!n);
  }
  isOutput(v: string): boolean {
    return this.spec.outputs.some((o) => o.name === v);
  }
  init(v: string): TensorSpec | undefined {
    return this.initializers.find((t) => t.name === v);
  }
  /** The initializer a value is, directly or through one Cast (an F16 weight's). */
  weightOf(v: string): TensorSpec | undefined {
    const p = this.prod(v);
    return p?.opType === 'Cast' ? this.init(p.inputs[0] ?? '') : this.init(v);
  }
  constI(values: number[]): string {
    const name = `fusion_c__${this.counter++}`;
    this.initializers.push({ name, dataType: DataType.INT64, dims: [values.length], raw: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });
    return name;
  }
  fresh(prefix: string): string {
    return `${prefix}__f${this.counter++}`;
  }
  remove(n: NodeSpec): void {
    const i = this.nodes.indexOf(n);
    if (i >= 0) this.nodes[i] = null;
  }
  /** Replaces node `at` by `list` (in order, at its position). */
  replace(at: NodeSpec, list: NodeSpec[]): void {
    const i = this.nodes.indexOf(at);
    this.nodes.splice(i, 1, ...list);
    this.reindex();
  }
  reindex(): void {
    this.producer.clear();
    this.consumers.clear();
    this.nodes.forEach((n, i) => {
      if (!n) return;
      for (const o of n.outputs) this.producer.set(o, i);
      for (const x of n.inputs) this.consumers.set(x, [...(this.consumers.get(x) ?? []), i]);
    });
  }
  result(): ModelSpec {
    return { ...this.spec, nodes: this.nodes.filter((n): n is NodeSpec => !!n), initializers: this.initializers };
  }
}

const ms = (opType: string, inputs: string[], outputs: string[], name: string, attrs: NodeSpec['attrs'] = {}): NodeSpec => ({
  opType,
  inputs,
  outputs,
  name,
  attrs,
  domain: 'com.microsoft',
});
const floatAttr = (n: NodeSpec, k: string, d: number) => {
  const a = n.attrs[k];
  return a?.kind === 'float' ? a.v : d;
};
const isConst = (e: Editable, v: string, value: number) => {
  const t = e.init(v);
  if (!t?.raw || t.dataType !== DataType.FLOAT || t.raw.byteLength !== 4) return false;
  return Math.abs(new DataView(t.raw.buffer, t.raw.byteOffset).getFloat32(0, true) - value) < 1e-6 * Math.max(1, Math.abs(value));
};
/** A linear's output y = Reshape(Gemm(x2, W, b), ...) used only there: its Gemm and Reshape. */
function linearWithBias(e: Editable, y: string): { gemm: NodeSpec; reshape: NodeSpec } | null {
  const reshape = e.prod(y);
  if (reshape?.opType !== 'Reshape') return null;
  const gemm = e.prod(reshape.inputs[0] ?? '');
  if (gemm?.opType !== 'Gemm' || gemm.inputs.length !== 3 || e.uses(gemm.outputs[0]!).length !== 1) return null;
  return { gemm, reshape };
}

function skipLayerNorm(e: Editable): void {
  for (const ln of [...e.nodes]) {
    if (!ln || ln.opType !== 'LayerNormalization' || ln.outputs.length !== 1) continue;
    const axis = ln.attrs.axis;
    if (axis && !(axis.kind === 'int' && axis.v === -1)) continue;
    const add = e.prod(ln.inputs[0] ?? '');
    if (add?.opType !== 'Add' || e.isOutput(add.outputs[0]!)) continue;
    const [a, b] = add.inputs as [string, string];
    const pa = e.prod(a);
    const pb = e.prod(b);
    // Both residual-stream tensors (B, T, C): produced by nodes, neither a broadcast (Gather / Unsqueeze) operand.
    if (!pa || !pb || [pa, pb].some((p) => p.opType === 'Gather' || p.opType === 'Unsqueeze')) continue;
    const sum = add.outputs[0]!;
    const others = e.uses(sum).filter((n) => n !== ln);
    const outs = others.length ? [ln.outputs[0]!, '', '', sum] : [ln.outputs[0]!];
    e.remove(add);
    e.replace(ln, [
      ms('SkipLayerNormalization', [a, b, ln.inputs[1]!, ln.inputs[2]!], outs, `${ln.name}/skip`, {
        epsilon: { kind: 'float', v: floatAttr(ln, 'epsilon', 1e-5) },
      }),
    ]);
  }
}

function biasSplitGelu(e: Editable): void {
  for (const split of [...e.nodes]) {
    if (!split || split.opType !== 'Split' || split.outputs.length !== 2) continue;
    const lin = linearWithBias(e, split.inputs[0] ?? '');
    if (!lin || e.uses(lin.reshape.outputs[0]!).length !== 1) continue;
    const bias = e.weightOf(lin.gemm.inputs[2]!);
    if (!bias || !BIAS_SPLIT_GELU_WIDTHS.has(bias.dims[0] ?? 0)) continue;
    const [hidden, gate] = split.outputs as [string, string];
    // gelu(gate) = Mul(Mul(gate, 0.5), Add(Erf(Div(gate, √2)), 1)); out = Mul(hidden, gelu)
    const hUses = e.uses(hidden);
    const out = hUses.length === 1 && hUses[0]!.opType === 'Mul' ? hUses[0]! : null;
    if (!out) continue;
    const g = e.prod(out.inputs.find((x) => x !== hidden) ?? '');
    if (g?.opType !== 'Mul') continue;
    const [m1, m2] = g.inputs.map((x) => e.prod(x));
    const half = [m1, m2].find((n) => n?.opType === 'Mul' && n.inputs[0] === gate && isConst(e, n.inputs[1]!, 0.5));
    const plus = [m1, m2].find((n) => n?.opType === 'Add');
    const erf = plus && e.prod(plus.inputs[0]!);
    const div = erf?.opType === 'Erf' ? e.prod(erf.inputs[0]!) : undefined;
    if (!half || !plus || !isConst(e, plus.inputs[1]!, 1) || div?.opType !== 'Div' || div.inputs[0] !== gate || !isConst(e, div.inputs[1]!, Math.SQRT2))
      continue;
    if (e.uses(gate).length !== 2) continue;
    const gemmOut = lin.gemm.outputs[0]!;
    for (const n of [split, half, plus, erf!, div, g]) e.remove(n);
    e.replace(lin.gemm, [{ ...lin.gemm, inputs: lin.gemm.inputs.slice(0, 2), outputs: [gemmOut] }]);
    e.replace(out, [ms('BiasSplitGelu', [lin.reshape.outputs[0]!, lin.gemm.inputs[2]!], out.outputs, `${out.name}/bias_split_gelu`)]);
  }
}

function biasAdd(e: Editable): void {
  for (const add of [...e.nodes]) {
    if (!add || add.opType !== 'Add') continue;
    for (const side of [0, 1]) {
      const y = add.inputs[side]!;
      const skip = add.inputs[1 - side]!;
      const lin = linearWithBias(e, y);
      if (!lin || e.uses(y).length !== 1 || !e.prod(skip) || e.prod(skip)?.opType === 'Unsqueeze') continue;
      const bias = e.weightOf(lin.gemm.inputs[2]!);
      if (!bias || !BIAS_ADD_CHANNELS.has(bias.dims[0] ?? 0)) continue;
      e.replace(lin.gemm, [{ ...lin.gemm, inputs: lin.gemm.inputs.slice(0, 2) }]);
      e.replace(add, [ms('BiasAdd', [y, lin.gemm.inputs[2]!, skip], add.outputs, `${add.name}/bias_add`)]);
      break;
    }
  }
}

function groupNorm(e: Editable): void {
  for (const inorm of [...e.nodes]) {
    if (!inorm || inorm.opType !== 'InstanceNormalization') continue;
    const r1 = e.prod(inorm.inputs[0]!);
    const groupsT = r1?.opType === 'Reshape' ? e.init(r1.inputs[1]!) : undefined;
    if (!r1 || !groupsT?.raw || groupsT.dims[0] !== 3) continue;
    const groups = Number(new BigInt64Array(groupsT.raw.slice().buffer)[1]);
    const x = r1.inputs[0]!;
    const iu = e.uses(inorm.outputs[0]!);
    const r2 = iu.length === 1 && iu[0]!.opType === 'Reshape' ? iu[0]! : null;
    const mu = r2 && e.uses(r2.outputs[0]!);
    const mul = mu?.length === 1 && mu[0]!.opType === 'Mul' ? mu[0]! : null;
    const au = mul && e.uses(mul.outputs[0]!);
    const add = au?.length === 1 && au[0]!.opType === 'Add' ? au[0]! : null;
    if (!r2 || !mul || !add || e.isOutput(add.outputs[0]!)) continue;
    const scale = mul.inputs[1]!;
    const bias = add.inputs[1]!;
    const C = e.weightOf(scale)?.dims[0] ?? 0;
    if (groups !== 32 || !GROUP_NORM_CHANNELS.has(C) || !e.weightOf(bias)) continue;
    // SiLU after it: Mul(y, Sigmoid(y)), y used by exactly those two.
    let y = add.outputs[0]!;
    const yu = e.uses(y);
    const sig = yu.find((n) => n.opType === 'Sigmoid');
    const silu = sig && yu.length === 2 ? yu.find((n) => n.opType === 'Mul' && n.inputs.includes(y) && n.inputs.includes(sig.outputs[0]!)) : undefined;
    const act = silu && sig && e.uses(sig.outputs[0]!).length === 1 ? 1 : 0;
    const removed = [r1, inorm, r2, mul, add, ...(act ? [sig!] : [])];
    if (removed.some((n) => n.outputs.some((o) => e.isOutput(o)))) continue;
    const last = act ? silu! : add;
    y = last.outputs[0]!;
    const xt = e.fresh(`${inorm.name}/nhwc`);
    const gn = e.fresh(`${inorm.name}/group_norm`);
    const flat = e.constI([C]);
    const gamma = e.fresh(`${inorm.name}/gamma`);
    const beta = e.fresh(`${inorm.name}/beta`);
    const list: NodeSpec[] = [
      { opType: 'Transpose', inputs: [x], outputs: [xt], name: xt, attrs: { perm: { kind: 'ints', v: [0, 2, 3, 1] } } },
      { opType: 'Reshape', inputs: [scale, flat], outputs: [gamma], name: gamma, attrs: {} },
      { opType: 'Reshape', inputs: [bias, flat], outputs: [beta], name: beta, attrs: {} },
      ms('GroupNorm', [xt, gamma, beta], [gn], gn, {
        activation: { kind: 'int', v: act },
        channels_last: { kind: 'int', v: 1 },
        epsilon: { kind: 'float', v: floatAttr(inorm, 'epsilon', 1e-5) },
        groups: { kind: 'int', v: groups },
      }),
      { opType: 'Transpose', inputs: [gn], outputs: [y], name: `${gn}/nchw`, attrs: { perm: { kind: 'ints', v: [0, 3, 1, 2] } } },
    ];
    for (const n of removed) if (n !== last) e.remove(n);
    e.replace(last, list);
  }
}

const PASSES: Partial<Record<Fusion, (e: Editable) => void>> = {
  'skip-layer-norm': skipLayerNorm,
  'bias-split-gelu': biasSplitGelu,
  'bias-add': biasAdd,
  'group-norm': groupNorm,
};
/** The order they run in (skip-layer-norm takes its Add before bias-add could). */
const ORDER: Fusion[] = ['group-norm', 'bias-split-gelu', 'skip-layer-norm', 'bias-add'];

/** The fusions `profile` names that this file implements. */
export const IMPLEMENTED_FUSIONS: readonly Fusion[] = ['mha', ...ORDER];

/** `spec` with `profile.fusions` applied (in ORDER). */
export function applyFusions(spec: ModelSpec, profile: GraphProfile): ModelSpec {
  const todo = ORDER.filter((f) => profile.fusions.includes(f));
  if (!todo.length) return spec;
  const e = new Editable(spec);
  for (const f of todo) {
    PASSES[f]!(e);
    e.reindex();
  }
  return e.result();
}
