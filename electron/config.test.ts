import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDesktopArgs } from './config.js';
import { safeFileName, uniquePath } from './files.js';

let dir: string;
beforeEach(() => void (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-config-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('desktop flags and settings', () => {
  it('reads the web-mode flags and ignores the rest', () => {
    const a = parseDesktopArgs(['--no-sandbox', '--port', '9000', '--models', 'm', '--demo', '--provider=webgpu', '--user-data', dir], {});
    expect(a).toEqual({ models: path.resolve('m'), demo: true, provider: 'webgpu', userData: dir });
    expect(parseDesktopArgs([], { IPA_STUDIO_USER_DATA: dir }).userData).toBe(dir);
    expect(() => parseDesktopArgs(['--provider', 'tpu'], {})).toThrow(/--provider expects one of cpu/);
    expect(() => parseDesktopArgs(['--models'], {})).toThrow(/--models needs a value/);
  });
});

describe('files', () => {
  it('makes plain file names', () => {
    expect(safeFileName('../../etc/passwd')).toBe('passwd');
    expect(safeFileName('C:\\x\\a<b>.png')).toBe('a_b_.png');
    expect(safeFileName('..')).toBe('untitled');
    expect(safeFileName('CON.json')).toBe('_CON.json');
    expect(safeFileName(' .hidden. ')).toBe('hidden');
  });

  it('never overwrites an export', () => {
    expect(uniquePath(dir, 'a.png')).toBe(path.join(dir, 'a.png'));
    fs.writeFileSync(path.join(dir, 'a.png'), '');
    fs.writeFileSync(path.join(dir, 'a-1.png'), '');
    expect(uniquePath(dir, 'a.png')).toBe(path.join(dir, 'a-2.png'));
  });
});
