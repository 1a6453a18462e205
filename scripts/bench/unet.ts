/**
 * unet section: the SD1.5 UNet (320/640/1280/1280, cross 768, 8 heads, 32 groups, 2 layers) with a
 * 4-token IP-Adapter, batch 2 (CFG), 64x64 latent: graph build time, session creation, the time
 * to read the weight file once (for comparison; the file was just written, so both read from the
 * page cache), ms per step (median after one warm-up), peak RSS, GFLOP per step counted from the
 * conv/linear weight shapes and attention sizes, and the achieved GFLOP/s.
 */
import * as path from 'node:path';
import type { WeightMap } from '../../models/onnx/graph.js';
import { ort } from '../../models/onnx/session.js';
import { ipAdapterFeeds } from '../../models/unet-call.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { IpAdapterModel } from '../../models/ip-adapter.js';
import { UNET_SESSION_OPTIONS, buildUNet, unetParameterShapes } from '../../models/unet.js';
import { type UNetConfig, crossAttnLayers, parseUNetConfig } from '../../models/unet-config.js';
import { type Args, checkFinite, describeOptions, median, openSession, uniform, readOnce, rssMb, seconds, timeRuns, writeRandomSafetensors } from './common.js';

/** SD1.5's unet/config.json (the fields the parser reads); the ControlNet section parses it too. */
export const SD15_UNET_JSON: Record<string, unknown> = {
  sample_size: 64,
  in_channels: 4,
  out_channels: 4,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  attention_head_dim: 8,
  norm_num_groups: 32,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};
export const SD15_UNET = parseUNetConfig(SD15_UNET_JSON, 'bench SD1.5 config');

// ---------------------------------------------------------------------------------------
// FLOP count: 2 x MACs of every conv / linear (from the weight shapes and where each runs)
// plus the attention products (Q K^T and P V).
// ---------------------------------------------------------------------------------------

export interface UNetWorkload {
  batch: number;
  height: number;
  width: number;
  textTokens: number;
  ipTokens: number;
}

/** The benchmark's UNet workload: batch 2 = [uncond, cond], 64x64 latent (512x512), 77 text and 4 image tokens. */
export const SD15_WORKLOAD: UNetWorkload = { batch: 2, height: 64, width: 64, textTokens: 77, ipTokens: 4 };

/** Level (0 = full resolution) a UNet / ControlNet parameter runs at. */
function levelOf(cfg: UNetConfig, name: string): number {
  const levels = cfg.blockOutChannels.length;
  let m = /^down_blocks\.(\d+)\.(\w+)/.exec(name);
  if (m) return Number(m[1]) + (m[2] === 'downsamplers' ? 1 : 0);
  m = /^up_blocks\.(\d+)\.(\w+)/.exec(name);
  if (m) return levels - 1 - Number(m[1]) - (m[2] === 'upsamplers' ? 1 : 0);
  return name.startsWith('mid_block') ? levels - 1 : 0;
}

/**
 * GFLOP of one evaluation of the network whose parameters are `shapes` (a UNet, or the UNet-encoder
 * part of a ControlNet: controlnet_* layers are skipped) at this workload; adapter layers counted
 * when ipTokens > 0.
 */
export function unetGflop(cfg: UNetConfig, wl: UNetWorkload, shapes: Map<string, number[]> = unetParameterShapes(cfg)): number {
  const hw = (lvl: number) => Math.ceil(wl.height / 2 ** lvl) * Math.ceil(wl.width / 2 ** lvl);
  let macs = 0;
  for (const [name, shape] of shapes) {
    if (shape.length < 2 || !name.endsWith('.weight')) continue; // biases and norms are not counted
    if (name.startsWith('controlnet_')) continue; // a ControlNet's own layers: counted by the controlnet section
    const numel = shape.reduce((a, d) => a * d, 1);
    let positions: number;
    if (name.startsWith('time_embedding') || name.includes('time_emb_proj')) positions = 1;
    else if (/attn2\.to_[kv]\./.test(name)) positions = wl.textTokens;
    else positions = hw(levelOf(cfg, name));
    macs += wl.batch * positions * numel;
  }
  for (const p of crossAttnLayers(cfg)) {
    if (!shapes.has(`${p.name}.to_q.weight`)) continue; // a ControlNet has no up blocks
    const n = hw(levelOf(cfg, p.name));
    const C = p.hiddenSize;
    macs += wl.batch * 2 * n * n * C; // self-attention (attn1 of the same transformer block)
    macs += wl.batch * 2 * n * wl.textTokens * C; // cross-attention
    if (wl.ipTokens) macs += wl.batch * (2 * n * wl.ipTokens * C + 2 * wl.ipTokens * cfg.crossAttentionDim * C); // image branch + its K/V
  }
  return (2 * macs) / 1e9;
}

// ---------------------------------------------------------------------------------------
// Weights and inputs (shared with the controlnet section)
// ---------------------------------------------------------------------------------------

