/**
 * ControlNet inside the UNet session (models/unet-controlnet.ts) against separate sessions, on the CPU, in one
 * process, rounds interleaved (so a change of machine load hits all variants alike):
 *   separate     ControlNet session, residuals to the CPU, UNet-with-residual-inputs session (today's CPU path)
 *   merged       the one merged session, ControlNet strength 1
 *   merged_off   the merged session with strength 0 (every ControlNet outside its window)
 *   plain        the plain UNet session (no residual inputs): what the sampler runs at such steps instead
 * Reports session creation s, ms per step (wall and CPU, median over --steps rounds after a warm-up round), their
 * ratios, and RSS (anonymous / file-backed) after each session creation.
 *
 *   npx tsx scripts/bench/controlnet-in-unet.ts [--size tiny|sd15] [--latent 32] [--steps 3] [--controlnets 1]
 *
 * tiny: the tiny-sd15 fixtures (UNet + IP-Adapter, ControlNet). sd15: SD1.5-size UNet + 4-token IP-Adapter and
 * ControlNet with random F32 weights written to a temporary folder (4.9 GB). Batch 2 (CFG), latent --latent².
 * No GPU is measured here: the merged graph's point there (residuals never leave the device) cannot show on a CPU.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildControlNet, controlNetParameterShapes, downResidualName, MID_RESIDUAL } from '../../models/controlnet.js';
import { loadControlNet, parseControlNetConfig } from '../../models/controlnet-load.js';
import { loadCheckpoint } from '../../models/checkpoint.js';
import { IpAdapterModel } from '../../models/ip-adapter.js';
import type { BuiltModel, WeightMap } from '../../models/onnx/graph.js';
import { createSession, ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { UNET_SESSION_OPTIONS, buildUNet } from '../../models/unet.js';
import { ipAdapterFeeds } from '../../models/unet-call.js';
import type { UNetConfig } from '../../models/unet-config.js';
import { controlNetCondInput, controlNetScaleInput, unetControlNet } from '../../models/unet-controlnet.js';
import { fixtureFolder } from '../../test/helpers/fixtures.js';
import { type Timing, median, rssNowMb, seconds, timed, uniform, writeRandomSafetensors } from './common.js';
import { SD15_UNET, SD15_UNET_JSON, writeUNetFiles } from './unet.js';

const argv = process.argv.slice(2);
const val = (k: string) => {
  const i = argv.indexOf(k);
  return i >= 0 ? argv[i + 1] : undefined;
};
const size = val('--size') ?? 'tiny';
const latent = Number(val('--latent') ?? (size === 'tiny' ? 16 : 32));
const steps = Number(val('--steps') ?? 3);
const k = Number(val('--controlnets') ?? 1);

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cn-in-unet-'));
  try {
    let cfg: UNetConfig;
    let unetWeights: WeightMap;
    let ipAdapter: IpAdapterModel;
    let cn: { config: ReturnType<typeof parseControlNetConfig>; weights: WeightMap };
    if (size === 'tiny') {
      const fx = fixtureFolder('tiny-sd15');
      const ck = loadCheckpoint(path.join(fx, 'diffusers'));
      cfg = ck.unet.config;
      unetWeights = ck.unet.weights;
      ipAdapter = IpAdapterModel.load(path.join(fx, 'ip-adapter_sd15-tiny.safetensors'));
      cn = loadControlNet(path.join(fx, 'controlnet'));
    } else {
      cfg = SD15_UNET;
      const files = writeUNetFiles(dir, cfg);
      unetWeights = SafetensorsFile.open(files.weightsFile);
      ipAdapter = IpAdapterModel.load(files.ipFile);
      const config = parseControlNetConfig({ ...SD15_UNET_JSON, conditioning_embedding_out_channels: [16, 32, 96, 256] }, 'bench SD1.5 ControlNet config');
      const cnFile = path.join(dir, 'controlnet-sd15-random.safetensors');
      writeRandomSafetensors(cnFile, controlNetParameterShapes(config), 21);
      cn = { config, weights: SafetensorsFile.open(cnFile) };
    }
    const cache = path.join(dir, 'cache');
    const rss: Record<string, unknown> = { before: rssNowMb() };
    const created: Record<string, number> = {};
    const open = async (what: string, build: () => BuiltModel) => {
      const t = performance.now();
      const s = await createSession(build(), { cacheDir: cache, sessionOptions: UNET_SESSION_OPTIONS });
      created[what] = +seconds(t).toFixed(3);
      rss[`after_${what}`] = rssNowMb();
      return s;
    };
    const unetCn = () => buildUNet(cfg, unetWeights, { ipAdapter, controlnet: true, name: 'unet_ip_cn' }).build();
    const cnBuilt = () => buildControlNet(cn.config, cn.weights).build();
    // Creation order: the separate pair first, then the merged one, then the plain UNet.
    const sepUNet = await open('separate_unet', unetCn);
    const sepCN = await open('separate_controlnet', cnBuilt);
    const merged = await open('merged', () => unetControlNet(unetCn(), Array.from({ length: k }, cnBuilt)));
    const plain = await open('plain_unet', () => buildUNet(cfg, unetWeights, { ipAdapter, name: 'unet_ip' }).build());

    const B = 2;
    const C = cfg.crossAttentionDim;
    const h = latent;
    const T = (d: Float32Array, dims: number[]) => new ort.Tensor('float32', d, dims);
    const base: Record<string, ort.Tensor> = {
      sample: T(uniform(B * 4 * h * h, 3), [B, 4, h, h]),
      timestep: T(new Float32Array(B).fill(981), [B]),
      encoder_hidden_states: T(uniform(B * 77 * C, 4), [B, 77, C]),
      ...ipAdapterFeeds(cfg, 0, { tokens: { data: uniform(B * 4 * C, 5), dims: [B, 4, C] }, scale: 1 }, h, h),
    };
    const f = 2 ** (cn.config.conditioningEmbeddingOutChannels.length - 1);
    const cond = T(
      uniform(B * 3 * h * f * h * f, 6).map((v) => 0.5 + 0.5 * v),
      [B, 3, h * f, h * f],
    );
    const mergedFeeds = (s: number) => {
      const feeds = { ...base };
      for (let j = 0; j < k; j++) {
        feeds[controlNetCondInput(j)] = cond;
        feeds[controlNetScaleInput(j)] = T(new Float32Array(B).fill(s), [B]);
      }
      return feeds;
    };
    const on = mergedFeeds(1);
    const off = mergedFeeds(0);
    const cnFeeds = {
      sample: base.sample!,
      timestep: base.timestep!,
      encoder_hidden_states: base.encoder_hidden_states!,
      controlnet_cond: cond,
      conditioning_scale: T(Float32Array.of(1), []),
    };
    const nRes = sepUNet.inputNames.filter((n) => n.startsWith('down_block_additional_residual_')).length;
    const t = { separate: [] as Timing[], merged: [] as Timing[], merged_off: [] as Timing[], plain: [] as Timing[] };
    let worst = 0;
    for (let round = 0; round <= steps; round++) {
      const a = await timed(async () => {
        // k ControlNet runs (the same ControlNet k times, as the merged graph has it), residuals summed on the CPU.
        const feeds: Record<string, ort.Tensor> = { ...base };
        for (let j = 0; j < k; j++) {
          const r = await sepCN.run(cnFeeds);
          for (let i = 0; i <= nRes; i++) {
            const [from, to] = i < nRes ? [downResidualName(i), `down_block_additional_residual_${i}`] : [MID_RESIDUAL, 'mid_block_additional_residual'];
            const x = r[from]!;
            const acc = feeds[to];
            if (!acc) feeds[to] = x;
            else {
              const d = Float32Array.from(acc.data as Float32Array);
              const e = x.data as Float32Array;
              for (let q = 0; q < d.length; q++) d[q]! += e[q]!;
              feeds[to] = T(d, [...x.dims]);
            }
          }
        }
        return sepUNet.run(feeds);
      }, t.separate);
      const b = await timed(() => merged.run(on), t.merged);
      await timed(() => merged.run(off), t.merged_off);
      await timed(() => plain.run(base), t.plain);
      const x = a.noise_pred!.data as Float32Array;
      const y = b.noise_pred!.data as Float32Array;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    }
    const med = (v: keyof typeof t, w: 'wall' | 'cpu') => Math.round(median(t[v].slice(1).map((x) => x[w])));
    const fig = (w: 'wall' | 'cpu') => ({ separate: med('separate', w), merged: med('merged', w), merged_off: med('merged_off', w), plain: med('plain', w) });
    const wall = fig('wall');
    const cpu = fig('cpu');
    console.log(
      JSON.stringify(
        {
          size,
          latent: `${latent}x${latent}`,
          batch: B,
          controlnets: k,
          rounds: steps,
          loadavg: os.loadavg().map((l) => +l.toFixed(1)),
          session_create_s: { ...created, separate_total: +(created.separate_unet! + created.separate_controlnet!).toFixed(3) },
          ms_per_step_median: wall,
          cpu_ms_per_step_median: cpu,
          ratios_cpu: {
            merged_over_separate: +(cpu.merged / cpu.separate).toFixed(3),
            merged_off_over_plain: +(cpu.merged_off / cpu.plain).toFixed(3),
          },
          max_abs_diff_merged_vs_separate: worst,
          rss_mb: rss,
        },
        null,
        1,
      ),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
