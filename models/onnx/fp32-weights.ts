/**
 * float32 copies of a model's F16 / BF16 weights, made once and kept on disk.
 *
 * A graph reads an F16 / BF16 weight through a Cast to float32 (graph.ts `weight`). ONNX Runtime
 * folds that Cast at session creation into an anonymous float32 copy of every such weight: a 2 GB
 * fp16 checkpoint then holds 4 GB of heap besides the file's own pages, twice what its fp32 twin
 * costs (whose weights are used in place, memory-mapped). Instead, the weights a model reads are
 * converted once (exactly: F16 / BF16 -> F32 loses nothing) into a float32 file under
 * `<cacheDir>/fp32-weights/`, and the model reads that file in place as it reads float32 weights
 * (BuiltModel.withFloat32Weights: no Cast left to fold). An fp16 file then costs what its fp32
 * twin costs, once: file-backed pages the kernel can drop, no second copy.
 *
 * A copy is a safetensors file: one F32 tensor per source byte range (`F16@<offset>+<length>`),
 * metadata naming the source's real path and identity (device, inode, size, mtime). It is found
 * again by that identity: a replaced or edited model file (new inode, size or mtime) gets a new
 * copy and the stale ones of that path are deleted. Several networks of one file (a checkpoint's
 * UNet, text encoder, VAE) read disjoint ranges, so each gets its own copy; a network whose ranges
 * an existing copy already holds reuses it. Copies are written through fs-atomic.ts (a temporary
 * file renamed when complete), so a crash never leaves a truncated copy under its name.
 * When the cache's disk lacks the room, the model keeps its Casts (ONNX Runtime's in-memory copy)
 * and a log line says so.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicStreamed } from '../fs-atomic.js';
import { SafetensorsFile, halfToFloat } from '../safetensors.js';
import type { BuiltModel, Float32Copy, HalfWeight } from './graph.js';

const FORMAT = 'ipadapter-studio float32 copy 1';
/** Read and converted this many source bytes at a time. */
const CHUNK = 8 << 20;
/** Room left on the cache's disk after a copy, or the copy is not made. */
const DISK_MARGIN = 512 << 20;

