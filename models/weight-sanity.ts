/**
 * A cheap look at a model file's weight values (issue 13): a few bytes of every tensor are read at
 * fixed places (start, thirds, end), so a file of NaN / Inf weights, or of float data labelled as an
 * integer or another float type of the same size, is named before it makes a black image without a
 * word. Sampling finds a tensor that is wholly or largely bad, not a single stray value; the decoded
 * image is checked too (nodes/vae-decode.ts, nonFiniteCount).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openTensorFile } from './pickle.js';
import { halfToFloat, type TensorRef } from './safetensors.js';

/** Bytes read at each of the sampled places of a tensor. */
const CHUNK = 64;
const PLACES = [0, 1 / 3, 2 / 3, 1];
const WEIGHT_FILE = /\.(safetensors|bin|ckpt|pt|pth)$/i;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bf16 = (h: number) => {
  u32[0] = h << 16;
  return f32[0]!;
};

/** The sampled values of a tensor as numbers (floats as read; integers as their values), or null for dtypes not looked at. */
function sample(fd: number, ref: TensorRef): number[] | null {
  const size = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, U32: 4, I16: 2, U16: 2 }[ref.dtype as string];
  if (!size || ref.length < size) return null;
  const out: number[] = [];
  const buf = Buffer.alloc(CHUNK);
  let last = -1;
  for (const p of PLACES) {
    const len = Math.min(CHUNK, ref.length);
    const at = Math.floor(((ref.length - len) * p) / size) * size;
    if (at === last) continue;
    last = at;
    const n = fs.readSync(fd, buf, 0, len, ref.offset + at);
    for (let o = 0; o + size <= n; o += size) {
      switch (ref.dtype) {
        case 'F32':
          out.push(buf.readFloatLE(o));
          break;
        case 'F64':
          out.push(buf.readDoubleLE(o));
          break;
        case 'F16':
          out.push(halfToFloat(buf.readUInt16LE(o)));
          break;
        case 'BF16':
          out.push(bf16(buf.readUInt16LE(o)));
          break;
        case 'I32':
          out.push(buf.readInt32LE(o));
          break;
        case 'U32':
          out.push(buf.readUInt32LE(o));
          break;
        case 'I16':
          out.push(buf.readInt16LE(o));
          break;
        default:
          out.push(buf.readUInt16LE(o));
      }
    }
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

/** Why one tensor's sampled values are not weights, or null. */
function tensorProblem(ref: TensorRef, xs: number[]): string | null {
  const bad = xs.filter((x) => !Number.isFinite(x)).length;
  if (bad) return `holds NaN or infinite values (${bad} of ${xs.length} sampled)`;
  const mags = xs.map(Math.abs).filter((x) => x > 0);
  if (mags.length < xs.length / 2) return null; // mostly zeros: a zero-initialised layer, nothing to judge
  const m = median(mags);
  const float = ref.dtype.startsWith('F') || ref.dtype === 'BF16';
  // Trained weights sit around 1e-4 .. 1; float bits read as another type land far off (F16 bits as BF16 ~1e-19, F32 bits as I32 ~1e9).
  if (float && (m > 1e4 || m < 1e-12))
    return `holds values of about ${m.toExponential(1)}, not weights: its data is likely of another type than its ${ref.dtype} label`;
  if (!float && m > 4096) return `is labelled ${ref.dtype} but holds values of about ${m.toExponential(1)}: float weights labelled as integers`;
  return null;
}

/** The weight files of a model path: the file, or the weight files of a folder and its subfolders (one level). */
function weightFiles(p: string): string[] {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (!st) return [];
  if (!st.isDirectory()) return [p];
  const out: string[] = [];
  for (const e of fs.readdirSync(p, { withFileTypes: true })) {
    const q = path.join(p, e.name);
    if (e.isDirectory()) {
      for (const f of fs.readdirSync(q))
        if (WEIGHT_FILE.test(f) && fs.statSync(path.join(q, f), { throwIfNoEntry: false })?.isFile()) out.push(path.join(q, f));
    } else if (WEIGHT_FILE.test(e.name) && e.isFile()) out.push(q);
  }
  return out.sort();
}

/**
 * The sentence for a model file or folder whose sampled weights are not finite or not weights (null when
 * they look fine). Files that cannot be opened as tensor files are skipped: their loader names them.
 */
export function weightValueProblem(p: string): string | null {
  const found: { file: string; key: string; why: string }[] = [];
  for (const file of weightFiles(p)) {
    let tf;
    try {
      tf = openTensorFile(file);
    } catch {
      continue;
    }
    const fds = new Map<string, number>(); // a pickle's tensors may lie in a copy beside it (models/pickle)
    try {
      for (const key of tf.keys()) {
        const ref = tf.get(key);
        let fd = fds.get(ref.file);
        if (fd === undefined) fds.set(ref.file, (fd = fs.openSync(ref.file, 'r')));
        const xs = sample(fd, ref);
        const why = xs && xs.length ? tensorProblem(ref, xs) : null;
        if (why) found.push({ file, key, why });
      }
    } finally {
      for (const fd of fds.values()) fs.closeSync(fd);
    }
  }
  const first = found[0];
  if (!first) return null;
  const more = found.length > 1 ? ` (and ${found.length - 1} more tensor${found.length > 2 ? 's' : ''})` : '';
  return `${path.basename(first.file)}: tensor "${first.key}" ${first.why}${more}; what the model makes from it will be NaN or garbage (a black image): the file is damaged or mislabelled`;
}

/** How many values of `x` are NaN or infinite. */
export function nonFiniteCount(x: Float32Array): number {
  let n = 0;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) n++;
  return n;
}
