import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { confinedPath, storeUpload, withUrls } from './host-api.js';

let dir: string;
beforeEach(() => void (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-hostapi-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The header imageSize reads: signature, IHDR with width 3 and height 2. */
const PNG = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
  Buffer.from('IHDR'),
  Buffer.from([0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0, 0, 0, 0, 0]),
]);

describe('host API helpers', () => {
  it('confines paths to their folder, also through symlinks (file or folder, dangling too)', () => {
    const root = path.join(dir, 'root');
    fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'secret.png'), '');
    fs.mkdirSync(path.join(dir, 'elsewhere'));
    fs.symlinkSync(path.join(dir, 'secret.png'), path.join(root, 'link.png'));
    fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(root, 'out-dir'));
    fs.symlinkSync(path.join(dir, 'nothing-here.png'), path.join(root, 'dangling.png'));
    fs.symlinkSync(path.join(root, 'sub'), path.join(root, 'in-dir'));
    expect(confinedPath(root, 'sub/a.png')).toBe(path.join(root, 'sub', 'a.png'));
    expect(confinedPath(root, 'in-dir/a.png')).toBe(path.join(root, 'in-dir', 'a.png'));
    for (const bad of ['../secret.png', 'link.png', 'out-dir/x.png', 'dangling.png', 'a\0.png']) {
      expect(confinedPath(root, bad), bad).toBeNull();
    }
  });

  it('stores uploads under their content hash, rewriting a truncated leftover', () => {
    const up = storeUpload(dir, 'my photo.png', PNG.toString('base64'));
    expect(up.value).toMatch(/^inputs\/my_photo-[0-9a-f]{12}\.png$/); // relative to the inputs folder: no home path
    const file = path.join(dir, path.basename(up.value));
    expect(up).toMatchObject({ width: 3, height: 2, url: '/inputs/' + encodeURIComponent(path.basename(up.value)) });
    fs.writeFileSync(file, PNG.subarray(0, 10)); // a cut write from before writes were atomic
    storeUpload(dir, 'my photo.png', PNG.toString('base64'));
    expect(fs.readFileSync(file).equals(PNG)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual([path.basename(up.value)]);
  });

  it('gives output images /outputs/ URLs and inlines others', () => {
    fs.writeFileSync(path.join(dir, 'p.png'), Buffer.from([1, 2, 3]));
    const out = withUrls(path.join(dir, 'out'), [
      { path: path.join(dir, 'out', 'a b.png'), width: 1, height: 1 },
      { path: path.join(dir, 'p.png'), width: 1, height: 1 },
      { path: path.join(dir, 'x.png'), url: '/keep', width: 1, height: 1 },
    ]);
    expect(out.map((i) => i.url)).toEqual(['/outputs/a%20b.png', 'data:image/png;base64,AQID', '/keep']);
  });
});
