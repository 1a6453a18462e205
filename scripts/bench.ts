/**
 * Benchmark (not part of the test suite): SD1.5-sized networks with random fp32 weights written
 * to temporary safetensors files, run on ONNX Runtime (CPU by default). Prints one JSON object.
 *
 *   npm run bench [-- --only unet,text_encoder,vae_decode] [--steps N] [--provider cpu]
 *                 [--attention mha|onnx] [--opt all|extended|basic|disabled] [--prepack|--no-prepack] [--threads N] [--keep]
 *
 * Each network runs with the product's session options (UNET_SESSION_OPTIONS for the UNet,
 * createSession's defaults for the others); --opt / --prepack / --no-prepack override them.
 *
 * unet: the SD1.5 UNet (320/640/1280/1280, cross 768, 8 heads, 32 groups, 2 layers) with a
 * 4-token IP-Adapter, batch 2 (CFG), 64x64 latent: graph build time, session creation, the time
 * to read the weight file once (for comparison; the file was just written, so both read from the
 * page cache), ms per step (median after one warm-up), peak RSS, GFLOP per step counted from the
 * conv/linear weight shapes and attention sizes, and the achieved GFLOP/s.
 * text_encoder / vae_decode: the same for helper A's CLIP text encoder (batch 2 x 77 tokens)
 * and helper D's VAE decoder (1 x 4 x 64 x 64 -> 512 x 512).
 * Peak RSS is the process's (process.resourceUsage().maxRSS), so run one section at a time
 * with --only for per-network figures.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BuiltModel, WeightMap } from '../models/onnx/graph.js';
import { createSession, ort, type Provider } from '../models/onnx/session.js';
import { SafetensorsFile } from '../models/safetensors.js';
import { IpAdapterModel } from '../models/ip-adapter.js';
import { UNET_SESSION_OPTIONS, buildUNet, crossAttnLayers, parseUNetConfig, unetParameterShapes, type UNetConfig } from '../models/unet.js';
import { SD15_TEXT_CONFIG, buildClipTextEncoder } from '../models/clip-text.js';
import { buildVaeDecoder, parseVaeConfig, type VaeConfig } from '../models/vae.js';

interface Args {
  only: Set<string>; steps: number; provider: Provider; attention: 'mha' | 'onnx';
  /** Overrides of the product's session options (UNET_SESSION_OPTIONS / createSession defaults). */
  opt?: 'all' | 'extended' | 'basic' | 'disabled'; prepack?: boolean; threads: number; keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const val = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  return {
    only: new Set((val('--only') ?? 'unet,text_encoder,vae_decode').split(',').map((s) => s.trim())),
    steps: Math.max(1, Number(val('--steps') ?? 3)),
    provider: (val('--provider') ?? 'cpu') as Provider,
    attention: (val('--attention') ?? 'mha') as 'mha' | 'onnx',
    opt: val('--opt') as Args['opt'],
    prepack: argv.includes('--no-prepack') ? false : argv.includes('--prepack') ? true : undefined,
    threads: Number(val('--threads') ?? 0),
    keep: argv.includes('--keep'),
  };
}

// ---------------------------------------------------------------------------------------
// Random weights, streamed to disk (the SD1.5 UNet is 3.4 GB in fp32).
// ---------------------------------------------------------------------------------------

/** Writes a safetensors file of F32 tensors filled by `fill(name, shape, chunk, offset)`, chunk by chunk. */
function writeRandomSafetensors(file: string, shapes: Map<string, number[]>, seed: number): number {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, s] of shapes) {
    const bytes = s.reduce((a, d) => a * d, 1) * 4;
    header[k] = { dtype: 'F32', shape: s, data_offsets: [off, off + bytes] };
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
    const chunk = new Float32Array(1 << 22);
    let s = seed >>> 0 || 1;
    for (const [k, shape] of shapes) {
      const n = shape.reduce((a, d) => a * d, 1);
      // Norm weights near 1, everything else uniform with std ~ 1/sqrt(fan_in): activations stay
      // O(1) through the network, so no denormals or infinities distort the timing.
      const isNormWeight = shape.length === 1 && /norm[^.]*\.weight$|layer_norm\d?\.weight$|\.norm\d\.weight$/.test(k);
      const fanIn = shape.length > 1 ? n / shape[0] : 1;
      const amp = isNormWeight ? 0.1 : Math.sqrt(3 / fanIn);
      const center = isNormWeight ? 1 : 0;
      for (let done = 0; done < n;) {
        const m = Math.min(chunk.length, n - done);
        for (let i = 0; i < m; i++) {
          s ^= s << 13; s ^= s >>> 17; s ^= s << 5; // xorshift32
          chunk[i] = center + amp * ((s >>> 0) / 2147483648 - 1);
        }
        fs.writeSync(fd, new Uint8Array(chunk.buffer, 0, m * 4));
        done += m;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return fs.statSync(file).size;
}

/** Reads a file once, sequentially, as a baseline for session creation. */
function readOnce(file: string): number {
  const t0 = performance.now();
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 24);
  try {
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0) { /* read */ }
  } finally {
    fs.closeSync(fd);
  }
  return (performance.now() - t0) / 1000;
}

