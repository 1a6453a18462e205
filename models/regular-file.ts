/**
 * Opening model and image files without ever blocking on one that is not a regular file.
 *
 * Opening a FIFO for reading blocks until something opens it for writing, and a synchronous
 * open blocks the whole process: in web mode the server then answers nothing, not even Cancel.
 * So every loader opens through `openRegularFileSync`: the open is non-blocking (O_NONBLOCK,
 * which does nothing to a regular file's reads), and the file is checked with fstat on the
 * opened descriptor (no window between a check and the open); a FIFO, socket, device or folder
 * is refused with "<file> is not a regular file (a FIFO)". Validation says the same before a
 * run (engine/validate.ts through `notRegularFile`).
 */
import * as fs from 'node:fs';

/** What kind of thing a non-regular file is, for the message. */
function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a plain file';
}

export class NotRegularFileError extends Error {
  constructor(
    readonly file: string,
    readonly kind: string,
  ) {
    super(`${file} is not a regular file (${kind})`);
  }
}

/** Non-blocking open flags where the platform has them (Windows has no FIFOs to block on). */
const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/** Opens `file` for reading; throws NotRegularFileError (closing it) when it is not a regular file. */
export function openRegularFileSync(file: string): number {
  const fd = fs.openSync(file, READ_FLAGS);
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new NotRegularFileError(file, kindOf(st));
  }
  return fd;
}

/** fs.readFileSync for a regular file only (configs, vocabularies, merges). */
export function readRegularFileSync(file: string): Buffer;
export function readRegularFileSync(file: string, encoding: BufferEncoding): string;
export function readRegularFileSync(file: string, encoding?: BufferEncoding): Buffer | string {
  const fd = openRegularFileSync(file);
  try {
    return encoding ? fs.readFileSync(fd, encoding) : fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A sentence when `p` exists but is neither a regular file nor (when `folderOk`) a folder, else
 * null (also when it does not exist: callers report that themselves). stat follows symlinks and
 * never opens the file, so it cannot block.
 */
export function notRegularFile(p: string, folderOk: boolean): string | null {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(p, { throwIfNoEntry: false });
  } catch {
    return null; // unreadable: the loader's open names it
  }
  if (!st || st.isFile() || (folderOk && st.isDirectory())) return null;
  return `${p} is not a regular file (${kindOf(st)})`;
}
