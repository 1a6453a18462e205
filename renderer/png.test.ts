import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { addTextChunks, readChunks as engineChunks, readTextChunks } from '../engine/png.js';
import { readTextChunk, WORKFLOW_CHUNK_KEY, writeTextChunk } from './png.js';

/** A valid 1x1 RGB PNG built by hand (signature, IHDR, IDAT, IEND). */
function tinyPng(): Uint8Array {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
  const idat = zlib.deflateSync(Buffer.from([0, 255, 0, 0]));
  return new Uint8Array(
    Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]),
  );
}

describe('PNG workflow chunk (browser side)', () => {
  it('writes a tEXt chunk the engine reads back, with valid CRCs, replacing an older one', async () => {
    const wf = JSON.stringify({ format: 'ipadapter-studio/workflow', nodes: [{ text: 'café ✓ 猫' }] });
    const once = writeTextChunk(tinyPng(), '{"old":true}');
    const png = writeTextChunk(once, wf);
    expect(engineChunks(png).filter((c) => c.type === 'tEXt')).toHaveLength(1); // engine checks every CRC
    const text = await readTextChunk(png);
    expect(JSON.parse(text!)).toEqual(JSON.parse(wf));
    expect(JSON.parse(readTextChunks(png)[WORKFLOW_CHUNK_KEY])).toEqual(JSON.parse(wf));
  });

  it('reads what the engine writes (iTXt for non-Latin-1 text)', async () => {
    const wf = JSON.stringify({ prompt: 'a 猫 on a mat' });
    const png = addTextChunks(tinyPng(), { [WORKFLOW_CHUNK_KEY]: wf, parameters: 'a cat' });
    expect(await readTextChunk(png)).toBe(wf);
    expect(await readTextChunk(png, 'parameters')).toBe('a cat');
  });

  it('returns null for a PNG without the chunk and refuses non-PNG bytes', async () => {
    expect(await readTextChunk(tinyPng())).toBeNull();
    await expect(readTextChunk(new Uint8Array([1, 2, 3]))).rejects.toThrow(/not a PNG/);
  });

  it('refuses a compressed workflow chunk that inflates past the cap (a zip bomb), with a sentence', async () => {
    const png = tinyPng();
    const bomb = zlib.deflateSync(Buffer.alloc(20 * 2 ** 20, 0x20), { level: 9 });
    const key = Buffer.from(WORKFLOW_CHUNK_KEY, 'latin1');
    const body = Buffer.concat([key, Buffer.from([0, 1, 0, 0, 0]), bomb]); // iTXt, compressed
    const type = Buffer.from('iTXt', 'latin1');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([type, body])));
    const iend = png.length - 12;
    const withBomb = Buffer.concat([png.subarray(0, iend), len, type, body, crc, png.subarray(iend)]);
    await expect(readTextChunk(withBomb)).rejects.toThrow(/PNG text chunk "ipadapter-studio-workflow" inflates to more than 16 MB/);
  });
});