// ---------------------------------------------------------------------------------------
// FLOP count: 2 x MACs of every conv / linear (from the weight shapes and where each runs)
// plus the attention products (Q K^T and P V).
// ---------------------------------------------------------------------------------------

export interface UNetWorkload { batch: number; height: number; width: number; textTokens: number; ipTokens: number }

/** GFLOP of one UNet evaluation for `cfg` at this workload (adapter layers included when ipTokens > 0). */
export function unetGflop(cfg: UNetConfig, wl: UNetWorkload): number {
  const levels = cfg.blockOutChannels.length;
  const hw = (lvl: number) => Math.ceil(wl.height / 2 ** lvl) * Math.ceil(wl.width / 2 ** lvl);
  const levelOf = (name: string): number => {
    let m = /^down_blocks\.(\d+)\.(\w+)/.exec(name);
    if (m) return Number(m[1]) + (m[2] === 'downsamplers' ? 1 : 0);
    m = /^up_blocks\.(\d+)\.(\w+)/.exec(name);
    if (m) return levels - 1 - Number(m[1]) - (m[2] === 'upsamplers' ? 1 : 0);
    return name.startsWith('mid_block') ? levels - 1 : 0;
  };
  let macs = 0;
  for (const [name, shape] of unetParameterShapes(cfg)) {
    if (shape.length < 2 || !name.endsWith('.weight')) continue; // biases and norms are not counted
    const numel = shape.reduce((a, d) => a * d, 1);
    let positions: number;
    if (name.startsWith('time_embedding') || name.includes('time_emb_proj')) positions = 1;
    else if (/attn2\.to_[kv]\./.test(name)) positions = wl.textTokens;
    else positions = hw(levelOf(name));
    macs += wl.batch * positions * numel;
  }
  for (const p of crossAttnLayers(cfg)) {
    const n = hw(levelOf(p.name));
    const C = p.hiddenSize;
    macs += wl.batch * 2 * n * n * C; // self-attention (attn1 of the same transformer block)
    macs += wl.batch * 2 * n * wl.textTokens * C; // cross-attention
    if (wl.ipTokens) macs += wl.batch * (2 * n * wl.ipTokens * C + 2 * wl.ipTokens * cfg.crossAttentionDim * C); // image branch + its K/V
  }
  return (2 * macs) / 1e9;
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

function openSession(built: BuiltModel, cacheDir: string, a: Args, base: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  return createSession(built, { cacheDir, provider: a.provider, threads: a.threads, sessionOptions: sessionOptions(base, a) });
}

/** The options a section actually ran with, for the JSON. */
function describeOptions(base: ort.InferenceSession.SessionOptions, a: Args): Record<string, unknown> {
  const o = sessionOptions(base, a);
  const extra = o.extra as { session?: { disable_prepacking?: string } } | undefined;
  return { opt_level: o.graphOptimizationLevel ?? 'all', prepacking: extra?.session?.disable_prepacking !== '1', provider: a.provider };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const rssMb = () => process.resourceUsage().maxRSS / 1024;
const randn = (n: number, seed: number) => {
  let s = seed;
  return new Float32Array(n).map(() => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s / 2 ** 32 - 0.5) * 2; });
};

