/**
 * lora section: the SD1.5 UNet (+ 4-token IP-Adapter, batch 2 = CFG, 64x64 latent, as the unet
 * section) with a rank-64 fp16 kohya LoRA on every attention (to_q/k/v/out) and feed-forward
 * linear (models/lora.ts ATTENTION_FF_MODULES), against the plain UNet. Each variant runs in its
 * own child process (this script, --only lora, IPA_BENCH_LORA_VARIANT), so peak RSS is its own:
 *
 *   plain       the UNet without LoRA;
 *   side        LoRA as low-rank side branches on every module, strength a graph input (models/lora-graph.ts mode 'side');
 *   auto        what the product builds: ΔW = (s·B)·A merged in the graph for the full- and
 *               half-resolution layers, side branches elsewhere (mode 'auto'), strength an input;
 *   merge       W' = W + s·B·A computed once (an ONNX Runtime graph over the same files), written
 *               as fp32 to a cache file, and the plain UNet graph over it: what a strength change
 *               costs there is the merge + write + a new session;
 *   interleaved plain, side and auto in one process, a step of each in turn: their ratios when
 *               other processes load the cores (the separate runs' wall times then mean little).
 *
 * IPA_BENCH_LORA_VARIANTS=plain,auto limits the variants. added_gflop_per_step counts what each
 * design adds to a step (2 x MACs of the side branches / merged ΔW at this workload).
 *
 * Per variant: session creation, ms per step (median after a warm-up), CPU ms, peak RSS and its
 * ratio to (base weights + adapter + LoRA bytes); for side / auto the step right after a strength
 * change (same session, new lora_scale); for merge the merge, write and session times.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataType, Graph, type WeightMap } from '../../models/onnx/graph.js';
import { createSession, ort } from '../../models/onnx/session.js';
import { SafetensorsFile, type TensorRef } from '../../models/safetensors.js';
import { IpAdapterModel } from '../../models/ip-adapter.js';
import { UNET_SESSION_OPTIONS, buildUNet } from '../../models/unet.js';
import { callUNet, type UNetInputs } from '../../models/unet-call.js';
import { crossAttnLayers } from '../../models/unet-config.js';
import { ATTENTION_FF_MODULES, type LoraMatch, loraParameterShapes, matchLora, unetLoraTargets } from '../../models/lora.js';
import { type LoraMode, loraModuleHook, unetReferenceRows } from '../../models/lora-graph.js';
import { type Args, checkFinite, median, openSession, rssMb, rssNowMb, seconds, timeRuns, uniform } from './common.js';
import { SD15_UNET, SD15_WORKLOAD, unetGflop, writeUNetFiles } from './unet.js';

const RANK = 64;
const ALPHA = 32;
const VARIANTS = ['plain', 'side', 'auto', 'merge', 'interleaved'] as const;
type Variant = (typeof VARIANTS)[number];

/**
 * GFLOP a LoRA adds to one UNet call at the workload (2 x MACs): a side branch N·r·(in + out), an
 * in-graph merge out·in·r (+ the add), per module as `auto` chooses (models/lora-graph.ts).
 */
function loraGflop(match: LoraMatch, mode: LoraMode): number {
  const rows = unetReferenceRows(SD15_UNET.blockOutChannels.length);
  let flop = 0;
  for (const m of match.modules) {
    const inF = m.down.shape.slice(1).reduce((a, d) => a * d, 1);
    const outF = m.up.shape[0];
    const n = rows(m.module);
    const merge = mode === 'merge' || (mode === 'auto' && n * (inF + outF) > inF * outF);
    flop += merge ? 2 * outF * inF * m.rank + outF * inF : 2 * n * m.rank * (inF + outF) + n * outF;
  }
  return flop / 1e9;
}

/** float32 -> float16 bits (round to nearest, normal range; the random values stay far from its edges). */
function toHalf(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const e = ((u >>> 23) & 0xff) - 127 + 15;
  if (e <= 0) return sign;
  const m = (u >>> 13) & 0x3ff;
  const round = (u >>> 12) & 1;
  return sign | ((e << 10) + m + round);
}

