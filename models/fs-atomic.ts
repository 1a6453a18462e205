/**
 * Atomic file writes, used by every writer in the app (settings, uploads, saved images, generated
 * models, the desktop host's Save): the bytes go to a temporary file in the target's folder, are
 * flushed to disk, then renamed over the target. Rename is atomic within one file system (also
 * over an existing file on Windows), so a crash, a full disk or a killed process never leaves a
 * truncated file under the target's name. The temporary name starts with a dot, so model
 * listings and the output folder skip it.
 * It lives in models/ because models/onnx/session.ts writes generated models through it and
 * models/ never imports engine/; engine/ and electron/ import it from here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';

export interface AtomicWriteOptions {
  /** Create the target's folder first (default true). */
  mkdir?: boolean;
}

function tempPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
}

/** Synchronous atomic write (engine code paths that are synchronous: model caches, demo weights, outputs). */
export function writeFileAtomicSync(target: string, data: Uint8Array | string, opts: AtomicWriteOptions = {}): void {
  const tmp = tempPath(target);
  try {
    if (opts.mkdir !== false) fs.mkdirSync(path.dirname(target), { recursive: true });
    const fd = fs.openSync(tmp, 'wx', 0o644);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* the folder itself is unusable: nothing was created */
    }
    throw new Error(`could not write ${target}: ${(e as Error).message}`, { cause: e });
  }
}

/** Asynchronous atomic write (hosts: settings, Save / Save As / export). */
export async function writeFileAtomic(target: string, data: Uint8Array | string, opts: AtomicWriteOptions = {}): Promise<void> {
  const tmp = tempPath(target);
  try {
    if (opts.mkdir !== false) await fs.promises.mkdir(path.dirname(target), { recursive: true });
    const fh = await fs.promises.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, target);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw new Error(`could not write ${target}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Asynchronous atomic write of a file too large to hold in memory (the fp32 weight caches of
 * onnx/fp32-weights.ts): `write` gets the temporary file's handle and writes it in pieces; the
 * file is flushed and renamed over `target` only when `write` resolves. If `write` throws (or
 * the disk fills), the temporary file is removed and `target` is untouched.
 */
export async function writeFileAtomicStreamed(target: string, write: (fh: fs.promises.FileHandle) => Promise<void>, opts: AtomicWriteOptions = {}): Promise<void> {
  const tmp = tempPath(target);
  try {
    if (opts.mkdir !== false) await fs.promises.mkdir(path.dirname(target), { recursive: true });
    const fh = await fs.promises.open(tmp, 'wx', 0o644);
    try {
      await write(fh);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, target);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw new Error(`could not write ${target}: ${(e as Error).message}`, { cause: e });
  }
}
