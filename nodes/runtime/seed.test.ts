/**
 * Seeds through the engine (demo model set): a version-1 DDIM workflow draws exactly the Philox
 * noise it drew before version 2; new workflows start from torch.randn(manual_seed(seed)), also
 * for 64-bit seeds; seeds outside [0, 2^64) are refused at validation.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../../engine/api.js';
import type { NoiseRequest } from '../../engine/context.js';
import { createEngine } from '../../engine/engine.js';
import { philoxNoise, seededNoise } from '../../engine/rng.js';
import { torchRandn } from '../../models/sampling/torch-randn.js';
import { ipAdapterWorkflow } from '../../test/helpers/workflows.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-seed-'));
const engine = createEngine({
  modelsDir: path.join(tmp, 'none'),
  outputDir: path.join(tmp, 'out'),
  provider: 'cpu',
  userDataDir: path.join(tmp, 'user'),
  demo: true,
});
afterAll(() => engine.close());

/** The version-1 test workflow (64x64, latents [1, 4, 8, 8]) with DDIM eta 0.3, so steps draw noise too. */
function v1(seed: number | string = 1234567): Workflow {
  const wf = ipAdapterWorkflow({ image: path.join(root, 'examples/images/image-prompt.png'), seed: 0, steps: 3 });
  const s = wf.nodes.find((n) => n.id === 'sampler')!;
  s.params = { ...s.params, seed, eta: 0.3 };
  return wf;
}
const asV2 = (wf: Workflow, noise?: string): Workflow => ({
  ...wf,
  version: 2,
  nodes: wf.nodes.map((n) => (n.id === 'sampler' && noise ? { ...n, params: { ...n.params, noise } } : n)),
});

async function run(wf: Workflow, noise?: (r: NoiseRequest) => Float32Array) {
  const requests: NoiseRequest[] = [];
  let start: Float32Array | null = null;
  let latent: Float32Array | null = null;
  const r = await engine.run(wf, {
    noise: (req) => {
      requests.push(req);
      return (noise ?? seededNoise)(req);
    },
    trace: (e) => {
      if (e.node === 'sampler' && e.name === 'start_latents') start = e.data.slice();
    },
    onNodeOutputs: (id, o) => {
      if (id === 'sampler') latent = (o.latent as { samples: Float32Array }).samples;
    },
  });
  expect(r.error ?? null).toBeNull();
  return { requests, start: start!, latent: latent! };
}

describe('seeded noise through the engine', () => {
  it('a version-1 DDIM workflow gives bit-identical latents after the migration (Philox, as before version 2)', async () => {
    const migrated = await run(v1());
    expect(migrated.requests.map((r) => [r.purpose, r.generator, r.step])).toEqual([
      ['latents', 'philox', undefined],
      ['eta', 'philox', 0],
      ['eta', 'philox', 1],
      ['eta', 'philox', 2],
    ]);
    // Before version 2 every draw was philoxNoise(request), whatever the node: the same workflow
    // told to use torch but given that source computes the same latents.
    const before = await run(asV2(v1(), 'torch'), (req) => philoxNoise(req));
    expect(
      Buffer.from(migrated.latent.buffer, migrated.latent.byteOffset, migrated.latent.byteLength).equals(
        Buffer.from(before.latent.buffer, before.latent.byteOffset, before.latent.byteLength),
      ),
    ).toBe(true);
    expect(migrated.start).toEqual(philoxNoise({ node: 'sampler', purpose: 'latents', seed: 1234567, shape: [1, 4, 8, 8] }));
  });

  it('a new workflow starts from torch.randn(manual_seed(seed)) and draws DDIM eta noise from the same generator', async () => {
    // (Another seed than the test above, whose last run the executor's cache holds.)
    const t = await run(asV2(v1(7654321)));
    expect(t.requests.map((r) => [r.purpose, r.generator, r.step])).toEqual([
      ['latents', 'torch', undefined],
      ['eta', 'torch', 0],
      ['eta', 'torch', 1],
      ['eta', 'torch', 2],
    ]);
    expect(t.start).toEqual(torchRandn(7654321, [1, 4, 8, 8]));
    const big = await run(asV2(v1('18446744073709551615')));
    expect(big.requests[0].seed).toBe(2n ** 64n - 1n);
    expect(big.start).toEqual(torchRandn('18446744073709551615', [1, 4, 8, 8]));
  });

  it('refuses seeds outside [0, 2^64) at validation, naming the node and the range', () => {
    for (const [seed, msg] of [
      ['18446744073709551616', /not below 2\^64/],
      [-1, /below 0/],
      [2 ** 60, /decimal string/],
      [2.5, /whole number/],
    ] as const) {
      const errors = engine.validate(asV2(v1(seed)));
      expect(errors.find((e) => e.param === 'seed')?.message, String(seed)).toMatch(msg);
      expect(errors.find((e) => e.param === 'seed')?.message).toMatch(/DDIM Sampler \(sampler\): seed: /);
    }
    expect(engine.validate(asV2(v1('18446744073709551615')))).toEqual([]);
  });
});