/** Writes a rank-64 fp16 kohya LoRA on the attention and feed-forward linears (alpha 32); returns its size. */
function writeLora(file: string, base: WeightMap, baseFile: string): number {
  const shapes = loraParameterShapes([unetLoraTargets(SD15_UNET, base, baseFile)], 'kohya', RANK, ATTENTION_FF_MODULES);
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, s] of shapes) {
    const bytes = s.reduce((a, d) => a * d, 1) * 2;
    header[k] = { dtype: 'F16', shape: s, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    let seed = 7;
    for (const [k, s] of shapes) {
      const n = s.reduce((a, d) => a * d, 1);
      const fanIn = s.length ? n / s[0] : 1;
      const u = uniform(n, seed++);
      const half = new Uint16Array(n);
      for (let i = 0; i < n; i++) half[i] = k.endsWith('.alpha') ? toHalf(ALPHA) : toHalf((u[i] * Math.sqrt(3)) / Math.sqrt(fanIn) / 4);
      fs.writeSync(fd, half);
    }
  } finally {
    fs.closeSync(fd);
  }
  return fs.statSync(file).size;
}

/**
 * merge: every LoRA module's W' = W + (s · alpha / rank · B) · A in one ONNX Runtime run over the
 * base and LoRA files, written as an fp32 safetensors file of those modules; returns the seconds
 * spent merging and writing.
 */
async function mergeOnce(
  match: LoraMatch,
  base: WeightMap,
  strength: number,
  out: string,
  a: Args,
  cacheDir: string,
): Promise<{ merge_s: number; write_s: number; bytes: number }> {
  const g = new Graph('lora_merge');
  const s = g.input('s', DataType.FLOAT, []);
  const names: string[] = [];
  for (const m of match.modules) {
    const w = base.get(`${m.module}.weight`);
    const [outF, inF] = w.shape;
    const up = g.op('Mul', [g.weight(`${m.module}.up`, m.up, [outF, m.rank]), g.op('Mul', [s, g.scalar(m.alpha / m.rank)])]);
    const merged = g.op('Add', [g.weight(`${m.module}.w`, w), g.op('MatMul', [up, g.weight(`${m.module}.down`, m.down, [m.rank, inF])])]);
    g.output(`${m.module}.weight`, merged, DataType.FLOAT, w.shape);
    names.push(`${m.module}.weight`);
  }
  let t0 = performance.now();
  const session = await openSession(g.build(), cacheDir, a, UNET_SESSION_OPTIONS);
  const res = await session.run({ s: new ort.Tensor('float32', Float32Array.of(strength), []) });
  const mergeS = seconds(t0);
  t0 = performance.now();
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const n of names) {
    const bytes = (res[n].data as Float32Array).byteLength;
    header[n] = { dtype: 'F32', shape: res[n].dims, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = fs.openSync(out, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const n of names) fs.writeSync(fd, res[n].data as Float32Array);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  await session.release();
  return { merge_s: +mergeS.toFixed(2), write_s: +seconds(t0).toFixed(2), bytes: off };
}

/** The base weights with the merged modules read from `mergedFile` instead. */
function overlay(base: WeightMap, mergedFile: string): WeightMap {
  const merged = SafetensorsFile.open(mergedFile);
  return { get: (k: string): TensorRef => (merged.has(k) ? merged.get(k) : base.get(k)), has: (k: string) => merged.has(k) || base.has(k) };
}

/** The unet section's inputs, as the sampler feeds them (models/unet-call.ts). */
function inputs(): UNetInputs {
  const { batch: B, height: H, width: W, textTokens, ipTokens } = SD15_WORKLOAD;
  const C = SD15_UNET.crossAttentionDim;
  return {
    sample: { data: uniform(B * SD15_UNET.inChannels * H * W, 3), dims: [B, SD15_UNET.inChannels, H, W] },
    timestep: 981,
    encoderHiddenStates: { data: uniform(B * textTokens * C, 4), dims: [B, textTokens, C] },
    ipAdapter: { tokens: { data: uniform(B * ipTokens * C, 5), dims: [B, ipTokens, C] }, scale: new Float32Array(crossAttnLayers(SD15_UNET).length).fill(1) },
  };
}

interface Files {
  weightsFile: string;
  ipFile: string;
  loraFile: string;
  weightBytes: number;
  ipBytes: number;
  loraBytes: number;
}

/**
 * interleaved: the plain, side and auto sessions in one process, one step of each in turn per
 * round, so that other load on the cores hits all three alike; the per-round ratios to plain.
 */
async function runInterleaved(f: Files, dir: string, a: Args): Promise<Record<string, unknown>> {
  const base = SafetensorsFile.open(f.weightsFile);
  const match = matchLora(SafetensorsFile.open(f.loraFile), [unetLoraTargets(SD15_UNET, base, f.weightsFile)]);
  const inp = inputs();
  const kinds = ['plain', 'side', 'auto'] as const;
  const sessions = await Promise.all(
    kinds.map(async (k) => {
      const mode = k === 'plain' ? null : k;
      const built = buildUNet(SD15_UNET, base, {
        ipAdapter: IpAdapterModel.load(f.ipFile),
        attention: a.attention,
        name: mode ? `unet_lora_${mode}` : 'unet',
        moduleHook: mode ? loraModuleHook([match], { part: 'unet', mode, rowsFor: unetReferenceRows(SD15_UNET.blockOutChannels.length) }) : undefined,
      }).build();
      const session = await createSession(built, {
        cacheDir: path.join(dir, `cache-i-${k}`),
        provider: a.provider,
        threads: a.threads,
        sessionOptions: UNET_SESSION_OPTIONS,
      });
      return {
        k,
        run: async () => checkFinite('UNet', (await callUNet({ session, config: SD15_UNET }, { ...inp, loraScale: mode ? [1] : undefined })).data),
        session,
      };
    }),
  );
  const t: Record<string, { wall: number; cpu: number }[]> = { plain: [], side: [], auto: [] };
  for (const s of sessions) await s.run(); // warm-up
  const rounds = Math.max(3, a.steps + 1);
  for (let r = 0; r < rounds; r++) {
    for (const s of sessions) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await s.run();
      const c = process.cpuUsage(c0);
      t[s.k].push({ wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 });
    }
  }
  for (const s of sessions) await s.session.release();
  const ratio = (k: 'side' | 'auto', what: 'wall' | 'cpu') => +median(t[k].map((x, i) => x[what] / t.plain[i][what])).toFixed(3);
  return {
    rounds,
    ms: Object.fromEntries(kinds.map((k) => [k, t[k].map((x) => Math.round(x.wall))])),
    cpu_ms: Object.fromEntries(kinds.map((k) => [k, t[k].map((x) => Math.round(x.cpu))])),
    side_vs_plain: { wall: ratio('side', 'wall'), cpu: ratio('side', 'cpu') },
    auto_vs_plain: { wall: ratio('auto', 'wall'), cpu: ratio('auto', 'cpu') },
  };
}

