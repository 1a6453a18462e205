import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { addTextChunks, crc32, MAX_TEXT_CHUNK_BYTES, readChunks, readEmbeddedWorkflow, readTextChunks, WORKFLOW_CHUNK_KEY } from './png.js';
import { concatBytes, encodeChunk, PNG_SIGNATURE } from './png-chunks.js';

async function tinyPng(): Promise<Buffer> {
  return sharp(Buffer.alloc(4 * 4 * 3, 128), { raw: { width: 4, height: 4, channels: 3 } })
    .png()
    .toBuffer();
}

describe('PNG text chunks', () => {
  it('computes the standard CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.from('IEND'))).toBe(0xae426082);
  });

  it('embeds a workflow and reads it back equal (non-Latin-1 text goes to iTXt)', async () => {
    const wf = { format: 'ipadapter-studio/workflow', version: 1, nodes: [{ id: 'p', type: 'text-encode', params: { text: '猫の写真, café' } }], edges: [] };
    const out = addTextChunks(await tinyPng(), { [WORKFLOW_CHUNK_KEY]: JSON.stringify(wf), parameters: 'a cat\nSteps: 20, Sampler: DDIM' });
    expect(readEmbeddedWorkflow(out)).toEqual(wf);
    expect(readTextChunks(out).parameters).toBe('a cat\nSteps: 20, Sampler: DDIM');
    const types = readChunks(out).map((c) => c.type);
    expect(types).toContain('iTXt');
    expect(types).toContain('tEXt');
    expect(types.at(-1)).toBe('IEND');
    // Still a valid image for a decoder.
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height]).toEqual([4, 4]);
  });

  it('replaces rather than duplicates a key when re-saved', async () => {
    const once = addTextChunks(await tinyPng(), { parameters: 'one' });
    const twice = addTextChunks(once, { parameters: 'two' });
    expect(readChunks(twice).filter((c) => c.type === 'tEXt')).toHaveLength(1);
    expect(readTextChunks(twice).parameters).toBe('two');
  });

  it('detects a bad CRC and a non-PNG', async () => {
    const png = addTextChunks(await tinyPng(), { parameters: 'x' });
    const i = png.indexOf('tEXt');
    png[i + 5] ^= 0xff;
    expect(() => readChunks(png)).toThrow(/bad CRC/);
    expect(() => readChunks(Buffer.from('not a png'))).toThrow(/not a PNG/);
  });

  it('inflates only the keys we read, each up to a cap: a zip bomb in a text chunk costs nothing', async () => {
    expect(MAX_TEXT_CHUNK_BYTES).toBe(16 * 2 ** 20);
    const png = await tinyPng();
    const bomb = zlib.deflateSync(Buffer.alloc(64 * 2 ** 20, 0x41), { level: 9 }); // 64 MB of 'A' in about 64 KB
    const withChunk = (type: 'zTXt' | 'iTXt', key: string) => {
      const head = type === 'zTXt' ? Buffer.from([0, 0]) : Buffer.from([0, 1, 0, 0, 0]);
      const chunks = readChunks(png);
      const body = chunks.slice(0, -1).map((c) => encodeChunk(c.type, c.data));
      return Buffer.from(
        concatBytes([PNG_SIGNATURE, ...body, encodeChunk(type, concatBytes([Buffer.from(key, 'latin1'), head, bomb])), encodeChunk('IEND', new Uint8Array(0))]),
      );
    };
    // A key nobody reads is never inflated.
    const other = withChunk('zTXt', 'Comment');
    const before = process.memoryUsage().rss;
    expect(readTextChunks(other)).toEqual({});
    expect(process.memoryUsage().rss - before).toBeLessThan(32 * 2 ** 20);
    expect(readEmbeddedWorkflow(other)).toBeNull();
    // The keys we read (ours, A1111's parameters, ComfyUI's workflow / prompt) stop at the cap, with a sentence.
    for (const [type, key] of [
      ['zTXt', WORKFLOW_CHUNK_KEY],
      ['iTXt', 'parameters'],
      ['zTXt', 'workflow'],
      ['iTXt', 'prompt'],
    ] as const) {
      expect(() => readTextChunks(withChunk(type, key)), key).toThrow(new RegExp(`PNG text chunk "${key}" inflates to more than 16 MB`));
    }
    // Compressed text under the cap reads as before.
    const small = Buffer.from(
      concatBytes([
        PNG_SIGNATURE,
        ...readChunks(png)
          .slice(0, -1)
          .map((c) => encodeChunk(c.type, c.data)),
        encodeChunk('zTXt', concatBytes([Buffer.from('parameters', 'latin1'), Buffer.from([0, 0]), zlib.deflateSync(Buffer.from('a cat'))])),
        encodeChunk('IEND', new Uint8Array(0)),
      ]),
    );
    expect(readTextChunks(small)).toEqual({ parameters: 'a cat' });
  });
});
