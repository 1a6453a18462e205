/**
 * The workflow text chunk of exported PNGs, read and written in the browser.
 * Key `ipadapter-studio-workflow` (not ComfyUI's keys, whose formats differ).
 */
export const WORKFLOW_CHUNK_KEY = 'ipadapter-studio-workflow';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

let crcTable: Uint32Array | null = null;
function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

interface Chunk {
  type: string;
  data: Uint8Array;
}

function readChunks(bytes: Uint8Array): Chunk[] {
  if (!isPng(bytes)) throw new Error('not a PNG file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: Chunk[] = [];
  let i = 8;
  while (i + 12 <= bytes.length) {
    const len = view.getUint32(i);
    if (i + 12 + len > bytes.length) throw new Error('truncated PNG chunk');
    const type = String.fromCharCode(...bytes.subarray(i + 4, i + 8));
    chunks.push({ type, data: bytes.subarray(i + 8, i + 8 + len) });
    i += 12 + len;
    if (type === 'IEND') break;
  }
  return chunks;
}

const latin1 = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join('');

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The text of the chunk `key` (tEXt, zTXt or iTXt), or null when the PNG has none. */
export async function readTextChunk(bytes: Uint8Array, key = WORKFLOW_CHUNK_KEY): Promise<string | null> {
  for (const { type, data } of readChunks(bytes)) {
    if (type !== 'tEXt' && type !== 'zTXt' && type !== 'iTXt') continue;
    const nul = data.indexOf(0);
    if (nul < 0 || latin1(data.subarray(0, nul)) !== key) continue;
    if (type === 'tEXt') return latin1(data.subarray(nul + 1));
    if (type === 'zTXt') return latin1(await inflate(data.subarray(nul + 2)));
    // iTXt: keyword \0 compressed method language \0 translated \0 text (UTF-8)
    const compressed = data[nul + 1] === 1;
    let j = data.indexOf(0, nul + 3);
    j = data.indexOf(0, j + 1);
    const text = data.subarray(j + 1);
    return new TextDecoder().decode(compressed ? await inflate(text) : text);
  }
  return null;
}

function chunkBytes(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let k = 0; k < 4; k++) out[4 + k] = type.charCodeAt(k);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Returns the PNG with `text` in a tEXt chunk `key` (replacing any chunk of that key).
 * tEXt is Latin-1, so non-ASCII characters are written as JSON \u escapes (still valid JSON).
 */
export function writeTextChunk(bytes: Uint8Array, text: string, key = WORKFLOW_CHUNK_KEY): Uint8Array {
  const ascii = text.replace(/[^\x20-\x7e\n\t]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  const payload = new Uint8Array(key.length + 1 + ascii.length);
  for (let k = 0; k < key.length; k++) payload[k] = key.charCodeAt(k);
  for (let k = 0; k < ascii.length; k++) payload[key.length + 1 + k] = ascii.charCodeAt(k);
  const parts: Uint8Array[] = [new Uint8Array(SIGNATURE)];
  for (const c of readChunks(bytes)) {
    if ((c.type === 'tEXt' || c.type === 'iTXt' || c.type === 'zTXt') && latin1(c.data.subarray(0, c.data.indexOf(0))) === key) continue;
    if (c.type === 'IEND') parts.push(chunkBytes('tEXt', payload));
    parts.push(chunkBytes(c.type, c.data));
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