/** One variant, in this process. */
async function runVariant(v: Variant, f: Files, dir: string, a: Args): Promise<Record<string, unknown>> {
  if (v === 'interleaved') return runInterleaved(f, dir, a);
  const cacheDir = path.join(dir, `cache-${v}`);
  const base = SafetensorsFile.open(f.weightsFile);
  const match = matchLora(SafetensorsFile.open(f.loraFile), [unetLoraTargets(SD15_UNET, base, f.weightsFile)]);
  const out: Record<string, unknown> = { lora_modules: match.modules.length };
  let weights: WeightMap = base;
  if (v === 'merge') {
    const m = await mergeOnce(match, base, 1, path.join(dir, 'merged-lora.safetensors'), a, cacheDir);
    Object.assign(out, { merge_s: m.merge_s, write_merged_s: m.write_s, merged_bytes: m.bytes, rss_after_merge_mb: Math.round(rssMb()) });
    weights = overlay(base, path.join(dir, 'merged-lora.safetensors'));
  }
  const mode: LoraMode | null = v === 'side' || v === 'auto' ? v : null;
  let t0 = performance.now();
  const built = buildUNet(SD15_UNET, weights, {
    ipAdapter: IpAdapterModel.load(f.ipFile),
    attention: a.attention,
    name: mode ? `unet_lora_${mode}` : 'unet',
    moduleHook: mode ? loraModuleHook([match], { part: 'unet', mode, rowsFor: unetReferenceRows(SD15_UNET.blockOutChannels.length) }) : undefined,
  }).build();
  const buildS = seconds(t0);
  t0 = performance.now();
  const session = await createSession(built, { cacheDir, provider: a.provider, threads: a.threads, sessionOptions: UNET_SESSION_OPTIONS });
  const sessionS = seconds(t0);
  const rssAfterSession = rssMb();
  const unet = { session, config: SD15_UNET };
  const inp = inputs();
  let strength = 1;
  const run = async () => checkFinite('UNet', (await callUNet(unet, { ...inp, loraScale: mode ? [strength] : undefined })).data);
  const { warmup_ms, ms, cpu_ms } = await timeRuns(a.steps, run);
  const med = median(ms);
  if (mode) {
    // A strength change: the same session, a new lora_scale feed.
    strength = 0.5;
    t0 = performance.now();
    await run();
    out.strength_change_to_step_done_ms = Math.round(performance.now() - t0);
  }
  const now = rssNowMb();
  await session.release();
  const peak = rssMb();
  const weightsAll = f.weightBytes + f.ipBytes + (v === 'plain' ? 0 : f.loraBytes);
  return {
    ...out,
    ms_per_step_median: med,
    ms_per_step: ms,
    warmup_ms,
    cpu_ms_per_step: cpu_ms,
    cpu_ms_median: median(cpu_ms),
    build_s: +buildS.toFixed(2),
    session_create_s: +sessionS.toFixed(2),
    model_bytes: built.bytes.length,
    peak_rss_mb: Math.round(peak),
    rss_after_session_mb: Math.round(rssAfterSession),
    rss_at_end: now,
    peak_rss_vs_weights_and_lora: +((peak * 2 ** 20) / weightsAll).toFixed(3),
  };
}

