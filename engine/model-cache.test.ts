/**
 * The model cache hard-links each weight file it loads (models/onnx/session.ts), so deleting a model
 * freed no disk space (issue 13): at start-up the cached graphs whose link is the last one of its file
 * are removed, and the settings' "Clear model cache" (host channel clearModelCache) removes the whole
 * cache after releasing the loaded models; both say what they removed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEvent, Workflow } from './api.js';
import { ensureDemoModels } from './demo/demo.js';
import { createEngine, type Engine } from './engine.js';
import { createApiHandlers, invokeApi } from './hosts/host-api.js';

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-model-cache-')));
const models = path.join(tmp, 'models');
const userData = path.join(tmp, 'user');
const onnxCache = path.join(userData, 'cache', 'onnx');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Empty Latent -> VAE Decode with a.safetensors and with b.safetensors (Load VAE) -> Preview Image each. */
const workflow: Workflow = {
  format: 'ipadapter-studio/workflow',
  version: 1,
  nodes: [
    { id: 'latent', type: 'empty-latent-image', params: { width: 64, height: 64, batch_size: 1 } },
    ...['a', 'b'].flatMap((v): Workflow['nodes'] => [
      { id: `vae_${v}`, type: 'load-vae', params: { vae_name: `${v}.safetensors` } },
      { id: `decode_${v}`, type: 'vae-decode', params: {} },
      { id: `out_${v}`, type: 'preview-image', params: {} },
    ]),
  ],
  edges: ['a', 'b'].flatMap((v) => [
    { from: { node: 'latent', port: 'latent' }, to: { node: `decode_${v}`, port: 'samples' } },
    { from: { node: `vae_${v}`, port: 'vae' }, to: { node: `decode_${v}`, port: 'vae' } },
    { from: { node: `decode_${v}`, port: 'image' }, to: { node: `out_${v}`, port: 'images' } },
  ]),
};

const open = (logs: string[] = []): Engine => {
  const e = createEngine({ modelsDir: models, outputDir: path.join(tmp, 'out'), provider: 'cpu', userDataDir: userData, demo: false });
  e.subscribe((ev: RunEvent) => ev.type === 'log' && logs.push(ev.message));
  return e;
};

/** The cached graphs' folders with the inode of each weight link. */
const cached = () =>
  fs.existsSync(onnxCache)
    ? fs.readdirSync(onnxCache).map((d) => ({
        dir: d,
        links: fs
          .readdirSync(path.join(onnxCache, d))
          .filter((n) => n.endsWith('.safetensors'))
          .map((n) => fs.statSync(path.join(onnxCache, d, n)).ino),
      }))
    : [];

describe('model cache', () => {
  it('drops at start-up the cached graphs of a model file deleted since; Clear model cache removes the rest', async () => {
    const demo = ensureDemoModels(path.join(tmp, 'demo'));
    fs.mkdirSync(path.join(models, 'vae'), { recursive: true });
    for (const v of ['a', 'b'])
      fs.copyFileSync(path.join(demo, 'vae', 'vae-ft-mse-840000-ema-pruned.safetensors'), path.join(models, 'vae', `${v}.safetensors`));
    const ino = (v: string) => fs.statSync(path.join(models, 'vae', `${v}.safetensors`)).ino;
    const inoA = ino('a');
    const inoB = ino('b');

    let engine = open();
    expect((await engine.run(workflow)).ok).toBe(true);
    await engine.close();
    const before = cached();
    expect(before.some((c) => c.links.includes(inoA))).toBe(true);
    expect(before.some((c) => c.links.includes(inoB))).toBe(true);

    // a.safetensors deleted: only the cache's link keeps its bytes, until the next start.
    fs.rmSync(path.join(models, 'vae', 'a.safetensors'));
    const logs: string[] = [];
    engine = open(logs);
    await new Promise((r) => setTimeout(r, 10));
    const after = cached();
    expect(after.some((c) => c.links.includes(inoA))).toBe(false);
    expect(after.filter((c) => c.links.includes(inoB))).toEqual(before.filter((c) => c.links.includes(inoB)));
    expect(logs).toContainEqual(expect.stringMatching(/^model cache: removed \d+ file\(s\) of models deleted since \(0\.\d\d GB freed\)/));

    // Clear model cache through the host channel: everything goes; b's bytes stay (the models folder's file).
    const handlers = createApiHandlers({
      engine,
      host: 'web',
      info: () => ({ version: '0', providers: ['cpu'], demo: false, notices: [] }),
      examplesDir: tmp,
      inputsDir: path.join(tmp, 'in'),
    });
    const wf = { ...workflow, nodes: workflow.nodes.filter((n) => !n.id.endsWith('_a')), edges: workflow.edges.filter((e) => !e.to.node.endsWith('_a')) };
    expect((await engine.run(wf)).ok).toBe(true);
    const r = await invokeApi(handlers, 'clearModelCache', {});
    expect(r).toMatchObject({ ok: true, result: { files: expect.any(Number), freedBytes: expect.any(Number) } });
    const res = (r as { result: { files: number; freedBytes: number } }).result;
    expect(res.files).toBeGreaterThanOrEqual(2); // a graph and its weight link at least
    expect(res.freedBytes).toBeLessThan(fs.statSync(path.join(models, 'vae', 'b.safetensors')).size); // the link freed nothing
    expect(cached()).toEqual([]);
    expect(engine.store.keys()).toEqual([]); // the loaded models were released
    expect(fs.statSync(path.join(models, 'vae', 'b.safetensors')).nlink).toBe(1);
    // The next run builds what it needs again (another latent size: the decoded images are not in the output cache).
    const wf2 = { ...wf, nodes: wf.nodes.map((n) => (n.id === 'latent' ? { ...n, params: { ...n.params, width: 72 } } : n)) };
    expect((await engine.run(wf2)).ok).toBe(true);
    expect(cached().some((c) => c.links.includes(inoB))).toBe(true);

    // Refused while a run is queued or running (its sessions are in use).
    const job = engine.start(wf);
    expect(await invokeApi(handlers, 'clearModelCache', {})).toEqual({ ok: false, error: expect.stringMatching(/a run is in progress or queued/) });
    await job.done;
    await engine.close();
  });
});
