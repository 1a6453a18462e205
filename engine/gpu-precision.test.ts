/**
 * Settings' "GPU precision" (issue 15): fp16 (the default) or fp32 on webgpu / cuda / dml, ignored on the CPU.
 * The setting -> graph profile mapping (engine/model-store.ts storeProfile) for every provider, the store releasing
 * its sessions when the active profile changes, the engine taking the setting (and the `precision` option winning
 * over it), persistence in settings.json, the run signature (outputKey), and the PNG's parameters.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Workflow } from './api.js';
import { createEngine, outputKey } from './engine.js';
import { ModelStore, storeProfile } from './model-store.js';
import { PathResolver } from './paths.js';
import { readTextChunks } from './png.js';
import { readSettings, resolveSettings, saveSettings } from './hosts/host-config.js';
import { nodeSpecs } from '../nodes/index.js';
import { saveImages } from '../nodes/runtime/images.js';
import type { ExecContext } from './context.js';
import type { ImageValue } from '../nodes/values.js';
import { profileFor } from '../models/onnx/profile.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-gpu-precision-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('GPU precision -> graph profile', () => {
  it('fp16 (default) and fp32 on each GPU provider; the CPU keeps its own precision', () => {
    for (const p of ['webgpu', 'cuda', 'dml'] as const) {
      expect(storeProfile(p, 'fp32', 'fp16').id).toBe(`${p}-fp16-fused`);
      expect(storeProfile(p, 'fp32', 'fp32').id).toBe(`${p}-fp32`);
      expect(storeProfile(p, 'int8', 'fp16').id).toBe(`${p}-fp16-fused`); // CPU precision fast changes nothing here
      // Without the setting (a store made by a test or a script): `precision` there too, int8 as fp32.
      expect(storeProfile(p, 'int8').id).toBe(`${p}-fp32`);
      expect(storeProfile(p, 'fp16').id).toBe(`${p}-fp16-fused`);
      expect(storeProfile(p).id).toBe(`${p}-fp32`);
    }
    expect(storeProfile('cpu', 'fp32', 'fp16').id).toBe('cpu-fp32');
    expect(storeProfile('cpu', 'int8', 'fp32').id).toBe('cpu-int8');
  });

  it('a store releases its sessions when the GPU precision changes its profile, and only then', async () => {
    const store = new ModelStore({ cacheDir: path.join(tmp, 'store'), provider: 'webgpu', gpuPrecision: 'fp16' });
    expect(store.profile.id).toBe('webgpu-fp16-fused');
    let released = 0;
    await store.get(
      'a',
      () => 1,
      () => void released++,
    );
    await store.setGpuPrecision('fp32');
    expect(store.profile.id).toBe('webgpu-fp32');
    expect([released, store.has('a')]).toEqual([1, false]);
    const cpu = new ModelStore({ cacheDir: path.join(tmp, 'store-cpu'), provider: 'cpu', gpuPrecision: 'fp16' });
    await cpu.get(
      'b',
      () => 2,
      () => void released++,
    );
    await cpu.setGpuPrecision('fp32'); // the CPU's profile is the same: nothing to release
    expect([cpu.profile.id, cpu.has('b'), released]).toEqual(['cpu-fp32', true, 1]);
  });
});

describe('GPU precision in the engine', () => {
  it('fp16 by default on a GPU provider, fp32 when set (sessions released); the precision option wins', async () => {
    const engine = createEngine({ modelsDir: tmp, outputDir: path.join(tmp, 'out'), provider: 'webgpu', userDataDir: path.join(tmp, 'u1'), demo: false });
    try {
      expect(engine.settings().gpuPrecision).toBeUndefined();
      expect(engine.store.profile.id).toBe('webgpu-fp16-fused');
      expect(engine.updateSettings({ gpuPrecision: 'fp32' }).gpuPrecision).toBe('fp32');
      for (let i = 0; i < 3000 && engine.store.profile.id !== 'webgpu-fp32'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(engine.store.profile.id).toBe('webgpu-fp32');
      engine.updateSettings({ provider: 'cpu' });
      for (let i = 0; i < 3000 && engine.store.profile.id !== 'cpu-fp32'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(engine.store.profile.id).toBe('cpu-fp32');
    } finally {
      await engine.close();
    }
    const forced = createEngine({
      modelsDir: tmp,
      outputDir: path.join(tmp, 'out'),
      provider: 'cuda',
      precision: 'fp32',
      userDataDir: path.join(tmp, 'u2'),
      demo: false,
    });
    try {
      expect(forced.store.profile.id).toBe('cuda-fp32');
    } finally {
      await forced.close();
    }
  });

  it('is saved in settings.json and read back; an unknown value is dropped', async () => {
    const file = path.join(tmp, 'settings.json');
    await saveSettings(file, { modelsDir: '/m', outputDir: '/o', provider: 'cuda', gpuPrecision: 'fp32' });
    expect(resolveSettings({ userData: tmp }, file)).toEqual({ modelsDir: '/m', outputDir: '/o', provider: 'cuda', gpuPrecision: 'fp32' });
    fs.writeFileSync(file, JSON.stringify({ modelsDir: '/m', gpuPrecision: 'fp8' }));
    expect(readSettings(file)).toEqual({ modelsDir: '/m' });
  });

  it('is part of the run signature on a GPU provider, not on the CPU', () => {
    const wf: Workflow = {
      format: 'ipadapter-studio/workflow',
      version: 1,
      nodes: [{ id: 'a', type: 'empty-latent-image', params: {} }],
      edges: [],
    } as Workflow;
    const key = (s: Partial<Parameters<typeof outputKey>[3]>) =>
      outputKey(wf, new PathResolver(tmp), nodeSpecs(), { modelsDir: tmp, outputDir: tmp, provider: 'cpu', ...s }, tmp);
    expect(key({ gpuPrecision: 'fp32' })).toBe(key({}));
    expect(key({ provider: 'webgpu', gpuPrecision: 'fp32' })).not.toBe(key({ provider: 'webgpu' }));
    expect(key({ provider: 'webgpu', gpuPrecision: 'fp16' })).toBe(key({ provider: 'webgpu' }));
  });

  it("the PNG's parameters record fp16 with the profile; fp32 adds nothing", async () => {
    const workflow = {
      format: 'ipadapter-studio/workflow',
      version: 1,
      nodes: [
        { id: 'sampler', type: 'ddim-sampler', params: { steps: 4, seed: 1, cfg: 5 } },
        { id: 'decode', type: 'vae-decode', params: {} },
        { id: 'save', type: 'save-image', params: {} },
      ],
      edges: [
        { from: { node: 'sampler', port: 'latent' }, to: { node: 'decode', port: 'samples' } },
        { from: { node: 'decode', port: 'image' }, to: { node: 'save', port: 'images' } },
      ],
    } as Workflow;
    const img: ImageValue = { kind: 'IMAGE', batch: 1, width: 8, height: 8, data: new Float32Array(8 * 8 * 3).fill(0.5) } as ImageValue;
    const params = async (precision: 'fp16' | 'fp32', prefix: string) => {
      const ctx = { workflow, nodeId: 'save', models: { profile: profileFor('webgpu', precision) } } as unknown as ExecContext;
      const [ref] = await saveImages(img, ctx, path.join(tmp, 'png'), prefix);
      return readTextChunks(fs.readFileSync(ref!.path)).parameters ?? '';
    };
    expect(await params('fp16', 'a')).toMatch(/, Precision: fp16 \(webgpu-fp16-fused\)$/);
    expect(await params('fp32', 'b')).not.toMatch(/Precision/);
  });
});