/** The identity a copy is valid for: the file's real path, device, inode, size and mtime. */
export function fileIdentity(file: string): { real: string; id: string } {
  const real = fs.realpathSync(file);
  const st = fs.statSync(real, { bigint: true });
  return { real, id: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}` };
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 12);
const rangeKey = (w: HalfWeight) => `${w.dtype}@${w.offset}+${w.length}`;

let f16Table: Float32Array | null = null;
/** float32 value of every F16 bit pattern. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = halfToFloat(h);
  }
  return f16Table;
}

/** Converts little-endian F16 / BF16 values to float32 (exactly). */
export function halfToFloat32(src: Uint16Array, dtype: HalfWeight['dtype'], out: Float32Array): void {
  if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer, out.byteOffset, src.length);
    for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  } else {
    const t = halfTable();
    for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
  }
}

/** The float32 copies of one source file: source range -> offset of its float32 data in `file`. */
interface CopyFile {
  file: string;
  offsets: Map<string, number>;
}

/** Reads a copy's header; null when it is not a complete copy of this source identity. */
function openCopy(file: string, real: string, id: string): CopyFile | null {
  try {
    const st = SafetensorsFile.open(file);
    if (st.metadata.format !== FORMAT || st.metadata.source !== real || st.metadata.identity !== id) return null;
    const offsets = new Map<string, number>();
    for (const k of st.keys()) offsets.set(k, st.get(k).offset);
    return { file, offsets };
  } catch {
    return null;
  }
}

/** Writes the float32 copy of `ranges` of `real` to `target` (atomically). */
async function writeCopy(target: string, real: string, id: string, ranges: HalfWeight[]): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: FORMAT, source: real, identity: id } };
  let off = 0;
  for (const r of ranges) {
    const bytes = (r.length / 2) * 4;
    header[rangeKey(r)] = { dtype: 'F32', shape: [r.length / 2], data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const src = await fs.promises.open(real, 'r');
  try {
    await writeFileAtomicStreamed(target, async (fh) => {
      await fh.write(Buffer.concat([len, json]));
      const inBuf = new Uint8Array(new ArrayBuffer(CHUNK));
      const outBuf = new Float32Array(CHUNK / 2);
      for (const r of ranges) {
        for (let done = 0; done < r.length;) {
          const n = Math.min(CHUNK, r.length - done);
          let got = 0;
          while (got < n) {
            const { bytesRead } = await src.read(inBuf, got, n - got, r.offset + done + got);
            if (bytesRead === 0) throw new Error(`${real} ended at byte ${r.offset + done + got}, inside a weight (${rangeKey(r)})`);
            got += bytesRead;
          }
          const out = outBuf.subarray(0, n / 2);
          halfToFloat32(new Uint16Array(inBuf.buffer, 0, n / 2), r.dtype, out);
          await fh.write(new Uint8Array(out.buffer, 0, out.byteLength));
          done += n;
        }
      }
    });
  } finally {
    await src.close();
  }
}

/** Bytes free for an unprivileged writer on the disk holding `dir`; Infinity when unknown. */
function freeBytes(dir: string): number {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return Infinity;
  }
}

/**
 * Deletes a stale copy and the materialized models (session.ts: `<cacheDir>/onnx/<model>/`) that
 * hard-link it, which would otherwise keep its gigabytes on disk; those are rebuilt on demand.
 */
function removeCopy(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return;
  }
  const onnxDir = path.join(path.dirname(path.dirname(file)), 'onnx');
  if (st.nlink > 1 && fs.existsSync(onnxDir)) {
    for (const model of fs.readdirSync(onnxDir)) {
      const d = path.join(onnxDir, model);
      try {
        const links = fs.readdirSync(d).some((f) => {
          const s = fs.statSync(path.join(d, f));
          return s.ino === st.ino && s.dev === st.dev;
        });
        if (links) fs.rmSync(d, { recursive: true, force: true });
      } catch {
        /* not a folder, or in use (Windows): left as it is */
      }
    }
  }
  fs.rmSync(file, { force: true });
}

/**
 * Deletes the copies under `<cacheDir>/fp32-weights` whose source file is gone or has changed
 * since (another identity), and damaged ones; returns what went. The engine runs it at start-up:
 * a model deleted from the models folder must not keep its float32 copy's gigabytes.
 */
export function removeStaleFloat32Copies(cacheDir: string): { file: string; bytes: number }[] {
  const removed: { file: string; bytes: number }[] = [];
  for (const file of staleCopies(path.join(cacheDir, 'fp32-weights'), FORMAT)) {
    try {
      const bytes = fs.statSync(file).size;
      removeCopy(file);
      removed.push({ file, bytes });
    } catch {
      /* in use (Windows) or gone meanwhile: left for the next start */
    }
  }
  return removed;
}

/**
 * The derived weight copies (`*.safetensors` of header `format`, recording their `source` file and its
 * `identity`) under `dir` whose source is gone or has changed since, and damaged ones. [] when `dir`
 * cannot be read (no copies yet, or an unreadable cache: nothing to sweep). The float32 copies here and
 * the int8 copies (onnx/quantize.ts) are swept by it.
 */
export function staleCopies(dir: string, format: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((name) => name.endsWith('.safetensors') && !name.startsWith('.'))
    .map((name) => path.join(dir, name))
    .filter((file) => {
      try {
        const meta = SafetensorsFile.open(file).metadata;
        return meta.format !== format || meta.source === undefined || !fs.existsSync(meta.source) || fileIdentity(meta.source).id !== meta.identity;
      } catch {
        return true; // unreadable: stale
      }
    });
}

const pending = new Map<string, Promise<void>>();

/**
 * The float32 copies of `ranges` (all from `source`), made under `dir` if no complete copy of
 * this identity holds them; null when the disk lacks the room. `log` says what was done.
 */
export async function float32CopyOf(source: string, ranges: HalfWeight[], dir: string, log: (msg: string) => void): Promise<CopyFile | null> {
  const { real, id } = fileIdentity(source);
  const stem = `${path.basename(real)}.${hash(real)}`;
  const prefix = `${stem}.${hash(id)}.`;
  const unique = [...new Map(ranges.map((r) => [rangeKey(r), r])).values()].sort((a, b) => a.offset - b.offset);
  fs.mkdirSync(dir, { recursive: true });
  const names = fs.readdirSync(dir);
  for (const name of names.filter((n) => n.startsWith(prefix) && n.endsWith('.safetensors'))) {
    const copy = openCopy(path.join(dir, name), real, id);
    if (copy && unique.every((r) => copy.offsets.has(rangeKey(r)))) {
      log(`fp16/bf16 weights: reading ${unique.length} weights of ${real} from their float32 copy ${copy.file}`);
      return copy;
    }
  }
  const target = path.join(dir, `${prefix}${hash(unique.map(rangeKey).join(','))}.safetensors`);
  let job = pending.get(target);
  if (!job) {
    const bytes = unique.reduce((a, r) => a + r.length * 2, 0);
    if (freeBytes(dir) < bytes + DISK_MARGIN) {
      log(
        `fp16/bf16 weights: no room for a ${(bytes / 2 ** 30).toFixed(2)} GB float32 copy of ${real} in ${dir}; ONNX Runtime converts them in memory instead (about twice the file's size)`,
      );
      return null;
    }
    // Copies of an older version of this path (replaced or edited since) are stale.
    for (const name of names) {
      if (name.startsWith(`${stem}.`) && !name.startsWith(prefix) && name.endsWith('.safetensors')) removeCopy(path.join(dir, name));
    }
    const t0 = performance.now();
    job = writeCopy(target, real, id, unique)
      .then(() => {
        log(
          `fp16/bf16 weights: wrote the float32 copy of ${unique.length} weights of ${real} (${(bytes / 2 ** 30).toFixed(2)} GB) to ${target} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
      })
      .finally(() => pending.delete(target));
    pending.set(target, job);
  }
  await job;
  const copy = openCopy(target, real, id);
  if (!copy) throw new Error(`${target}: the float32 copy of ${real} just written does not read back`);
  return copy;
}

/**
 * `model` reading its F16 / BF16 weights from float32 copies under `<cacheDir>/fp32-weights`
 * (made on first use); the model itself when it has none, or for the weights of a file whose
 * copy there is no room for (those keep their Casts).
 */
export async function withFloat32Copies(model: BuiltModel, cacheDir: string, log: (msg: string) => void = () => {}): Promise<BuiltModel> {
  if (!model.halfWeights.length) return model;
  const dir = path.join(cacheDir, 'fp32-weights');
  const bySource = new Map<string, HalfWeight[]>();
  for (const w of model.halfWeights) bySource.set(w.file, [...(bySource.get(w.file) ?? []), w]);
  const copies = new Map<string, CopyFile | null>();
  for (const [file, ranges] of bySource) copies.set(file, await float32CopyOf(file, ranges, dir, log));
  return model.withFloat32Weights((w): Float32Copy | null => {
    const copy = copies.get(w.file);
    const offset = copy?.offsets.get(rangeKey(w));
    return copy && offset !== undefined ? { file: copy.file, offset } : null;
  });
}
