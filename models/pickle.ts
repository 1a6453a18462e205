/**
 * Opening weight files of either kind people download: safetensors, and PyTorch pickles (.ckpt,
 * .pt, .pth, .bin) made by torch.save, chosen by content rather than by extension.
 *
 * A pickle is a program for Python's unpickler and can run arbitrary code, so it is never given to
 * one: models/pickle/unpickler.ts interprets the opcodes itself and builds only plain data and
 * tensor descriptions, refusing every global except the few torch.save writes
 * (models/pickle/torch-file.ts; zip and legacy formats). A tensor of a pickle is a byte range of
 * the file, as in safetensors, so loaders and the ONNX external-data path treat both alike:
 * `openTensorFile` returns the same `SafetensorsFile` table for every format.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openRegularFileSync } from './regular-file.js';
import { SafetensorsFile } from './safetensors.js';
import { type TorchObject, readTorchLegacy, readTorchZip, stateDictTensors } from './pickle/torch-file.js';
import { PickleError } from './pickle/unpickler.js';
import { ZipError } from './pickle/zip.js';

const PICKLE_EXT = /\.(ckpt|pt|pth|bin|pkl)$/i;

/** A pickle file that cannot be used (refused or malformed); carries the file for the UI. */
export class PickleFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
    readonly refusedGlobal?: string,
  ) {
    super(message);
    this.name = 'PickleFileError';
  }
}

const isZip = (h: Uint8Array) => h.length >= 4 && h[0] === 0x50 && h[1] === 0x4b && h[2] === 0x03 && h[3] === 0x04;

/**
 * True when the first bytes are a torch.save zip or a pickle stream. A safetensors file starts
 * with its header length (u64 LE): for a zip signature that length would be 67 MB, and for a
 * pickle stream bytes 3..7 would be non-zero (a header over 16 MB), neither of which a real
 * safetensors file has.
 */
export function looksLikePickle(head: Uint8Array): boolean {
  if (isZip(head)) return true;
  if (head.length >= 8 && head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return head.subarray(3, 8).some((b) => b !== 0);
  return false;
}

function firstBytes(file: string): Uint8Array | null {
  let fd: number | undefined;
  try {
    if (!fs.statSync(file).isFile()) return null;
    fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(8);
    const n = fs.readSync(fd, buf, 0, 8, 0);
    return buf.subarray(0, n);
  } catch {
    return null; // missing or unreadable: the loader's own open reports that
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** True when `file` is a PyTorch pickle by its first bytes (the extension does not matter). */
export function isPickleFile(file: string): boolean {
  const head = firstBytes(path.resolve(file));
  return head !== null && looksLikePickle(head);
}

/**
 * Reads a torch.save file (zip or legacy) without running it and returns its state dict as a
 * tensor table: `state_dict` unwrapped, nested dicts joined with "." (see stateDictTensors).
 * Throws PickleFileError naming the file and the refused global or the defect.
 */
export function openPickleFile(file: string): SafetensorsFile {
  const abs = path.resolve(file);
  let fd: number;
  try {
    fd = openRegularFileSync(abs);
  } catch (e) {
    throw new PickleFileError(abs, `${path.basename(abs)}: cannot open: ${(e as Error).message} (file: ${abs})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(8, size));
    fs.readSync(fd, head, 0, head.length, 0);
    let obj: TorchObject;
    if (isZip(head)) obj = readTorchZip(fd, size);
    else if (looksLikePickle(head)) obj = readTorchLegacy(fd, size);
    else throw new PickleError('not a PyTorch file: it starts neither with a zip archive nor with a pickle');
    const tensors = stateDictTensors(abs, obj);
    return SafetensorsFile.fromRefs(abs, tensors, { format: 'pt', container: `torch.save ${obj.format}` }, size);
  } catch (e) {
    if (!(e instanceof PickleError || e instanceof ZipError || e instanceof RangeError)) throw e;
    const refused = e instanceof PickleError ? e.refusedGlobal : undefined;
    throw new PickleFileError(abs, `${path.basename(abs)}: ${e.message} (file: ${abs})`, refused);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Opens any weight file as a tensor table, picking the reader by content: safetensors, torch.save
 * zip, or legacy torch.save pickle. Errors name the file and the defect (SafetensorsError or
 * PickleFileError).
 */
export function openTensorFile(file: string): SafetensorsFile {
  const abs = path.resolve(file);
  return isPickleFile(abs) ? openPickleFile(abs) : SafetensorsFile.open(abs);
}

/**
 * Throws PickleFileError when `file` is a PyTorch pickle (by extension or by its first bytes), for
 * the loaders that read safetensors only (CLIP vision, diffusers component folders).
 * `what` names the expected model for the sentence, e.g. "the CLIP vision model".
 */
export function refusePickle(file: string, what: string): void {
  const abs = path.resolve(file);
  const byName = PICKLE_EXT.test(abs);
  if (!byName && !isPickleFile(abs)) return;
  const ext = path.extname(abs) || '(no extension)';
  const kind = byName ? `a PyTorch pickle file (${ext})` : `a PyTorch pickle file despite its ${ext} name (its first bytes are torch.save / pickle data)`;
  const stem = path.basename(abs, path.extname(abs));
  throw new PickleFileError(
    abs,
    `${path.basename(abs)}: ${what} is ${kind}, which this loader does not read (pickle files are never unpickled here, for safety). ` +
      `Please convert it to .safetensors and load that file instead: npm run convert-model -- "${abs}" writes ${stem}.safetensors beside it, ` +
      `without running anything from the pickle (file: ${abs})`,
  );
}
