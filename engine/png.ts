/**
 * PNG text chunks, written and read by hand over the bytes sharp produces.
 *
 * A PNG is the 8-byte signature and a list of chunks: length (4 bytes, big endian), type
 * (4 ASCII bytes), data, CRC-32 of type + data. Text lives in `tEXt` (key NUL Latin-1 text),
 * `zTXt` (key NUL method compressed-text) and `iTXt` (key NUL flag method language NUL
 * translated-key NUL UTF-8 text, optionally deflated). We write `tEXt` when the text is
 * Latin-1 and `iTXt` otherwise (as Pillow's add_text does), before IEND.
 */
import * as zlib from 'node:zlib';

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Our key for the workflow JSON (not ComfyUI's `workflow`/`prompt`, whose formats differ). */
export const WORKFLOW_CHUNK_KEY = 'ipadapter-studio-workflow';
/** Automatic1111's key for its generation-parameters text. */
export const PARAMETERS_CHUNK_KEY = 'parameters';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309 / ITU-T V.42, as the PNG specification requires). */
export function crc32(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface PngChunk {
  type: string;
  data: Buffer;
}

/** Splits a PNG into chunks, checking the signature and every CRC. */
export function readChunks(png: Uint8Array): PngChunk[] {
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG file (bad signature)');
  const chunks: PngChunk[] = [];
  let off = 8;
  while (off < buf.length) {
    if (off + 12 > buf.length) throw new Error(`PNG truncated at byte ${off}`);
    const len = buf.readUInt32BE(off);
    const typeBytes = buf.subarray(off + 4, off + 8);
    const type = typeBytes.toString('latin1');
    if (off + 12 + len > buf.length) throw new Error(`PNG chunk ${type} at byte ${off} runs past the end of the file`);
    const data = buf.subarray(off + 8, off + 8 + len);
    const crc = buf.readUInt32BE(off + 8 + len);
    if (crc !== crc32(typeBytes, data)) throw new Error(`PNG chunk ${type} at byte ${off} has a bad CRC`);
    chunks.push({ type, data });
    off += 12 + len;
    if (type === 'IEND') break;
  }
  return chunks;
}

export function encodeChunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(head.subarray(4, 8), data), 0);
  return Buffer.concat([head, data, crc]);
}

const isLatin1 = (s: string) => /^[\u0000-\u00ff]*$/.test(s);

function checkKey(key: string): void {
  if (key.length < 1 || key.length > 79 || !isLatin1(key) || key.includes('\0')) {
    throw new Error(`PNG text key must be 1-79 Latin-1 characters: ${JSON.stringify(key)}`);
  }
}

/** A text chunk for `key`: tEXt when Latin-1, otherwise uncompressed iTXt (UTF-8). */
export function textChunk(key: string, text: string): Buffer {
  checkKey(key);
  if (isLatin1(text)) return encodeChunk('tEXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0]), Buffer.from(text, 'latin1')]));
  // keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL, text.
  return encodeChunk('iTXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(text, 'utf8')]));
}

/**
 * Returns a copy of `png` with text chunks added before IEND. Existing chunks with the same
 * keys are dropped, so re-saving replaces rather than duplicates.
 */
export function addTextChunks(png: Uint8Array, entries: Record<string, string>): Buffer {
  const chunks = readChunks(png);
  const keys = new Set(Object.keys(entries));
  const out: Buffer[] = [PNG_SIGNATURE];
  for (const c of chunks) {
    if (c.type === 'IEND') for (const [k, v] of Object.entries(entries)) out.push(textChunk(k, v));
    const t = decodeText(c);
    if (t && keys.has(t.key)) continue;
    out.push(encodeChunk(c.type, c.data));
  }
  return Buffer.concat(out);
}

function decodeText(c: PngChunk): { key: string; text: string } | null {
  if (c.type !== 'tEXt' && c.type !== 'zTXt' && c.type !== 'iTXt') return null;
  const nul = c.data.indexOf(0);
  if (nul < 0) return null;
  const key = c.data.subarray(0, nul).toString('latin1');
  if (c.type === 'tEXt') return { key, text: c.data.subarray(nul + 1).toString('latin1') };
  if (c.type === 'zTXt') return { key, text: zlib.inflateSync(c.data.subarray(nul + 2)).toString('latin1') };
  const compressed = c.data[nul + 1] === 1;
  let p = nul + 3;
  const langEnd = c.data.indexOf(0, p);
  if (langEnd < 0) return null;
  const tkEnd = c.data.indexOf(0, langEnd + 1);
  if (tkEnd < 0) return null;
  p = tkEnd + 1;
  const body = c.data.subarray(p);
  return { key, text: (compressed ? zlib.inflateSync(body) : body).toString('utf8') };
}

/** Every text chunk of a PNG, by key (the last one wins when a key repeats). */
export function readTextChunks(png: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of readChunks(png)) {
    const t = decodeText(c);
    if (t) out[t.key] = t.text;
  }
  return out;
}

/** The workflow JSON embedded in a PNG by Save Image, or null when there is none. */
export function readEmbeddedWorkflow(png: Uint8Array): unknown | null {
  const t = readTextChunks(png)[WORKFLOW_CHUNK_KEY];
  return t === undefined ? null : JSON.parse(t);
}
