/**
 * Graph builder: a small op-helper layer over ONNX NodeProtos.
 *
 * Values are strings (ONNX value names). Weights come from safetensors files by reference
 * (`weight()`), become external-data initializers, and are cast to float32 in the graph
 * when the file stores F16/BF16 (BuiltModel.withFloat32Weights swaps such a weight for a float32
 * copy in another file, onnx/fp32-weights.ts, and drops its Cast). Network builders (unet.ts, clip-text.ts, ...) use the
 * module helpers at the bottom (`linear`, `conv2d`, `groupNorm`, ...) with diffusers key names.
 */
import { createHash } from 'node:crypto';
import type { TensorRef } from '../safetensors.js';
import { type AttrValue, type DataTypeId, type GraphSpec, type NodeSpec, type TensorSpec, DataType, encodeModel } from './proto.js';

export type { NodeSpec, TensorSpec };

export { DataType };
export type Dim = number | string;

/** Attribute helpers: integers and int lists are plain numbers; floats must be marked. */
export const f = (v: number): AttrValue => ({ kind: 'float', v });
export const fs = (v: number[]): AttrValue => ({ kind: 'floats', v });
type AttrIn = number | number[] | string | AttrValue;
function toAttr(v: AttrIn): AttrValue {
  if (typeof v === 'number') return { kind: 'int', v };
  if (typeof v === 'string') return { kind: 'string', v };
  if (Array.isArray(v)) return { kind: 'ints', v };
  return v;
}

const SAFE_TO_ONNX: Record<string, DataTypeId> = {
  F32: DataType.FLOAT,
  F16: DataType.FLOAT16,
  BF16: DataType.BFLOAT16,
  F64: DataType.DOUBLE,
  I64: DataType.INT64,
  I32: DataType.INT32,
  I16: DataType.INT16,
  I8: DataType.INT8,
  U8: DataType.UINT8,
  BOOL: DataType.BOOL,
};

/** An F16 / BF16 weight of a model: its bytes in the source file, cast to float32 in the graph. */
export interface HalfWeight {
  file: string;
  offset: number;
  length: number;
  dtype: 'F16' | 'BF16';
}

/** Where the float32 copy of a half weight is: a file and the byte offset of its first element. */
export interface Float32Copy {
  file: string;
  offset: number;
}

/** A built model: protobuf bytes plus the weight files its external data points to. */
export interface BuiltModel {
  name: string;
  bytes: Uint8Array;
  /** location name used in the model (e.g. "w0.safetensors") -> absolute source file. */
  externalFiles: Record<string, string>;
  /** Stable hash of the graph and of the identity of its weight files. */
  key: string;
  inputNames: string[];
  outputNames: string[];
  /** Re-encodes the model with other external-data location names (old -> new). */
  relocate(locations: Record<string, string>): Uint8Array;
  /** The F16 / BF16 weights, each cast to float32 in the graph (empty for an all-float32 model). */
  halfWeights: HalfWeight[];
  /**
   * The same model reading its half weights as float32 from other files: `find` gives each half
   * weight's float32 copy (null: that weight keeps its Cast). The initializer becomes a FLOAT one
   * in the copy's file under its Cast's output name, and the Cast goes, so the graph computes the
   * same values (F16 / BF16 -> F32 is exact) with no cast for ONNX Runtime to fold into memory.
   */
  withFloat32Weights(find: (w: HalfWeight) => Float32Copy | null): BuiltModel;
  /** The graph as built (read it; post-passes such as onnx/fp16.ts return a new model through `withSpec`). */
  spec: ModelSpec;
  /** Names of the nodes a builder asked to keep in float32 under a reduced-precision profile (`Graph.keepFloat32`). */
  fp32Nodes: ReadonlySet<string>;
  /**
   * The same model with another graph over the same weight files (a graph post-pass's result): new bytes and key.
   * `name` renames it (e.g. with the profile id); `salt` goes into the key. Half weights whose Cast to float32 the
   * new graph no longer has (used as stored) are no longer listed in `halfWeights`. `files` adds weight files the new
   * spec's initializers read (location -> absolute path; the int8 pass's copy, onnx/quantize.ts). `halfWeights` lists
   * the half weights of the parts a composed graph adds (models/unet-controlnet.ts), so they get float32 copies too.
   */
  withSpec(spec: ModelSpec, opts?: WithSpecOptions): BuiltModel;
}

