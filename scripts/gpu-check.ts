/**
 * `npm run gpu-check [-- --out FILE] [--steps N] [--budget-s S]`: on a machine with a GPU, for each provider to
 * check (WebGPU; CUDA where its provider library is installed) x graph profile (fp32; fp16 with the provider's fused
 * ops), reports as JSON and a table:
 * - session build time of the SD1.5-size UNet (random F16 weights, IP-Adapter, batch 2 for CFG) and whether the
 *   session really runs on the provider (no fallback to another profile or to the CPU);
 * - the tiny fixtures' network groups through the conformance runner (`--provider P --precision X`): fp32 within the
 *   cases' (CPU) tolerances, fp16 within the fp16 column of test/conformance/tolerances.ts;
 * - NaN checks: non-finite values in the UNet steps and the VAE decode, and the NaN guard's re-runs;
 * - the SD1.5 benchmark at 512x512: ms per UNet step (median), VAE decode ms, and the whole 50-step image;
 * - on WebGPU, tensors on the device (models/onnx/device-tensors.ts) and fixed shapes (FixedShapeSession): the device
 *   checks of scripts/gpu-check/device-check.ts once, the first step (it builds the fixed-shape session), what stayed on
 *   the device, and ms per step of a free-shape session with the constant inputs resident vs copied every step,
 *   interleaved, beside the main loop's fixed-shape + resident figure.
 * Everything runs inside `--budget-s` (default 540 s); a part that would not fit is reported as skipped.
 * On a machine without a GPU it says so and exits 0. Prepared for a bare GPU machine by scripts/gpu-check/prepare.sh.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GraphProfile, profileFor } from '../models/onnx/profile.js';
import { type ResidentStats, residentFeeds, residentStats, unetPerStepInput } from '../models/onnx/device-tensors.js';
import type { BuiltModel } from '../models/onnx/graph.js';
import { FixedShapeSession, type SessionConfig, createSession, ort, sessionProfile } from '../models/onnx/session.js';
import type { Provider } from '../models/providers.js';
import { SafetensorsFile } from '../models/safetensors.js';
import { type UNetInputs, callUNet, unetFeeds } from '../models/unet-call.js';
import { UNET_SESSION_OPTIONS, buildUNet, unetParameterShapes } from '../models/unet.js';
import { type UNetConfig, crossAttnLayers, parseUNetConfig } from '../models/unet-config.js';
import { buildVaeDecoder, parseVaeConfig, vaeParameterShapes } from '../models/vae.js';
import { writeRandomSafetensors } from './bench/random-weights.js';
import { deviceCheck } from './gpu-check/device-check.js';
import { NO_GPU_MESSAGE, detectGpu, ortBinaryDir, providersToCheck } from './gpu-check/detect.js';

const SD15: UNetConfig = parseUNetConfig(
  {
    sample_size: 64,
    block_out_channels: [320, 640, 1280, 1280],
    layers_per_block: 2,
    attention_head_dim: 8,
    norm_num_groups: 32,
    cross_attention_dim: 768,
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  },
  'gpu-check SD1.5 config',
);
const SD15_VAE = parseVaeConfig({
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  latent_channels: 4,
  norm_num_groups: 32,
  scaling_factor: 0.18215,
});
/** The tiny fixture groups that run one network each (the pipelines take longer than the budget allows). */
export const CONFORMANCE_GROUPS = 'tiny-sd15/text_encoder,tiny-sd15/vision_encoder,tiny-sd15/image_proj,tiny-sd15/unet_step,tiny-sd15/vae';

interface Row {
  provider: Provider;
  profile: string;
  /** The profile the session was really built with ('cpu-fp32' = the provider failed to start). */
  ran_on?: string;
  build_s?: number;
  conformance?: { passed: number; failed: number; tolerance: string; failures: string[] } | { skipped: string };
  nan?: { unet_nonfinite_steps: number; guard_reruns: number; vae_nonfinite: number };
  unet_step_ms?: number;
  vae_decode_ms?: number;
  image_50_steps_s?: number;
  /** The image time is the median step x steps (the budget cut the loop short). */
  image_estimated?: boolean;
  steps_measured?: number;
  /** The warm-up step, s (on a GPU provider it builds the fixed-shape session). */
  first_step_s?: number;
  /** WebGPU: what stayed on the device and the fixed-shape session (main loop). */
  fixed_shapes?: { builds: number; sizes: string };
  resident?: ResidentStats;
  /** WebGPU: ms per step (median of interleaved steps) of a free-shape session, constant inputs resident vs copied every step; bytes per step. */
  device?:
    | { free_resident_ms: number; free_copied_ms: number; steps: number; constant_input_bytes: number; sample_bytes: number; noise_pred_bytes: number }
    | { skipped: string };
  error?: string;
}

