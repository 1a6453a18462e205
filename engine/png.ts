/**
 * PNG text chunks on the Node side, written and read by hand over the bytes sharp produces.
 * The chunk format itself (CRC, chunk walk, text chunk layout) is engine/png-chunks.ts, shared
 * with the renderer; this module adds zlib for compressed text and Buffer results.
 */
import * as zlib from 'node:zlib';
import {
  addTextChunks as addChunks,
  decodeTextBody,
  MAX_TEXT_CHUNK_BYTES,
  READ_TEXT_KEYS,
  readChunks as chunksOf,
  textChunkParts,
  textChunkTooLarge,
  WORKFLOW_CHUNK_KEY,
  type PngChunk as RawChunk,
} from './png-chunks.js';

export { crc32, MAX_TEXT_CHUNK_BYTES, PARAMETERS_CHUNK_KEY, PNG_SIGNATURE, READ_TEXT_KEYS, WORKFLOW_CHUNK_KEY } from './png-chunks.js';

export interface PngChunk {
  type: string;
  data: Buffer;
}

const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Splits a PNG into chunks, checking the signature and every CRC. */
export function readChunks(png: Uint8Array): PngChunk[] {
  return chunksOf(png).map((c) => ({ type: c.type, data: asBuffer(c.data) }));
}

/**
 * Returns a copy of `png` with text chunks added before IEND (tEXt when Latin-1, else iTXt).
 * Existing chunks with the same keys are dropped, so re-saving replaces rather than duplicates.
 */
export function addTextChunks(png: Uint8Array, entries: Record<string, string>): Buffer {
  return asBuffer(addChunks(png, entries));
}

/** Inflates a compressed text body, at most MAX_TEXT_CHUNK_BYTES. */
function inflateText(key: string, body: Uint8Array): Buffer {
  try {
    return zlib.inflateSync(body, { maxOutputLength: MAX_TEXT_CHUNK_BYTES });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) throw new Error(textChunkTooLarge(key), { cause: e });
    throw new Error(`PNG text chunk "${key}" is not valid compressed text (${(e as Error).message})`, { cause: e });
  }
}

/** A text chunk's key and text; compressed chunks of keys we do not read (READ_TEXT_KEYS) are skipped. */
function decodeText(c: RawChunk): { key: string; text: string } | null {
  const t = textChunkParts(c);
  if (!t) return null;
  if (!t.compressed) return { key: t.key, text: decodeTextBody(t.body, t.encoding) };
  if (!READ_TEXT_KEYS.includes(t.key)) return null;
  return { key: t.key, text: decodeTextBody(inflateText(t.key, t.body), t.encoding) };
}

/**
 * The text chunks of a PNG, by key (the last one wins when a key repeats): every uncompressed one,
 * and the compressed ones of READ_TEXT_KEYS, each inflated to at most MAX_TEXT_CHUNK_BYTES (more
 * throws a sentence naming the key).
 */
export function readTextChunks(png: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of chunksOf(png)) {
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