/** Options of BuiltModel.withSpec. */
export interface WithSpecOptions {
  name?: string;
  salt?: string;
  fp32Nodes?: ReadonlySet<string>;
  files?: Record<string, string>;
  halfWeights?: readonly HalfCast[];
}

/** What a graph post-pass reads and returns: nodes, initializers, inputs and outputs (onnx/proto.ts shapes). */
export interface ModelSpec {
  readonly nodes: readonly NodeSpec[];
  readonly initializers: readonly TensorSpec[];
  readonly inputs: GraphSpec['inputs'];
  readonly outputs: GraphSpec['outputs'];
}

/** A half weight as the graph holds it: initializer `init` and the Cast to float32 named (and giving) `cast`. */
export interface HalfCast {
  init: string;
  cast: string;
  source: HalfWeight;
}

export class Graph {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  readonly inputs: GraphSpec['inputs'] = [];
  readonly outputs: GraphSpec['outputs'] = [];
  private counter = 0;
  private files = new Map<string, string>(); // file -> location
  private weightCache = new Map<string, string>();
  private constCache = new Map<string, string>();
  private halfCasts: HalfCast[] = [];
  private usesMs = false;
  private keep32 = new Set<string>();
  private keepDepth = 0;

  constructor(readonly name: string) {}

  /**
   * Runs `build` and marks every node it appends to stay float32 under a reduced-precision profile
   * (onnx/fp16.ts casts around them): the islands where fp16 is known to break (e.g. the VAE decoder's last up blocks).
   * Under the fp32 profile the graph is the same as without it.
   */
  keepFloat32<T>(build: () => T): T {
    this.keepDepth++;
    try {
      return build();
    } finally {
      this.keepDepth--;
    }
  }

  /** A unique value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}__${this.counter++}`;
  }

  input(name: string, type: DataTypeId, dims: Dim[]): string {
    this.inputs.push({ name, type, dims });
    return name;
  }

  /** Marks `value` as graph output `name` (adds an Identity when the names differ). */
  output(name: string, value: string, type: DataTypeId = DataType.FLOAT, dims: Dim[] | null = null): void {
    if (value !== name) this.nodes.push({ opType: 'Identity', inputs: [value], outputs: [name], name: `${name}/out`, attrs: {} });
    this.outputs.push({ name, type, dims });
  }

  /** Appends a node and returns its single output. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrIn> = {}, name?: string, domain?: string): string {
    return this.opN(opType, inputs, 1, attrs, name, domain)[0]!; // opN returns n outputs
  }

  /** Appends a node with `n` outputs. */
  opN(opType: string, inputs: string[], n: number, attrs: Record<string, AttrIn> = {}, name?: string, domain?: string): string[] {
    const base = name ?? this.fresh(opType);
    const outputs = Array.from({ length: n }, (_, i) => (n === 1 ? base : `${base}:${i}`));
    const a: Record<string, AttrValue> = {};
    for (const [k, v] of Object.entries(attrs)) a[k] = toAttr(v);
    if (domain === 'com.microsoft') this.usesMs = true;
    if (this.keepDepth) this.keep32.add(base);
    this.nodes.push({ opType, inputs, outputs, name: base, attrs: a, domain });
    return outputs;
  }

