import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixtureFolder } from '../../test/helpers/fixtures.js';
import { loadCheckpoint } from '../checkpoint.js';
import { UNetModel } from '../unet.js';
import { callUNet } from '../unet-call.js';
import { DataType, Graph } from './graph.js';
import { PROFILES } from './profile.js';
import { createSession, ort, runWithNaNGuard, sessionProfile } from './session.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-nan-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * y = Transpose(x * 2): x = 4e4 overflows fp16 (8e4 > 65504), not float32. (On the x86 CPU most fp16 ops compute in
 * float32 and ONNX Runtime drops Cast pairs between them, so only some fp16 values are really stored: this one is.)
 */
function overflowGraph() {
  const g = new Graph('overflow');
  const x = g.input('x', DataType.FLOAT, [2, 2]);
  g.output('y', g.op('Transpose', [g.op('Mul', [x, g.scalar(2)])], { perm: [1, 0] }), DataType.FLOAT, [2, 2]);
  return g.build();
}

describe('NaN guard', () => {
  it('a non-finite output of an fp16 session is computed again in fp32 on the same provider, with a notice', async () => {
    const s = await createSession(overflowGraph(), { cacheDir: tmp, profile: PROFILES['cpu-fp16'] });
    expect(sessionProfile(s)?.id).toBe('cpu-fp16');
    const feeds = { x: new ort.Tensor('float32', Float32Array.from([4e4, 50, 1, 0]), [2, 2]) };
    expect([...((await s.run(feeds)).y!.data as Float32Array)].some((v) => !Number.isFinite(v))).toBe(true); // fp16 overflowed
    const { out, notice } = await runWithNaNGuard(s, feeds);
    expect([...(out.y!.data as Float32Array)].map((v) => Math.round(v * 1e4) / 1e4)).toEqual([8e4, 2, 100, 0]); // transposed
    expect(notice).toMatch(/fp16 graph \(profile cpu-fp16\) gave a non-finite output; this step was re-run in fp32 on cpu/);
    // A finite result is returned as it is, without a notice.
    const small = { x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2]) };
    expect((await runWithNaNGuard(s, small)).notice).toBeUndefined();
    await s.release();
  });

  it('a float32 session is never re-run', async () => {
    const s = await createSession(overflowGraph(), { cacheDir: tmp });
    const inf = { x: new ort.Tensor('float32', Float32Array.from([Infinity, 1, 1, 1]), [2, 2]) };
    expect((await runWithNaNGuard(s, inf)).notice).toBeUndefined();
    await s.release();
  });

  const diffusers = path.join(fixtureFolder('tiny-sd15'), 'diffusers');
  it.skipIf(!fs.existsSync(diffusers))('callUNet on an fp16 UNet whose step overflows returns the fp32 step and says so', async () => {
    const ck = loadCheckpoint(diffusers);
    const u = await UNetModel.create(ck.unet.config, ck.unet.weights, { cacheDir: tmp, profile: PROFILES['cpu-fp16'] });
    const c = ck.unet.config;
    const n = c.inChannels * 8 * 8;
    const inp = {
      sample: { data: new Float32Array(n).fill(1e8), dims: [1, c.inChannels, 8, 8] }, // conv_in's output overflows fp16, not float32
      timestep: 500,
      encoderHiddenStates: { data: new Float32Array(77 * c.crossAttentionDim).fill(0.1), dims: [1, 77, c.crossAttentionDim] },
    };
    const out = await callUNet(u, inp);
    expect(out.notice).toMatch(/re-run in fp32 on cpu/);
    expect(out.data.every(Number.isFinite)).toBe(true);
    await u.release();
  });
});
