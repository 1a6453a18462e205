/**
 * unet_fp16 section: the unet section's SD1.5 UNet + 4-token IP-Adapter (batch 2, 64x64 latent),
 * its random weights stored as F16 (or BF16 with --dtype bf16; --dtype f32: the fp32 twin, for
 * comparison), the way most downloads are. What the file costs: session creation (the first one
 * writes the float32 copy, onnx/fp32-weights.ts; a second one reuses it), ms per step, peak RSS
 * against the half-size file and against the fp32 twin's bytes, anonymous vs file-backed RSS
 * after the runs; then a second network from the same file alive beside the first (the UNet
 * without the adapter, as a workflow without an image prompt builds it), run once: what the
 * weights cost when two sessions read them (PSS too: a file page both sessions map counts twice
 * in RSS, once in PSS).
 * --half-weights fp32-file|per-run|folded picks the product's treatment (SessionConfig.halfWeights;
 * default the product's, fp32-file) so the three can be compared, each in its own process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WeightMap } from '../../models/onnx/graph.js';
import { createSession, type HalfWeightsMode } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { IpAdapterModel } from '../../models/ip-adapter.js';
import { UNET_SESSION_OPTIONS, buildUNet, unetParameterShapes } from '../../models/unet.js';
import { crossAttnLayers } from '../../models/unet-config.js';
import { type Args, checkFinite, median, rssMb, rssNowMb, seconds, timeRuns, writeRandomSafetensors } from './common.js';
import { SD15_UNET, SD15_WORKLOAD, unetFeeds } from './unet.js';

/**
 * Proportional set size split as RssAnon / RssFile are, MB (Linux; null elsewhere): a file page
 * mapped twice (two sessions of one weight file) counts twice in RSS but once here.
 */
function pssMb(): { pss_mb: number; pss_anon_mb: number; pss_file_mb: number } | null {
  try {
    const st = fs.readFileSync('/proc/self/smaps_rollup', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? NaN) / 1024;
    return { pss_mb: Math.round(kb('Pss')), pss_anon_mb: Math.round(kb('Pss_Anon')), pss_file_mb: Math.round(kb('Pss_File')) };
  } catch {
    return null;
  }
}

const argValue = (k: string) => {
  const i = process.argv.indexOf(k);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

export async function benchUNetFp16(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = SD15_UNET;
  const dtype = (argValue('--dtype') ?? 'f16').toUpperCase() as 'F16' | 'BF16' | 'F32';
  if (!['F16', 'BF16', 'F32'].includes(dtype)) throw new Error(`unet_fp16: --dtype ${dtype} (expected f16, bf16 or f32, the same steps on the fp32 twin)`);
  const mode = (argValue('--half-weights') ?? 'fp32-file') as HalfWeightsMode;
  if (!['fp32-file', 'per-run', 'folded'].includes(mode)) throw new Error(`unet_fp16: --half-weights ${mode} (expected fp32-file, per-run or folded)`);

  let t0 = performance.now();
  const weightsFile = path.join(dir, `unet-sd15-random-${dtype.toLowerCase()}.safetensors`);
  const weightBytes = writeRandomSafetensors(weightsFile, unetParameterShapes(cfg), 1, { dtype });
  const ipShapes = new Map<string, number[]>([
    ['image_proj.proj.weight', [4 * cfg.crossAttentionDim, 1024]],
    ['image_proj.proj.bias', [4 * cfg.crossAttentionDim]],
    ['image_proj.norm.weight', [cfg.crossAttentionDim]],
    ['image_proj.norm.bias', [cfg.crossAttentionDim]],
  ]);
  for (const p of crossAttnLayers(cfg))
    for (const kv of ['k', 'v']) ipShapes.set(`ip_adapter.${p.index}.to_${kv}_ip.weight`, [p.hiddenSize, cfg.crossAttentionDim]);
  const ipFile = path.join(dir, `ip-adapter-sd15-random-${dtype.toLowerCase()}.safetensors`);
  writeRandomSafetensors(ipFile, ipShapes, 2, { dtype });
  const writeS = seconds(t0);

  const weights: WeightMap = SafetensorsFile.open(weightsFile);
  const built = buildUNet(cfg, weights, { ipAdapter: IpAdapterModel.load(ipFile) }).build();
  const cacheDir = path.join(dir, 'cache');
  const logs: string[] = [];
  const open = (model = built) =>
    createSession(model, {
      cacheDir,
      provider: a.provider,
      threads: a.threads,
      halfWeights: mode,
      log: (m) => logs.push(m),
      sessionOptions: a.opt ? { ...UNET_SESSION_OPTIONS, graphOptimizationLevel: a.opt } : UNET_SESSION_OPTIONS,
    });
  t0 = performance.now();
  let session = await open();
  const firstSessionS = seconds(t0);
  const rssAfterSession = rssMb();

  const feeds = unetFeeds(cfg, SD15_WORKLOAD);
  const { warmup_ms, ms, cpu_ms } = await timeRuns(a.steps, async () => checkFinite('UNet', (await session.run(feeds)).noise_pred.data));
  const now = { ...rssNowMb(), ...pssMb() };
  const peak = rssMb();
  // The same weights in a second network, alive beside the first.
  t0 = performance.now();
  const plain = await open(buildUNet(cfg, weights, { name: 'unet-plain' }).build());
  const plainSessionS = seconds(t0);
  const { sample, timestep, encoder_hidden_states } = feeds;
  checkFinite('UNet', (await plain.run({ sample, timestep, encoder_hidden_states })).noise_pred.data);
  const two = { ...rssNowMb(), ...pssMb() };
  const peakTwo = rssMb();
  await plain.release();
  await session.release();
  // A second load of the same network (a new process would do the same): reuses the float32 copy.
  t0 = performance.now();
  session = await open();
  const secondSessionS = seconds(t0);
  await session.release();
  const copyDir = path.join(cacheDir, 'fp32-weights');
  const copyBytes = fs.existsSync(copyDir) ? fs.readdirSync(copyDir).reduce((s, f) => s + fs.statSync(path.join(copyDir, f)).size, 0) : 0;
  const fp32Bytes = [...unetParameterShapes(cfg).values()].reduce((s, sh) => s + sh.reduce((x, d) => x * d, 4), 0); // the fp32 twin's weights
  return {
    dtype,
    half_weights: mode,
    ms_per_step_median: median(ms),
    ms_per_step: ms,
    warmup_ms,
    cpu_ms_per_step: cpu_ms,
    first_session_create_s: +firstSessionS.toFixed(2),
    second_session_create_s: +secondSessionS.toFixed(2),
    peak_rss_mb: Math.round(peak),
    rss_after_session_mb: Math.round(rssAfterSession),
    rss_after_runs: now,
    weight_bytes: weightBytes,
    fp32_equivalent_bytes: fp32Bytes,
    peak_rss_vs_file: +((peak * 2 ** 20) / weightBytes).toFixed(2),
    peak_rss_vs_fp32_bytes: +((peak * 2 ** 20) / fp32Bytes).toFixed(2),
    two_networks: {
      second_session_create_s: +plainSessionS.toFixed(2),
      peak_rss_mb: Math.round(peakTwo),
      rss_after_run: two,
      peak_rss_vs_fp32_bytes: +((peakTwo * 2 ** 20) / fp32Bytes).toFixed(2),
    },
    float32_copy_bytes_on_disk: copyBytes,
    write_weights_s: +writeS.toFixed(1),
    log: logs,
  };
}