export async function benchLora(dir: string, a: Args): Promise<Record<string, unknown>> {
  const only = process.env.IPA_BENCH_LORA_VARIANT as Variant | undefined;
  const shared = process.env.IPA_BENCH_LORA_DIR;
  if (only && shared) {
    const f = JSON.parse(fs.readFileSync(path.join(shared, 'files.json'), 'utf8')) as Files;
    return runVariant(only, f, shared, a);
  }
  const t0 = performance.now();
  const u = writeUNetFiles(dir, SD15_UNET);
  const loraFile = path.join(dir, 'lora-r64-attn-ff-fp16.safetensors');
  const loraBytes = writeLora(loraFile, SafetensorsFile.open(u.weightsFile), u.weightsFile);
  const files: Files = { weightsFile: u.weightsFile, ipFile: u.ipFile, loraFile, weightBytes: u.weightBytes, ipBytes: u.ipBytes, loraBytes };
  fs.writeFileSync(path.join(dir, 'files.json'), JSON.stringify(files));
  const result: Record<string, unknown> = {
    lora: { rank: RANK, alpha: ALPHA, dtype: 'F16', modules: 'attention to_q/k/v/out + feed-forward (ATTENTION_FF_MODULES)', bytes: loraBytes },
    weight_bytes: u.weightBytes,
    adapter_bytes: u.ipBytes,
    write_s: +seconds(t0).toFixed(1),
    workload: { ...SD15_WORKLOAD, cfg_passes: 'batch 2' },
  };
  const match = matchLora(SafetensorsFile.open(loraFile), [unetLoraTargets(SD15_UNET, SafetensorsFile.open(u.weightsFile), u.weightsFile)]);
  result.unet_gflop_per_step = +unetGflop(SD15_UNET, SD15_WORKLOAD).toFixed(1);
  result.added_gflop_per_step = {
    side: +loraGflop(match, 'side').toFixed(1),
    auto: +loraGflop(match, 'auto').toFixed(1),
    merge_in_graph: +loraGflop(match, 'merge').toFixed(1),
  };
  const want = (process.env.IPA_BENCH_LORA_VARIANTS?.split(',') ?? [...VARIANTS]) as Variant[];
  for (const v of want) {
    const argv = process.argv.slice(2);
    const i = argv.indexOf('--only');
    if (i >= 0) argv.splice(i, 2);
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1], ...argv, '--only', 'lora'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 26,
      env: { ...process.env, IPA_BENCH_LORA_VARIANT: v, IPA_BENCH_LORA_DIR: dir },
    });
    const text = r.stdout?.toString() ?? '';
    try {
      result[v] = (JSON.parse(text.slice(text.indexOf('{'))) as { lora: unknown }).lora;
    } catch {
      result[v] = { error: `variant ${v} exited with ${r.status ?? r.signal}: ${text.slice(-400)}` };
    }
  }
  const plain = result.plain as { ms_per_step_median?: number; cpu_ms_median?: number } | undefined;
  const cmp: Record<string, unknown> = {};
  for (const v of ['side', 'auto', 'merge'] as const) {
    const r = result[v] as { ms_per_step_median?: number; cpu_ms_median?: number } | undefined;
    if (plain?.ms_per_step_median && r?.ms_per_step_median) {
      cmp[v] = {
        step_vs_plain: +(r.ms_per_step_median / plain.ms_per_step_median).toFixed(3),
        cpu_vs_plain: +((r.cpu_ms_median ?? 0) / (plain.cpu_ms_median ?? 1)).toFixed(3),
      };
    }
  }
  result.vs_plain = cmp;
  return result;
}
