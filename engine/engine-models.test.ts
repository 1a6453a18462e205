/**
 * Sessions are released: unloadModels(prefix) releases the matching ONNX Runtime sessions and the
 * next run loads them again; changing the models folder or the provider releases them all.
 * On the demo model set (tiny random weights in a temp folder).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEngine, type Engine } from './engine.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-engine-models-'));
let engine: Engine;

beforeAll(() => {
  for (const d of ['models-a', 'models-b']) fs.mkdirSync(path.join(tmp, d));
  engine = createEngine({ modelsDir: path.join(tmp, 'models-a'), outputDir: path.join(tmp, 'out'), provider: 'cpu', userDataDir: path.join(tmp, 'user') });
});
afterAll(async () => {
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const unetKeys = () => engine.store.keys().filter((k) => k.startsWith('unet|'));
const loadsOf = (key: string) => engine.store.loads.get(key) ?? 0;
/** The loaded value under `key` (never loads: the store has it). */
const loaded = <T>(key: string) =>
  engine.store.get<T>(key, () => {
    throw new Error(`${key} is not loaded`);
  });

describe('releasing models', () => {
  it('unloadModels("unet|") releases the UNet session; the next run loads it again (+1)', async () => {
    expect((await engine.run(ipAdapterWorkflow({ image: IMAGE, seed: 1, steps: 2 }))).ok).toBe(true);
    const [key] = unetKeys();
    expect(key).toBeDefined();
    const before = loadsOf(key);
    const session = await loaded<{ release(): Promise<void> }>(key);
    const release = vi.spyOn(session, 'release');
    const others = engine.store.keys().filter((k) => !k.startsWith('unet|'));

    await engine.unloadModels('unet|');
    expect(release).toHaveBeenCalledTimes(1);
    expect(unetKeys()).toEqual([]);
    expect(engine.store.keys()).toEqual(others); // only the prefix goes

    // A new seed re-runs the sampler (the output cache would otherwise answer it), which needs the UNet.
    expect((await engine.run(ipAdapterWorkflow({ image: IMAGE, seed: 2, steps: 2 }))).ok).toBe(true);
    expect(loadsOf(key)).toBe(before + 1);
    expect(unetKeys()).toEqual([key]);
  });

  it('a new models folder releases every session and forgets cached outputs', async () => {
    const [key] = unetKeys();
    const session = await loaded<{ release(): Promise<void> }>(key);
    const release = vi.spyOn(session, 'release');
    const before = loadsOf(key);
    engine.updateSettings({ modelsDir: path.join(tmp, 'models-b') });
    await vi.waitFor(() => expect(engine.store.keys()).toEqual([]));
    expect(release).toHaveBeenCalledTimes(1);
    // Same workflow, same seed as before: nothing may come from the cache of the old folder.
    const r = await engine.run(ipAdapterWorkflow({ image: IMAGE, seed: 2, steps: 2 }));
    expect(r.ok).toBe(true);
    expect(loadsOf(key)).toBe(before + 1);
  });

  it('a new provider releases every session too', async () => {
    expect(engine.store.keys().length).toBeGreaterThan(0);
    engine.updateSettings({ provider: 'webgpu' });
    await vi.waitFor(() => expect(engine.store.keys()).toEqual([]));
    expect(engine.store.provider).toBe('webgpu');
    engine.updateSettings({ provider: 'cpu' });
    await vi.waitFor(() => expect(engine.store.provider).toBe('cpu'));
  });
});