export interface UNetFiles {
  weightsFile: string;
  ipFile: string;
  weightBytes: number;
  ipBytes: number;
  writeS: number;
}

/** Writes the SD1.5 UNet and a 4-token ip-adapter_sd15 with random weights under `dir`. */
export function writeUNetFiles(dir: string, cfg: UNetConfig = SD15_UNET): UNetFiles {
  const t0 = performance.now();
  const weightsFile = path.join(dir, 'unet-sd15-random.safetensors');
  const weightBytes = writeRandomSafetensors(weightsFile, unetParameterShapes(cfg), 1);
  const ipShapes = new Map<string, number[]>([
    ['image_proj.proj.weight', [4 * cfg.crossAttentionDim, 1024]],
    ['image_proj.proj.bias', [4 * cfg.crossAttentionDim]],
    ['image_proj.norm.weight', [cfg.crossAttentionDim]],
    ['image_proj.norm.bias', [cfg.crossAttentionDim]],
  ]);
  for (const p of crossAttnLayers(cfg))
    for (const kv of ['k', 'v']) ipShapes.set(`ip_adapter.${p.index}.to_${kv}_ip.weight`, [p.hiddenSize, cfg.crossAttentionDim]);
  const ipFile = path.join(dir, 'ip-adapter-sd15-random.safetensors');
  const ipBytes = writeRandomSafetensors(ipFile, ipShapes, 2);
  return { weightsFile, ipFile, weightBytes, ipBytes, writeS: seconds(t0) };
}

/** UNet feeds for the workload: latents, timestep 981, text context, one adapter's image tokens at scale (λ) 1 in all 16 layers (models/unet-call.ts ipAdapterFeeds). */
export function unetFeeds(cfg: UNetConfig, wl: UNetWorkload): Record<string, ort.Tensor> {
  const { batch: B, height: H, width: W } = wl;
  const C = cfg.crossAttentionDim;
  return {
    sample: new ort.Tensor('float32', uniform(B * cfg.inChannels * H * W, 3), [B, cfg.inChannels, H, W]),
    timestep: new ort.Tensor('float32', new Float32Array(B).fill(981), [B]),
    encoder_hidden_states: new ort.Tensor('float32', uniform(B * wl.textTokens * C, 4), [B, wl.textTokens, C]),
    ...ipAdapterFeeds(cfg, 0, { tokens: { data: uniform(B * wl.ipTokens * C, 5), dims: [B, wl.ipTokens, C] }, scale: 1 }, H, W),
  };
}

// ---------------------------------------------------------------------------------------
// Section
// ---------------------------------------------------------------------------------------

export async function benchUNet(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = SD15_UNET;
  const wl = SD15_WORKLOAD;
  const files = writeUNetFiles(dir, cfg);
  const readS = readOnce(files.weightsFile);

  let t0 = performance.now();
  const weights: WeightMap = SafetensorsFile.open(files.weightsFile);
  const built = buildUNet(cfg, weights, { ipAdapter: IpAdapterModel.load(files.ipFile), attention: a.attention }).build();
  const buildS = seconds(t0);
  const rssBeforeSession = rssMb();
  t0 = performance.now();
  const session = await openSession(built, path.join(dir, 'cache'), a, UNET_SESSION_OPTIONS);
  const sessionS = seconds(t0);
  const rssAfterSession = rssMb();

  const feeds = unetFeeds(cfg, wl);
  const { warmup_ms, ms, cpu_ms } = await timeRuns(a.steps, async () => checkFinite('UNet', (await session.run(feeds)).noise_pred.data));
  await session.release();
  const gflop = unetGflop(cfg, wl);
  const med = median(ms);
  return {
    ms_per_step_median: med,
    ms_per_step: ms,
    warmup_ms,
    cpu_ms_per_step: cpu_ms,
    build_s: +buildS.toFixed(2),
    session_create_s: +sessionS.toFixed(2),
    read_weights_once_s: +readS.toFixed(2),
    session_vs_read: +(sessionS / readS).toFixed(2),
    peak_rss_mb: Math.round(rssMb()),
    rss_before_session_mb: Math.round(rssBeforeSession),
    rss_after_session_mb: Math.round(rssAfterSession),
    weight_bytes: files.weightBytes,
    adapter_weight_bytes: files.ipBytes,
    peak_rss_vs_weights: +((rssMb() * 2 ** 20) / files.weightBytes).toFixed(2),
    gflop_per_step: +gflop.toFixed(1),
    gflop_per_s: +(gflop / (med / 1000)).toFixed(1),
    write_weights_s: +files.writeS.toFixed(1),
    model_bytes: built.bytes.length,
    workload: { ...wl, cfg_passes: 'batch 2 = [uncond, cond]', attention: a.attention },
    session_options: describeOptions(UNET_SESSION_OPTIONS, a),
  };
}
