/** scripts/bench: the benchmark's sections (unet, text/vision encoders, VAE decode, ControlNet, e2e) and their shared pieces. */
/**
 * Shared pieces of the benchmark (scripts/bench.ts): arguments, random-weight safetensors
 * written in chunks, sessions with the product's options or the command line's overrides, timing.
 */
import * as fs from 'node:fs';
import type { BuiltModel } from '../../models/onnx/graph.js';
import { createSession, ort, type Provider } from '../../models/onnx/session.js';
import { seededUniform } from '../../test/helpers/random.js';

/** Random-weight safetensors (scripts/bench/random-weights.ts; the e2e section imports it directly). */
export { writeRandomSafetensors } from './random-weights.js';

/** Sections run when --only is not given: all of them, 6.3 to 10 minutes on 2 cores (see scripts/bench.ts). */
export const DEFAULT_SECTIONS = 'unet,text_encoder,vision_encoder,vae_decode,controlnet,e2e';

export interface Args {
  only: Set<string>;
  steps: number;
  provider: Provider;
  attention: 'mha' | 'onnx';
  /** Overrides of the product's session options (UNET_SESSION_OPTIONS / createSession defaults). */
  opt?: 'all' | 'extended' | 'basic' | 'disabled';
  prepack?: boolean;
  threads: number;
  keep: boolean;
  /** Explicit --steps (sections with their own default, e2e's 2 DDIM steps, use it only when given). */
  stepsGiven: boolean;
  /** e2e: the image prompt. */
  image?: string;
  /** unet: also run the reduced-precision profile against float32 (`fast` = int8 on the CPU; scripts/bench/unet-precision.ts). */
  precision: 'fp32' | 'fp16' | 'int8' | 'fast';
}

function parsePrecision(v: string | undefined): Args['precision'] {
  if (v === undefined) return 'fp32';
  if (v === 'fp32' || v === 'fp16' || v === 'int8' || v === 'fast') return v;
  throw new Error(`bench: --precision must be fp32, fast (int8), int8 or fp16 (got ${v})`);
}

export function parseArgs(argv: string[]): Args {
  const val = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    only: new Set(
      (val('--only') ?? DEFAULT_SECTIONS)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
    steps: Math.max(1, Number(val('--steps') ?? 3)),
    stepsGiven: val('--steps') !== undefined,
    provider: (val('--provider') ?? 'cpu') as Provider,
    attention: (val('--attention') ?? 'mha') as 'mha' | 'onnx',
    opt: val('--opt') as Args['opt'],
    prepack: argv.includes('--no-prepack') ? false : argv.includes('--prepack') ? true : undefined,
    threads: Number(val('--threads') ?? 0),
    keep: argv.includes('--keep'),
    image: val('--image'),
    precision: parsePrecision(val('--precision')),
  };
}

/** One benchmark section: writes what it needs under `dir` and returns its figures. */
export type Section = (dir: string, a: Args) => Promise<Record<string, unknown>>;

/** Reads a file once, sequentially, as a baseline for session creation. */
export function readOnce(file: string): number {
  const t0 = performance.now();
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 24);
  try {
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0) {
      /* read */
    }
  } finally {
    fs.closeSync(fd);
  }
  return (performance.now() - t0) / 1000;
}

// ---------------------------------------------------------------------------------------
// Sessions: the product's createSession with each network's own options, unless overridden.
// ---------------------------------------------------------------------------------------

function sessionOptions(base: ort.InferenceSession.SessionOptions, a: Args): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = { ...base };
  if (a.opt) o.graphOptimizationLevel = a.opt;
  if (a.prepack !== undefined) o.extra = { session: { disable_prepacking: a.prepack ? '0' : '1' } };
  return o;
}

export function openSession(built: BuiltModel, cacheDir: string, a: Args, base: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  return createSession(built, { cacheDir, provider: a.provider, threads: a.threads, sessionOptions: sessionOptions(base, a) });
}

/** The options a section actually ran with, for the JSON. */
export function describeOptions(base: ort.InferenceSession.SessionOptions, a: Args): Record<string, unknown> {
  const o = sessionOptions(base, a);
  const extra = o.extra as { session?: { disable_prepacking?: string } } | undefined;
  return { opt_level: o.graphOptimizationLevel ?? 'all', prepacking: extra?.session?.disable_prepacking !== '1', provider: a.provider };
}

// ---------------------------------------------------------------------------------------
// Timing and inputs
// ---------------------------------------------------------------------------------------

/** Median (mean of the middle two for an even count: with 2 runs, not the slower one). */
export const median = (xs: number[]) => {
  const v = [...xs].sort((x, y) => x - y);
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
/** Peak resident set of this process so far, MB. */
export const rssMb = () => process.resourceUsage().maxRSS / 1024;
/**
 * Current resident set split into anonymous memory (heap copies) and file-backed pages (e.g.
 * memory-mapped weights, which the kernel can drop and re-read), MB; null off Linux.
 */
export function rssNowMb(): { anon_mb: number; file_mb: number } | null {
  try {
    const st = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? NaN);
    const anon = kb('RssAnon');
    const file = kb('RssFile');
    return Number.isFinite(anon) && Number.isFinite(file) ? { anon_mb: Math.round(anon / 1024), file_mb: Math.round(file / 1024) } : null;
  } catch {
    return null;
  }
}
/**
 * Deterministic network inputs, uniform in [-1, 1) (seededUniform, test/helpers/random.ts). Uniform
 * rather than normal: the sections time dense float work, which does not depend on the values'
 * distribution, and fixed inputs keep figures comparable between versions.
 */
export const uniform = (n: number, seed: number) => {
  const u = seededUniform(seed);
  return new Float32Array(n).map(() => 2 * u());
};
export const seconds = (t0: number) => (performance.now() - t0) / 1000;

/** Wall and CPU time (all threads of this process, user + system) of one call, ms. */
export interface Timing {
  wall: number;
  cpu: number;
}

export async function timed<T>(f: () => Promise<T>, into?: Timing[]): Promise<T> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await f();
  const c = process.cpuUsage(c0);
  into?.push({ wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 });
  return r;
}

/**
 * One warm-up run, then `steps` timed runs (ms, rounded). cpu_ms is the process's CPU time per
 * run: when other processes share the cores, wall time grows but CPU time barely moves, so
 * cpu_ms / threads is the better estimate of the unshared wall time.
 */
export async function timeRuns(steps: number, run: () => Promise<unknown>): Promise<{ warmup_ms: number; ms: number[]; cpu_ms: number[] }> {
  const t: Timing[] = [];
  for (let i = 0; i <= steps; i++) await timed(run, t);
  return { warmup_ms: Math.round(t[0].wall), ms: t.slice(1).map((x) => Math.round(x.wall)), cpu_ms: t.slice(1).map((x) => Math.round(x.cpu)) };
}

/** Throws when a network's output has NaN / Inf (random weights gone wrong would time denormal paths). */
export function checkFinite(what: string, data: unknown): void {
  if (!(data as Float32Array).every(Number.isFinite)) throw new Error(`bench: ${what} output is not finite`);
}
