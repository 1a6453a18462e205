/**
 * The user-data inputs folder: uploaded, imported and unbundled images, each stored once under a
 * content-hashed name (`<stem>-<sha256 prefix><ext>`) and referred to as `inputs/<file>`
 * (engine/image-refs.ts), so no saved workflow names a folder of this machine.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import { hashOfStoredName, inputsFileOf, inputsRef, isAbsoluteRef } from '../image-refs.js';
import { isInsideReal } from '../paths.js';

/** Image dimensions from the header (PNG, JPEG, WebP), or null when the bytes are not one of those. */
export function imageSize(b: Buffer): { width: number; height: number; ext: string } | null {
  if (b.length > 24 && b.readUInt32BE(0) === 0x89504e47 && b.toString('latin1', 12, 16) === 'IHDR') {
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), ext: '.png' };
  }
  if (b.length > 4 && b[0] === 0xff && b[1] === 0xd8) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const marker = b[i + 1];
      const len = b.readUInt16BE(i + 2);
      // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC) carry the frame size.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7), ext: '.jpg' };
      }
      i += 2 + len;
    }
    return null;
  }
  if (b.length > 30 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') {
    const kind = b.toString('latin1', 12, 16);
    if (kind === 'VP8X') return { width: 1 + b.readUIntLE(24, 3), height: 1 + b.readUIntLE(27, 3), ext: '.webp' };
    if (kind === 'VP8 ') return { width: b.readUInt16LE(26) & 0x3fff, height: b.readUInt16LE(28) & 0x3fff, ext: '.webp' };
    if (kind === 'VP8L') {
      const bits = b.readUInt32LE(21);
      return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >> 14) & 0x3fff), ext: '.webp' };
    }
  }
  return null;
}

export const sha256 = (bytes: Uint8Array): string => crypto.createHash('sha256').update(bytes).digest('hex');

/** The URL both hosts serve an inputs-folder file under (confined to that folder). */
export const inputsUrl = (file: string): string => '/inputs/' + encodeURIComponent(file);

export interface StoredImage {
  /** The image param value: `inputs/<file>`. */
  value: string;
  file: string;
  url: string;
  width: number;
  height: number;
  sha256: string;
  /** False when the same bytes were already stored (nothing written). */
  written: boolean;
}

/** The stored name of `bytes` given the name it came with: the stem (minus an earlier hash suffix) and its hash prefix. */
export function storedNameOf(name: string, hash: string, ext: string): string {
  const stem =
    path
      .basename(name.replace(/\\/g, '/'))
      .replace(/\.[^.]*$/, '')
      .replace(/-[0-9a-f]{12}$/i, '')
      .replace(/[^\w.-]+/g, '_')
      .slice(0, 60) || 'image';
  return `${stem}-${hash.slice(0, 12)}${ext}`;
}

/**
 * Writes image bytes under `<stem>-<sha256 prefix><ext>`. The name promises the content, so the
 * write is atomic (a cut write never leaves a truncated file that later uploads would trust), and
 * a file already there is kept only when its bytes hash the same: the same image stored twice,
 * from an upload, an example or a bundle, is one file.
 */
export function storeImageBytes(inputsDir: string, name: string, bytes: Buffer): StoredImage {
  const size = imageSize(bytes);
  if (!size) throw new Error(`${path.basename(name)} is not a PNG, JPEG or WebP image`);
  const hash = sha256(bytes);
  let file = storedNameOf(name, hash, size.ext);
  let written = false;
  if (!sameContent(path.join(inputsDir, file), bytes.length, hash)) {
    // The same bytes stored earlier under another stem are that file, not a second copy.
    const twin = findStored(inputsDir, hash, bytes.length);
    if (twin) file = twin;
    else {
      writeFileAtomicSync(path.join(inputsDir, file), bytes);
      written = true;
    }
  }
  return { value: inputsRef(file), file, url: inputsUrl(file), width: size.width, height: size.height, sha256: hash, written };
}

/** A file of the inputs folder holding exactly these bytes (its name carries their hash prefix), or null. */
function findStored(inputsDir: string, hash: string, length: number): string | null {
  let names: string[];
  try {
    names = fs.readdirSync(inputsDir);
  } catch {
    return null;
  }
  const prefix = hash.slice(0, 12);
  return names.find((f) => hashOfStoredName(f) === prefix && sameContent(path.join(inputsDir, f), length, hash)) ?? null;
}

function sameContent(file: string, length: number, hash: string): boolean {
  try {
    if (fs.statSync(file).size !== length) return false;
    return sha256(fs.readFileSync(file)) === hash;
  } catch {
    return false;
  }
}

/** What the editor needs to know about one image ref: whether the engine will find it, its thumbnail. */
export interface ImageRefStatus {
  ref: string;
  found: boolean;
  /** The ref to keep in the document (an absolute path inside the inputs folder becomes `inputs/<file>`). */
  value: string;
  url?: string;
}

/**
 * The status of an image ref for a workflow without a folder (what the editor has open): an
 * `inputs/<file>` ref is looked up in the inputs folder, an absolute path as it is (an absolute
 * path into the inputs folder, as older builds saved, is rewritten as `inputs/<file>`); any other
 * relative path has nothing to resolve against and is missing.
 */
export function imageRefStatus(inputsDir: string, ref: string): ImageRefStatus {
  const stored = inputsFileOf(ref);
  if (stored !== null) {
    const full = path.join(inputsDir, stored);
    return isRegularFile(full) && isInsideReal(inputsDir, full, false)
      ? { ref, found: true, value: ref, url: inputsUrl(stored) }
      : { ref, found: false, value: ref };
  }
  if (isAbsoluteRef(ref)) {
    const parts = ref.split(/[\\/]/);
    const file = parts[parts.length - 1];
    const ours = path.isAbsolute(ref) && path.resolve(path.dirname(ref)) === path.resolve(inputsDir) && isRegularFile(ref);
    // An older build's absolute path into some inputs folder (this machine's or another's): the
    // content-hashed name means the same bytes wherever the inputs folder has it.
    const sameName = parts[parts.length - 2] === 'inputs' && hashOfStoredName(file) !== null && isRegularFile(path.join(inputsDir, file));
    if (ours || sameName) return { ref, found: true, value: inputsRef(file), url: inputsUrl(file) };
    // A file elsewhere (a hand-written CLI workflow): the engine reads it, the editor shows no thumbnail.
    return { ref, found: path.isAbsolute(ref) && isRegularFile(ref), value: ref };
  }
  return { ref, found: false, value: ref };
}

/** Whether a stored name still matches its bytes' hash prefix (a bundle may not lie about it). */
export function nameMatchesHash(file: string, hash: string): boolean {
  return hashOfStoredName(file) === hash.slice(0, 12);
}

function isRegularFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
