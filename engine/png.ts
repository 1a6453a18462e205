/**
 * PNG text chunks on the Node side, written and read by hand over the bytes sharp produces.
 * The chunk format itself (CRC, chunk walk, text chunk layout) is engine/png-chunks.ts, shared
 * with the renderer; this module adds zlib for compressed text and Buffer results.
 */
import * as zlib from 'node:zlib';
import {
  addTextChunks as addChunks, decodeTextBody, readChunks as chunksOf, textChunkParts, WORKFLOW_CHUNK_KEY,
  type PngChunk as RawChunk,
} from './png-chunks.js';

export { crc32, PARAMETERS_CHUNK_KEY, PNG_SIGNATURE, WORKFLOW_CHUNK_KEY } from './png-chunks.js';

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

function decodeText(c: RawChunk): { key: string; text: string } | null {
  const t = textChunkParts(c);
  if (!t) return null;
  return { key: t.key, text: decodeTextBody(t.compressed ? zlib.inflateSync(t.body) : t.body, t.encoding) };
}

/** Every text chunk of a PNG, by key (the last one wins when a key repeats). */
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
