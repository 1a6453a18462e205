/**
 * Settings' "CPU precision" (issue 17) on the demo models: fast builds the UNet at the cpu-int8 profile (its linears and
 * resnet convs in int8 from a copy written once under the cache), the PNG's parameters say so, and exact (the default) gives the
 * float32 image again with no Precision field.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine } from './engine.js';
import { readTextChunks } from './png.js';
import { SafetensorsFile } from '../models/safetensors.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-cpu-precision-'));
fs.mkdirSync(path.join(tmp, 'empty-models'));
const engine = createEngine({
  modelsDir: path.join(tmp, 'empty-models'),
  outputDir: path.join(tmp, 'out'),
  provider: 'cpu',
  userDataDir: path.join(tmp, 'user'),
});
afterAll(async () => {
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function render(): Promise<{ parameters: string; png: Buffer }> {
  const r = await engine.run(ipAdapterWorkflow({ image: IMAGE, steps: 2, seed: 3 }));
  expect(r.ok, r.error).toBe(true);
  const png = fs.readFileSync(r.images[0]!.path);
  return { parameters: readTextChunks(png).parameters ?? '', png };
}

describe('CPU precision setting', () => {
  it('is exact fp32 by default; fast runs the int8 UNet and records it; exact again gives the fp32 image', async () => {
    expect(engine.settings().cpuPrecision).toBeUndefined();
    const exact = await render();
    expect(exact.parameters).not.toMatch(/Precision/);
    expect(engine.store.profile.id).toBe('cpu-fp32');

    expect(engine.updateSettings({ cpuPrecision: 'fast' }).cpuPrecision).toBe('fast');
    const fast = await render();
    expect(engine.store.profile.id).toBe('cpu-int8');
    expect(fast.parameters).toMatch(/, Precision: int8 \(cpu-int8\)$/);
    const copies = fs.readdirSync(path.join(tmp, 'user', 'cache', 'int8-weights'));
    expect(copies.length).toBeGreaterThan(0);
    // the UNet's copy holds its linears and its resnets' conv1 / conv2 with their calibrated output ranges ('r:')
    const keys = copies.flatMap((f) => SafetensorsFile.open(path.join(tmp, 'user', 'cache', 'int8-weights', f)).keys());
    expect(keys.filter((k) => k.startsWith('r:')).length).toBeGreaterThan(0);

    engine.updateSettings({ cpuPrecision: 'fp32' });
    const again = await render();
    expect(again.parameters).toBe(exact.parameters);
    expect(engine.store.profile.id).toBe('cpu-fp32');
    // same pixels as the first exact run (the PNGs differ only in their workflow chunk's text, which is the same here)
    expect(again.png.equals(exact.png)).toBe(true);
  });
});
