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
 * What stays float32, and why (INT8_KEEP): the convolutions (ONNX Runtime's dynamic ConvInteger is an uint8 x uint8
 * im2col GEMM that measured no faster than the float32 Conv; its fast QLinearConv needs a fixed output scale, i.e.
 * calibration, and cost 2 % one-step error: README "CPU precision"); attention's products (fused MultiHeadAttention,
 * float32); the time embedding and each resnet's time_emb_proj (one position per image: nothing to win, and they scale
 * every block); attn2's to_k / to_v (they read the text encoder's hidden states, whose outlier channels per-tensor int8
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
import { SafetensorsFile } from '../safetensors.js';
import { fileIdentity, halfToFloat32, staleCopies } from './fp32-weights.js';
import { DataType, type ModelSpec } from './graph.js';
import type { NodeSpec, TensorSpec } from './proto.js';

const FORMAT = 'ipadapter-studio int8 copy 1';

/** Networks the pass quantizes (BuiltModel names); the others keep their float32 graph under cpu-int8. */
export const INT8_NETWORKS = /^(unet|controlnet)/;

/** Linear weights (by diffusers name) kept float32 under cpu-int8, with the reason (see the file header). */
export const INT8_KEEP: readonly { pattern: RegExp; why: string }[] = [
  { pattern: /(^|\.)time_embedding\.|(^|\.)time_emb_proj\.|(^|\.)add_embedding\./, why: 'one position per image; scales every block' },
  { pattern: /\.attn2\.to_[kv]\./, why: "reads the text encoder's hidden states (outlier channels); 77 positions" },
  { pattern: /^ip_adapter\.|\.to_[kv]_ip\./, why: 'IP-Adapter image tokens: a few positions' },
];

export interface Int8Context {
  cacheDir: string;
  log?: (msg: string) => void;
}

/** What the pass did, for the log and the benchmark. */
export interface Int8Report {
  quantized: number;
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

/** A float weight in a file: an external FLOAT initializer, or an F16 / BF16 one under its Cast to float32. */
interface SourceWeight {
  file: string;
  offset: number;
  length: number;
  dtype: 'F32' | 'F16' | 'BF16';
  /** (out, in) */
  dims: [number, number];
  name: string;
  /** The initializer (and the Cast node, for a half weight) that the graph reads it through. */
  init: string;
  cast?: string;
}

const rangeKey = (w: SourceWeight) => `${w.dtype}@${w.offset}+${w.length}`;
const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 12);

