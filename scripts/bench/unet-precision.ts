/**
 * unet section with --precision fast (= int8; issue 17): the unet section's SD1.5 UNet + 4-token IP-Adapter (batch 2,
 * 64x64, random weights) at float32 and at the reduced-precision CPU profile (cpu-int8, onnx/quantize.ts) in one
 * process: session creation of each (the first int8 one writes the int8 copy of the weights: its time and size; a
 * second one reuses it), resident memory after each session's first run (anonymous / file-backed), ms and CPU ms per
 * step with the two sessions' runs interleaved (so other load on the cores stretches both alike), and the one-step
 * error of the int8 noise prediction against float32 (relative L2, max abs).
 * --denoise-steps N (default 0: skipped) also runs N DDIM steps (CFG 7.5, SD1.5's scheduler) on each session from the
 * same noise at --denoise-size S (latent side, default 64) and decodes both final latents with an SD1.5-size random VAE
 * decoder (float32): the final latents' relative L2 and the decoded images' PSNR (8-bit range) against float32.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WeightMap } from '../../models/onnx/graph.js';
import { profileFor } from '../../models/onnx/profile.js';
import { createSession, ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { IpAdapterModel } from '../../models/ip-adapter.js';
import { DDIMScheduler, SD15_SCHEDULER, classifierFreeGuidance, parseSchedulerConfig } from '../../models/ddim.js';
import { TorchGenerator } from '../../models/sampling/torch-randn.js';
import { UNET_SESSION_OPTIONS, buildUNet } from '../../models/unet.js';
import { buildVaeDecoder, parseVaeConfig, vaeParameterShapes } from '../../models/vae.js';
import { type Args, checkFinite, median, rssMb, rssNowMb, seconds, timed, type Timing, writeRandomSafetensors } from './common.js';
import { SD15_UNET, SD15_WORKLOAD, unetFeeds, unetGflop, writeUNetFiles } from './unet.js';

const argValue = (k: string) => {
  const i = process.argv.indexOf(k);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

/** Relative L2 and max abs difference of `y` against `ref`. */
export function compare(y: Float32Array, ref: Float32Array): { rel_l2: number; max_abs: number } {
  let d2 = 0;
  let r2 = 0;
  let mx = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = y[i]! - ref[i]!;
    d2 += d * d;
    r2 += ref[i]! * ref[i]!;
    mx = Math.max(mx, Math.abs(d));
  }
  return { rel_l2: +Math.sqrt(d2 / r2).toExponential(3), max_abs: +mx.toExponential(3) };
}

/** PSNR (dB) of two images in [0, 1], on the 8-bit values they save as. */
export function psnr8(a: Float32Array, b: Float32Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (Math.round(a[i]! * 255) - Math.round(b[i]! * 255)) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Infinity : +(10 * Math.log10((255 * 255) / mse)).toFixed(2);
}

const SD15_VAE = parseVaeConfig(
  {
    in_channels: 3,
    out_channels: 3,
    latent_channels: 4,
    block_out_channels: [128, 256, 512, 512],
    layers_per_block: 2,
    norm_num_groups: 32,
    scaling_factor: 0.18215,
    down_block_types: Array(4).fill('DownEncoderBlock2D'),
    up_block_types: Array(4).fill('UpDecoderBlock2D'),
  },
  'bench SD1.5 VAE config',
);

/** N DDIM steps with CFG on `session` from `noise` ((1, 4, S, S)); the final latents. */
async function ddim(session: ort.InferenceSession, noise: Float32Array, S: number, steps: number, ctx: Record<string, ort.Tensor>): Promise<Float32Array> {
  const sched = new DDIMScheduler(parseSchedulerConfig(SD15_SCHEDULER));
  let x = noise;
  for (const t of sched.setTimesteps(steps)) {
    const sample = new Float32Array(2 * x.length);
    sample.set(x);
    sample.set(x, x.length);
    const out = (
      await session.run({
        ...ctx,
        sample: new ort.Tensor('float32', sample, [2, 4, S, S]),
        timestep: new ort.Tensor('float32', new Float32Array(2).fill(t), [2]),
      })
    ).noise_pred.data as Float32Array;
    const eps = classifierFreeGuidance(out.subarray(0, x.length), out.subarray(x.length), 7.5);
    x = sched.step(eps, t, x).prevSample;
  }
  return x;
}

