/**
 * The int8 precision pass (graph profile cpu-int8, the setting "CPU precision: fast"; issue 17).
 *
 * A post-pass over a built float32 graph (onnx/apply-profile.ts), so the builders stay the reference's module code:
 * every `linear` (graph.ts: Gemm(transB=1) on a stored weight) of the UNet and the ControlNet becomes
 *
 *   DynamicQuantizeLinear(x) -> (x_u8, x_scale, x_zero)      activations per tensor, uint8, at run time
 *   MatMulIntegerToFloat(x_u8, W_s8 (in, out), x_scale, w_scale (out), x_zero, -, bias) -> y (float32)
 *
 * with the weight quantized once per output channel (symmetric int8, scale max|w| / 127). ONNX Runtime's MLAS runs
 * that product on the int8 dot-product instructions (AVX512-VNNI / AVX-VNNI, ARM's sdot): measured 2.0-3.2x the
 * float32 Gemm per layer on a 2-core AMD EPYC (Zen 4). The quantized weights are written once per model file, keyed
 * on its identity (device, inode, size, mtime) as the float32 copies of fp16 files are (onnx/fp32-weights.ts), under
 * `<cacheDir>/int8-weights/`, and read in place from there; the float32 weights stay the user's file.
 *
 * Each resnet's conv1 and conv2 (INT8_CONVS) become
 *
 *   DynamicQuantizeLinear(x) -> QLinearConv(x_u8, W_s8 (per output channel), y_scale, y_zero, bias_i32) -> DequantizeLinear
 *
 * where bias_i32 = round(bias / (x_scale * w_scale)) is computed in the graph at run time and the output's fixed 8-bit
 * range comes from a calibration on a deterministic synthetic input, done in closed form while the copy is written
 * (convOutputRange): the input of these two convs is SiLU(GroupNorm(h)), so each input channel is SiLU(gamma z + beta)
 * with z ~ N(0, 1) whatever the image; the output channel's mean and spread follow from the weights, and the range is
 * their extremes at RANGE_SIGMAS standard deviations (stored in the copy with the int8 weights, so it is made once per
 * model file). Measured per conv group on the SD1.5 UNet (README "CPU precision"): these convs cost 0.002-0.16 % one-step
 * error each; the other convs read the residual stream (shortcuts, down/upsamplers, conv_in; proj_out reads the
 * transformer's) or feed it, where one 8-bit scale per tensor cost 0.1-1.4 % per group, and the 1x1 convs (proj_in,
 * proj_out, shortcuts) were no faster in int8, so they stay float32.
 *
 * What else stays float32, and why (INT8_KEEP): attention's products (fused MultiHeadAttention, float32); the time
 * embedding and each resnet's time_emb_proj (one position per image: nothing to win, and they scale every block); attn2's to_k / to_v (they read the text encoder's hidden states, whose outlier channels per-tensor int8
 * would flatten; 77 positions) and the IP-Adapter's to_k_ip / to_v_ip (a few image tokens); a weight the graph computes
 * (a LoRA's W + dW) rather than reads.
 *
 * On x86 CPUs without VNNI, MLAS multiplies uint8 by int8 with VPMADDUBSW, whose 16-bit sums can saturate: there the
 * weights use 7 bits (ONNX Runtime's `reduce_range`), recorded in the copy's key.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../fs-atomic.js';
import { SafetensorsFile, readTensorF32 } from '../safetensors.js';
import { fileIdentity, halfToFloat32, staleCopies } from './fp32-weights.js';
import { DataType, type ModelSpec } from './graph.js';
import type { NodeSpec, TensorSpec } from './proto.js';

/** Standard deviations of an output channel that a calibrated conv's 8-bit output range spans (convOutputRange). */
export const RANGE_SIGMAS = 5;

const FORMAT = `ipadapter-studio int8 copy 2 (conv ranges at ${RANGE_SIGMAS} sd)`;

/** Networks the pass quantizes (BuiltModel names); the others keep their float32 graph under cpu-int8. */
export const INT8_NETWORKS = /^(unet|controlnet)/;