async function timeRuns(steps: number, run: () => Promise<unknown>): Promise<{ warmup_ms: number; ms: number[] }> {
  let t0 = performance.now();
  await run();
  const warmup = performance.now() - t0;
  const ms: number[] = [];
  for (let i = 0; i < steps; i++) {
    t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return { warmup_ms: Math.round(warmup), ms: ms.map(Math.round) };
}

// ---------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------

const SD15_UNET = parseUNetConfig({
  sample_size: 64, in_channels: 4, out_channels: 4, block_out_channels: [320, 640, 1280, 1280], layers_per_block: 2,
  attention_head_dim: 8, norm_num_groups: 32, cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
}, 'bench SD1.5 config');

async function benchUNet(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = SD15_UNET;
  const B = 2;
  const wl: UNetWorkload = { batch: B, height: 64, width: 64, textTokens: 77, ipTokens: 4 };
  let t0 = performance.now();
  const weightsFile = path.join(dir, 'unet-sd15-random.safetensors');
  const weightBytes = writeRandomSafetensors(weightsFile, unetParameterShapes(cfg), 1);
  const ipShapes = new Map<string, number[]>([
    ['image_proj.proj.weight', [4 * cfg.crossAttentionDim, 1024]], ['image_proj.proj.bias', [4 * cfg.crossAttentionDim]],
    ['image_proj.norm.weight', [cfg.crossAttentionDim]], ['image_proj.norm.bias', [cfg.crossAttentionDim]],
  ]);
  for (const p of crossAttnLayers(cfg)) for (const kv of ['k', 'v']) ipShapes.set(`ip_adapter.${p.index}.to_${kv}_ip.weight`, [p.hiddenSize, cfg.crossAttentionDim]);
  const ipFile = path.join(dir, 'ip-adapter-sd15-random.safetensors');
  const ipBytes = writeRandomSafetensors(ipFile, ipShapes, 2);
  const writeS = (performance.now() - t0) / 1000;
  const readS = readOnce(weightsFile);

  t0 = performance.now();
  const weights: WeightMap = SafetensorsFile.open(weightsFile);
  const built = buildUNet(cfg, weights, { ipAdapter: IpAdapterModel.load(ipFile), attention: a.attention }).build();
  const buildS = (performance.now() - t0) / 1000;
  const rssBeforeSession = rssMb();
  t0 = performance.now();
  const session = await openSession(built, path.join(dir, 'cache'), a, UNET_SESSION_OPTIONS);
  const sessionS = (performance.now() - t0) / 1000;
  const rssAfterSession = rssMb();

  const feeds = {
    sample: new ort.Tensor('float32', randn(B * 4 * 64 * 64, 3), [B, 4, 64, 64]),
    timestep: new ort.Tensor('float32', Float32Array.from([981, 981]), [B]),
    encoder_hidden_states: new ort.Tensor('float32', randn(B * 77 * 768, 4), [B, 77, 768]),
    ip_tokens: new ort.Tensor('float32', randn(B * 4 * 768, 5), [B, 4, 768]),
    ip_scale: new ort.Tensor('float32', new Float32Array(16).fill(1), [16]),
  };
  const { warmup_ms, ms } = await timeRuns(a.steps, async () => {
    const out = await session.run(feeds);
    const y = out.noise_pred.data as Float32Array;
    if (!y.every(Number.isFinite)) throw new Error('bench: UNet output is not finite');
  });
  await session.release();
  const gflop = unetGflop(cfg, wl);
  const med = median(ms);
  return {
    ms_per_step_median: med, ms_per_step: ms, warmup_ms,
    build_s: +buildS.toFixed(2), session_create_s: +sessionS.toFixed(2), read_weights_once_s: +readS.toFixed(2),
    session_vs_read: +(sessionS / readS).toFixed(2),
    peak_rss_mb: Math.round(rssMb()), rss_before_session_mb: Math.round(rssBeforeSession), rss_after_session_mb: Math.round(rssAfterSession),
    weight_bytes: weightBytes, adapter_weight_bytes: ipBytes, peak_rss_vs_weights: +((rssMb() * 2 ** 20) / weightBytes).toFixed(2),
    gflop_per_step: +gflop.toFixed(1), gflop_per_s: +(gflop / (med / 1000)).toFixed(1),
    write_weights_s: +writeS.toFixed(1), model_bytes: built.bytes.length,
    workload: { ...wl, cfg_passes: 'batch 2 = [uncond, cond]', attention: a.attention },
    session_options: describeOptions(UNET_SESSION_OPTIONS, a),
  };
}

/** transformers CLIPTextModel parameter names/shapes (SD1.5's text tower). */
function clipTextShapes(): Map<string, number[]> {
  const c = SD15_TEXT_CONFIG;
  const H = c.hidden_size;
  const p = new Map<string, number[]>([
    ['text_model.embeddings.token_embedding.weight', [c.vocab_size, H]],
    ['text_model.embeddings.position_embedding.weight', [c.max_position_embeddings, H]],
  ]);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const b = `text_model.encoder.layers.${l}`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) { p.set(`${b}.self_attn.${n}.weight`, [H, H]); p.set(`${b}.self_attn.${n}.bias`, [H]); }
    for (const n of ['layer_norm1', 'layer_norm2']) { p.set(`${b}.${n}.weight`, [H]); p.set(`${b}.${n}.bias`, [H]); }
    p.set(`${b}.mlp.fc1.weight`, [c.intermediate_size, H]); p.set(`${b}.mlp.fc1.bias`, [c.intermediate_size]);
    p.set(`${b}.mlp.fc2.weight`, [H, c.intermediate_size]); p.set(`${b}.mlp.fc2.bias`, [H]);
  }
  p.set('text_model.final_layer_norm.weight', [H]); p.set('text_model.final_layer_norm.bias', [H]);
  return p;
}

