import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixtureFolder } from '../../test/helpers/fixtures.js';
import { loadCheckpoint } from '../checkpoint.js';
import { IpAdapterModel } from '../ip-adapter.js';
import { UNET_SESSION_OPTIONS, buildUNet } from '../unet.js';
import { callUNet, unetFeeds } from '../unet-call.js';
import { residentFeeds, residentStats, unetPerStepInput } from './device-tensors.js';
import { DataType, Graph } from './graph.js';
import { PROFILES, defaultProfile } from './profile.js';
import { FIXED_DIMS, FixedShapeSession, createSession, feedDims, ort, runWithNaNGuard, withFixedDims } from './session.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-device-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** y = x + c over (batch, 4). */
function addGraph() {
  const g = new Graph('add');
  const x = g.input('x', DataType.FLOAT, ['batch', 4]);
  const c = g.input('c', DataType.FLOAT, ['batch', 4]);
  g.output('y', g.op('Add', [x, c]), DataType.FLOAT, ['batch', 4]);
  return g.build();
}
const t = (n: number, s: number) =>
  new ort.Tensor(
    'float32',
    Float32Array.from({ length: n * 4 }, (_, i) => i + s),
    [n, 4],
  );

describe('fixed input shapes', () => {
  it('withFixedDims writes the given dims into the graph inputs, with its own key; feedDims reads them from feeds', () => {
    const m = addGraph();
    const f = withFixedDims(m, { batch: 2 });
    expect(f.spec.inputs.map((i) => i.dims)).toEqual([
      [2, 4],
      [2, 4],
    ]);
    expect(f.key).not.toBe(m.key);
    expect(withFixedDims(m, { batch: 3 }).key).not.toBe(f.key);
    expect(withFixedDims(m, {})).toBe(m);
    expect(feedDims(m, { x: t(2, 0), c: t(2, 1) }, FIXED_DIMS)).toEqual({ batch: 2 });
    expect(feedDims(m, { x: t(2, 0), c: t(3, 1) }, FIXED_DIMS)).toEqual({}); // two values: left free
  });

  it('the CPU default path is unchanged: a plain session, and residentFeeds returns the feeds themselves', async () => {
    const s = await createSession(addGraph(), { cacheDir: tmp });
    expect(s).not.toBeInstanceOf(FixedShapeSession);
    const feeds = { x: t(2, 0), c: t(2, 1) };
    expect(await residentFeeds(s, feeds, () => false)).toBe(feeds);
    expect(residentStats(s)).toBeUndefined();
    await s.release();
  });

  it('a FixedShapeSession builds one session per size: the same size reuses it, another size builds anew, results as the free session', async () => {
    const m = addGraph();
    const cfg = { cacheDir: tmp };
    const free = await createSession(m, cfg);
    const plain = await createSession(m, cfg);
    const s = new FixedShapeSession(free, m, cfg, defaultProfile('cpu'), 'cpu', FIXED_DIMS);
    const y = async (session: ort.InferenceSession, n: number) => [...((await session.run({ x: t(n, 0), c: t(n, 10) })).y!.data as Float32Array)];
    expect(await y(s, 2)).toEqual(await y(plain, 2));
    expect(await y(s, 2)).toEqual(await y(plain, 2));
    expect([s.builds, s.key]).toEqual([1, '[["batch",2]]']);
    expect(await y(s, 3)).toEqual(await y(plain, 3));
    expect([s.builds, s.key]).toEqual([2, '[["batch",3]]']);
    // Two sizes are held (runs alternating between them build nothing); a third releases the least recently used.
    expect(await y(s, 2)).toEqual(await y(plain, 2));
    expect(s.builds).toBe(2);
    const two = await s.sessionFor({ x: t(2, 0), c: t(2, 0) });
    expect(await y(s, 4)).toEqual(await y(plain, 4));
    expect(await y(s, 2)).toEqual(await y(plain, 2));
    expect(s.builds).toBe(3);
    expect(await s.sessionFor({ x: t(2, 0), c: t(2, 0) })).toBe(two);
    expect(await y(s, 3)).toEqual(await y(plain, 3));
    expect(s.builds).toBe(4);
    // Concurrent runs at two new sizes each get their own size's session.
    const [a, b] = await Promise.all([s.sessionFor({ x: t(5, 0), c: t(5, 0) }), s.sessionFor({ x: t(6, 0), c: t(6, 0) })]);
    expect([a.inputMetadata[0], b.inputMetadata[0]].map((m) => (m && 'shape' in m ? m.shape[0] : null))).toEqual([5, 6]);
    // The fixed session really has fixed dims: it refuses another batch than the one it was built for.
    const inner = await s.sessionFor({ x: t(3, 0), c: t(3, 0) });
    await expect(inner.run({ x: t(1, 0), c: t(1, 0) })).rejects.toThrow(/dimension|shape/i);
    await s.release();
    await plain.release();
  });

  it('the NaN guard works through a FixedShapeSession: a non-finite fp16 step of its fixed session is re-run on that session’s fp32 twin', async () => {
    const g = new Graph('overflow-fixed');
    const x = g.input('x', DataType.FLOAT, ['batch', 2]);
    g.output('y', g.op('Transpose', [g.op('Mul', [x, g.scalar(2)])], { perm: [1, 0] }), DataType.FLOAT, [2, 'batch']);
    const m = g.build();
    const cfg = { cacheDir: tmp };
    const s = new FixedShapeSession(await createSession(m, { ...cfg, profile: PROFILES['cpu-fp16'] }), m, cfg, PROFILES['cpu-fp16']!, 'cpu', FIXED_DIMS);
    const { out, notice } = await runWithNaNGuard(s, { x: new ort.Tensor('float32', Float32Array.from([4e4, 50, 1, 0]), [2, 2]) });
    expect(notice).toMatch(/profile cpu-fp16\) gave a non-finite output; this step was re-run in fp32 on cpu/);
    expect([...(out.y!.data as Float32Array)].map((v) => Math.round(v))).toEqual([80000, 2, 100, 0]);
    expect(s.builds).toBe(1);
    await s.release();
  });

  const dir = fixtureFolder('tiny-sd15');
  it.skipIf(!fs.existsSync(path.join(dir, 'diffusers')))(
    'a CPU session of the tiny UNet + IP-Adapter with batch 2, the latent size and the text length fixed gives the same bytes as the free one',
    async () => {
      const ck = loadCheckpoint(path.join(dir, 'diffusers'));
      const c = ck.unet.config;
      const adapter = IpAdapterModel.load(path.join(dir, 'ip-adapter_sd15-tiny.safetensors'));
      const model = buildUNet(c, ck.unet.weights, { ipAdapter: adapter }).build();
      const inputs = Object.fromEntries(model.spec.inputs.map((i) => [i.name, i.dims]));
      // The symbolic names the fixed shapes key on exist in the UNet graph (models/unet.ts).
      expect(inputs.sample).toEqual(['batch', c.inChannels, 'height', 'width']);
      expect(inputs.encoder_hidden_states).toEqual(['batch', 'text_tokens', c.crossAttentionDim]);
      const fixed = withFixedDims(model, { batch: 2, height: 8, width: 8, text_tokens: 77 });
      expect(fixed.spec.inputs.find((i) => i.name === 'sample')!.dims).toEqual([2, c.inChannels, 8, 8]);
      const opts = { cacheDir: tmp, sessionOptions: UNET_SESSION_OPTIONS };
      const free = { session: await createSession(model, opts), config: c };
      const fix = { session: await createSession(fixed, opts), config: c };
      const rnd = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + s) * 0.5);
      const inp = {
        sample: { data: rnd(2 * c.inChannels * 64, 1), dims: [2, c.inChannels, 8, 8] },
        timestep: 500,
        encoderHiddenStates: { data: rnd(2 * 77 * c.crossAttentionDim, 2), dims: [2, 77, c.crossAttentionDim] },
        ipAdapter: { tokens: { data: rnd(2 * 4 * c.crossAttentionDim, 3), dims: [2, 4, c.crossAttentionDim] }, scale: 0.6 },
      };
      expect(feedDims(model, unetFeeds(free, inp), FIXED_DIMS)).toEqual({ batch: 2, height: 8, width: 8, text_tokens: 77 });
      const a = await callUNet(free, inp);
      const b = await callUNet(fix, inp);
      expect(Buffer.compare(Buffer.from(a.data.buffer), Buffer.from(b.data.buffer))).toBe(0);
      expect(unetPerStepInput('sample') && unetPerStepInput('timestep') && unetPerStepInput('down_block_additional_residual_3')).toBe(true);
      expect(unetPerStepInput('encoder_hidden_states') || unetPerStepInput('ip_tokens_0') || unetPerStepInput('ip_mask_0_1')).toBe(false);
      await free.session.release();
      await fix.session.release();
    },
  );
});

// WebGPU on a software Vulkan driver: Chromium's SwiftShader (the Debian chromium the e2e tests use ships it with a
// Vulkan loader). The check runs in a child process, because the loader's search path is read at process start.
// Skipped only outside CI: .ci/run installs chromium, so there a missing driver fails the test instead of hiding it.
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
describe('device-resident tensors on WebGPU', () => {
  it.skipIf(!fs.existsSync(SWIFTSHADER) && !process.env.CI)(
    'upload / download, resident constant inputs and fixed-shape rebuilds (scripts/gpu-check/device-check.ts)',
    () => {
      const script = path.join(__dirname, '..', '..', 'scripts', 'gpu-check', 'device-check.ts');
      const r = spawnSync(process.execPath, ['--import', 'tsx', script], {
        encoding: 'utf8',
        timeout: 280_000,
        // The attention accuracy report (not a check) is left to gpu-check: it is the slow part on a software driver.
        env: { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER, LD_LIBRARY_PATH: path.dirname(SWIFTSHADER), IPA_DEVICE_CHECK_QUICK: '1' },
      });
      const out = `${r.stdout}${r.stderr}`;
      expect(out, out).toMatch(/device-check: ok/);
      expect(r.status).toBe(0);
    },
    300_000,
  );
});