function readFloat32(w: SourceWeight, fd: number): Float32Array {
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
 * Per-output-channel symmetric quantization of an (out, in) weight: int8 (in, out) (MatMulIntegerToFloat's B) and
 * float32 scales (out). Exported for the tests.
 */
export function quantizeRows(w: Float32Array, out: number, inF: number, levels = 127): { q: Int8Array; scale: Float32Array } {
  const q = new Int8Array(out * inF);
  const scale = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let m = 0;
    const row = o * inF;
    for (let k = 0; k < inF; k++) m = Math.max(m, Math.abs(w[row + k]!));
    const s = m > 0 ? m / levels : 1;
    scale[o] = s;
    const inv = 1 / s;
    for (let k = 0; k < inF; k++) q[k * out + o] = Math.max(-levels, Math.min(levels, Math.round(w[row + k]! * inv)));
  }
  return { q, scale };
}

/** The int8 copy of some weights of one source file: range key -> byte offsets of its int8 data and scales. */
interface CopyFile {
  file: string;
  q: Map<string, number>;
  s: Map<string, number>;
}

function openCopy(file: string, real: string, id: string, levels: number): CopyFile | null {
  try {
    const st = SafetensorsFile.open(file);
    const m = st.metadata;
    if (m.format !== FORMAT || m.source !== real || m.identity !== id || m.levels !== String(levels)) return null;
    const q = new Map<string, number>();
    const s = new Map<string, number>();
    for (const k of st.keys()) (k.startsWith('q:') ? q : s).set(k.slice(2), st.get(k).offset);
    return { file, q, s };
  } catch {
    return null;
  }
}

/** The offsets a copy of exactly `weights` has, relative to its data (writeCopy's layout), for a graph that is not run. */
function plannedCopy(weights: SourceWeight[]): CopyFile {
  const q = new Map<string, number>();
  const s = new Map<string, number>();
  let off = 0;
  for (const w of [...new Map(weights.map((x) => [rangeKey(x), x])).values()].sort((a, b) => a.offset - b.offset)) {
    const [out, inF] = w.dims;
    q.set(rangeKey(w), off);
    off += out * inF;
    off += (4 - (off % 4)) % 4;
    s.set(rangeKey(w), off);
    off += out * 4;
  }
  return { file: '', q, s };
}

/** Writes the int8 copy of `weights` (all of `real`) to `target`, atomically. */
function writeCopy(target: string, real: string, id: string, levels: number, weights: SourceWeight[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: FORMAT, source: real, identity: id, levels: String(levels) } };
  const parts: Uint8Array[] = [];
  let off = 0;
  const fd = fs.openSync(real, 'r');
  try {
    for (const w of weights) {
      const [out, inF] = w.dims;
      const { q, scale } = quantizeRows(readFloat32(w, fd), out, inF, levels);
      header[`q:${rangeKey(w)}`] = { dtype: 'I8', shape: [inF, out], data_offsets: [off, off + q.byteLength] };
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
  const unique = [...new Map(weights.map((w) => [rangeKey(w), w])).values()].sort((a, b) => a.offset - b.offset);
  fs.mkdirSync(dir, { recursive: true });
  const names = fs.readdirSync(dir);
  for (const name of names.filter((n) => n.startsWith(prefix) && n.endsWith('.safetensors'))) {
    const copy = openCopy(path.join(dir, name), real, id, levels);
    if (copy && unique.every((w) => copy.q.has(rangeKey(w)))) return { copy, wrote: 0 };
  }
  // Copies of an older version of this path (replaced or edited since) are stale.
  for (const name of names)
    if (name.startsWith(`${stem}.`) && !name.startsWith(prefix) && name.endsWith('.safetensors')) fs.rmSync(path.join(dir, name), { force: true });
  const target = path.join(dir, `${prefix}${hash(unique.map(rangeKey).join(','))}.safetensors`);
  const t0 = performance.now();
  writeCopy(target, real, id, levels, unique);
  const s = (performance.now() - t0) / 1000;
  log(
    `int8 weights: wrote the int8 copy of ${unique.length} linear weights of ${real} (${(fs.statSync(target).size / 2 ** 20).toFixed(0)} MiB) to ${target} in ${s.toFixed(1)} s`,
  );
  const copy = openCopy(target, real, id, levels);
  if (!copy) throw new Error(`${target}: the int8 copy of ${real} just written does not read back`);
  return { copy, wrote: s };
}

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
  const report: Int8Report = { quantized: 0, kept: [], copyBytes: 0, writeS: 0, files: [] };
  if (!INT8_NETWORKS.test(modelName)) return { spec, files: {}, report };
  const inits = new Map(spec.initializers.map((t) => [t.name, t]));
  const producer = new Map<string, NodeSpec>();
  for (const n of spec.nodes) for (const o of n.outputs) producer.set(o, n);

  /** The stored weight a Gemm's B input reads, or null (computed in the graph). */
  const sourceOf = (b: string): SourceWeight | null => {
    let t = inits.get(b);
    let cast: string | undefined;
    if (!t) {
      const p = producer.get(b);
      if (p?.opType !== 'Cast' || p.attrs.to?.kind !== 'int' || p.attrs.to.v !== DataType.FLOAT) return null;
      t = inits.get(p.inputs[0]!);
      cast = p.name;
    }
    if (!t?.external || t.dims.length !== 2) return null;
    const dtype = t.dataType === DataType.FLOAT ? 'F32' : t.dataType === DataType.FLOAT16 ? 'F16' : t.dataType === DataType.BFLOAT16 ? 'BF16' : null;
    const file = externalFiles[t.external.location];
    if (!dtype || !file || (cast === undefined) !== (dtype === 'F32')) return null;
    return { file, offset: t.external.offset, length: t.external.length, dtype, dims: [t.dims[0]!, t.dims[1]!], name: t.name, init: t.name, cast };
  };
  const isPlainGemm = (n: NodeSpec) =>
    n.opType === 'Gemm' &&
    n.attrs.transB?.kind === 'int' &&
    n.attrs.transB.v === 1 &&
    !n.attrs.transA?.v &&
    (n.attrs.alpha === undefined || (n.attrs.alpha.kind === 'float' && n.attrs.alpha.v === 1)) &&
    (n.attrs.beta === undefined || (n.attrs.beta.kind === 'float' && n.attrs.beta.v === 1));

  const chosen = new Map<string, SourceWeight>(); // Gemm node name -> its weight
  for (const n of spec.nodes) {
    if (!isPlainGemm(n)) continue;
    const w = sourceOf(n.inputs[1]!);
    if (!w) {
      report.kept.push({ name: n.name, why: 'weight computed in the graph (e.g. a LoRA merge)' });
      continue;
    }
    const rule = INT8_KEEP.find((r) => r.pattern.test(w.name));
    if (rule) report.kept.push({ name: w.name, why: rule.why });
    else chosen.set(n.name, w);
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
    const [out, inF] = w.dims;
    const key = rangeKey(w);
    const qName = `${w.name}/int8`;
    const sName = `${w.name}/int8_scale`;
    if (!added.some((t) => t.name === qName)) {
      added.push({ name: qName, dataType: DataType.INT8, dims: [inF, out], external: { location, offset: copy.q.get(key)!, length: inF * out } });
      added.push({ name: sName, dataType: DataType.FLOAT, dims: [out], external: { location, offset: copy.s.get(key)!, length: out * 4 } });
      report.copyBytes += inF * out + out * 4;
    }
    const [xq, xs, xz] = [`${n.name}/x_u8`, `${n.name}/x_scale`, `${n.name}/x_zero`];
    nodes.push({ opType: 'DynamicQuantizeLinear', name: `${n.name}/quantize`, inputs: [n.inputs[0]!], outputs: [xq, xs, xz], attrs: {} });
    nodes.push({
      opType: 'MatMulIntegerToFloat',
      domain: 'com.microsoft',
      name: `${n.name}/int8`,
      inputs: [xq, qName, xs, sName, xz, '', ...(n.inputs[2] ? [n.inputs[2]] : [])],
      outputs: n.outputs,
      attrs: {},
    });
    report.quantized++;
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
    `int8: ${modelName}: ${report.quantized} linear layers in int8 (${(report.copyBytes / 2 ** 20).toFixed(0)} MiB of weights), ${report.kept.length} kept float32`,
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
