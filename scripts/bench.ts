/**
 * Benchmark (not part of the test suite): SD1.5-sized networks with random fp32 weights written
 * to temporary safetensors files, run on ONNX Runtime (CPU by default). Prints one JSON object.
 *
 *   npm run bench [-- --only unet,text_encoder,vision_encoder,vae_decode,controlnet,e2e,ip_adapters] [--steps N] [--provider cpu]
 *                 [--attention mha|onnx] [--opt all|extended|basic|disabled] [--prepack|--no-prepack]
 *                 [--threads N] [--image file.png] [--keep]
 *
 * Sections (scripts/bench/<section>.ts):
 *   unet          SD1.5 UNet + 4-token IP-Adapter, batch 2 (CFG), 64x64 latent: ms per step, GFLOP/s, RSS. With
 *                 --precision fast (int8): float32 and the int8 CPU profile in one process (session creation with the
 *                 int8 copy, interleaved steps, one-step error; --denoise-steps N [--denoise-size S]: N DDIM steps on
 *                 each and the decoded images' PSNR), scripts/bench/unet-precision.ts.
 *   text_encoder  CLIP text encoder, batch 2 x 77 tokens.
 *   vision_encoder  CLIP vision encoder at ViT-H/14 size (IP-Adapter's image encoder), 1 x 3 x 224 x 224.
 *   vae_decode    VAE decoder, 1 x 4 x 64 x 64 -> 512 x 512.
 *   controlnet    ControlNet + UNet with residuals vs the plain UNet step, same process and options (issue 5).
 *   e2e           the engine running the image-prompt workflow, 512x512, 2 DDIM steps (issue 3).
 *   unet_fp16     the unet section's UNet from an F16 file (--dtype bf16: BF16): session creation (first: writes the
 *                 float32 copy; second: reuses it), ms per step, peak RSS vs the file and its fp32 twin; --half-weights
 *                 fp32-file|per-run|folded compares the treatments (SessionConfig.halfWeights); only with --only unet_fp16.
 *   lora          the unet section's UNet with a rank-64 fp16 LoRA on every attention and feed-forward linear:
 *                 plain vs side branches vs the product's graph (auto) vs merging into fp32 weights once (issue 9);
 *                 only with --only lora (about 10 minutes on 2 free cores; ~3.6 GB of random weights).
 *   samplers      UNet calls and seconds per image for DDIM 50, dpmpp_2m + karras 20, euler_ancestral 20, heun 10,
 *                 lcm 6 (one UNet evaluation timed at batch 2 and 1, times each choice's call count, plus the
 *                 sampler's arithmetic on the latent); only with --only samplers (about 3 minutes unshared).
 *   ip_adapters   the unet section's step with 0 (plain), 1, 2, 3 IP-Adapters of 4 or 16 tokens, with and without an
 *                 attention mask each, interleaved in one process: ratios to the plain step and the overhead per
 *                 adapter (issue 12); only with --only ip_adapters (24 steps at --steps 2: about 15 minutes on 2 shared cores).
 *   farm          the 24-job sweep (λ x seed, demo models) on the local queue, on a BullMQ farm of one worker and of two
 *                 (redis-server on a loopback port): ms per job and the queue's overhead per job (issue 16); only with --only farm.
 * The default runs all six: 6.3 minutes on this 2-core machine with little else running (unet
 * 0.8, text_encoder 0.05, vision_encoder 0.75, vae_decode 0.9, controlnet 1.7, e2e 2 min), about 10 when other
 * processes share the cores; ~14.5 GB of random weights are written to the temp folder and
 * deleted. Pick sections with --only. --steps is the number of timed runs after one
 * warm-up (default 3); e2e takes it as its number of DDIM steps only when given (default 2).
 * When several sections run, each runs in its own child process (this script with --only
 * <section>), so each section's peak RSS is its own and memory is returned between them.
 *
 * Each network runs with the product's session options (UNET_SESSION_OPTIONS for the UNet,
 * CLIP_TEXT_ / CLIP_VISION_SESSION_OPTIONS for the encoders, createSession's defaults for the
 * VAE); --opt / --prepack / --no-prepack override them.
 * Peak RSS is the process's (process.resourceUsage().maxRSS). Timings carry the process's CPU
 * time too (cpu_ms): other processes on the cores stretch wall time, not CPU time.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ort } from '../models/onnx/session.js';
import { type Args, type Section, parseArgs } from './bench/common.js';
import { benchUNet } from './bench/unet.js';
import { benchUNetPrecision } from './bench/unet-precision.js';
import { benchTextEncoder } from './bench/text-encoder.js';
import { benchVisionEncoder } from './bench/vision-encoder.js';
import { benchVaeDecode } from './bench/vae-decode.js';
import { benchControlNet } from './bench/controlnet.js';
import { benchE2e } from './bench/e2e.js';
import { benchUNetFp16 } from './bench/unet-fp16.js';
import { benchLora } from './bench/lora.js';
import { benchSamplers } from './bench/samplers.js';
import { benchIpAdapters } from './bench/ip-adapters.js';
import { benchFarm } from './bench/farm.js';

/** In the order they run. */
const SECTIONS: [string, Section][] = [
  ['unet', (dir, a) => (a.precision === 'fp32' ? benchUNet(dir, a) : benchUNetPrecision(dir, a))],
  ['unet_fp16', benchUNetFp16],
  ['text_encoder', benchTextEncoder],
  ['vision_encoder', benchVisionEncoder],
  ['vae_decode', benchVaeDecode],
  ['controlnet', benchControlNet],
  ['e2e', benchE2e],
  ['lora', benchLora],
  ['samplers', benchSamplers],
  ['ip_adapters', benchIpAdapters],
  ['farm', benchFarm],
];

/** Runs one section in a child process (same node flags, so tsx's loader too) and returns its JSON. */
function runChild(name: string): Record<string, unknown> {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--only');
  if (i >= 0) argv.splice(i, 2);
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1], ...argv, '--only', name], {
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  const out = r.stdout?.toString() ?? '';
  try {
    return (JSON.parse(out.slice(out.indexOf('{'))) as Record<string, Record<string, unknown>>)[name];
  } catch {
    return { error: `section ${name} exited with ${r.status ?? r.signal} and no JSON: ${out.slice(-500) || r.error?.message}` };
  }
}

async function runHere(name: string, fn: Section, dir: string, a: Args): Promise<Record<string, unknown>> {
  try {
    return await fn(dir, a);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const unknown = [...a.only].filter((s) => !SECTIONS.some(([n]) => n === s));
  if (unknown.length) throw new Error(`bench: unknown section(s) ${unknown.join(', ')}; expected some of ${SECTIONS.map(([n]) => n).join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-bench-'));
  const result: Record<string, unknown> = {
    machine: {
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      total_mem_gb: +(os.totalmem() / 2 ** 30).toFixed(1),
      loadavg_at_start: os.loadavg().map((x) => +x.toFixed(2)),
      ort: ort.env.versions?.common ?? 'unknown',
      node: process.version,
    },
  };
  try {
    for (const [name, fn] of SECTIONS) {
      if (!a.only.has(name)) continue;
      const t0 = performance.now();
      const r = a.only.size > 1 ? runChild(name) : await runHere(name, fn, dir, a);
      result[name] = { ...r, section_s: +((performance.now() - t0) / 1000).toFixed(1) };
    }
  } finally {
    if (!a.keep) fs.rmSync(dir, { recursive: true, force: true });
    else result.kept = dir;
  }
  console.log(JSON.stringify(result, null, 1));
}

await main().catch((e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});