function args(argv: string[]) {
  const val = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const providers = val('--providers')?.split(',') as Provider[] | undefined;
  return {
    out: val('--out') ?? path.join(process.env.OUT ?? '.', 'gpu-check.json'),
    steps: Number(val('--steps') ?? 50),
    budget: Number(val('--budget-s') ?? 540),
    /** Check these providers without looking for a GPU (a smoke run of this script on the CPU: `--providers cpu --steps 2`). */
    providers,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const finite = (d: Float32Array) => d.every(Number.isFinite);

/** Runs the conformance runner in a child process on `provider` at the profile's precision. */
function conformance(provider: Provider, p: GraphProfile, remainingS: number): Row['conformance'] {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const bundled = path.join(here, 'conformance.mjs'); // the prepared bundle's entry (prepare.sh)
  const entry = fs.existsSync(bundled) ? bundled : path.join(here, '..', 'test', 'conformance', 'run.ts');
  const r = spawnSync(process.execPath, [...process.execArgv, entry, '--provider', provider, '--precision', p.precision, '--only', CONFORMANCE_GROUPS], {
    encoding: 'utf8',
    timeout: Math.max(10, remainingS) * 1000,
    env: process.env,
  });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const m = /conformance: (\d+) passed, (\d+) failed/.exec(text);
  if (!m) return { skipped: `the runner gave no summary (${r.error?.message ?? `exit ${r.status}`}): ${text.slice(-400)}` };
  const failures = text
    .split('\n')
    .filter((l) => /\sFAIL\s/.test(l))
    .slice(0, 10);
  return { passed: Number(m[1]), failed: Number(m[2]), tolerance: p.precision === 'fp32' ? 'cases.json (CPU)' : `${p.precision} column`, failures };
}

async function checkProfile(
  provider: Provider,
  p: GraphProfile,
  files: { unet: string; ip: string; vae: string },
  a: ReturnType<typeof args>,
  deadline: number,
): Promise<Row> {
  const row: Row = { provider, profile: p.id };
  const cacheDir = path.join(os.tmpdir(), 'ipa-gpu-check-cache');
  const left = () => (deadline - performance.now()) / 1000;
  try {
    const unetW = SafetensorsFile.open(files.unet);
    const ipW = SafetensorsFile.open(files.ip);
    const layers = new Map(crossAttnLayers(SD15).map((l) => [l.index, l]));
    const ipAdapter = { layers, layerWeights: (i: number) => ({ toK: ipW.get(`${i}.to_k_ip.weight`), toV: ipW.get(`${i}.to_v_ip.weight`) }) };
    const t0 = performance.now();
    const notices: string[] = [];
    const model = buildUNet(SD15, unetW, { ipAdapter }).build();
    const sessionCfg = {
      cacheDir,
      provider,
      profile: p,
      halfWeights: 'folded' as const,
      sessionOptions: UNET_SESSION_OPTIONS,
      onProfileFallback: (n: string) => notices.push(n),
      onProviderFailed: (q: Provider, e: Error) => notices.push(`provider ${q} failed to start: ${e.message.split('\n')[0]}`),
    };
    const session = await createSession(model, sessionCfg);
    row.build_s = (performance.now() - t0) / 1000;
    row.ran_on = sessionProfile(session)?.id;
    if (notices.length) row.error = notices.join('; ');
    // Batch 2 (CFG), 64x64 latent (512x512), 77 text tokens, 4 image tokens.
    const B = 2;
    const n = B * 4 * 64 * 64;
    const x = new Float32Array(n / 2).map((_, i) => Math.sin(i * 0.37));
    const text = new Float32Array(B * 77 * 768).map((_, i) => 0.5 * Math.cos(i * 0.11));
    const tokens = new Float32Array(B * 4 * 768).map((_, i) => 0.5 * Math.sin(i * 0.07));
    const unet = { session, config: SD15 };
    const nan = { unet_nonfinite_steps: 0, guard_reruns: 0, vae_nonfinite: 0 };
    const inputs = (t: number): UNetInputs => {
      const sample = new Float32Array(n);
      sample.set(x, 0);
      sample.set(x, n / 2);
      return {
        sample: { data: sample, dims: [B, 4, 64, 64] },
        timestep: t,
        encoderHiddenStates: { data: text, dims: [B, 77, 768] },
        ipAdapter: { tokens: { data: tokens, dims: [B, 4, 768] } },
      };
    };
    const step = async (t: number) => {
      const out = await callUNet(unet, inputs(t));
      if (out.notice) nan.guard_reruns++;
      if (!finite(out.data)) nan.unet_nonfinite_steps++;
      // CFG (7.5) and a small Euler-like update keep the latent changing between steps.
      for (let i = 0; i < n / 2; i++) x[i] = x[i]! - 0.02 * (out.data[i]! + 7.5 * (out.data[i + n / 2]! - out.data[i]!));
    };
    const tw = performance.now();
    await step(999); // warm-up (on a GPU provider it also builds the fixed-shape session)
    row.first_step_s = (performance.now() - tw) / 1000;
    const ms: number[] = [];
    const t1 = performance.now();
    for (let s = 0; s < a.steps; s++) {
      if (left() < 60) break;
      const ts = performance.now();
      await step(999 - s * 20);
      ms.push(performance.now() - ts);
    }
    const loop = performance.now() - t1;
    row.steps_measured = ms.length;
    if (ms.length) row.unet_step_ms = median(ms);
    if (session instanceof FixedShapeSession) row.fixed_shapes = { builds: session.builds, sizes: session.key };
    row.resident = residentStats(session);
    await session.release();
    if (provider === 'webgpu' && sessionProfile(session)?.provider === 'webgpu') {
      row.device = left() > 150 ? await freeShapeSteps(model, sessionCfg, inputs, left) : { skipped: 'not enough of the time budget left' };
    }
    if (left() < 30 || !ms.length) throw new Error(`time budget spent after ${ms.length} UNet steps (VAE decode not run)`);
    // VAE decode (1, 4, 64, 64) -> (1, 3, 512, 512).
    const vae = await createSession(buildVaeDecoder(SD15_VAE, SafetensorsFile.open(files.vae)).build(), {
      cacheDir,
      provider,
      profile: p,
      halfWeights: 'folded',
    });
    const z = new ort.Tensor('float32', x.slice(0, 4 * 64 * 64), [1, 4, 64, 64]);
    await vae.run({ latents: z });
    const t2 = performance.now();
    const img = await vae.run({ latents: z });
    row.vae_decode_ms = performance.now() - t2;
    if (!finite(img.image!.data as Float32Array)) nan.vae_nonfinite++;
    await vae.release();
    row.nan = nan;
    // The whole image: the measured loop of `steps` UNet steps (or, cut short by the budget, the median times `steps`) + the decode.
    row.image_estimated = ms.length !== a.steps;
    row.image_50_steps_s = ((row.image_estimated ? median(ms) * a.steps : loop) + row.vae_decode_ms) / 1000;
  } catch (e) {
    row.error = `${row.error ? `${row.error}; ` : ''}${(e as Error).message.split('\n')[0]}`;
  }
  row.conformance = left() > 45 ? conformance(provider, p, left() - 30) : { skipped: 'not enough of the time budget left' };
  return row;
}

/**
 * A free-shape WebGPU session of the same UNet (fixedShapes: false), stepped with the constant inputs resident on the
 * device and copied every step, alternately (same inputs), up to 6 pairs: median ms of each, and the bytes a step moves.
 */
async function freeShapeSteps(
  model: BuiltModel,
  cfg: SessionConfig,
  inputs: (t: number) => UNetInputs,
  left: () => number,
): Promise<NonNullable<Row['device']>> {
  const session = await createSession(model, { ...cfg, fixedShapes: false });
  const unet = { session, config: SD15 };
  const feeds = unetFeeds(unet, inputs(999));
  const bytes = (names: (k: string) => boolean) =>
    Object.entries(feeds)
      .filter(([k, t]) => names(k) && t.type === 'float32')
      .reduce((a, [, t]) => a + (t.data as Float32Array).byteLength, 0);
  const copied: number[] = [];
  const resident: number[] = [];
  await session.run(feeds); // warm-up
  await session.run(await residentFeeds(session, feeds, unetPerStepInput));
  for (let i = 0; i < 6 && left() > 90; i++) {
    const f = unetFeeds(unet, inputs(999 - i * 20));
    let t = performance.now();
    await session.run(f);
    copied.push(performance.now() - t);
    t = performance.now();
    await session.run(await residentFeeds(session, f, unetPerStepInput));
    resident.push(performance.now() - t);
  }
  await session.release();
  return {
    free_resident_ms: median(resident),
    free_copied_ms: median(copied),
    steps: copied.length,
    constant_input_bytes: bytes((k) => !unetPerStepInput(k)),
    sample_bytes: bytes((k) => k === 'sample'),
    noise_pred_bytes: bytes((k) => k === 'sample'), // noise_pred has the sample's shape (B, 4, 64, 64)
  };
}

function table(rows: Row[]): string {
  const head = [
    'provider',
    'profile',
    'ran on',
    'build s',
    'conformance',
    'NaN (unet/guard/vae)',
    'ms/UNet step',
    'VAE decode ms',
    '50-step image s',
    'first step s',
    'free shapes ms/step: resident / copied',
  ];
  const cells = rows.map((r) => [
    r.provider,
    r.profile,
    r.ran_on ?? '-',
    r.build_s?.toFixed(1) ?? '-',
    !r.conformance ? '-' : 'skipped' in r.conformance ? `skipped` : `${r.conformance.passed} pass / ${r.conformance.failed} fail (${r.conformance.tolerance})`,
    r.nan ? `${r.nan.unet_nonfinite_steps}/${r.nan.guard_reruns}/${r.nan.vae_nonfinite}` : '-',
    r.unet_step_ms?.toFixed(1) ?? '-',
    r.vae_decode_ms?.toFixed(0) ?? '-',
    r.image_50_steps_s === undefined ? '-' : `${r.image_50_steps_s.toFixed(2)}${r.image_estimated ? ' (est.)' : ''}`,
    r.first_step_s?.toFixed(1) ?? '-',
    !r.device ? '-' : 'skipped' in r.device ? 'skipped' : `${r.device.free_resident_ms.toFixed(1)} / ${r.device.free_copied_ms.toFixed(1)}`,
  ]);
  const line = (c: string[]) => `| ${c.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...cells.map(line)].join('\n');
}

async function main(): Promise<void> {
  const a = args(process.argv.slice(2));
  const found = a.providers ? { gpus: [`(no GPU looked for: --providers ${a.providers.join(',')})`], nvidia: false } : detectGpu();
  if (!found) {
    console.log(NO_GPU_MESSAGE);
    return;
  }
  const start = performance.now();
  const deadline = start + a.budget * 1000;
  const providers = a.providers ?? providersToCheck(found, ortBinaryDir(createRequire(import.meta.url).resolve));
  console.log(`gpu-check: ${found.gpus.join('; ')}; providers: ${providers.join(', ')}; budget ${a.budget} s`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-gpu-check-'));
  try {
    // Random F16 weights (as an fp16 checkpoint stores them): the SD1.5 UNet, a 4-token IP-Adapter's image layers, the VAE.
    const files = { unet: path.join(dir, 'unet.safetensors'), ip: path.join(dir, 'ip.safetensors'), vae: path.join(dir, 'vae.safetensors') };
    writeRandomSafetensors(files.unet, unetParameterShapes(SD15), 1, { dtype: 'F16' });
    const ipShapes = new Map<string, number[]>();
    for (const l of crossAttnLayers(SD15)) for (const k of ['to_k_ip', 'to_v_ip']) ipShapes.set(`${l.index}.${k}.weight`, [l.hiddenSize, 768]);
    writeRandomSafetensors(files.ip, ipShapes, 2, { dtype: 'F16' });
    writeRandomSafetensors(files.vae, vaeParameterShapes(SD15_VAE, 'decoder'), 3, { dtype: 'F16' });
    console.log(`gpu-check: random weights written in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    const rows: Row[] = [];
    let device_check: Awaited<ReturnType<typeof deviceCheck>> | null = null;
    if (providers.includes('webgpu')) {
      device_check = await deviceCheck((l) => console.log(l));
    }
    const plan = providers.flatMap((p) => [profileFor(p, 'fp32'), profileFor(p, 'fp16')].map((q) => [p, q] as const));
    for (const [i, [provider, p]] of plan.entries()) {
      const share = (deadline - performance.now()) / (plan.length - i);
      const row = await checkProfile(provider, p, files, a, performance.now() + share);
      rows.push(row);
      console.log(JSON.stringify(row));
    }
    const report = {
      date: new Date().toISOString(),
      gpus: found.gpus,
      node: process.version,
      ort: ort.env.versions ?? null,
      wall_s: (performance.now() - start) / 1000,
      device_check,
      rows,
    };
    fs.mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
    fs.writeFileSync(a.out, JSON.stringify(report, null, 2));
    console.log(table(rows));
    console.log(`gpu-check: JSON in ${a.out} (${report.wall_s.toFixed(0)} s)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