  /**
   * A weight from a safetensors file, as an external-data initializer named `name`.
   * `dims` may restate the shape (same element count), e.g. [C,C,1,1] conv weights used as [C,C].
   * Non-float32 weights are cast to float32 inside the graph.
   */
  weight(name: string, ref: TensorRef, dims?: number[]): string {
    const shape = dims ?? ref.shape;
    const cacheKey = `${ref.file}\0${ref.key}\0${shape.join(',')}`;
    const hit = this.weightCache.get(cacheKey);
    if (hit) return hit;
    const n = shape.reduce((a, d) => a * d, 1);
    const m = ref.shape.reduce((a, d) => a * d, 1);
    if (n !== m) throw new Error(`weight ${name}: cannot view ${ref.key} [${ref.shape}] as [${shape}]`);
    const dataType = SAFE_TO_ONNX[ref.dtype];
    if (!dataType) throw new Error(`weight ${name}: dtype ${ref.dtype} of ${ref.key} in ${ref.file} is not supported`);
    let location = this.files.get(ref.file);
    if (!location) {
      location = `w${this.files.size}.safetensors`;
      this.files.set(ref.file, location);
    }
    const initName = this.initializers.some((t) => t.name === name) ? this.fresh(name) : name;
    this.initializers.push({ name: initName, dataType, dims: shape, external: { location, offset: ref.offset, length: ref.length } });
    let out = initName;
    if (dataType !== DataType.FLOAT) out = this.op('Cast', [initName], { to: DataType.FLOAT }, `${initName}/cast`);
    if (ref.dtype === 'F16' || ref.dtype === 'BF16')
      this.halfCasts.push({ init: initName, cast: out, source: { file: ref.file, offset: ref.offset, length: ref.length, dtype: ref.dtype } });
    this.weightCache.set(cacheKey, out);
    return out;
  }

