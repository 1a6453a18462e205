import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EngineApi } from '../api.js';
import { listModels } from '../paths.js';
import { readTensorBytes, SafetensorsFile } from '../../models/safetensors.js';
import { fixtureFolder } from '../../test/helpers/fixtures.js';
import { createApiHandlers, invokeApi, type ApiHandlers } from './host-api.js';

const MODEL_FILES = fixtureFolder('model-files');
const CKPT = path.join(MODEL_FILES, 'pickles', 'vae-ft-mse-tiny.ckpt');
const TWIN = path.join(MODEL_FILES, 'vae', 'vae-ft-mse-tiny.safetensors');
const MALICIOUS = path.join(MODEL_FILES, 'malicious', 'ip-adapter_os_system.bin');
const MARKER = '/tmp/ipas-pickle-marker-os_system';

let dir: string;
let models: string;
let handlers: ApiHandlers;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-convert-channel-'));
  models = path.join(dir, 'models');
  for (const k of ['vae', 'ipadapter']) fs.mkdirSync(path.join(models, k), { recursive: true });
  const engine = {
    settings: () => ({ modelsDir: models, outputDir: path.join(dir, 'out'), provider: 'cpu' }),
    listModels: async () => listModels(models),
    nodeSpecs: () => [],
  } as unknown as EngineApi;
  handlers = createApiHandlers({
    engine,
    host: 'web',
    examplesDir: path.join(dir, 'examples'),
    inputsDir: path.join(dir, 'inputs'),
    info: () => ({ version: 'test', providers: ['cpu'], demo: false, notices: [] }),
  });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const convert = (params: unknown) => invokeApi(handlers, 'convertModel', params);
const folder = (kind: string) => fs.readdirSync(path.join(models, kind)).sort();

describe.skipIf(!fs.existsSync(CKPT))('convertModel channel', () => {
  it('converts a pickle in the models folder once, equal in tensors to its safetensors twin', async () => {
    fs.copyFileSync(CKPT, path.join(models, 'vae', 'vae-ft-mse-tiny.ckpt'));
    const r = await convert({ kind: 'vae', name: 'vae-ft-mse-tiny.ckpt' });
    expect(r.ok).toBe(true);
    const res = (r as { result: { written: string; tensors: number; bytes: number } }).result;
    const out = path.join(models, 'vae', 'vae-ft-mse-tiny.safetensors');
    expect(res).toEqual({ written: 'vae-ft-mse-tiny.safetensors', tensors: expect.any(Number), bytes: fs.statSync(out).size });
    const a = SafetensorsFile.open(out),
      b = SafetensorsFile.open(TWIN);
    expect(res.tensors).toBe(b.keys().length);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const k of b.keys()) {
      expect([a.get(k).dtype, a.get(k).shape], k).toEqual([b.get(k).dtype, b.get(k).shape]);
      expect(readTensorBytes(a.get(k)).equals(readTensorBytes(b.get(k))), k).toBe(true);
    }
    // The lists the editor refreshes afterwards show it; nothing else is left in the folder.
    expect((await handlers.listModels({})).vae).toEqual(['vae-ft-mse-tiny.ckpt', 'vae-ft-mse-tiny.safetensors']);

    // A second call answers with the same file and does not rewrite it.
    const before = fs.statSync(out);
    const again = await convert({ kind: 'vae', name: 'vae-ft-mse-tiny.ckpt' });
    expect(again).toEqual({ ok: true, result: res });
    const after = fs.statSync(out);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect(folder('vae')).toEqual(['vae-ft-mse-tiny.ckpt', 'vae-ft-mse-tiny.safetensors']);
  });

  it('never overwrites a different file under the target name', async () => {
    fs.copyFileSync(CKPT, path.join(models, 'vae', 'vae-ft-mse-tiny.ckpt'));
    fs.writeFileSync(path.join(models, 'vae', 'vae-ft-mse-tiny.safetensors'), 'mine');
    const r = await convert({ kind: 'vae', name: 'vae-ft-mse-tiny.ckpt' });
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/already exists and is not this file's conversion/) });
    expect(fs.readFileSync(path.join(models, 'vae', 'vae-ft-mse-tiny.safetensors'), 'utf8')).toBe('mine');
    expect(folder('vae')).toEqual(['vae-ft-mse-tiny.ckpt', 'vae-ft-mse-tiny.safetensors']);
  });

  it('refuses names outside the folder, non-pickles and a malicious pickle, with the reason, writing nothing', async () => {
    fs.copyFileSync(CKPT, path.join(dir, 'outside.ckpt'));
    fs.copyFileSync(MALICIOUS, path.join(models, 'ipadapter', 'ip-adapter_os_system.bin'));
    fs.copyFileSync(TWIN, path.join(models, 'vae', 'renamed.bin'));
    fs.rmSync(MARKER, { force: true });
    const cases: [unknown, RegExp][] = [
      [{ kind: 'vae', name: '../../outside.ckpt' }, /contains "\.\."/],
      [{ kind: 'vae', name: path.join(dir, 'outside.ckpt') }, /not a file name inside models\/vae/],
      [{ kind: 'vae', name: 'vae-ft-mse-tiny.safetensors' }, /not a PyTorch pickle/],
      [{ kind: 'vae', name: 'renamed.bin' }, /not a PyTorch pickle by its content/],
      [{ kind: 'vae', name: 'missing.ckpt' }, /no file missing\.ckpt in models\/vae/],
      [{ kind: 'ipadapter', name: 'ip-adapter_os_system.bin' }, /"os\.system" is not a tensor-file global/],
      [{ kind: 'nonsense', name: 'x.ckpt' }, /invalid params for convertModel: kind/],
      [{ kind: 'vae', name: '' }, /invalid params for convertModel: name/],
    ];
    for (const [params, reason] of cases) {
      const r = await convert(params);
      expect(r, JSON.stringify(params)).toMatchObject({ ok: false, error: expect.stringMatching(reason) });
    }
    expect(fs.existsSync(MARKER)).toBe(false);
    expect(folder('ipadapter')).toEqual(['ip-adapter_os_system.bin']);
    expect(folder('vae')).toEqual(['renamed.bin']);
    expect(fs.readdirSync(dir).sort()).toEqual(['models', 'outside.ckpt']);
  });
});
