/**
 * Atomic file writes, used by every writer in the app (settings, uploads, saved images, generated
 * models, the desktop host's Save): the bytes go to a temporary file in the target's folder, are
 * flushed to disk, then renamed over the target. Rename is atomic within one file system (also
 * over an existing file on Windows), so a crash, a full disk or a killed process never leaves a
 * truncated file under the target's name. The temporary name starts with a dot, so model
 * listings and the output folder skip it. A process killed mid-write leaves its temporary: the
 * engine removes stale ones of this naming at start-up (cleanStaleTemporaries).
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

/** The temporary beside `target` an atomic write goes through (models/pickle/convert.ts uses it too). */
export function atomicTempPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
}

/** Synchronous atomic write (engine code paths that are synchronous: model caches, demo weights, outputs). */
export function writeFileAtomicSync(target: string, data: Uint8Array | string, opts: AtomicWriteOptions = {}): void {
  const tmp = atomicTempPath(target);
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
  const tmp = atomicTempPath(target);
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
export async function writeFileAtomicStreamed(
  target: string,
  write: (fh: fs.promises.FileHandle) => Promise<void>,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = atomicTempPath(target);
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

// ---- stale temporaries -------------------------------------------------------------------------

/** Our temporary names: `.<target name>.<pid>.<8 hex>.tmp` (atomicTempPath above). */
const ATOMIC_TEMP = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/;

/** True when `name` is a temporary file name of our atomic writes. */
export function isAtomicTempName(name: string): boolean {
  return ATOMIC_TEMP.test(name);
}

/** Temporaries younger than this may belong to a write in progress (its mtime moves with every write). */
export const STALE_TEMP_MS = 60_000;

export interface TempFolder {
  dir: string;
  /** Levels of subfolders to look into (0: the folder itself). Symlinked folders are never entered. */
  depth: number;
  /**
   * Also any `*.tmp` file (not only our atomic naming): for folders that are wholly ours, such as
   * the model cache, where the session cache copies weights through `<file>.tmp`.
   */
  anyTmp?: boolean;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporaries an interrupted atomic write left behind (a crash or a kill between the
 * open and the rename): only files of our naming (or any `.tmp` in a folder marked `anyTmp`),
 * only regular files not modified for `olderThanMs`, and never one whose writer (the pid in its
 * name) is another process still running. Never throws; returns what it removed.
 */
export async function cleanStaleTemporaries(
  folders: TempFolder[],
  opts: { olderThanMs?: number; now?: number } = {},
): Promise<{ file: string; bytes: number }[]> {
  const cutoff = (opts.now ?? Date.now()) - (opts.olderThanMs ?? STALE_TEMP_MS);
  const removed: { file: string; bytes: number }[] = [];
  const visit = async (dir: string, depth: number, anyTmp: boolean): Promise<void> => {
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (depth > 0) await visit(p, depth - 1, anyTmp);
        continue;
      }
      if (!e.isFile()) continue;
      const m = ATOMIC_TEMP.exec(e.name);
      if (!m && !(anyTmp && e.name.endsWith('.tmp'))) continue;
      if (m && Number(m[1]) !== process.pid && alive(Number(m[1]))) continue;
      try {
        const st = await fs.promises.lstat(p);
        if (!st.isFile() || st.mtimeMs > cutoff) continue;
        await fs.promises.rm(p, { force: true });
        removed.push({ file: p, bytes: st.size });
      } catch {
        /* gone meanwhile, or not ours to remove */
      }
    }
  };
  for (const f of folders) await visit(f.dir, f.depth, f.anyTmp === true);
  return removed;
}