/** Linear weights (by diffusers name) kept float32 under cpu-int8, with the reason (see the file header). */
export const INT8_KEEP: readonly { pattern: RegExp; why: string }[] = [
  { pattern: /(^|\.)time_embedding\.|(^|\.)time_emb_proj\.|(^|\.)add_embedding\./, why: 'one position per image; scales every block' },
  { pattern: /\.attn2\.to_[kv]\./, why: "reads the text encoder's hidden states (outlier channels); 77 positions" },
  { pattern: /^ip_adapter\.|\.to_[kv]_ip\./, why: 'IP-Adapter image tokens: a few positions' },
];

/** Convolutions (by weight name) in int8 under cpu-int8: the resnets' conv1 / conv2, whose input is SiLU(GroupNorm(h)). */
export const INT8_CONVS = /(^|\.)resnets\.\d+\.conv[12]\.weight$/;

export interface Int8Context {
  cacheDir: string;
  log?: (msg: string) => void;
}

/** What the pass did, for the log and the benchmark. */
export interface Int8Report {
  /** Linear layers in int8. */
  quantized: number;
  /** Convolutions in int8 (QLinearConv). */
  convs: number;
  kept: { name: string; why: string }[];
  /** Bytes of the int8 copies this model reads (weights + scales). */
  copyBytes: number;
  /** Seconds spent writing copies (0 when every copy was on disk). */
  writeS: number;
  files: string[];
}

/** Whether MLAS's u8 x s8 product is exact for 8-bit weights here (VNNI, or not x86). */
function hasInt8Dot(): boolean {
  if (os.arch() !== 'x64' && os.arch() !== 'ia32') return true;
  try {
    return /\b(avx512_vnni|avx_vnni|amx_int8)\b/.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false; // unknown x86 CPU: the 7-bit weights are exact on every one
  }
}
let int8Dot: boolean | null = null;
/** Largest weight magnitude: 127, or 63 where MLAS's AVX2 path could saturate. */
function weightLevels(): number {
  int8Dot ??= hasInt8Dot();
  return int8Dot ? 127 : 63;
}

/** A float tensor in a file: an external FLOAT initializer, or an F16 / BF16 one under its Cast to float32. */
interface SourceTensor {
  file: string;
  offset: number;
  length: number;
  dtype: 'F32' | 'F16' | 'BF16';
  dims: number[];
  name: string;
  /** The initializer (and the Cast node, for a half weight) that the graph reads it through. */
  init: string;
  cast?: string;
}

/**
 * A weight the pass quantizes: a linear's (out, in), or a conv's (out, in, kh, kw) with what its output range is
 * computed from (its input's GroupNorm affine and its bias).
 */
interface SourceWeight extends SourceTensor {
  kind: 'linear' | 'conv';
  norm?: { gamma: SourceTensor; beta: SourceTensor; bias: SourceTensor | null };
}

const rangeKey = (w: SourceTensor) => `${w.dtype}@${w.offset}+${w.length}`;
const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 12);
const count = (dims: readonly number[]) => dims.reduce((a, d) => a * d, 1);

function readFloat32(w: SourceTensor, fd: number): Float32Array {
  const buf = Buffer.allocUnsafe(w.length);
  for (let got = 0; got < w.length;) {
    const n = fs.readSync(fd, buf, got, w.length - got, w.offset + got);
    if (n === 0) throw new Error(`${w.file} ended at byte ${w.offset + got}, inside weight ${w.name}`);
    got += n;
  }
  if (w.dtype === 'F32') return new Float32Array(buf.buffer, buf.byteOffset, w.length / 4);
  const out = new Float32Array(w.length / 2);
  halfToFloat32(new Uint16Array(buf.buffer, buf.byteOffset, w.length / 2), w.dtype, out);
  return out;
}

/**
 * Per-output-channel symmetric quantization of an (out, in) weight: int8 and float32 scales (out). `transpose`: the
 * int8 is (in, out) (MatMulIntegerToFloat's B); else (out, in) (QLinearConv's W). Exported for the tests.
 */
