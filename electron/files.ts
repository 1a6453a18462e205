/**
 * File-system helpers of the desktop host: atomic writes, bounded reads, safe file names.
 * Everything the user saves goes through `writeFileAtomic`, so a crash or a full disk never
 * leaves half a workflow where the old one was.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';

/**
 * Writes `bytes` to `target` via a temporary file in the same folder, flushed, then renamed over
 * the target (rename is atomic within one file system, also over an existing file on Windows).
 */
export async function writeFileAtomic(target: string, bytes: Uint8Array | string): Promise<void> {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await fs.promises.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, target);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw new Error(`could not write ${target}: ${(e as Error).message}`);
  }
}

/** Reads a file the user chose, refusing anything larger than `maxBytes` (or not a file). */
export async function readFileLimited(file: string, maxBytes: number): Promise<Buffer> {
  const st = await fs.promises.stat(file);
  if (!st.isFile()) throw new Error(`${file} is not a file`);
  if (st.size > maxBytes) {
    throw new Error(`${file} is ${(st.size / 2 ** 20).toFixed(1)} MiB; at most ${(maxBytes / 2 ** 20).toFixed(0)} MiB can be opened`);
  }
  return fs.promises.readFile(file);
}

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i;

/**
 * A plain file name from a name the renderer suggested: the last path segment only, without
 * characters that are invalid on any desktop file system. Never contains a separator or `..`.
 */
export function safeFileName(suggested: string, fallback = 'untitled'): string {
  let name = suggested.split(/[\\/]/).pop() ?? '';
  name = name.replace(/[\u0000-\u001f<>:"|?*]/g, '_').replace(/^[\s.]+|[\s.]+$/g, '').slice(0, 200);
  if (!name) return fallback;
  return WINDOWS_RESERVED.test(name) ? `_${name}` : name;
}

/** `dir/name`, or `dir/name-1.ext`, `dir/name-2.ext`... when taken (exports never overwrite). */
export function uniquePath(dir: string, name: string): string {
  const ext = path.extname(name);
  const stem = name.slice(0, name.length - ext.length);
  let candidate = path.join(dir, name);
  for (let i = 1; fs.existsSync(candidate); i++) candidate = path.join(dir, `${stem}-${i}${ext}`);
  return candidate;
}
