import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataType, Graph } from '../models/onnx/graph.js';
import { ort } from '../models/onnx/session.js';
import { providersHere } from './hosts/host-config.js';
import { ModelStore } from './model-store.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-store-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A one-op model (y = x), distinct per name so each gets its own session. */
function tiny(name: string) {
  const g = new Graph(name);
  const x = g.input('x', DataType.FLOAT, [1]);
  g.output('y', g.op('Identity', [x]));
  return g.build();
}

describe('model store', () => {
  // Where the CUDA provider library is installed it may start: then there is nothing to fall back from.
  it.skipIf(providersHere().includes('cuda'))('falls back to CPU once for a provider that fails, and says so once', async () => {
    const logs: string[] = [];
    const store = new ModelStore({ cacheDir: tmp, provider: 'cuda', log: (m) => logs.push(m) });
    ort.env.logLevel = 'fatal'; // the expected provider failure would print a native error line per try
    // Two sessions loading at once both meet the failure; a third comes after it is known.
    await Promise.all([store.session('a', () => tiny('a')), store.session('b', () => tiny('b'))]);
    expect(store.activeProvider).toBe('cpu');
    expect(store.sessionConfig().provider).toBe('cpu');
    const c = await store.session('c', () => tiny('c'));
    const out = await c.run({ x: new ort.Tensor('float32', new Float32Array([3]), [1]) });
    expect(Array.from(out.y.data as Float32Array)).toEqual([3]);
    expect(logs.filter((m) => /failed to start/.test(m))).toHaveLength(1);
    expect(logs.find((m) => /failed to start/.test(m))).toMatch(/^provider cuda failed to start .*falling back to CPU/);
    expect(store.provider).toBe('cuda'); // the setting is kept; only the sessions use CPU

    // Choosing a provider again tries it again (and releases the CPU sessions made meanwhile).
    await store.setProvider('cpu');
    expect(store.keys()).toEqual([]);
    await store.setProvider('cuda');
    expect(store.activeProvider).toBe('cuda');
    await store.session('d', () => tiny('d'));
    expect(logs.filter((m) => /failed to start/.test(m))).toHaveLength(2);
    await store.unload();
  });

  it('unload(prefix) releases matching entries only and a failed load is retried', async () => {
    const store = new ModelStore({ cacheDir: tmp, provider: 'cpu' });
    const released: string[] = [];
    await store.get(
      'unet|x',
      () => 'u',
      () => void released.push('unet|x'),
    );
    await store.get(
      'vae|x',
      () => 'v',
      () => void released.push('vae|x'),
    );
    await store.unload('unet|');
    expect(released).toEqual(['unet|x']);
    expect(store.keys()).toEqual(['vae|x']);
    await store.get('unet|x', () => 'u');
    expect(store.loads.get('unet|x')).toBe(2);
    await expect(
      store.get('bad', () => {
        throw new Error('broken file');
      }),
    ).rejects.toThrow(/broken file/);
    await expect(store.get('bad', () => 'fixed')).resolves.toBe('fixed');
  });
});