export function quantizeRows(w: Float32Array, out: number, inF: number, levels = 127, transpose = true): { q: Int8Array; scale: Float32Array } {
  const q = new Int8Array(out * inF);
  const scale = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let m = 0;
    const row = o * inF;
    for (let k = 0; k < inF; k++) m = Math.max(m, Math.abs(w[row + k]!));
    const s = m > 0 ? m / levels : 1;
    scale[o] = s;
    const inv = 1 / s;
    for (let k = 0; k < inF; k++) q[transpose ? k * out + o : row + k] = Math.max(-levels, Math.min(levels, Math.round(w[row + k]! * inv)));
  }
  return { q, scale };
}

/** Mean and variance of SiLU(gamma z + beta), z ~ N(0, 1) (trapezoid rule on [-8, 8]). */
function siluMoments(gamma: number, beta: number): { mean: number; variance: number } {
  const h = 0.02;
  let m1 = 0;
  let m2 = 0;
  for (let z = -8; z <= 8 + 1e-9; z += h) {
    const a = beta + gamma * z;
    const x = a / (1 + Math.exp(-a));
    const p = Math.exp(-0.5 * z * z);
    m1 += p * x;
    m2 += p * x * x;
  }
  const c = h / Math.sqrt(2 * Math.PI);
  const mean = m1 * c;
  return { mean, variance: Math.max(0, m2 * c - mean * mean) };
}

/**
 * The output range a conv (weight (out, in, kh, kw), bias (out)) gets on the deterministic synthetic input
 * SiLU(gamma z + beta) with z independent N(0, 1) per position and channel (its GroupNorm's affine gamma, beta): each
 * output channel is then a sum of many independent terms, near-normal with mean bias + sum(w * mean) and variance
 * sum(w^2 * variance); the range spans every channel's mean +- `sigmas` standard deviations (and 0). Closed form of a
 * calibration run on that input, at no run's cost. Exported for the tests.
 */
export function convOutputRange(
  w: Float32Array,
  dims: readonly number[],
  bias: Float32Array | null,
  gamma: Float32Array,
  beta: Float32Array,
  sigmas = RANGE_SIGMAS,
): { min: number; max: number } {
  const [out, inC] = [dims[0]!, dims[1]!];
  const taps = count(dims.slice(2));
  const mom = Array.from({ length: inC }, (_, c) => siluMoments(gamma[c]!, beta[c]!));
  let min = 0;
  let max = 0;
  for (let o = 0; o < out; o++) {
    let mean = bias ? bias[o]! : 0;
    let variance = 0;
    for (let c = 0; c < inC; c++) {
      let s1 = 0;
      let s2 = 0;
      const base = (o * inC + c) * taps;
      for (let k = 0; k < taps; k++) {
        const v = w[base + k]!;
        s1 += v;
        s2 += v * v;
      }
      mean += s1 * mom[c]!.mean;
      variance += s2 * mom[c]!.variance;
    }
    const sd = Math.sqrt(variance);
    min = Math.min(min, mean - sigmas * sd);
    max = Math.max(max, mean + sigmas * sd);
  }
  return { min, max };
}

/** uint8 output quantization of a range that holds 0: scale and zero point (QLinearConv's y_scale / y_zero_point). */
function outputQuant(r: { min: number; max: number }): { scale: number; zero: number } {
  const scale = (r.max - r.min) / 255 || 1;
  return { scale, zero: Math.min(255, Math.max(0, Math.round(-r.min / scale))) };
}

/** The int8 copy of some weights of one source file: range key -> byte offsets of its int8 data and scales; conv output ranges. */
interface CopyFile {
  file: string;
  q: Map<string, number>;
  s: Map<string, number>;
  r: Map<string, { min: number; max: number }>;
}

function openCopy(file: string, real: string, id: string, levels: number): CopyFile | null {
  try {
    const st = SafetensorsFile.open(file);
    const m = st.metadata;
    if (m.format !== FORMAT || m.source !== real || m.identity !== id || m.levels !== String(levels)) return null;
    const q = new Map<string, number>();
    const s = new Map<string, number>();
    const r = new Map<string, { min: number; max: number }>();
    for (const k of st.keys()) {
      if (k.startsWith('r:')) {
        const v = readTensorF32(st.get(k));
        r.set(k.slice(2), { min: v[0]!, max: v[1]! });
      } else (k.startsWith('q:') ? q : s).set(k.slice(2), st.get(k).offset);
    }
    return { file, q, s, r };
  } catch {
    return null;
  }
}