  /** An inline float32 constant. */
  constF(values: number[] | Float32Array, dims: number[]): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    return this.inline(DataType.FLOAT, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), dims, 'c');
  }

  /** An inline int64 constant (shapes, axes). */
  constI(values: number[], dims: number[] = [values.length]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    return this.inline(DataType.INT64, new Uint8Array(data.buffer), dims, 'i');
  }

  /** A float32 scalar constant (rank 0). */
  scalar(v: number): string {
    return this.constF([v], []);
  }

  private inline(dataType: DataTypeId, raw: Uint8Array, dims: number[], prefix: string): string {
    const key = `${dataType}|${dims.join(',')}|${Buffer.from(raw).toString('base64')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh(prefix);
    this.initializers.push({ name, dataType, dims, raw: new Uint8Array(raw) });
    this.constCache.set(key, name);
    return name;
  }

  build(): BuiltModel {
    return this.assemble(this.nodes, this.initializers, this.files, this.halfCasts, {
      name: this.name,
      inputs: this.inputs,
      outputs: this.outputs,
      salt: '',
      keep32: this.keep32,
    });
  }

  private assemble(
    nodes: readonly NodeSpec[],
    initializers: readonly TensorSpec[],
    files: Map<string, string>,
    halfCasts: HalfCast[],
    meta: { name: string; inputs: GraphSpec['inputs']; outputs: GraphSpec['outputs']; salt: string; keep32: ReadonlySet<string> },
  ): BuiltModel {
    const opsets: Record<string, number> = { '': 18 };
    if (this.usesMs || nodes.some((n) => n.domain === 'com.microsoft')) opsets['com.microsoft'] = 1;
    const encode = (inits: readonly TensorSpec[]) =>
      encodeModel({ name: meta.name, nodes: [...nodes], initializers: [...inits], inputs: meta.inputs, outputs: meta.outputs }, opsets);
    const bytes = encode(initializers);
    const relocate = (locations: Record<string, string>) =>
      encode(
        initializers.map((t) => {
          const location = t.external && locations[t.external.location];
          return t.external && location ? { ...t, external: { ...t.external, location } } : t;
        }),
      );
    const externalFiles: Record<string, string> = {};
    for (const [file, loc] of files) externalFiles[loc] = file;
    const key = createHash('sha256').update(bytes).update(JSON.stringify(externalFiles)).update(meta.salt).digest('hex').slice(0, 24);
    const withFloat32Weights = (find: (w: HalfWeight) => Float32Copy | null): BuiltModel => {
      const moved = new Map<string, TensorSpec>(); // half initializer name -> its float32 replacement
      const dropped = new Set<string>(); // Cast node names
      const files2 = new Map(files);
      const kept: HalfCast[] = [];
      for (const h of halfCasts) {
        const copy = find(h.source);
        if (!copy) {
          kept.push(h);
          continue;
        }
        let location = files2.get(copy.file);
        if (!location) files2.set(copy.file, (location = `w${files2.size}.safetensors`));
        const init = initializers.find((t) => t.name === h.init)!;
        moved.set(h.init, {
          name: h.cast,
          dataType: DataType.FLOAT,
          dims: init.dims,
          external: { location, offset: copy.offset, length: (h.source.length / 2) * 4 },
        });
        dropped.add(h.cast);
      }
      const inits = initializers.map((t) => moved.get(t.name) ?? t);
      // A source file none of the remaining initializers reads is not linked into the model's folder.
      const used = new Set(inits.flatMap((t) => (t.external ? [t.external.location] : [])));
      for (const [file, loc] of files2) if (!used.has(loc)) files2.delete(file);
      return this.assemble(
        nodes.filter((n) => !dropped.has(n.name)),
        inits,
        files2,
        kept,
        meta,
      );
    };
    const withSpec = (spec: ModelSpec, opts: WithSpecOptions = {}): BuiltModel => {
      // A half weight stays listed only while its Cast to float32 is still in the graph (withFloat32Weights drops that Cast).
      const casts = new Set(spec.nodes.filter((n) => n.opType === 'Cast' && n.attrs.to?.kind === 'int' && n.attrs.to.v === DataType.FLOAT).map((n) => n.name));
      const inits = new Set(spec.initializers.map((t) => t.name));
      const used = new Set(spec.initializers.flatMap((t) => (t.external ? [t.external.location] : [])));
      const files2 = new Map([...files].filter(([, loc]) => used.has(loc)));
      for (const [loc, file] of Object.entries(opts.files ?? {})) if (used.has(loc)) files2.set(file, loc);
      return this.assemble(
        spec.nodes,
        spec.initializers,
        files2,
        [...halfCasts, ...(opts.halfWeights ?? [])].filter((h) => casts.has(h.cast) && inits.has(h.init)),
        {
          name: opts.name ?? meta.name,
          inputs: spec.inputs,
          outputs: spec.outputs,
          salt: meta.salt + (opts.salt ?? ''),
          keep32: opts.fp32Nodes ?? meta.keep32,
        },
      );
    };
    return {
      name: meta.name,
      bytes,
      externalFiles,
      key,
      inputNames: meta.inputs.map((i) => i.name),
      outputNames: meta.outputs.map((o) => o.name),
      relocate,
      halfWeights: halfCasts.map((h) => h.source),
      withFloat32Weights,
      spec: { nodes, initializers, inputs: meta.inputs, outputs: meta.outputs },
      fp32Nodes: meta.keep32,
      withSpec,
    };
  }
}

// ---------------------------------------------------------------------------------------
// Weight lookup: builders ask for diffusers names; a WeightMap answers with TensorRefs.
// ---------------------------------------------------------------------------------------

/** Weights by canonical (diffusers/transformers) name. Key maps convert other layouts. */
export interface WeightMap {
  get(name: string): TensorRef;
  has(name: string): boolean;
}

/** What a ModuleHook returns for one linear / conv: the weight to use (W or W + ΔW) and a term added to its output. */
export interface HookedWeight {
  weight: string;
  /** Added to the module's output ((N, out) for a linear, (N, Cout, H', W') for a conv). */
  add?: string;
}

/** The attributes of a conv2d call, for a hook that adds a conv of its own beside it. */
export interface ConvAttrs {
  kernel: [number, number];
  stride: number;
  padding: number;
}

/**
 * Changes the linears and convs of a network by module name without touching its builder:
 * `linear` and `conv2d` ask it for each module's weight (and an optional term added to the
 * output). LoRA (models/lora-graph.ts) adds low-rank side branches or merges ΔW this way.
 * Not asked for a linear given an explicit weight (an IP-Adapter's to_k_ip / to_v_ip).
 */
export interface ModuleHook {
  /** w: the module's (out, in) weight value; x: its input as (N, in). */
  linear?(m: Module, w: string, x: string): HookedWeight;
  /** w: the (Cout, Cin, kh, kw) weight value; x: the (N, Cin, H, W) input. */
  conv?(m: Module, w: string, x: string, attrs: ConvAttrs): HookedWeight;
}

/** Builds one network from a weight map under a prefix (e.g. "down_blocks.0.resnets.1"). */
export class Module {
  constructor(
    readonly g: Graph,
    readonly w: WeightMap,
    readonly prefix = '',
    readonly hook?: ModuleHook,
  ) {}

  child(name: string | number): Module {
    return new Module(this.g, this.w, this.prefix ? `${this.prefix}.${name}` : String(name), this.hook);
  }

  key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  has(name: string): boolean {
    return this.w.has(this.key(name));
  }

  shape(name: string): number[] {
    return this.w.get(this.key(name)).shape;
  }

  /** Axis `axis` of weight `name`'s shape; throws naming the tensor when it has fewer axes. */
  dim(name: string, axis: number): number {
    return dimOf(this.shape(name), axis, this.key(name));
  }

  param(name: string, dims?: number[]): string {
    const k = this.key(name);
    return this.g.weight(k, this.w.get(k), dims);
  }
}

/** Axis `axis` of `shape` (the shape of tensor `name`); throws naming the tensor when it has fewer axes. */
export function dimOf(shape: readonly number[], axis: number, name: string): number {
  const d = shape[axis];
  if (d === undefined) throw new Error(`tensor "${name}" has shape [${shape.join(', ')}], which has no axis ${axis}`);
  return d;
}

// ---------------------------------------------------------------------------------------
// Module helpers, named after torch.nn modules. Shapes in comments.
// ---------------------------------------------------------------------------------------

export interface LinearOptions {
  /** Add the module's `bias` when it has one (default true). */
  bias?: boolean;
  /** Use this (out, in) weight, named `name` in the graph, instead of the module's `weight` (no bias then). */
  weight?: { name: string; ref: TensorRef };
}

/**
 * nn.Linear: y = x W^T + b, x (..., in) -> (..., out), as Gemm(transB=1) on the weight exactly
 * as stored (out, in). Gemm is rank 2, so x is reshaped to (N, in) and y back to (..., out)
 * (Reshape aliases its input: no copy). Unlike MatMul(x, Transpose(W)), ONNX Runtime need not
 * fold a transposed copy of every weight at session creation (1.3 GB for the SD1.5 UNet, 2.5 GB
 * for a ViT-H/14 image encoder), and with prepacking disabled (IN_PLACE_SESSION_OPTIONS in
 * onnx/session.ts) the external-data weight is used in place.
 */
export function linear(m: Module, x: string, opts: LinearOptions = {}): string {
  const g = m.g;
  const ref = opts.weight;
  const w = ref ? g.weight(ref.name, ref.ref) : m.param('weight');
  const shape = ref ? ref.ref.shape : m.shape('weight');
  const wName = ref ? ref.name : m.key('weight');
  const outF = dimOf(shape, 0, wName);
  const inF = dimOf(shape, 1, wName);
  const lead = g.op('Slice', [g.op('Shape', [x]), g.constI([0]), g.constI([-1])]); // (..., )
  const x2 = g.op('Reshape', [x, g.constI([-1, inF])]); // (N, in)
  const hooked = ref ? undefined : m.hook?.linear?.(m, w, x2);
  const inputs = [x2, hooked?.weight ?? w];
  if (!ref && (opts.bias ?? true) && m.has('bias')) inputs.push(m.param('bias'));
  let y = g.op('Gemm', inputs, { transB: 1 }); // (N, out)
  if (hooked?.add) y = g.op('Add', [y, hooked.add]);
  return g.op('Reshape', [y, g.op('Concat', [lead, g.constI([outF])], { axis: 0 })]);
}

/** nn.Conv2d: x (N, Cin, H, W) -> (N, Cout, H', W'). A 1x1 conv may come as a Linear weight [Cout, Cin]. */
export function conv2d(m: Module, x: string, opts: { stride?: number; padding?: number } = {}): string {
  const g = m.g;
  const s = m.shape('weight');
  const wName = m.key('weight');
  const dims = s.length === 2 ? [dimOf(s, 0, wName), dimOf(s, 1, wName), 1, 1] : s;
  const kh = dimOf(dims, 2, wName);
  const kw = dimOf(dims, 3, wName);
  const p = opts.padding ?? (kh - 1) / 2;
  const st = opts.stride ?? 1;
  const w = m.param('weight', dims);
  const hooked = m.hook?.conv?.(m, w, x, { kernel: [kh, kw], stride: st, padding: p });
  const inputs = [x, hooked?.weight ?? w];
  if (m.has('bias')) inputs.push(m.param('bias'));
  const y = g.op('Conv', inputs, { kernel_shape: [kh, kw], pads: [p, p, p, p], strides: [st, st] });
  return hooked?.add ? g.op('Add', [y, hooked.add]) : y;
}

/** nn.LayerNorm over the last axis. */
export function layerNorm(m: Module, x: string, eps: number): string {
  return m.g.op('LayerNormalization', [x, m.param('weight'), m.param('bias')], { axis: -1, epsilon: f(eps) });
}

/**
 * nn.GroupNorm on (N, C, H, W): reshape to (N, G, C/G*H*W), InstanceNormalization with unit
 * scale (mean/var per group, as torch), reshape back, then the per-channel affine.
 */
export function groupNorm(m: Module, x: string, groups: number, eps: number): string {
  const g = m.g;
  const C = m.dim('weight', 0);
  const shape = g.op('Shape', [x]);
  const r = g.op('Reshape', [x, g.constI([0, groups, -1])]);
  const n = g.op('InstanceNormalization', [r, g.constF(new Float32Array(groups).fill(1), [groups]), g.constF(new Float32Array(groups), [groups])], {
    epsilon: f(eps),
  });
  const back = g.op('Reshape', [n, shape]);
  const scale = m.param('weight', [C, 1, 1]);
  const bias = m.param('bias', [C, 1, 1]);
  return g.op('Add', [g.op('Mul', [back, scale]), bias]);
}

export function silu(g: Graph, x: string): string {
  return g.op('Mul', [x, g.op('Sigmoid', [x])]);
}

/** Exact (erf) GELU, as torch's nn.GELU() / F.gelu default. */
export function gelu(g: Graph, x: string): string {
  const e = g.op('Erf', [g.op('Div', [x, g.scalar(Math.SQRT2)])]);
  return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [e, g.scalar(1)])]);
}

/** quick_gelu: x * sigmoid(1.702 x) (CLIP). */
export function quickGelu(g: Graph, x: string): string {
  return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.scalar(1.702)])])]);
}

/**
 * Scaled dot-product attention on (B, T, C) queries and (B, S, C) keys/values with `heads`
 * heads: softmax(Q K^T * scale [+ mask]) V, returned as (B, T, C). Matches diffusers'
 * eager processors (scores in float32, softmax over keys).
 */
export function attention(g: Graph, q: string, k: string, v: string, heads: number, headDim: number, mask?: string, scale = 1 / Math.sqrt(headDim)): string {
  const split = (x: string, perm: number[]) => g.op('Transpose', [g.op('Reshape', [x, g.constI([0, 0, heads, headDim])])], { perm });
  const qh = split(q, [0, 2, 1, 3]); // (B, H, T, D)
  const kh = split(k, [0, 2, 3, 1]); // (B, H, D, S)
  const vh = split(v, [0, 2, 1, 3]); // (B, H, S, D)
  let scores = g.op('Mul', [g.op('MatMul', [qh, kh]), g.scalar(scale)]); // (B, H, T, S)
  if (mask) scores = g.op('Add', [scores, mask]);
  const p = g.op('Softmax', [scores], { axis: -1 });
  const o = g.op('Transpose', [g.op('MatMul', [p, vh])], { perm: [0, 2, 1, 3] }); // (B, T, H, D)
  return g.op('Reshape', [o, g.constI([0, 0, heads * headDim])]);
}
