import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDesktopArgs, providersHere, resolveSettings, saveSettings } from './config.js';
import { safeFileName, writeFileAtomic } from './files.js';

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

  it('flags win over saved settings, saved over defaults; a corrupt file is ignored', async () => {
    const file = path.join(dir, 'settings.json');
    const args = parseDesktopArgs(['--user-data', dir], {});
    expect(resolveSettings(args, file)).toEqual({ modelsDir: path.join(dir, 'models'), outputDir: path.join(dir, 'outputs'), provider: 'cpu' });
    await saveSettings(file, { modelsDir: '/comfy/models', outputDir: '/out', provider: 'cuda' });
    expect(resolveSettings({ ...args, out: '/flag-out' }, file)).toEqual({ modelsDir: '/comfy/models', outputDir: '/flag-out', provider: 'cuda' });
    fs.writeFileSync(file, '{"provider": "tpu"');
    expect(resolveSettings(args, file).provider).toBe('cpu');
  });

  it('offers CUDA only where its provider library is installed, DirectML on Windows', () => {
    fs.mkdirSync(path.join(dir, 'linux', 'x64'), { recursive: true });
    expect(providersHere(dir, 'linux', 'x64')).toEqual(['cpu', 'webgpu']);
    fs.writeFileSync(path.join(dir, 'linux', 'x64', 'libonnxruntime_providers_cuda.so'), '');
    expect(providersHere(dir, 'linux', 'x64')).toEqual(['cpu', 'webgpu', 'cuda']);
    expect(providersHere(dir, 'win32', 'x64')).toEqual(['cpu', 'webgpu', 'dml']);
  });
});

describe('files', () => {
  it('writes atomically over an existing file and leaves no temporary behind', async () => {
    const f = path.join(dir, 'w.json');
    fs.writeFileSync(f, 'old');
    await writeFileAtomic(f, 'new');
    expect(fs.readFileSync(f, 'utf8')).toBe('new');
    expect(fs.readdirSync(dir)).toEqual(['w.json']);
    await expect(writeFileAtomic(path.join(dir, 'missing', 'x.json'), 'x')).rejects.toThrow(/could not write/);
  });

  it('makes plain file names', () => {
    expect(safeFileName('../../etc/passwd')).toBe('passwd');
    expect(safeFileName('C:\\x\\a<b>.png')).toBe('a_b_.png');
    expect(safeFileName('..')).toBe('untitled');
    expect(safeFileName('CON.json')).toBe('_CON.json');
    expect(safeFileName(' .hidden. ')).toBe('hidden');
  });
});
