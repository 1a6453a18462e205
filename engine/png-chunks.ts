/**
 * PNG chunks over plain Uint8Arrays: no Node imports, so the engine (engine/png.ts, which adds
 * zlib for compressed text) and the renderer (renderer/png.ts, which inflates with the browser's
 * DecompressionStream) share one reader and one writer.
 *
 * A PNG is the 8-byte signature and a list of chunks: length (4 bytes, big endian), type
 * (4 ASCII bytes), data, CRC-32 of type + data. Text lives in `tEXt` (key NUL Latin-1 text),
 * `zTXt` (key NUL method compressed-text) and `iTXt` (key NUL flag method language NUL
 * translated-key NUL UTF-8 text, optionally deflated). We write `tEXt` when the text is
 * Latin-1 and `iTXt` otherwise (as Pillow's add_text does), before IEND.
 */

export const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Our key for the workflow JSON (not ComfyUI's `workflow`/`prompt`, whose formats differ). */
export const WORKFLOW_CHUNK_KEY = 'ipadapter-studio-workflow';
/** Automatic1111's key for its generation-parameters text. */
export const PARAMETERS_CHUNK_KEY = 'parameters';
/**
 * The only text keys whose compressed bodies are ever inflated: ours, A1111's parameters and
 * ComfyUI's workflow / prompt. Any other compressed chunk is skipped unread, so a zip bomb under
 * some other key costs nothing.
 */
export const READ_TEXT_KEYS: readonly string[] = [WORKFLOW_CHUNK_KEY, PARAMETERS_CHUNK_KEY, 'workflow', 'prompt'];
/** The most a compressed text chunk may inflate to (16 MB: a large workflow is well under 1 MB). */
export const MAX_TEXT_CHUNK_BYTES = 16 * 2 ** 20;

/** The sentence for a text chunk that inflates past MAX_TEXT_CHUNK_BYTES. */
export function textChunkTooLarge(key: string): string {
  return `PNG text chunk "${key}" inflates to more than ${MAX_TEXT_CHUNK_BYTES / 2 ** 20} MB; refused (a workflow or parameters text is far smaller, so this is a damaged or hostile file)`;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309 / ITU-T V.42, as the PNG specification requires) over the concatenated parts. */
export function crc32(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

export interface PngChunk {
  type: string;
  /** A view into the PNG's bytes (not a copy). */
  data: Uint8Array;
}

/** Bytes as Latin-1 text (one character per byte). */
export function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

function latin1Bytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Splits a PNG into chunks (up to IEND), checking the signature, every length and every CRC. */
export function readChunks(png: Uint8Array): PngChunk[] {
  if (!isPng(png)) throw new Error('not a PNG file (bad signature)');
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: PngChunk[] = [];
  let off = 8;
  while (off < png.length) {
    if (off + 12 > png.length) throw new Error(`PNG truncated at byte ${off}`);
    const len = view.getUint32(off);
    const typeBytes = png.subarray(off + 4, off + 8);
    const type = latin1(typeBytes);
    if (off + 12 + len > png.length) throw new Error(`PNG chunk ${type} at byte ${off} runs past the end of the file`);
    const data = png.subarray(off + 8, off + 8 + len);
    if (view.getUint32(off + 8 + len) !== crc32(typeBytes, data)) throw new Error(`PNG chunk ${type} at byte ${off} has a bad CRC`);
    chunks.push({ type, data });
    off += 12 + len;
    if (type === 'IEND') break;
  }
  return chunks;
}

/** One chunk's bytes: length, type, data, CRC. */
export function encodeChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(latin1Bytes(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

// eslint-disable-next-line no-control-regex -- the range starts at U+0000 because every Latin-1 code point is allowed
const isLatin1 = (s: string) => /^[\u0000-\u00ff]*$/.test(s);

function checkKey(key: string): void {
  if (key.length < 1 || key.length > 79 || !isLatin1(key) || key.includes('\0')) {
    throw new Error(`PNG text key must be 1-79 Latin-1 characters: ${JSON.stringify(key)}`);
  }
}

/** A text chunk for `key`: tEXt when Latin-1, otherwise uncompressed iTXt (UTF-8). */
export function textChunk(key: string, text: string): Uint8Array {
  checkKey(key);
  if (isLatin1(text)) return encodeChunk('tEXt', concatBytes([latin1Bytes(key), new Uint8Array([0]), latin1Bytes(text)]));
  // keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL, text.
  return encodeChunk('iTXt', concatBytes([latin1Bytes(key), new Uint8Array([0, 0, 0, 0, 0]), new TextEncoder().encode(text)]));
}

/** The parts of a text chunk (tEXt, zTXt, iTXt) before any inflating, or null for other chunks. */
export interface TextChunkParts {
  key: string;
  /** The body is zlib-deflated (zTXt always, iTXt with its flag set). */
  compressed: boolean;
  body: Uint8Array;
  encoding: 'latin1' | 'utf8';
}

export function textChunkParts(c: PngChunk): TextChunkParts | null {
  if (c.type !== 'tEXt' && c.type !== 'zTXt' && c.type !== 'iTXt') return null;
  const nul = c.data.indexOf(0);
  if (nul < 0) return null;
  const key = latin1(c.data.subarray(0, nul));
  if (c.type === 'tEXt') return { key, compressed: false, body: c.data.subarray(nul + 1), encoding: 'latin1' };
  if (c.type === 'zTXt') return { key, compressed: true, body: c.data.subarray(nul + 2), encoding: 'latin1' };
  const compressed = c.data[nul + 1] === 1;
  const langEnd = c.data.indexOf(0, nul + 3);
  if (langEnd < 0) return null;
  const tkEnd = c.data.indexOf(0, langEnd + 1);
  if (tkEnd < 0) return null;
  return { key, compressed, body: c.data.subarray(tkEnd + 1), encoding: 'utf8' };
}

/** Text of an uncompressed body, or of an inflated one. */
export function decodeTextBody(bytes: Uint8Array, encoding: TextChunkParts['encoding']): string {
  return encoding === 'utf8' ? new TextDecoder().decode(bytes) : latin1(bytes);
}

/**
 * Returns a copy of `png` with text chunks added before IEND. Existing text chunks with the same
 * keys are dropped, so re-saving replaces rather than duplicates.
 */
export function addTextChunks(png: Uint8Array, entries: Record<string, string>): Uint8Array {
  const keys = new Set(Object.keys(entries));
  const out: Uint8Array[] = [PNG_SIGNATURE];
  for (const c of readChunks(png)) {
    if (c.type === 'IEND') for (const [k, v] of Object.entries(entries)) out.push(textChunk(k, v));
    const t = textChunkParts(c);
    if (t && keys.has(t.key)) continue;
    out.push(encodeChunk(c.type, c.data));
  }
  return concatBytes(out);
}