export async function benchUNetPrecision(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = SD15_UNET;
  const wl = SD15_WORKLOAD;
  const profile = profileFor(a.provider, a.precision === 'fast' ? 'int8' : a.precision);
  const files = writeUNetFiles(dir, cfg);
  const cacheDir = path.join(dir, 'cache');
  const weights: WeightMap = SafetensorsFile.open(files.weightsFile);
  const built = buildUNet(cfg, weights, { ipAdapter: IpAdapterModel.load(files.ipFile), attention: a.attention }).build();
  const feeds = unetFeeds(cfg, wl);
  const logs: string[] = [];
  const open = async (p: typeof profile | undefined) => {
    const t0 = performance.now();
    const s = await createSession(built, {
      cacheDir,
      provider: a.provider,
      threads: a.threads,
      sessionOptions: UNET_SESSION_OPTIONS,
      profile: p,
      log: (m) => logs.push(m),
    });
    return { s, create_s: +seconds(t0).toFixed(2) };
  };

  const fp32 = await open(undefined);
  const y32 = Float32Array.from((await fp32.s.run(feeds)).noise_pred.data as Float32Array);
  checkFinite('UNet fp32', y32);
  const rssFp32 = rssNowMb();
  const fast = await open(profile); // cold: writes the int8 copy
  const yFast = Float32Array.from((await fast.s.run(feeds)).noise_pred.data as Float32Array);
  checkFinite(`UNet ${profile.id}`, yFast);
  const rssBoth = rssNowMb();
  const warm = await open(profile); // the copy is on disk now
  await warm.s.release();
  const copyDir = path.join(cacheDir, 'int8-weights');
  const copyBytes = fs.existsSync(copyDir) ? fs.readdirSync(copyDir).reduce((s, f) => s + fs.statSync(path.join(copyDir, f)).size, 0) : 0;

  const t32: Timing[] = [];
  const tFast: Timing[] = [];
  for (let i = 0; i < a.steps; i++) {
    await timed(() => fp32.s.run(feeds), t32);
    await timed(() => fast.s.run(feeds), tFast);
  }
  const ms = (t: Timing[]) => t.map((x) => Math.round(x.wall));
  const cpu = (t: Timing[]) => t.map((x) => Math.round(x.cpu));
  const gflop = unetGflop(cfg, wl);
  const result: Record<string, unknown> = {
    profile: profile.id,
    fp32: { ms_per_step_median: median(ms(t32)), ms_per_step: ms(t32), cpu_ms_per_step: cpu(t32), session_create_s: fp32.create_s },
    [profile.id]: {
      ms_per_step_median: median(ms(tFast)),
      ms_per_step: ms(tFast),
      cpu_ms_per_step: cpu(tFast),
      session_create_first_s: fast.create_s,
      session_create_again_s: warm.create_s,
      int8_copy_bytes: copyBytes,
    },
    fp32_over_fast_wall: +(median(ms(t32)) / median(ms(tFast))).toFixed(2),
    fp32_over_fast_cpu: +(median(cpu(t32)) / median(cpu(tFast))).toFixed(2),
    one_step_error: compare(yFast, y32),
    rss_after_fp32_session_mb: rssFp32,
    rss_after_both_sessions_mb: rssBoth,
    peak_rss_mb: Math.round(rssMb()),
    weight_bytes: files.weightBytes,
    gflop_per_step: +gflop.toFixed(1),
    log: logs.filter((l) => l.startsWith('int8')),
    workload: { ...wl, cfg_passes: 'batch 2 = [uncond, cond]', attention: a.attention },
  };

  const steps = Number(argValue('--denoise-steps') ?? 0);
  if (steps > 0) {
    const S = Number(argValue('--denoise-size') ?? 64);
    const noise = new TorchGenerator(42).randn([1, 4, S, S]);
    // every input but the latent and the timestep, for an S x S latent (the adapter's masks are per level of that grid)
    const ctx = Object.fromEntries(Object.entries(unetFeeds(cfg, { ...wl, height: S, width: S })).filter(([k]) => k !== 'sample' && k !== 'timestep'));
    let t0 = performance.now();
    const x32 = await ddim(fp32.s, noise, S, steps, ctx);
    const s32 = seconds(t0);
    t0 = performance.now();
    const xFast = await ddim(fast.s, noise, S, steps, ctx);
    const sFast = seconds(t0);
    await fp32.s.release();
    await fast.s.release();
    const vaeFile = path.join(dir, 'vae-decoder-random.safetensors');
    writeRandomSafetensors(vaeFile, vaeParameterShapes(SD15_VAE, 'decoder'), 11);
    const vae = await createSession(buildVaeDecoder(SD15_VAE, SafetensorsFile.open(vaeFile)).build(), { cacheDir, provider: a.provider, threads: a.threads });
    const decode = async (x: Float32Array) =>
      Float32Array.from((await vae.run({ latents: new ort.Tensor('float32', x, [1, 4, S, S]) })).image_01.data as Float32Array);
    const img32 = await decode(x32);
    const imgFast = await decode(xFast);
    await vae.release();
    result.denoise = {
      sampler: 'ddim (SD1.5 scheduler, leading), cfg 7.5, eta 0',
      steps,
      latent: [1, 4, S, S],
      fp32_s: +s32.toFixed(1),
      fast_s: +sFast.toFixed(1),
      final_latents: compare(xFast, x32),
      decoded_psnr_db: psnr8(imgFast, img32),
      vae: 'SD1.5-size decoder, random weights, float32',
    };
  } else {
    await fp32.s.release();
    await fast.s.release();
  }
  return result;
}
