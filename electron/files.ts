/**
 * File-system helpers of the desktop host: bounded reads, safe file names, names that never
 * overwrite. Writes go through models/fs-atomic.ts `writeFileAtomic`, so a crash or a full disk
 * never leaves half a workflow where the old one was.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

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

// eslint-disable-next-line no-control-regex -- control characters are not allowed in file names
const NOT_IN_FILE_NAMES = /[\u0000-\u001f<>:"|?*]/g;

/**
 * A plain file name from a name the renderer suggested: the last path segment only, without
 * characters that are invalid on any desktop file system. Never contains a separator or `..`.
 */
export function safeFileName(suggested: string, fallback = 'untitled'): string {
  let name = suggested.split(/[\\/]/).pop() ?? '';
  name = name
    .replace(NOT_IN_FILE_NAMES, '_')
    .replace(/^[\s.]+|[\s.]+$/g, '')
    .slice(0, 200);
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

/**
 * Opens `dir` in the file manager (`openPath`: Electron's shell.openPath) only when it is a
 * folder: a setting naming an executable or a document is never handed to the shell to run.
 * Returns null when opened, else the sentence to show.
 */
export async function openFolderOnly(dir: string, openPath: (p: string) => Promise<string>): Promise<string | null> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(dir);
  } catch {
    return `${dir} does not exist`;
  }
  if (!st.isDirectory()) return `${dir} is not a folder; it is not opened`;
  const err = await openPath(dir);
  return err ? `could not open ${dir}: ${err}` : null;
}
