/**
 * `npx tsx scripts/gpu-check/device-check.ts`: checks, on the WebGPU provider of this process, what
 * models/onnx/device-tensors.ts and the fixed-shape sessions (models/onnx/session.ts FixedShapeSession) rely on:
 * a CPU tensor uploaded and downloaded again is bit-identical; a session fed its constant input from the device
 * (residentFeeds) gives the bytes it gives with CPU feeds, uploads that input once, uploads it again when the caller
 * rewrites it in place; a WebGPU session is built for its feeds' sizes and rebuilt when they change.
 * Prints one JSON line and `device-check: ok`, or the failed check and exits 1; exits 2 when WebGPU does not start.
 * Without a GPU it runs on a software Vulkan driver (models/onnx/device-tensors.test.ts points it at Chromium's
 * SwiftShader): slow, but the same ONNX Runtime WebGPU code.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromDevice, residentFeeds, residentStats, toDevice } from '../../models/onnx/device-tensors.js';
import { DataType, Graph } from '../../models/onnx/graph.js';
import { profileFor } from '../../models/onnx/profile.js';
import { FixedShapeSession, createSession, ort, sessionProfile } from '../../models/onnx/session.js';

/** y = x W + c: x changes per call, c is the constant input (like the text embeddings of a UNet step). */
function model() {
  const g = new Graph('device-check');
  const x = g.input('x', DataType.FLOAT, ['batch', 8]);
  const c = g.input('c', DataType.FLOAT, ['batch', 8]);
  const w = g.constF(
    Float32Array.from({ length: 64 }, (_, i) => Math.cos(i)),
    [8, 8],
  );
  g.output('y', g.op('Add', [g.op('MatMul', [x, w]), c]), DataType.FLOAT, ['batch', 8]);
  return g.build();
}

const filled = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + s));
const same = (a: ort.Tensor, b: ort.Tensor) => Buffer.compare(Buffer.from((a.data as Float32Array).buffer), Buffer.from((b.data as Float32Array).buffer)) === 0;

/**
 * Reported, not checked: com.microsoft MultiHeadAttention on WebGPU vs the CPU's (77 keys, 2 heads), by query count and
 * head size. On SwiftShader it is exact (3e-7) with 16 queries and off by 1e-2 to 5e-2 from 32 queries up, whatever the
 * head size: enough to fail the UNet's CPU tolerance (its attention has 64 to 4096 queries).
 */
async function attentionError(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [S, d] of [
    [16, 40],
    [64, 40],
    [64, 80],
  ] as const) {
    const g = new Graph('mha-check');
    const q = g.input('q', DataType.FLOAT, [2, S, 2 * d]);
    const k = g.input('k', DataType.FLOAT, [2, 77, 2 * d]);
    const v = g.input('v', DataType.FLOAT, [2, 77, 2 * d]);
    g.output('y', g.op('MultiHeadAttention', [q, k, v], { num_heads: 2 }, undefined, 'com.microsoft'), DataType.FLOAT, null);
    const bytes = g.build().bytes;
    const feeds = {
      q: new ort.Tensor('float32', filled(2 * S * 2 * d, 1), [2, S, 2 * d]),
      k: new ort.Tensor('float32', filled(2 * 77 * 2 * d, 2), [2, 77, 2 * d]),
      v: new ort.Tensor('float32', filled(2 * 77 * 2 * d, 3), [2, 77, 2 * d]),
    };
    const y: Float32Array[] = [];
    for (const ep of ['cpu', 'webgpu']) {
      const s = await ort.InferenceSession.create(bytes, { executionProviders: [ep] });
      y.push((await s.run(feeds)).y!.data as Float32Array);
      await s.release();
    }
    out[`queries_${S}_head_${d}`] = Math.max(...y[0]!.map((a, i) => Math.abs(a - y[1]![i]!)));
  }
  return out;
}