async function benchTextEncoder(dir: string, a: Args): Promise<Record<string, unknown>> {
  const file = path.join(dir, 'text-encoder-random.safetensors');
  const bytes = writeRandomSafetensors(file, clipTextShapes(), 7);
  let t0 = performance.now();
  const built = buildClipTextEncoder({ ...SD15_TEXT_CONFIG }, SafetensorsFile.open(file)).build();
  const buildS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const session = await openSession(built, path.join(dir, 'cache'), a);
  const sessionS = (performance.now() - t0) / 1000;
  const ids = new BigInt64Array(2 * 77).map((_, i) => BigInt(i % 77 === 0 ? 49406 : (i * 7919) % 49406));
  const { warmup_ms, ms } = await timeRuns(a.steps, () => session.run({ input_ids: new ort.Tensor('int64', ids, [2, 77]) }));
  await session.release();
  return { ms_median: median(ms), ms, warmup_ms, build_s: +buildS.toFixed(2), session_create_s: +sessionS.toFixed(2), weight_bytes: bytes, batch: 2, peak_rss_mb: Math.round(rssMb()), session_options: describeOptions({}, a) };
}

/** diffusers AutoencoderKL decoder-side parameters (post_quant_conv + decoder) for a config. */
function vaeDecoderShapes(c: VaeConfig): Map<string, number[]> {
  const p = new Map<string, number[]>();
  const conv = (k: string, o: number, i: number, s = 3) => { p.set(`${k}.weight`, [o, i, s, s]); p.set(`${k}.bias`, [o]); };
  const norm = (k: string, ch: number) => { p.set(`${k}.weight`, [ch]); p.set(`${k}.bias`, [ch]); };
  const resnet = (k: string, i: number, o: number) => {
    norm(`${k}.norm1`, i); conv(`${k}.conv1`, o, i); norm(`${k}.norm2`, o); conv(`${k}.conv2`, o, o);
    if (i !== o) conv(`${k}.conv_shortcut`, o, i, 1);
  };
  const boc = c.block_out_channels;
  const n = boc.length;
  const top = boc[n - 1];
  conv('post_quant_conv', c.latent_channels, c.latent_channels, 1);
  conv('decoder.conv_in', top, c.latent_channels);
  resnet('decoder.mid_block.resnets.0', top, top); resnet('decoder.mid_block.resnets.1', top, top);
  norm('decoder.mid_block.attentions.0.group_norm', top);
  for (const l of ['to_q', 'to_k', 'to_v', 'to_out.0']) { p.set(`decoder.mid_block.attentions.0.${l}.weight`, [top, top]); p.set(`decoder.mid_block.attentions.0.${l}.bias`, [top]); }
  const rev = [...boc].reverse();
  rev.forEach((o, i) => {
    for (let j = 0; j <= c.layers_per_block; j++) resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? rev[Math.max(i - 1, 0)] : o, o);
    if (i < n - 1) conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, o, o);
  });
  norm('decoder.conv_norm_out', boc[0]);
  conv('decoder.conv_out', c.out_channels, boc[0]);
  return p;
}

async function benchVaeDecode(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = parseVaeConfig({
    in_channels: 3, out_channels: 3, latent_channels: 4, block_out_channels: [128, 256, 512, 512], layers_per_block: 2,
    norm_num_groups: 32, scaling_factor: 0.18215,
    down_block_types: Array(4).fill('DownEncoderBlock2D'), up_block_types: Array(4).fill('UpDecoderBlock2D'),
  }, 'bench SD1.5 VAE config');
  const file = path.join(dir, 'vae-decoder-random.safetensors');
  const bytes = writeRandomSafetensors(file, vaeDecoderShapes(cfg), 11);
  let t0 = performance.now();
  const built = buildVaeDecoder(cfg, SafetensorsFile.open(file)).build();
  const buildS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const session = await openSession(built, path.join(dir, 'cache'), a);
  const sessionS = (performance.now() - t0) / 1000;
  const latents = new ort.Tensor('float32', randn(4 * 64 * 64, 9), [1, 4, 64, 64]);
  const { warmup_ms, ms } = await timeRuns(a.steps, () => session.run({ latents }));
  await session.release();
  return { ms_median: median(ms), ms, warmup_ms, build_s: +buildS.toFixed(2), session_create_s: +sessionS.toFixed(2), weight_bytes: bytes, output: '1x3x512x512', peak_rss_mb: Math.round(rssMb()), session_options: describeOptions({}, a) };
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-bench-'));
  const result: Record<string, unknown> = {
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, total_mem_gb: +(os.totalmem() / 2 ** 30).toFixed(1), ort: ort.env.versions?.common ?? 'unknown', node: process.version },
  };
  const sections: [string, (d: string, a: Args) => Promise<Record<string, unknown>>][] = [
    ['unet', benchUNet], ['text_encoder', benchTextEncoder], ['vae_decode', benchVaeDecode],
  ];
  try {
    for (const [name, fn] of sections) {
      if (!a.only.has(name)) continue;
      try {
        result[name] = await fn(dir, a);
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
