/**
 * Converting a PyTorch pickle (.ckpt/.pt/.pth/.bin) to .safetensors without running it: the
 * tensors of models/pickle.ts's state-dict table (`state_dict` unwrapped, nested dicts joined with
 * ".", i.e. the key names the loaders and the safetensors releases use), dtypes and bytes as they
 * are, written in the safetensors layout (8-byte length, JSON header padded to 8 bytes, data).
 *
 * The output is streamed tensor by tensor (checkpoints are several GB) into a temporary file in
 * the target's folder, flushed and renamed over the target, the same scheme as models/fs-atomic.ts,
 * so a failed or interrupted conversion never leaves a partial .safetensors under the target name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isPickleFile, openPickleFile } from '../pickle.js';
import { atomicTempPath } from '../fs-atomic.js';
import { openRegularFileSync } from '../regular-file.js';
import type { SafetensorsFile, TensorRef } from '../safetensors.js';

export interface ConvertResult {
  out: string;
  tensors: number;
  bytes: number;
}

export interface ConvertOptions {
  /** Output file (default: the input's stem + .safetensors, beside it). */
  out?: string;
  /** Replace an existing output file. */
  force?: boolean;
}

/** The safetensors path a pickle converts to by default. */
export function defaultOutput(file: string): string {
  const abs = path.resolve(file);
  return path.join(path.dirname(abs), `${path.basename(abs, path.extname(abs))}.safetensors`);
}

/** The header (length + JSON, padded to 8 bytes) and the data offsets of `tensors`, in order. */
export function safetensorsHeader(tensors: TensorRef[], metadata: Record<string, string>): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const t of tensors) {
    header[t.key] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.length] };
    off += t.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([len, padded]);
}

/** Copies `length` bytes at `offset` of `fromFd` to the end of `toFd`, in chunks. */
function copyRange(fromFd: number, toFd: number, offset: number, length: number, buf: Buffer): void {
  for (let done = 0; done < length;) {
    const n = fs.readSync(fromFd, buf, 0, Math.min(buf.length, length - done), offset + done);
    if (n === 0) throw new Error(`unexpected end of file at byte ${offset + done}`);
    fs.writeSync(toFd, buf, 0, n);
    done += n;
  }
}

/**
 * Writes the tensors of `table` to `target` as safetensors, atomically. With `replace: false` an
 * existing `target` (a file or a link, appeared meanwhile) is never replaced: the temporary is
 * hard-linked to the target name, which fails when that name exists.
 */
export function writeSafetensorsAtomic(table: SafetensorsFile, target: string, metadata: Record<string, string>, opts: { replace?: boolean } = {}): number {
  const refs = table.keys().map((k) => table.get(k));
  const tmp = atomicTempPath(target); // the naming the start-up cleaner knows (models/fs-atomic.ts)
  const fds = new Map<string, number>();
  let out: number | undefined;
  try {
    out = fs.openSync(tmp, 'wx', 0o644);
    const header = safetensorsHeader(refs, metadata);
    fs.writeSync(out, header);
    const buf = Buffer.alloc(16 * 1024 * 1024);
    let total = header.length;
    for (const r of refs) {
      let fd = fds.get(r.file);
      if (fd === undefined) fds.set(r.file, (fd = openRegularFileSync(r.file)));
      copyRange(fd, out, r.offset, r.length, buf);
      total += r.length;
    }
    fs.fsyncSync(out);
    fs.closeSync(out);
    out = undefined;
    if (opts.replace === false) publishNoReplace(tmp, target);
    else fs.renameSync(tmp, target);
    return total;
  } catch (e) {
    if (out !== undefined) fs.closeSync(out);
    fs.rmSync(tmp, { force: true });
    throw new Error(`could not write ${target}: ${(e as Error).message}`, { cause: e });
  } finally {
    for (const fd of fds.values()) fs.closeSync(fd);
  }
}

/** Moves `tmp` to `target` unless `target` exists (link + unlink; rename where links are not supported). */
function publishNoReplace(tmp: string, target: string): void {
  try {
    fs.linkSync(tmp, target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new Error(`${target} already exists; it is left as it is`, { cause: e });
    if (fs.lstatSync(target, { throwIfNoEntry: false })) throw new Error(`${target} already exists; it is left as it is`, { cause: e });
    fs.renameSync(tmp, target); // a file system without hard links (FAT): the check above is the guard
    return;
  }
  fs.rmSync(tmp, { force: true });
}

/**
 * True when `target` already holds what converting `table` with `metadata` writes: the same
 * header (keys, dtypes, shapes, offsets, metadata), the same size, and not older than the source.
 * Reads only the header; a link to a non-file or an unreadable target is not the same conversion.
 */
export function isSameConversion(table: SafetensorsFile, target: string, metadata: Record<string, string>, source: string): boolean {
  const refs = table.keys().map((k) => table.get(k));
  const header = safetensorsHeader(refs, metadata);
  const size = header.length + refs.reduce((n, r) => n + r.length, 0);
  let fd: number | undefined;
  try {
    fd = openRegularFileSync(target);
    const st = fs.fstatSync(fd);
    if (st.size !== size || st.mtimeMs < fs.statSync(source).mtimeMs) return false;
    const buf = Buffer.alloc(header.length);
    return fs.readSync(fd, buf, 0, buf.length, 0) === buf.length && buf.equals(header);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Converts a torch.save file to .safetensors; throws with a sentence for a person on any problem. */
export function convertToSafetensors(file: string, opts: ConvertOptions = {}): ConvertResult {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isFile()) throw new Error(`${abs}: no such file`);
  if (!isPickleFile(abs))
    throw new Error(
      `${path.basename(abs)} is not a PyTorch pickle (torch.save zip or legacy file); if it is already .safetensors, use it as it is (file: ${abs})`,
    );
  const out = path.resolve(opts.out ?? defaultOutput(abs));
  if (out === abs) throw new Error(`${abs}: the output would replace the input; pass --out`);
  if (fs.existsSync(out) && !opts.force) throw new Error(`${out} already exists; pass --force to replace it`);
  const table = openPickleFile(abs);
  const bytes = writeSafetensorsAtomic(table, out, { format: 'pt', converted_from: path.basename(abs) });
  return { out, tensors: table.keys().length, bytes };
}
