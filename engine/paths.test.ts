import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInsideReal, outputPath, realPathOf } from './paths.js';

let dir: string;
let out: string;
beforeAll(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-paths-')));
  out = path.join(dir, 'out');
  fs.mkdirSync(path.join(out, 'real-sub'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'elsewhere'));
  fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(out, 'escape')); // a subfolder that leads outside
  fs.symlinkSync(path.join(out, 'real-sub'), path.join(out, 'alias')); // one that stays inside
  fs.symlinkSync(path.join(dir, 'not-there'), path.join(out, 'dangling'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('output paths', () => {
  it('joins a prefix under the output folder, subfolders (existing or not) included', () => {
    expect(outputPath(out, 'img')).toBe(path.join(out, 'img'));
    expect(outputPath(out, 'sweeps/a/img')).toBe(path.join(out, 'sweeps', 'a', 'img'));
    expect(outputPath(out, 'alias/img')).toBe(path.join(out, 'alias', 'img'));
  });

  it('refuses .., absolute prefixes, and symlinked subfolders that lead outside', () => {
    expect(() => outputPath(out, '../img')).toThrow(/contains "\.\."/);
    expect(() => outputPath(out, '/etc/img')).toThrow(/absolute path/);
    expect(() => outputPath(out, 'escape/img')).toThrow(/leads outside the output folder .* symbolic link/);
    expect(() => outputPath(out, 'escape/new/deeper/img')).toThrow(/symbolic link/);
    expect(() => outputPath(out, 'dangling/img')).toThrow(/symbolic link/);
  });

  it('works when the output folder itself is reached through a symlink', () => {
    const linkToOut = path.join(dir, 'out-link');
    fs.symlinkSync(out, linkToOut);
    expect(outputPath(linkToOut, 'a/img')).toBe(path.join(linkToOut, 'a', 'img'));
    expect(() => outputPath(linkToOut, 'escape/img')).toThrow(/symbolic link/);
    // A folder that does not exist yet is fine too (created on the first save).
    expect(outputPath(path.join(dir, 'fresh'), 'img')).toBe(path.join(dir, 'fresh', 'img'));
  });

  it('real paths resolve the deepest existing ancestor', () => {
    expect(realPathOf(path.join(out, 'alias', 'x', 'y'))).toBe(path.join(out, 'real-sub', 'x', 'y'));
    expect(realPathOf(path.join(out, 'dangling', 'x'))).toBeNull();
    expect(isInsideReal(out, out)).toBe(true);
    expect(isInsideReal(out, out, false)).toBe(false);
    expect(isInsideReal(out, path.join(dir, 'out2'))).toBe(false); // a sibling sharing the prefix
  });
});
