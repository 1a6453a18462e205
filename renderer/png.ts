/**
 * The workflow text chunk of exported PNGs, read and written in the browser. The chunk format
 * (CRC, chunk walk, text chunk layout) is engine/png-chunks.ts, shared with the engine; this
 * module inflates compressed text with the browser's DecompressionStream.
 * Key `ipadapter-studio-workflow` (not ComfyUI's keys, whose formats differ).
 */
import {
  addTextChunks,
  concatBytes,
  decodeTextBody,
  MAX_TEXT_CHUNK_BYTES,
  readChunks,
  textChunkParts,
  textChunkTooLarge,
  WORKFLOW_CHUNK_KEY,
} from '../engine/png-chunks.js';

export { isPng, WORKFLOW_CHUNK_KEY } from '../engine/png-chunks.js';

/** Inflates a compressed text body, stopping (and refusing) past MAX_TEXT_CHUNK_BYTES, as the engine does. */
async function inflate(key: string, data: Uint8Array): Promise<Uint8Array> {
  const reader = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate')).getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return concatBytes(parts);
    total += value.length;
    if (total > MAX_TEXT_CHUNK_BYTES) {
      await reader.cancel();
      throw new Error(textChunkTooLarge(key));
    }
    parts.push(value);
  }
}

/** The text of the chunk `key` (tEXt, zTXt or iTXt), or null when the PNG has none. */
export async function readTextChunk(bytes: Uint8Array, key = WORKFLOW_CHUNK_KEY): Promise<string | null> {
  let found: string | null = null;
  for (const c of readChunks(bytes)) {
    const t = textChunkParts(c);
    if (!t || t.key !== key) continue;
    // The last chunk of a key wins, as on the engine side.
    found = decodeTextBody(t.compressed ? await inflate(key, t.body) : t.body, t.encoding);
  }
  return found;
}

/**
 * Returns the PNG with `text` in a tEXt chunk `key` (replacing any chunk of that key).
 * tEXt is Latin-1, so non-ASCII characters are written as JSON \u escapes (still valid JSON).
 */
export function writeTextChunk(bytes: Uint8Array, text: string, key = WORKFLOW_CHUNK_KEY): Uint8Array {
  const ascii = text.replace(/[^\x20-\x7e\n\t]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  return addTextChunks(bytes, { [key]: ascii });
}
