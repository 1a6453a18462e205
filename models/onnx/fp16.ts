/**
 * The fp16 precision pass: a built float32 graph (onnx/graph.ts) becomes one that computes in fp16, with
 * - F16 weights used as stored (their Cast to float32 goes), BF16 weights cast to fp16, F32 weights cast to fp16
 *   in the graph (ONNX Runtime folds those Casts into fp16 initializers at session creation);
 * - fp16 activations, float32 graph inputs and outputs (a Cast after each input, before each output);
 * - float32 islands, with Casts at their edges, where fp16 is known to break (ISLANDS below);
 * - float32 for the ops the target provider has no fp16 kernel for (`supportsFp16`, onnx/provider-ops.ts).
 * Value types are inferred from the graph's inputs, initializers and per-op rules (OUTPUT_TYPE); the builders
 * do not change. Measurements behind the islands: README "GPU profiles" and scripts/bench/fp16-probe.ts.
 */
import { roundToHalf } from '../safetensors.js';
import { type BuiltModel, DataType, type ModelSpec, type NodeSpec, type TensorSpec } from './graph.js';
import type { DataTypeId } from './proto.js';

/** The float32 islands a conversion keeps (all by default). */
export type Island =
  /** InstanceNormalization (groupNorm's statistics): a sum of squares over C/G·H·W values overflows fp16 accumulators. */
  | 'norm-statistics'
  /** Softmax of unfused attention (the reference computes scores and softmax in float32). */
  | 'softmax'
  /** The timestep's sinusoidal projection (t·freq up to 1000: fp16's spacing there is 0.5, so sin/cos would be noise). */
  | 'timestep'
  /** Nodes a builder marked with Graph.keepFloat32 (the VAE decoder's last up block and head). */
  | 'marked';
export const ISLANDS: readonly Island[] = ['norm-statistics', 'softmax', 'timestep', 'marked'];

export interface Float16Options {
  /** Which islands stay float32 (default: all of ISLANDS). */
  islands?: readonly Island[];
  /** Whether the target provider has an fp16 kernel for an op (false: the node stays float32, with Casts). Default: all. */
  supportsFp16?: (opType: string, domain: string) => boolean;
}

/**
 * Inputs that are float32 whatever the op's T: Resize's roi and scales; GroupNorm's and SkipGroupNorm's γ and β (the
 * CUDA kernel refuses others: contrib_ops/cuda/diffusion/group_norm.cc "GroupNorm only supports gamma and beta in float type").
 */
const FLOAT32_INPUTS: Record<string, readonly number[]> = { Resize: [1, 2], GroupNorm: [1, 2], SkipGroupNorm: [1, 2] };
/** Ops whose inputs may have any type (no Cast is inserted before them). */
const ANY_INPUT = new Set(['Shape', 'Cast']);

/** The element type of a node's outputs, given its inputs' types (the ops our builders emit). */
function outputType(n: NodeSpec, inputType: (i: number) => DataTypeId | undefined): DataTypeId | undefined {
  switch (n.opType) {
    case 'Shape':
      return DataType.INT64;
    case 'Where':
      return inputType(1);
    case 'Equal':
    case 'Less':
    case 'Greater':
    case 'Not':
    case 'And':
    case 'Or':
      return DataType.BOOL;
    case 'Cast': {
      const to = n.attrs.to;
      return to?.kind === 'int' ? (to.v as DataTypeId) : undefined;
    }
    default:
      return inputType(0);
  }
}

const isFloat = (t: DataTypeId | undefined) => t === DataType.FLOAT || t === DataType.FLOAT16;

/** Float32 values (little-endian raw) to fp16 raw. */
function rawToHalf(raw: Uint8Array): Uint8Array {
  const f = new Float32Array(raw.byteLength / 4);
  new Uint8Array(f.buffer).set(raw);
  const h = new Uint16Array(f.length);
  roundToHalf(f, 'F16', h);
  return new Uint8Array(h.buffer);
}

/** The element types of every value of a float32 graph, in node order. */
export function inferTypes(spec: ModelSpec): Map<string, DataTypeId> {
  const types = new Map<string, DataTypeId>();
  for (const i of spec.inputs) types.set(i.name, i.type);
  for (const t of spec.initializers) types.set(t.name, t.dataType);
  for (const n of spec.nodes) {
    const t = outputType(n, (i) => types.get(n.inputs[i] ?? ''));
    if (t !== undefined) for (const o of n.outputs) if (o) types.set(o, t);
  }
  return types;
}

/** The names of the nodes that stay float32 for `islands` (rule-based ones; 'marked' adds `marked`). */
export function islandNodes(spec: ModelSpec, islands: readonly Island[], marked: ReadonlySet<string>): Set<string> {
  const keep = new Set<string>();
  if (islands.includes('marked')) for (const m of marked) keep.add(m);
  const producer = new Map<string, NodeSpec>();
  for (const n of spec.nodes) for (const o of n.outputs) producer.set(o, n);
  for (const n of spec.nodes) {
    if (islands.includes('norm-statistics') && n.opType === 'InstanceNormalization') keep.add(n.name);
    if (islands.includes('softmax') && n.opType === 'Softmax') keep.add(n.name);
    if (islands.includes('timestep') && (n.opType === 'Sin' || n.opType === 'Cos')) {
      // Sin / Cos and everything they are computed from (back to graph inputs and constants).
      const stack = [n];
      while (stack.length) {
        const x = stack.pop()!;
        if (keep.has(x.name) && x !== n) continue;
        keep.add(x.name);
        for (const i of x.inputs) {
          const p = producer.get(i);
          if (p && !keep.has(p.name)) stack.push(p);
        }
      }
    }
  }
  return keep;
}