const byOffset = (weights: SourceWeight[]) => [...new Map(weights.map((x) => [rangeKey(x), x])).values()].sort((a, b) => a.offset - b.offset);

/** The offsets a copy of exactly `weights` has, relative to its data (writeCopy's layout), for a graph that is not run. */
function plannedCopy(weights: SourceWeight[]): CopyFile {
  const q = new Map<string, number>();
  const s = new Map<string, number>();
  const r = new Map<string, { min: number; max: number }>();
  let off = 0;
  for (const w of byOffset(weights)) {
    const [out] = w.dims;
    q.set(rangeKey(w), off);
    off += count(w.dims);
    off += (4 - (off % 4)) % 4;
    s.set(rangeKey(w), off);
    off += out! * 4;
    if (w.kind === 'conv') {
      r.set(rangeKey(w), { min: -1, max: 1 });
      off += 8;
    }
  }
  return { file: '', q, s, r };
}

/** Writes the int8 copy of `weights` (all of `real`) to `target`, atomically. */
function writeCopy(target: string, real: string, id: string, levels: number, weights: SourceWeight[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: FORMAT, source: real, identity: id, levels: String(levels) } };
  const parts: Uint8Array[] = [];
  let off = 0;
  const fd = fs.openSync(real, 'r');
  try {
    for (const w of weights) {
      const [out] = w.dims as [number];
      const inF = count(w.dims) / out;
      const f = readFloat32(w, fd);
      const { q, scale } = quantizeRows(f, out, inF, levels, w.kind === 'linear');
      header[`q:${rangeKey(w)}`] = { dtype: 'I8', shape: w.kind === 'linear' ? [inF, out] : w.dims, data_offsets: [off, off + q.byteLength] };
      off += q.byteLength;
      parts.push(new Uint8Array(q.buffer));
      const pad = (4 - (off % 4)) % 4; // float32 scales aligned
      if (pad) {
        parts.push(new Uint8Array(pad));
        off += pad;
      }
      header[`s:${rangeKey(w)}`] = { dtype: 'F32', shape: [out], data_offsets: [off, off + scale.byteLength] };
      off += scale.byteLength;
      parts.push(new Uint8Array(scale.buffer));
      if (w.norm) {
        const n = w.norm;
        const range = convOutputRange(f, w.dims, n.bias && readFloat32(n.bias, fd), readFloat32(n.gamma, fd), readFloat32(n.beta, fd));
        header[`r:${rangeKey(w)}`] = { dtype: 'F32', shape: [2], data_offsets: [off, off + 8] };
        off += 8;
        parts.push(new Uint8Array(new Float32Array([range.min, range.max]).buffer));
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileAtomicSync(target, Buffer.concat([len, json, ...parts]));
}

/** The int8 copy of `weights` (all from `source`) under `dir`, written when no complete copy of this identity holds them. */
function int8CopyOf(source: string, weights: SourceWeight[], dir: string, log: (m: string) => void): { copy: CopyFile; wrote: number } {
  const { real, id } = fileIdentity(source);
  const levels = weightLevels();
  const stem = `${path.basename(real)}.${hash(real)}`;
  const prefix = `${stem}.${hash(`${id}|${levels}`)}.`;
  const unique = byOffset(weights);
  fs.mkdirSync(dir, { recursive: true });
  const names = fs.readdirSync(dir);
  for (const name of names.filter((n) => n.startsWith(prefix) && n.endsWith('.safetensors'))) {
    const copy = openCopy(path.join(dir, name), real, id, levels);
    if (copy && unique.every((w) => copy.q.has(rangeKey(w)) && (w.kind === 'linear' || copy.r.has(rangeKey(w))))) return { copy, wrote: 0 };
  }
  // Copies of an older version of this path (replaced or edited since) are stale.
  for (const name of names)
    if (name.startsWith(`${stem}.`) && !name.startsWith(prefix) && name.endsWith('.safetensors')) fs.rmSync(path.join(dir, name), { force: true });
  const target = path.join(dir, `${prefix}${hash(unique.map(rangeKey).join(','))}.safetensors`);
  const t0 = performance.now();
  writeCopy(target, real, id, levels, unique);
  const s = (performance.now() - t0) / 1000;
  const convs = unique.filter((w) => w.kind === 'conv').length;
  log(
    `int8 weights: wrote the int8 copy of ${unique.length - convs} linear weights${convs ? ` and ${convs} conv weights (output ranges calibrated)` : ''} of ${real} (${(fs.statSync(target).size / 2 ** 20).toFixed(0)} MiB) to ${target} in ${s.toFixed(1)} s`,
  );
  const copy = openCopy(target, real, id, levels);
  if (!copy) throw new Error(`${target}: the int8 copy of ${real} just written does not read back`);
  return { copy, wrote: s };
}

const rawScalar = (name: string, dataType: TensorSpec['dataType'], bytes: Uint8Array, dims: number[] = []): TensorSpec => ({
  name,
  dataType,
  dims,
  raw: bytes,
});

/**
 * The int8 graph of a float32 model (see the file header): the new spec, the weight files it adds (location ->
 * absolute path) and a report. A network not in INT8_NETWORKS is returned unchanged. Without `ctx` (a check of the
 * graph's structure) no copy is made and the graph's int8 file is not linked.
 */
export function int8Spec(
  spec: ModelSpec,
  externalFiles: Record<string, string>,
  modelName: string,
  ctx?: Int8Context,
): { spec: ModelSpec; files: Record<string, string>; report: Int8Report } {
  // Without ctx (a structure check of the graph: onnx/profile.test.ts) the copy is planned, not written.
  const report: Int8Report = { quantized: 0, convs: 0, kept: [], copyBytes: 0, writeS: 0, files: [] };
  if (!INT8_NETWORKS.test(modelName)) return { spec, files: {}, report };
  const inits = new Map(spec.initializers.map((t) => [t.name, t]));
  const producer = new Map<string, NodeSpec>();
  for (const n of spec.nodes) for (const o of n.outputs) producer.set(o, n);

  /** The stored tensor (of rank `rank`, or any) a node input reads (directly or through a Cast of a half one), or null (computed in the graph). */
  const sourceOf = (b: string, rank: number | null): SourceTensor | null => {
    let t = inits.get(b);
    let cast: string | undefined;
    if (!t) {
      const p = producer.get(b);
      if (p?.opType !== 'Cast' || p.attrs.to?.kind !== 'int' || p.attrs.to.v !== DataType.FLOAT) return null;
      t = inits.get(p.inputs[0]!);
      cast = p.name;
    }
    if (!t?.external || (rank !== null && t.dims.length !== rank)) return null;
    const dtype = t.dataType === DataType.FLOAT ? 'F32' : t.dataType === DataType.FLOAT16 ? 'F16' : t.dataType === DataType.BFLOAT16 ? 'BF16' : null;
    const file = externalFiles[t.external.location];
    if (!dtype || !file || (cast === undefined) !== (dtype === 'F32')) return null;
    return { file, offset: t.external.offset, length: t.external.length, dtype, dims: [...t.dims], name: t.name, init: t.name, cast };
  };
  /** A stored tensor by initializer name (a GroupNorm's affine, (C) or (C, 1, 1)). */
  const storedByName = (name: string): SourceTensor | null => {
    const t = inits.get(name);
    const dtype = t?.dataType === DataType.FLOAT ? 'F32' : t?.dataType === DataType.FLOAT16 ? 'F16' : t?.dataType === DataType.BFLOAT16 ? 'BF16' : null;
    const file = t?.external && externalFiles[t.external.location];
    return t?.external && dtype && file ? { file, offset: t.external.offset, length: t.external.length, dtype, dims: [...t.dims], name, init: name } : null;
  };
  const isPlainGemm = (n: NodeSpec) =>
    n.opType === 'Gemm' &&
    n.attrs.transB?.kind === 'int' &&
    n.attrs.transB.v === 1 &&
    !n.attrs.transA?.v &&
    (n.attrs.alpha === undefined || (n.attrs.alpha.kind === 'float' && n.attrs.alpha.v === 1)) &&
    (n.attrs.beta === undefined || (n.attrs.beta.kind === 'float' && n.attrs.beta.v === 1));

  const chosen = new Map<string, SourceWeight>(); // Gemm / Conv node name -> its weight
  for (const n of spec.nodes) {
    if (n.opType === 'Conv') {
      const t = sourceOf(n.inputs[1]!, 4);
      if (!t || !INT8_CONVS.test(t.name) || (n.attrs.group?.kind === 'int' && n.attrs.group.v !== 1)) continue;
      const norm = t.name.replace(/conv([12])\.weight$/, 'norm$1.');
      const gamma = storedByName(`${norm}weight`);
      const beta = storedByName(`${norm}bias`);
      const bias = n.inputs[2] ? sourceOf(n.inputs[2], null) : null;
      if (!gamma || !beta || (n.inputs[2] && !bias) || [gamma, beta, bias].some((x) => x && x.file !== t.file)) {
        report.kept.push({ name: t.name, why: 'its GroupNorm or bias is not stored beside it (the output range is computed from them)' });
        continue;
      }
      chosen.set(n.name, { ...t, kind: 'conv', norm: { gamma, beta, bias } });
      continue;
    }
    if (!isPlainGemm(n)) continue;
    const w = sourceOf(n.inputs[1]!, 2);
    if (!w) {
      report.kept.push({ name: n.name, why: 'weight computed in the graph (e.g. a LoRA merge)' });
      continue;
    }
    const rule = INT8_KEEP.find((r) => r.pattern.test(w.name));
    if (rule) report.kept.push({ name: w.name, why: rule.why });
    else chosen.set(n.name, { ...w, kind: 'linear' });
  }
  if (!chosen.size) return { spec, files: {}, report };

  const log = ctx?.log ?? (() => {});
  const bySource = new Map<string, SourceWeight[]>();
  for (const w of chosen.values()) bySource.set(w.file, [...(bySource.get(w.file) ?? []), w]);
  const copies = new Map<string, { copy: CopyFile; location: string }>();
  const files: Record<string, string> = {};
  for (const [file, ws] of bySource) {
    const location = `int8-${copies.size}.safetensors`;
    if (!ctx) {
      copies.set(file, { copy: plannedCopy(ws), location }); // structure only: the file is neither made nor linked
      continue;
    }
    const { copy, wrote } = int8CopyOf(file, ws, path.join(ctx.cacheDir, 'int8-weights'), log);
    report.writeS += wrote;
    files[location] = copy.file;
    copies.set(file, { copy, location });
    report.files.push(copy.file);
  }

  const added: TensorSpec[] = [];
  const nodes: NodeSpec[] = [];
  for (const n of spec.nodes) {
    const w = chosen.get(n.name);
    if (!w) {
      nodes.push(n);
      continue;
    }
    const { copy, location } = copies.get(w.file)!;
    const out = w.dims[0]!;
    const key = rangeKey(w);
    const qName = `${w.name}/int8`;
    const sName = `${w.name}/int8_scale`;
    if (!added.some((t) => t.name === qName)) {
      const qDims = w.kind === 'linear' ? [w.dims[1]!, out] : w.dims;
      added.push({ name: qName, dataType: DataType.INT8, dims: qDims, external: { location, offset: copy.q.get(key)!, length: count(w.dims) } });
      added.push({ name: sName, dataType: DataType.FLOAT, dims: [out], external: { location, offset: copy.s.get(key)!, length: out * 4 } });
      report.copyBytes += count(w.dims) + out * 4;
    }
    const [xq, xs, xz] = [`${n.name}/x_u8`, `${n.name}/x_scale`, `${n.name}/x_zero`];
    nodes.push({ opType: 'DynamicQuantizeLinear', name: `${n.name}/quantize`, inputs: [n.inputs[0]!], outputs: [xq, xs, xz], attrs: {} });
    if (w.kind === 'linear') {
      nodes.push({
        opType: 'MatMulIntegerToFloat',
        domain: 'com.microsoft',
        name: `${n.name}/int8`,
        inputs: [xq, qName, xs, sName, xz, '', ...(n.inputs[2] ? [n.inputs[2]] : [])],
        outputs: n.outputs,
        attrs: {},
      });
      report.quantized++;
      continue;
    }
    // conv: y_u8 = QLinearConv(x_u8, W_s8, bias_i32) at the calibrated output range, then back to float32
    const { scale, zero } = outputQuant(copy.r.get(key)!);
    const [ys, yz, wz, yq] = [`${n.name}/y_scale`, `${n.name}/y_zero`, `${n.name}/w_zero`, `${n.name}/y_u8`];
    added.push(rawScalar(ys, DataType.FLOAT, new Uint8Array(new Float32Array([scale]).buffer)));
    added.push(rawScalar(yz, DataType.UINT8, new Uint8Array([zero])));
    added.push(rawScalar(wz, DataType.INT8, new Uint8Array(out), [out]));
    const inputs = [xq, xs, xz, qName, sName, wz, ys, yz];
    if (n.inputs[2]) {
      // bias in the int32 accumulator's units: round(bias / (x_scale * w_scale)), per run (x_scale is the run's)
      const b = `${n.name}/bias_i32`;
      nodes.push({ opType: 'Mul', name: `${b}/unit`, inputs: [xs, sName], outputs: [`${b}/unit`], attrs: {} });
      nodes.push({ opType: 'Div', name: `${b}/div`, inputs: [n.inputs[2], `${b}/unit`], outputs: [`${b}/div`], attrs: {} });
      nodes.push({ opType: 'Round', name: `${b}/round`, inputs: [`${b}/div`], outputs: [`${b}/round`], attrs: {} });
      nodes.push({ opType: 'Cast', name: b, inputs: [`${b}/round`], outputs: [b], attrs: { to: { kind: 'int', v: DataType.INT32 } } });
      inputs.push(b);
    }
    nodes.push({ opType: 'QLinearConv', name: `${n.name}/int8`, inputs, outputs: [yq], attrs: n.attrs });
    nodes.push({ opType: 'DequantizeLinear', name: `${n.name}/dequantize`, inputs: [yq, ys, yz], outputs: n.outputs, attrs: {} });
    report.convs++;
  }
  // The float32 weights (and the Casts of half ones) nothing reads any more leave the graph.
  const used = new Set<string>();
  const live: NodeSpec[] = [];
  const outputs = new Set(spec.outputs.map((o) => o.name));
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (n.opType === 'Cast' && !n.outputs.some((o) => used.has(o) || outputs.has(o))) continue;
    live.push(n);
    for (const x of n.inputs) used.add(x);
  }
  live.reverse();
  const initializers = [...spec.initializers.filter((t) => used.has(t.name)), ...added];
  log(
    `int8: ${modelName}: ${report.quantized} linear layers and ${report.convs} convolutions in int8 (${(report.copyBytes / 2 ** 20).toFixed(0)} MiB of weights), ${report.kept.length} kept float32`,
  );
  return { spec: { ...spec, nodes: live, initializers }, files, report };
}

/**
 * Deletes the int8 copies under `<cacheDir>/int8-weights` whose source file is gone or has changed since (another
 * identity), and damaged ones, with the materialized models (`<cacheDir>/onnx/<model>/`) that hard-link them; returns
 * what went. The engine runs it at start-up, beside the float32 copies' sweep (onnx/fp32-weights.ts).
 */
export function removeStaleInt8Copies(cacheDir: string): { file: string; bytes: number }[] {
  const removed: { file: string; bytes: number }[] = [];
  const onnxDir = path.join(cacheDir, 'onnx');
  for (const file of staleCopies(path.join(cacheDir, 'int8-weights'), FORMAT)) {
    try {
      const st = fs.statSync(file);
      if (st.nlink > 1 && fs.existsSync(onnxDir))
        for (const model of fs.readdirSync(onnxDir)) {
          const d = path.join(onnxDir, model);
          try {
            if (fs.readdirSync(d).some((f) => sameInode(path.join(d, f), st))) fs.rmSync(d, { recursive: true, force: true });
          } catch {
            /* not a folder, or in use: left as it is */
          }
        }
      fs.rmSync(file, { force: true });
      removed.push({ file, bytes: st.size });
    } catch {
      /* in use (Windows) or gone meanwhile: left for the next start */
    }
  }
  return removed;
}

function sameInode(file: string, st: fs.Stats): boolean {
  const s = fs.statSync(file);
  return s.ino === st.ino && s.dev === st.dev;
}
