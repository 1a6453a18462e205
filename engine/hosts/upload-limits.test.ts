/** Uploads (Load Image): an image without pixels, or above the pixel limit, is refused when it arrives. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { storeUpload } from './host-api.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-upload-limits-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Signature and IHDR (w x h, 8-bit RGB), then IDAT and IEND. */
function png(w: number, h: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(zlib.crc32(td), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const rows = Buffer.alloc(h * (1 + 3 * w));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('uploads', () => {
  it('refuse a header-only 0x0 image and one above the pixel limit, naming it; a real image is stored', () => {
    const inputs = path.join(dir, 'inputs');
    expect(() => storeUpload(inputs, 'empty.png', png(0, 0).toString('base64'))).toThrow(/empty\.png: the image is 0x0: it has no pixels/);
    expect(() => storeUpload(inputs, 'thin.png', png(5, 0).toString('base64'))).toThrow(/thin\.png: the image is 5x0/);
    expect(() => storeUpload(inputs, 'huge.png', png(10000, 10000).subarray(0, 33).toString('base64'))).toThrow(
      /huge\.png: the image is 10000x10000 = 100,000,000 pixels, above the limit/,
    );
    expect(fs.existsSync(inputs) ? fs.readdirSync(inputs) : []).toEqual([]);
    expect(storeUpload(inputs, 'ok.png', png(3, 2).toString('base64'))).toMatchObject({ width: 3, height: 2 });
  });
});