/** The fp16 graph of a float32 one (see the file header). */
export function float16Spec(spec: ModelSpec, marked: ReadonlySet<string>, opts: Float16Options = {}): ModelSpec {
  const t32 = inferTypes(spec);
  const keep = islandNodes(spec, opts.islands ?? ISLANDS, marked);
  const supports = opts.supportsFp16 ?? (() => true);
  const half = (n: NodeSpec) => !keep.has(n.name) && supports(n.opType, n.domain ?? '');

  // Inline float32 constants read only by fp16 nodes become fp16 constants; the rest keep their type.
  const consumers = new Map<string, NodeSpec[]>();
  for (const n of spec.nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const wantsHalf = (n: NodeSpec, i: number) => half(n) && !FLOAT32_INPUTS[n.opType]?.includes(i) && !ANY_INPUT.has(n.opType);
  const initializers: TensorSpec[] = spec.initializers.map((t) => {
    if (t.dataType !== DataType.FLOAT || !t.raw) return t;
    const cs = consumers.get(t.name) ?? [];
    const allHalf = cs.length > 0 && cs.every((n) => n.inputs.every((x, i) => x !== t.name || wantsHalf(n, i)));
    return allHalf ? { ...t, dataType: DataType.FLOAT16, raw: rawToHalf(t.raw) } : t;
  });

  const type = new Map<string, DataTypeId>();
  for (const i of spec.inputs) type.set(i.name, i.type);
  for (const t of initializers) type.set(t.name, t.dataType);
  const alias = new Map<string, string>(); // a dropped Cast's output -> its input
  const casts = new Map<string, string>(); // `${value}>${type}` -> cast output
  const nodes: NodeSpec[] = [];
  const castTo = (v: string, to: DataTypeId): string => {
    const key = `${v}>${to}`;
    let out = casts.get(key);
    if (!out) {
      out = `${v}/to_${to === DataType.FLOAT16 ? 'fp16' : 'fp32'}`;
      nodes.push({ opType: 'Cast', inputs: [v], outputs: [out], name: out, attrs: { to: { kind: 'int', v: to } } });
      type.set(out, to);
      casts.set(key, out);
    }
    return out;
  };
  const outputs = new Set(spec.outputs.map((o) => o.name));
  for (const n of spec.nodes) {
    const h = half(n);
    const inputs = n.inputs.map((x, i) => {
      if (!x) return x;
      const v = alias.get(x) ?? x;
      const actual = type.get(v);
      if (ANY_INPUT.has(n.opType) || !isFloat(actual) || !isFloat(t32.get(x))) return v;
      const want = wantsHalf(n, i) ? DataType.FLOAT16 : DataType.FLOAT;
      return actual === want ? v : castTo(v, want);
    });
    let attrs = n.attrs;
    let outType = outputType(n, (i) => type.get(inputs[i] ?? ''));
    if (n.opType === 'Cast' && outType === DataType.FLOAT && h) {
      // A weight's (or a builder's) Cast to float32 inside the fp16 zone: to fp16 instead, or gone when already fp16.
      outType = DataType.FLOAT16;
      attrs = { ...attrs, to: { kind: 'int', v: DataType.FLOAT16 } };
      const src = inputs[0]!;
      if (type.get(src) === DataType.FLOAT16 && !n.outputs.some((o) => outputs.has(o))) {
        alias.set(n.outputs[0]!, src);
        continue;
      }
    }
    nodes.push({ ...n, inputs, attrs });
    if (outType !== undefined) for (const o of n.outputs) if (o) type.set(o, outType);
  }

  // Graph outputs stay what they were declared (float32): a Cast after an fp16 producer.
  const renamed = new Map<string, string>();
  for (const o of spec.outputs) {
    const v = alias.get(o.name) ?? o.name;
    const t = type.get(v);
    if (t === o.type && v === o.name) continue;
    if (v !== o.name) {
      nodes.push({
        opType: t === o.type ? 'Identity' : 'Cast',
        inputs: [v],
        outputs: [o.name],
        name: `${o.name}/out32`,
        attrs: t === o.type ? {} : { to: { kind: 'int', v: o.type } },
      });
      continue;
    }
    const inner = `${o.name}/fp16`;
    renamed.set(o.name, inner);
    nodes.push({ opType: 'Cast', inputs: [inner], outputs: [o.name], name: `${o.name}/out32`, attrs: { to: { kind: 'int', v: o.type } } });
  }
  const rename = (x: string) => renamed.get(x) ?? x;
  const final = nodes.map((n) => (n.name.endsWith('/out32') ? n : { ...n, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) }));
  return { nodes: final, initializers, inputs: spec.inputs, outputs: spec.outputs };
}

/** `model` converted by float16Spec (its marked nodes from Graph.keepFloat32). */
export function toFloat16(model: BuiltModel, opts: Float16Options & { name?: string; salt?: string } = {}): BuiltModel {
  return model.withSpec(float16Spec(model.spec, model.fp32Nodes, opts), { name: opts.name, salt: opts.salt ?? 'fp16' });
}
