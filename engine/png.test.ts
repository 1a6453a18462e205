import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { addTextChunks, crc32, readChunks, readEmbeddedWorkflow, readTextChunks, WORKFLOW_CHUNK_KEY } from './png.js';

async function tinyPng(): Promise<Buffer> {
  return sharp(Buffer.alloc(4 * 4 * 3, 128), { raw: { width: 4, height: 4, channels: 3 } }).png().toBuffer();
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
});
