/**
 * ip_adapters section (issue 12): the unet section's SD1.5 UNet step (batch 2 = CFG, 64x64 latent, 77 text
 * tokens) with 0 (the plain graph), 1, 2 and 3 IP-Adapters, each with 4 or 16 image tokens, and with an
 * attention mask on every adapter (left / right / top halves, downsampled per level as diffusers does), in one
 * process: all four graphs' sessions are open at once and the variants run interleaved, round by round, so
 * each ratio compares steps taken under the same load. Reported per variant: median wall ms and CPU ms
 * (process CPU time: other processes on the cores stretch wall time, not CPU time) and their ratios to the
 * plain step; `overhead_per_adapter` = (ratio - 1) / adapters. Token counts and masks are graph inputs, so 4
 * graphs serve all 10 variants. Only with --only ip_adapters (24 SD1.5 steps at --steps 2: about 15 minutes on 2 shared cores).
 */
import * as path from 'node:path';
import { ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { IpAdapterModel } from '../../models/ip-adapter.js';
import { UNET_SESSION_OPTIONS, buildUNet } from '../../models/unet.js';
import { ipAdapterFeeds, type IpAdapterInputs } from '../../models/unet-call.js';
import { type Args, type Timing, checkFinite, describeOptions, median, openSession, rssMb, seconds, timed, uniform } from './common.js';
import { SD15_UNET, SD15_WORKLOAD, unetFeeds, writeUNetFiles } from './unet.js';

interface Variant {
  name: string;
  adapters: number;
  tokens: number;
  masked: boolean;
}

/** plain; 1-3 adapters of 4 tokens, of 16 tokens, and of 4 tokens with a mask each. */
const VARIANTS: Variant[] = [
  { name: 'plain', adapters: 0, tokens: 0, masked: false },
  ...[
    [4, false],
    [16, false],
    [4, true],
  ].flatMap(([n, masked]) =>
    [1, 2, 3].map((k) => ({ name: `${k}x${n}${masked ? '_masked' : ''}`, adapters: k, tokens: n as number, masked: masked as boolean })),
  ),
];

/** A 512 x 512 half-plane mask: left, right or top half (one per adapter). */
function halfMask(which: number): { data: Float32Array; dims: number[] } {
  const S = 512;
  const data = new Float32Array(S * S);
  for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) data[y * S + x] = [x < S / 2, x >= S / 2, y < S / 2][which % 3] ? 1 : 0;
  return { data, dims: [1, 1, S, S] };
}

export async function benchIpAdapters(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = SD15_UNET;
  const wl = SD15_WORKLOAD;
  const files = writeUNetFiles(dir, cfg);
  const weights = SafetensorsFile.open(files.weightsFile);
  const adapter = IpAdapterModel.load(files.ipFile);
  const build: Record<string, number> = {};
  const sessions: ort.InferenceSession[] = [];
  for (let k = 0; k <= 3; k++) {
    const t0 = performance.now();
    const built = buildUNet(cfg, weights, { ipAdapters: Array(k).fill(adapter), attention: a.attention, name: `unet_ip${k}` }).build();
    sessions.push(await openSession(built, path.join(dir, 'cache'), a, UNET_SESSION_OPTIONS));
    build[`${k}_adapters_s`] = +seconds(t0).toFixed(1);
  }
  const { batch: B, height: H, width: W } = wl;
  const C = cfg.crossAttentionDim;
  const base = unetFeeds(cfg, wl);
  const plainFeeds: Record<string, ort.Tensor> = { sample: base.sample!, timestep: base.timestep!, encoder_hidden_states: base.encoder_hidden_states! };
  const feedsOf = (v: Variant): Record<string, ort.Tensor> => {
    const feeds = { ...plainFeeds };
    for (let k = 0; k < v.adapters; k++) {
      const inp: IpAdapterInputs = {
        tokens: { data: uniform(B * v.tokens * C, 10 + k), dims: [B, v.tokens, C] },
        scale: 0.6,
        ...(v.masked ? { mask: halfMask(k) } : {}),
      };
      Object.assign(feeds, ipAdapterFeeds(cfg, k, inp, H, W));
    }
    return feeds;
  };
  const feeds = VARIANTS.map(feedsOf);
  const runs: Timing[][] = VARIANTS.map(() => []);
  const once = (i: number) => async () => checkFinite('UNet', (await sessions[VARIANTS[i]!.adapters]!.run(feeds[i]!)).noise_pred!.data);
  for (let k = 0; k <= 3; k++) await once(VARIANTS.findIndex((v) => v.adapters === k))(); // one warm-up per session, not timed
  for (let round = 0; round < a.steps; round++) for (let i = 0; i < VARIANTS.length; i++) await timed(once(i), runs[i]);
  for (const s of sessions) await s.release();

  const wall = runs.map((r) => median(r.map((t) => t.wall)));
  const cpu = runs.map((r) => median(r.map((t) => t.cpu)));
  const variants: Record<string, unknown> = {};
  VARIANTS.forEach((v, i) => {
    const rw = wall[i]! / wall[0]!;
    const rc = cpu[i]! / cpu[0]!;
    variants[v.name] = {
      ms_median: Math.round(wall[i]!),
      cpu_ms_median: Math.round(cpu[i]!),
      ms: runs[i]!.map((t) => Math.round(t.wall)),
      vs_plain_wall: +rw.toFixed(3),
      vs_plain_cpu: +rc.toFixed(3),
      ...(v.adapters ? { overhead_per_adapter_wall: +((rw - 1) / v.adapters).toFixed(3), overhead_per_adapter_cpu: +((rc - 1) / v.adapters).toFixed(3) } : {}),
    };
  });
  return {
    variants,
    build_and_session_s: build,
    peak_rss_mb: Math.round(rssMb()),
    rounds: a.steps,
    workload: { ...wl, ipTokens: '4 or 16 per adapter', masks: '512x512 half planes, one per adapter', attention: a.attention, order: 'interleaved rounds' },
    session_options: describeOptions(UNET_SESSION_OPTIONS, a),
  };
}
