/**
 * samplers section (only with --only samplers): what each common sampler choice costs per image at
 * SD1.5 size, 512x512 (64x64 latent), with the image prompt: UNet calls per image and seconds.
 *
 * Running every choice in full is too slow for a 2-core CPU (DDIM 50 steps alone is ~8 minutes of
 * UNet time), so the section times ONE UNet evaluation (the unet section's SD1.5 UNet with a
 * 4-token IP-Adapter, random weights; batch 2 = CFG [uncond, cond], and batch 1 for cfg <= 1) and
 * multiplies it by each choice's call count. The call count and the samplers' own arithmetic are
 * measured by running the real plan (models/sampling/plan.ts; DDIM through models/ddim.ts) on the
 * 4 x 64 x 64 latent with a stand-in model. Text encoding and VAE decode are the same for every
 * choice (see the text_encoder and vae_decode sections) and are not included. seconds_per_image is wall
 * time; seconds_per_image_unshared uses the UNet's CPU time over its threads (what the wall time is
 * when nothing else runs on the cores).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { DDIMScheduler, SD15_SCHEDULER, parseSchedulerConfig } from '../../models/ddim.js';
import { cfgGuidance } from '../../models/sampling/denoise.js';
import { planSampling, type SamplerName, type SchedulerName } from '../../models/sampling/plan.js';
import { IpAdapterModel } from '../../models/ip-adapter.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { UNET_SESSION_OPTIONS, buildUNet } from '../../models/unet.js';
import { type Args, checkFinite, median, openSession, seconds, timeRuns } from './common.js';
import { SD15_UNET, SD15_WORKLOAD, unetFeeds, writeUNetFiles } from './unet.js';

/** The choices the README's table lists. */
const CHOICES: { label: string; sampler: SamplerName; scheduler: SchedulerName; steps: number; cfg: number }[] = [
  { label: 'DDIM 50 (DDIM Sampler / ddim + ddim_uniform)', sampler: 'ddim', scheduler: 'ddim_uniform', steps: 50, cfg: 7.5 },
  { label: 'dpmpp_2m + karras 20', sampler: 'dpmpp_2m', scheduler: 'karras', steps: 20, cfg: 7.5 },
  { label: 'euler_ancestral + normal 20', sampler: 'euler_ancestral', scheduler: 'normal', steps: 20, cfg: 7.5 },
  { label: 'heun + normal 10', sampler: 'heun', scheduler: 'normal', steps: 10, cfg: 7.5 },
  { label: 'lcm + sgm_uniform 6 (cfg 1: no CFG batch)', sampler: 'lcm', scheduler: 'sgm_uniform', steps: 6, cfg: 1 },
  { label: 'lcm + sgm_uniform 6 (cfg 1.5)', sampler: 'lcm', scheduler: 'sgm_uniform', steps: 6, cfg: 1.5 },
];

export async function benchSamplers(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = SD15_UNET;
  const files = writeUNetFiles(dir, cfg);
  let t0 = performance.now();
  const built = buildUNet(cfg, SafetensorsFile.open(files.weightsFile), { ipAdapter: IpAdapterModel.load(files.ipFile), attention: a.attention }).build();
  const session = await openSession(built, path.join(dir, 'cache'), a, UNET_SESSION_OPTIONS);
  const sessionS = seconds(t0);
  const perBatch: Record<number, { ms: number[]; cpu_ms: number[] }> = {};
  for (const batch of [2, 1]) {
    const feeds = unetFeeds(cfg, { ...SD15_WORKLOAD, batch });
    const r = await timeRuns(a.steps, async () => checkFinite('UNet', (await session.run(feeds)).noise_pred.data));
    perBatch[batch] = { ms: r.ms, cpu_ms: r.cpu_ms };
  }
  await session.release();
  const stepS = (batch: number) => median(perBatch[batch]!.ms) / 1000;
  // When other processes share the cores, wall time stretches but CPU time barely moves: CPU time
  // over the threads ONNX Runtime uses estimates the unshared wall time.
  const threads = a.threads || os.cpus().length;
  const stepCpuS = (batch: number) => median(perBatch[batch]!.cpu_ms) / 1000 / threads;

  const ddim = new DDIMScheduler(parseSchedulerConfig(SD15_SCHEDULER, 'SD1.5'));
  const shape = [1, 4, SD15_WORKLOAD.height, SD15_WORKLOAD.width];
  const n = shape.reduce((x, d) => x * d, 1);
  const rows = [];
  for (const c of CHOICES) {
    const plan = planSampling({
      sampler: c.sampler,
      scheduler: c.scheduler,
      steps: c.steps,
      denoise: 1,
      addNoise: true,
      ddim,
      noise: () => new Float32Array(n).fill(0.01),
    });
    const m = plan.method!;
    const branches = cfgGuidance(c.cfg).branches;
    let calls = 0;
    // A stand-in for the UNet: a cheap prediction of the latent's size, so only the sampler's own work is timed.
    const model = async (x: Float32Array) => {
      calls++;
      return x.map((v) => v * 0.1);
    };
    t0 = performance.now();
    let x = m.startLatents(new Float32Array(n).fill(0.5), new Float32Array(n));
    for (let i = 0; i < m.timesteps.length; i++) x = (await m.step(i, x, model)).x;
    const samplerS = seconds(t0);
    checkFinite(c.label, x);
    const unetS = calls * stepS(branches);
    rows.push({
      choice: c.label,
      sampler: c.sampler,
      scheduler: c.scheduler,
      steps: c.steps,
      cfg: c.cfg,
      unet_calls: calls,
      unet_batch: branches,
      unet_s: +unetS.toFixed(1),
      sampler_math_s: +samplerS.toFixed(3),
      seconds_per_image: +(unetS + samplerS).toFixed(1),
      seconds_per_image_unshared: +(calls * stepCpuS(branches) + samplerS).toFixed(1),
    });
  }
  return {
    method:
      "one UNet evaluation timed (median of --steps runs after a warm-up), times each choice's UNet calls, plus the sampler arithmetic measured on the latent; text encoder and VAE decode excluded",
    unet_ms_batch2: perBatch[2],
    unet_ms_batch1: perBatch[1],
    unet_s_per_call: { batch2: +stepS(2).toFixed(2), batch1: +stepS(1).toFixed(2) },
    unet_s_per_call_unshared: { batch2: +stepCpuS(2).toFixed(2), batch1: +stepCpuS(1).toFixed(2), threads },
    loadavg_at_end: os.loadavg().map((x) => +x.toFixed(2)),
    session_create_s: +sessionS.toFixed(2),
    write_weights_s: +files.writeS.toFixed(1),
    choices: rows,
  };
}
