/**
 * Fused-op rewrites of a built float32 graph onto ONNX Runtime's com.microsoft diffusion / transformer kernels,
 * by pattern over the nodes the module helpers emit (onnx/graph.ts linear, groupNorm, silu, gelu; unet-blocks.ts
 * feedForwardGEGLU, basicTransformerBlock), the way ORT's own stable-diffusion optimizer fuses an exported UNet:
 * - 'skip-layer-norm': LayerNormalization(Add(a, b)) -> SkipLayerNormalization(a, b, γ, β) (+ the sum as output 3);
 * - 'bias-split-gelu': Split(Reshape(Gemm(x, W, b))) -> hidden · gelu(gate) -> BiasSplitGelu(Reshape(Gemm(x, W)), b);
 * - 'bias-add': Add(Reshape(Gemm(x, W, b)), skip) -> BiasAdd(Reshape(Gemm(x, W)), b, skip);
 * - 'group-norm': Reshape -> InstanceNormalization -> Reshape -> Mul γ -> Add β [-> SiLU] ->
 *   Transpose(NHWC) -> GroupNorm(channels_last, activation) -> Transpose(NCHW).
 * - 'skip-group-norm': a GroupNorm (after 'group-norm') whose input is Add(h, Unsqueeze(t, [2, 3])), a resnet's conv1
 *   output plus its time embedding (B, C) -> SkipGroupNorm(h NHWC, γ, β, t) (the kernel takes a (N, C) skip);
 * - 'nhwc-conv': Conv(x, W, b) -> Transpose(NHWC) -> NhwcConv(x', Transpose(W, [0, 2, 3, 1]), b) -> Transpose(NCHW);
 * and then every Transpose pair that undoes itself (a GroupNorm's NCHW output read by a NhwcConv's NHWC input, ...)
 * is bypassed, and nodes nothing reads any more are dropped.
 * Each applies only where ORT's CUDA kernels accept the widths (the SD1.5 widths), so a tiny model keeps its plain
 * graph (NhwcConv has no width limit: cuDNN). 'mha' is emitted by the builders already.
 * Sources (ONNX Runtime, read for the definitions; no code taken): op schemas in
 * onnxruntime/core/graph/contrib_ops/diffusion_defs.cc (GroupNorm, SkipGroupNorm, BiasSplitGelu, BiasAdd) and
 * contrib_defs.cc (NhwcConv: X NHWC, W (M, kH, kW, C/group), optional B, Conv's attributes); CUDA kernels
 * onnxruntime/contrib_ops/cuda/diffusion/group_norm.cc (GroupNorm and SkipGroupNorm share one kernel: channels_last
 * only, γ / β float32 only, skip (N, H, W, C) / (N, 1, 1, C) / (N, C), optional bias (C), optional sum output),
 * group_norm_impl.cu (32 groups, batch <= 32, the channel counts of GROUP_NORM_CHANNELS), nhwc_conv.cc (the cuDNN Conv
 * kernel with NHWC layout, float and float16); ORT's own fusions onnxruntime/python/tools/transformers/
 * fusion_skip_group_norm.py and fusion_nhwc_conv.py (which patterns they rewrite).
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

const intsAttr = (n: NodeSpec, k: string): number[] | undefined => {
  const a = n.attrs[k];
  return a?.kind === 'ints' ? a.v : undefined;
};
const NHWC = [0, 2, 3, 1];
const NCHW = [0, 3, 1, 2];
const isTranspose = (n: NodeSpec | undefined, perm: number[]): n is NodeSpec => n?.opType === 'Transpose' && (intsAttr(n, 'perm') ?? []).join() === perm.join();
/** The (1-D, int64) constant an initializer holds, or undefined. */
function intsOf(e: Editable, v: string): number[] | undefined {
  const t = e.init(v);
  if (!t?.raw || t.dataType !== DataType.INT64) return undefined;
  return Array.from(new BigInt64Array(t.raw.slice().buffer), Number);
}

/**
 * GroupNorm(Transpose_NHWC(Add(h, Unsqueeze(t, [2, 3])))) -> SkipGroupNorm(Transpose_NHWC(h), γ, β, t): the resnets'
 * norm2 after `h + time_emb_proj(temb)[:, :, None, None]` (diffusers ResnetBlock2D). The kernel adds a (N, C) skip to
 * every position (group_norm.cc "broadcast_skip"). Where the sum is read elsewhere too it is the op's second output,
 * transposed back to NCHW for those readers.
 */
