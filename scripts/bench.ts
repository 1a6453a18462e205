/**
 * Benchmark (not part of the test suite): SD1.5-sized networks with random fp32 weights written
 * to temporary safetensors files, run on ONNX Runtime (CPU by default). Prints one JSON object.
 *
 *   npm run bench [-- --only unet,text_encoder,vae_decode,controlnet,e2e] [--steps N] [--provider cpu]
 *                 [--attention mha|onnx] [--opt all|extended|basic|disabled] [--prepack|--no-prepack]
 *                 [--threads N] [--image file.png] [--keep]
 *
 * Sections (scripts/bench/<section>.ts):
 *   unet          SD1.5 UNet + 4-token IP-Adapter, batch 2 (CFG), 64x64 latent: ms per step, GFLOP/s, RSS.
 *   text_encoder  CLIP text encoder, batch 2 x 77 tokens.
 *   vae_decode    VAE decoder, 1 x 4 x 64 x 64 -> 512 x 512.
 *   controlnet    ControlNet + UNet with residuals vs the plain UNet step, same process and options (issue 5).
 *   e2e           the engine running the image-prompt workflow, 512x512, 2 DDIM steps (issue 3).
 * The default is unet,text_encoder,vae_decode; controlnet (~4 GB written, 3 sessions) and e2e
 * (~7 GB written, the whole pipeline twice) take minutes each on 2 cores: ask for them with
 * `--only controlnet` / `--only e2e`. --steps is the number of timed runs after one warm-up
 * (default 3); e2e takes it as its number of DDIM steps only when given (default 2).
 *
 * Each network runs with the product's session options (UNET_SESSION_OPTIONS for the UNet,
 * createSession's defaults for the others); --opt / --prepack / --no-prepack override them.
 * Peak RSS is the process's (process.resourceUsage().maxRSS), so run one section at a time
 * with --only for per-network figures.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ort } from '../models/onnx/session.js';
import { type Section, parseArgs } from './bench/common.js';
import { benchUNet } from './bench/unet.js';
import { benchTextEncoder } from './bench/text-encoder.js';
import { benchVaeDecode } from './bench/vae-decode.js';
import { benchControlNet } from './bench/controlnet.js';
import { benchE2e } from './bench/e2e.js';

const SECTIONS: [string, Section][] = [
  ['unet', benchUNet], ['text_encoder', benchTextEncoder], ['vae_decode', benchVaeDecode], ['controlnet', benchControlNet], ['e2e', benchE2e],
];

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const unknown = [...a.only].filter((s) => !SECTIONS.some(([n]) => n === s));
  if (unknown.length) throw new Error(`bench: unknown section(s) ${unknown.join(', ')}; expected some of ${SECTIONS.map(([n]) => n).join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-bench-'));
  const result: Record<string, unknown> = {
    machine: {
      cpus: os.cpus().length, cpu: os.cpus()[0]?.model, total_mem_gb: +(os.totalmem() / 2 ** 30).toFixed(1),
      loadavg_at_start: os.loadavg().map((x) => +x.toFixed(2)), ort: ort.env.versions?.common ?? 'unknown', node: process.version,
    },
  };
  try {
    for (const [name, fn] of SECTIONS) {
      if (!a.only.has(name)) continue;
      const t0 = performance.now();
      try {
        result[name] = { ...(await fn(dir, a)), section_s: +((performance.now() - t0) / 1000).toFixed(1) };
      } catch (e) {
        result[name] = { error: (e as Error).message };
      }
    }
  } finally {
    if (!a.keep) fs.rmSync(dir, { recursive: true, force: true });
    else result.kept = dir;
  }
  console.log(JSON.stringify(result, null, 1));
}

await main();
