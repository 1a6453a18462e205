import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { providersHere, readSettings, resolveSettings, saveSettings } from './host-config.js';

let dir: string;
beforeEach(() => void (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-hostcfg-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('host settings', () => {
  it('flags win over saved settings, saved over defaults; a corrupt file is ignored', async () => {
    const file = path.join(dir, 'settings.json');
    const flags = { userData: dir };
    expect(resolveSettings(flags, file)).toEqual({ modelsDir: path.join(dir, 'models'), outputDir: path.join(dir, 'outputs'), provider: 'cpu' });
    await saveSettings(file, { modelsDir: '/comfy/models', outputDir: '/out', provider: 'cuda' });
    expect(resolveSettings({ ...flags, out: '/flag-out' }, file)).toEqual({ modelsDir: '/comfy/models', outputDir: '/flag-out', provider: 'cuda' });
    // every other saved setting comes back too: the queue the editor runs on, its priority, CPU precision, demo models
    const rest = { farmQueue: 'redis://127.0.0.1:6390', farmPriority: 5, cpuPrecision: 'fast', demoModels: true } as const;
    await saveSettings(file, { modelsDir: '/comfy/models', outputDir: '/out', provider: 'cpu', ...rest });
    expect(resolveSettings(flags, file)).toEqual({ modelsDir: '/comfy/models', outputDir: '/out', provider: 'cpu', ...rest });
    fs.writeFileSync(file, '{"provider": "tpu"');
    expect(resolveSettings(flags, file).provider).toBe('cpu');
  });

  it('validates each field: a bad one is dropped, the good ones stay', () => {
    const file = path.join(dir, 'settings.json');
    fs.writeFileSync(file, JSON.stringify({ modelsDir: '/m', outputDir: 42, provider: 'tpu', extra: true }));
    expect(readSettings(file)).toEqual({ modelsDir: '/m' });
    fs.writeFileSync(file, JSON.stringify({ modelsDir: '' }));
    expect(readSettings(file)).toEqual({});
    fs.writeFileSync(file, '[1]');
    expect(readSettings(file)).toEqual({});
    expect(readSettings(path.join(dir, 'missing.json'))).toEqual({});
  });

  it('saves atomically and in order (the last change stays), refusing invalid settings', async () => {
    const file = path.join(dir, 'sub', 'settings.json');
    const saves = ['a', 'b', 'c'].map((m) => saveSettings(file, { modelsDir: `/${m}`, outputDir: '/o', provider: 'cpu' }));
    await Promise.all(saves);
    expect(readSettings(file).modelsDir).toBe('/c');
    expect(fs.readdirSync(path.dirname(file))).toEqual(['settings.json']);
    expect(() => saveSettings(file, { modelsDir: '/m', outputDir: '/o', provider: 'tpu' as 'cpu' })).toThrow();
  });

  it('offers CUDA only where its provider library is installed, DirectML on Windows', () => {
    fs.mkdirSync(path.join(dir, 'linux', 'x64'), { recursive: true });
    expect(providersHere(dir, 'linux', 'x64')).toEqual(['cpu', 'webgpu']);
    fs.writeFileSync(path.join(dir, 'linux', 'x64', 'libonnxruntime_providers_cuda.so'), '');
    expect(providersHere(dir, 'linux', 'x64')).toEqual(['cpu', 'webgpu', 'cuda']);
    expect(providersHere(dir, 'win32', 'x64')).toEqual(['cpu', 'webgpu', 'dml']);
    expect(providersHere(null, 'linux', 'x64')).toEqual(['cpu', 'webgpu']);
  });
});