/** The device checks on this process's WebGPU provider: status 0 ok, 1 a check failed, 2 WebGPU did not start. */
export async function deviceCheck(
  log: (line: string) => void = console.log,
): Promise<{ status: 0 | 1 | 2; failures: string[]; report?: Record<string, unknown> }> {
  let report: Record<string, unknown> | undefined;
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-device-check-'));
  const failures: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) failures.push(what);
  };
  try {
    let failed = '';
    const s = await createSession(model(), { cacheDir, provider: 'webgpu', onProviderFailed: (_, e) => (failed = e.message.split('\n')[0]!) });
    if (failed || sessionProfile(s)?.provider !== 'webgpu') {
      log(`device-check: WebGPU did not start here (${failed || 'fell back to the CPU'})`);
      return { status: 2, failures: [failed || 'fell back to the CPU'] };
    }
    check(s instanceof FixedShapeSession, 'a WebGPU session with symbolic dims is a FixedShapeSession');
    const cpuT = new ort.Tensor('float32', filled(16, 0), [2, 8]);
    const back = await fromDevice(await toDevice(cpuT));
    check(back.location === 'cpu' && same(back, cpuT), 'upload + download is bit-identical');

    const x = (k: number) => new ort.Tensor('float32', filled(16, k), [2, 8]);
    const c = filled(16, 9);
    const plain = async (k: number) => (await s.run({ x: x(k), c: new ort.Tensor('float32', c.slice(), [2, 8]) })).y!;
    const resident = async (k: number) => (await s.run(await residentFeeds(s, { x: x(k), c: new ort.Tensor('float32', c, [2, 8]) }, (n) => n === 'x'))).y!;
    for (const k of [1, 2]) check(same(await resident(k), await plain(k)), `step ${k}: resident feeds give the bytes of CPU feeds`);
    const st = residentStats(s);
    check(st?.uploads === 1 && st.reused === 1, `the constant input is uploaded once and reused (${JSON.stringify(st)})`);
    c[3] = 42; // rewritten in place by the caller
    check(same(await resident(3), await plain(3)), 'an input rewritten in place is uploaded again (no stale device copy)');
    check(residentStats(s)?.uploads === 2, 'the rewritten input counts as a second upload');
    const fixed = s as FixedShapeSession;
    const builds = fixed.builds;
    const three = await s.run({ x: new ort.Tensor('float32', filled(24, 5), [3, 8]), c: new ort.Tensor('float32', filled(24, 6), [3, 8]) });
    check(three.y!.dims[0] === 3 && fixed.builds === builds + 1, 'a change of batch size builds a new session');
    await s.run({ x: new ort.Tensor('float32', filled(24, 7), [3, 8]), c: new ort.Tensor('float32', filled(24, 6), [3, 8]) });
    check(fixed.builds === builds + 1, 'a run at the same size reuses it');
    await s.release();

    // fp16: on an adapter without shader-f16 the session builds but cannot run; its runs go to the fp32 twin, with a notice.
    const notices: string[] = [];
    const h = await createSession(model(), { cacheDir, provider: 'webgpu', profile: profileFor('webgpu', 'fp16'), onProfileFallback: (n) => notices.push(n) });
    const f32 = await createSession(model(), { cacheDir, provider: 'webgpu' });
    const hf = { x: x(4), c: new ort.Tensor('float32', c, [2, 8]) };
    const [a, b] = [(await h.run(hf)).y!.data as Float32Array, (await f32.run(hf)).y!.data as Float32Array];
    const err = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    check(err < 0.05 * Math.max(...b.map(Math.abs)), `the fp16 session's result is within fp16 error of fp32 (max ${err})`);
    const f16 = notices.length ? 'no shader-f16: the fp16 session ran its fp32 twin' : 'shader-f16: ran in fp16';
    check(
      notices.every((n) => /has no fp16 shaders/.test(n)),
      `the only notice is the shader-f16 one (${notices.join('; ')})`,
    );
    await h.release();
    await f32.release();
    const mha = process.env.IPA_DEVICE_CHECK_QUICK ? 'not measured (IPA_DEVICE_CHECK_QUICK)' : await attentionError();
    report = { stats: st, builds: fixed.builds, key: fixed.key, f16, mha_max_abs_vs_cpu: mha };
    log(JSON.stringify({ ...report, failures }));
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
  if (failures.length) {
    log(`device-check: FAILED: ${failures.join('; ')}`);
    return { status: 1, failures, report };
  }
  log('device-check: ok');
  return { status: 0, failures, report };
}

// Run directly (not when bundled into gpu-check.mjs, whose import.meta.url is the bundle's).
if (/device-check\.[cm]?[jt]s$/.test(process.argv[1] ?? '') && path.resolve(process.argv[1]!) === fileURLToPath(import.meta.url)) {
  process.exitCode = (await deviceCheck()).status;
}
