/**
 * Issue 13 item 2: a model file replaced in place (same path, same size, same mtime, a new inode,
 * as a download or `mv` over it does) is loaded again by the next run: the executor's signature
 * of the loader node and the model store's keys carry the file's identity (device, inode, size,
 * mtime), the entries made from the old file are released, and the log says so.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent, Workflow } from './api.js';
import { ensureDemoModels } from './demo/demo.js';
import { createEngine, type Engine } from './engine.js';
import { ModelStore, pathIdentity } from './model-store.js';
import { SafetensorsFile } from '../models/safetensors.js';
import type { ImageValue } from '../nodes/values.js';

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-identity-')));
const vaeFile = path.join(tmp, 'models', 'vae', 'replaced.safetensors');
const STAMP = new Date('2026-01-01T00:00:00Z');
let engine: Engine;
let demo = '';
const logs: string[] = [];

/** Empty Latent -> VAE Decode (Load VAE `replaced.safetensors`) -> Preview Image. */
const workflow: Workflow = {
  format: 'ipadapter-studio/workflow',
  version: 1,
  nodes: [
    { id: 'latent', type: 'empty-latent-image', params: { width: 64, height: 64, batch_size: 1 } },
    { id: 'vae', type: 'load-vae', params: { vae_name: 'replaced.safetensors' } },
    { id: 'decode', type: 'vae-decode', params: {} },
    { id: 'out', type: 'preview-image', params: {} },
  ],
  edges: [
    { from: { node: 'latent', port: 'latent' }, to: { node: 'decode', port: 'samples' } },
    { from: { node: 'vae', port: 'vae' }, to: { node: 'decode', port: 'vae' } },
    { from: { node: 'decode', port: 'image' }, to: { node: 'out', port: 'images' } },
  ],
};

/** The demo VAE's bytes with its output conv's bias shifted by `shift` (same size and layout). */
function vaeBytes(demo: string, shift: number): Buffer {
  const src = path.join(demo, 'vae', 'vae-ft-mse-840000-ema-pruned.safetensors');
  const bytes = fs.readFileSync(src);
  const bias = SafetensorsFile.open(src).get('decoder.conv_out.bias');
  expect(bias.dtype).toBe('F32');
  for (let o = bias.offset; o < bias.offset + bias.length; o += 4) bytes.writeFloatLE(bytes.readFloatLE(o) + shift, o);
  return bytes;
}

/** Writes `bytes` to a new file and renames it over `file` (a new inode), with the same mtime as before. */
function replaceInPlace(file: string, bytes: Buffer): void {
  fs.writeFileSync(`${file}.new`, bytes);
  fs.utimesSync(`${file}.new`, STAMP, STAMP);
  fs.renameSync(`${file}.new`, file);
}

async function decoded(e: Engine = engine): Promise<Float32Array> {
  let image: ImageValue | undefined;
  const r = await e.run(workflow, { onNodeOutputs: (node, out) => node === 'decode' && (image = out.image as ImageValue) });
  expect(r.error).toBeUndefined();
  return image!.data;
}

beforeAll(() => {
  demo = ensureDemoModels(path.join(tmp, 'demo'));
  fs.mkdirSync(path.dirname(vaeFile), { recursive: true });
  fs.writeFileSync(vaeFile, vaeBytes(demo, 0));
  fs.utimesSync(vaeFile, STAMP, STAMP);
  engine = createEngine({
    modelsDir: path.join(tmp, 'models'),
    outputDir: path.join(tmp, 'out'),
    provider: 'cpu',
    userDataDir: path.join(tmp, 'user'),
    demo: false,
  });
  engine.subscribe((e: RunEvent) => e.type === 'log' && logs.push(e.message));
});
afterAll(async () => {
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('a model file replaced in place', () => {
  it('is loaded again by the next run, and the log says so', async () => {
    const before = await decoded();
    expect(await decoded()).toEqual(before); // unchanged: cached
    const vaeLoads = () => [...engine.store.loads].filter(([k]) => k.startsWith('vae|file=')).reduce((n, [, c]) => n + c, 0);
    expect(vaeLoads()).toBe(1);

    const st0 = fs.statSync(vaeFile);
    replaceInPlace(vaeFile, vaeBytes(demo, 0.5));
    const st1 = fs.statSync(vaeFile);
    expect([st1.size, st1.mtimeMs]).toEqual([st0.size, st0.mtimeMs]); // only the inode tells them apart
    expect(st1.ino).not.toBe(st0.ino);

    const after = await decoded();
    expect(vaeLoads()).toBe(2);
    // The new weights: what an engine that never saw the old file decodes.
    expect(after).not.toEqual(before);
    const fresh = createEngine({
      modelsDir: path.join(tmp, 'models'),
      outputDir: path.join(tmp, 'out'),
      provider: 'cpu',
      userDataDir: path.join(tmp, 'user2'),
      demo: false,
    });
    try {
      expect(after).toEqual(await decoded(fresh));
    } finally {
      await fresh.close();
    }
    expect(logs.some((m) => m.startsWith(`${vaeFile} changed on disk since it was loaded`) && /releasing \d+ model/.test(m))).toBe(true);
    // The entries made from the old file are gone: one VAE under this path is left.
    await new Promise((r) => setTimeout(r, 0));
    expect(
      engine.store
        .keys()
        .filter((k) => k.includes(`${vaeFile}@`))
        .every((k) => k.includes(`${vaeFile}@${pathIdentity(vaeFile)}`)),
    ).toBe(true);
  });

  it('fileKey: an edit in place (same inode, new mtime) is a new identity too; a folder counts its files', () => {
    const store = new ModelStore({ cacheDir: path.join(tmp, 'cache2'), provider: 'cpu' });
    const dir = path.join(tmp, 'folder');
    fs.mkdirSync(path.join(dir, 'unet'), { recursive: true });
    const f = path.join(dir, 'unet', 'w.safetensors');
    fs.writeFileSync(f, 'aaaa');
    fs.utimesSync(f, STAMP, STAMP);
    const k1 = store.fileKey(f);
    const d1 = store.fileKey(dir);
    fs.writeFileSync(f, 'bbbb'); // same inode and size
    expect(store.fileKey(f)).not.toBe(k1);
    expect(store.fileKey(dir)).not.toBe(d1);
    expect(store.fileKey('')).toBe('');
    expect(pathIdentity(path.join(tmp, 'not-there'))).toBe('unreadable(ENOENT)');
  });
});