function skipGroupNorm(e: Editable): void {
  for (const gn of [...e.nodes]) {
    if (!gn || gn.opType !== 'GroupNorm' || gn.domain !== 'com.microsoft') continue;
    const tIn = e.prod(gn.inputs[0]!);
    if (!isTranspose(tIn, NHWC) || e.uses(tIn.outputs[0]!).length !== 1) continue;
    const add = e.prod(tIn.inputs[0]!);
    if (add?.opType !== 'Add' || e.isOutput(add.outputs[0]!)) continue;
    const side = add.inputs.findIndex((x) => {
      const u = e.prod(x);
      return u?.opType === 'Unsqueeze' && (intsOf(e, u.inputs[1] ?? '') ?? []).join() === '2,3' && e.uses(u.outputs[0]!).length === 1;
    });
    if (side < 0) continue;
    const unsq = e.prod(add.inputs[side]!)!;
    const h = add.inputs[1 - side]!;
    const sum = add.outputs[0]!;
    const others = e.uses(sum).filter((n) => n !== tIn);
    const hT = e.fresh(`${gn.name}/x_nhwc`);
    const list: NodeSpec[] = [{ opType: 'Transpose', inputs: [h], outputs: [hT], name: hT, attrs: { perm: { kind: 'ints', v: NHWC } } }];
    const s = others.length ? e.fresh(`${gn.name}/sum_nhwc`) : null;
    list.push(
      ms('SkipGroupNorm', [hT, gn.inputs[1]!, gn.inputs[2]!, unsq.inputs[0]!], s ? [gn.outputs[0]!, s] : [gn.outputs[0]!], `${gn.name}/skip`, gn.attrs),
    );
    if (s) list.push({ opType: 'Transpose', inputs: [s], outputs: [sum], name: `${s}/nchw`, attrs: { perm: { kind: 'ints', v: NCHW } } });
    for (const n of [tIn, add, unsq]) e.remove(n);
    e.replace(gn, list);
  }
}

/** Conv with a 4-D weight -> NHWC Transpose, NhwcConv over the weight transposed to (M, kH, kW, C/group), NCHW Transpose. */
function nhwcConv(e: Editable): void {
  for (const conv of [...e.nodes]) {
    if (!conv || conv.opType !== 'Conv' || e.weightOf(conv.inputs[1]!)?.dims.length !== 4) continue;
    const [x, w, ...rest] = conv.inputs as [string, string, ...string[]];
    const y = conv.outputs[0]!;
    const xT = e.fresh(`${conv.name}/x_nhwc`);
    const wT = e.fresh(`${conv.name}/w_nhwc`);
    const yT = e.fresh(`${conv.name}/y_nhwc`);
    e.replace(conv, [
      { opType: 'Transpose', inputs: [x], outputs: [xT], name: xT, attrs: { perm: { kind: 'ints', v: NHWC } } },
      { opType: 'Transpose', inputs: [w], outputs: [wT], name: wT, attrs: { perm: { kind: 'ints', v: NHWC } } },
      ms('NhwcConv', [xT, wT, ...rest], [yT], `${conv.name}/nhwc`, conv.attrs),
      { opType: 'Transpose', inputs: [yT], outputs: [y], name: `${yT}/nchw`, attrs: { perm: { kind: 'ints', v: NCHW } } },
    ]);
  }
}

/**
 * Readers of Transpose_b(Transpose_a(v)) with b∘a the identity (NHWC then NCHW, or back) read v instead; then nodes
 * whose outputs nothing reads (and that are no graph output) go, repeatedly (the bypassed Transposes, the Shape of a
 * fused groupNorm).
 */
function cancelTransposes(e: Editable): void {
  const rename = new Map<string, string>();
  for (const t2 of e.nodes) {
    if (!t2 || t2.opType !== 'Transpose' || e.isOutput(t2.outputs[0]!)) continue;
    const t1 = e.prod(t2.inputs[0]!);
    const p1 = t1?.opType === 'Transpose' ? intsAttr(t1, 'perm') : undefined;
    const p2 = intsAttr(t2, 'perm');
    if (!p1 || !p2 || p1.length !== p2.length || !p2.every((d, i) => p1[d] === i)) continue;
    rename.set(t2.outputs[0]!, t1!.inputs[0]!);
  }
  const r = (v: string): string => (rename.has(v) ? r(rename.get(v)!) : v);
  e.nodes = e.nodes.map((n) => (n ? { ...n, inputs: n.inputs.map(r) } : n));
  e.reindex();
  for (let changed = true; changed;) {
    changed = false;
    for (const n of e.nodes) {
      if (!n || n.outputs.some((o) => o && (e.isOutput(o) || e.uses(o).length))) continue;
      e.remove(n);
      changed = true;
    }
    e.reindex();
  }
}

const PASSES: Partial<Record<Fusion, (e: Editable) => void>> = {
  'skip-layer-norm': skipLayerNorm,
  'bias-split-gelu': biasSplitGelu,
  'bias-add': biasAdd,
  'group-norm': groupNorm,
  'skip-group-norm': skipGroupNorm,
  'nhwc-conv': nhwcConv,
};
/** The order they run in (skip-group-norm rewrites group-norm's nodes; skip-layer-norm takes its Add before bias-add could). */
const ORDER: Fusion[] = ['group-norm', 'skip-group-norm', 'nhwc-conv', 'bias-split-gelu', 'skip-layer-norm', 'bias-add'];

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
  if (todo.includes('nhwc-conv') || todo.includes('skip-group-norm')) cancelTransposes(e);
  return e.result();
}
