/**
 * controlnet section: one CFG step with a ControlNet at SD1.5 size, 512x512 (64x64 latent),
 * batch 2 = [uncond, cond], random weights. Three sessions in one process, all with the same
 * options (UNET_SESSION_OPTIONS unless --opt / --prepack override them):
 *   plain UNet            SD1.5 UNet + 4-token IP-Adapter (what a step costs without a ControlNet)
 *   ControlNet            SD1.5 ControlNet (text context only, control image 2 x 3 x 512 x 512)
 *   UNet with residuals   the same UNet built with ControlNet inputs, fed this step's residuals
 * Each round runs plain, ControlNet, UNet-with-residuals back to back (one warm-up round, then
 * --steps rounds), so a change of machine load hits all three alike. Reports ms per step of each,
 * the ControlNet step (ControlNet + UNet with residuals), and its overhead over the plain step.
 * Peak RSS counts the UNet's weight file twice (both UNet sessions map it; the pages are shared).
 * Note: nodes/apply-controlnet.ts creates the ControlNet session with createSession's defaults
 * ('all' + prepacking), not UNET_SESSION_OPTIONS; pass --opt all --prepack to time that setting
 * (it then applies to the UNets too).
 */
import * as path from 'node:path';
import type { BuiltModel } from '../../models/onnx/graph.js';
import { ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { IpAdapterModel } from '../../models/ip-adapter.js';
import { UNET_SESSION_OPTIONS, buildUNet } from '../../models/unet.js';
import { numDownResiduals } from '../../models/unet-config.js';
import { MID_RESIDUAL, buildControlNet, controlNetParameterShapes, downResidualName, zeroResiduals } from '../../models/controlnet.js';
import { type ControlNetConfig, parseControlNetConfig } from '../../models/controlnet-load.js';
import { type Args, type Timing, checkFinite, describeOptions, median, openSession, uniform, rssMb, seconds, timed, writeRandomSafetensors } from './common.js';
import { SD15_UNET, SD15_UNET_JSON, SD15_WORKLOAD, type UNetWorkload, unetFeeds, unetGflop, writeUNetFiles } from './unet.js';

/** GFLOP of one ControlNet evaluation: the UNet-encoder copy, the conditioning encoder and the zero convs. */
export function controlNetGflop(cfg: ControlNetConfig, wl: UNetWorkload): number {
  const shapes = controlNetParameterShapes(cfg);
  let macs = (unetGflop(cfg, { ...wl, ipTokens: 0 }, shapes) * 1e9) / 2; // no image branch in a ControlNet
  const numel = (k: string) => shapes.get(k)!.reduce((a, d) => a * d, 1);
  // Conditioning encoder: conv_in at image resolution, then pairs (conv, strided conv) halving it.
  const f = 2 ** (cfg.conditioningEmbeddingOutChannels.length - 1);
  let h = wl.height * f,
    w = wl.width * f;
  macs += wl.batch * h * w * numel('controlnet_cond_embedding.conv_in.weight');
  for (let i = 0; i < cfg.conditioningEmbeddingOutChannels.length - 1; i++) {
    macs += wl.batch * h * w * numel(`controlnet_cond_embedding.blocks.${2 * i}.weight`);
    h = Math.ceil(h / 2);
    w = Math.ceil(w / 2);
    macs += wl.batch * h * w * numel(`controlnet_cond_embedding.blocks.${2 * i + 1}.weight`);
  }
  macs += wl.batch * h * w * numel('controlnet_cond_embedding.conv_out.weight');
  // Zero convs (1x1), one per residual at that residual's resolution.
  const z = zeroResiduals(cfg, wl.batch, wl.height, wl.width);
  z.down.forEach((d, i) => {
    macs += wl.batch * d.dims[2] * d.dims[3] * numel(`controlnet_down_blocks.${i}.weight`);
  });
  macs += wl.batch * z.mid.dims[2] * z.mid.dims[3] * numel('controlnet_mid_block.weight');
  return (2 * macs) / 1e9;
}

export async function benchControlNet(dir: string, a: Args): Promise<Record<string, unknown>> {
  const ucfg = SD15_UNET;
  const wl = SD15_WORKLOAD;
  const ccfg = parseControlNetConfig({ ...SD15_UNET_JSON, conditioning_embedding_out_channels: [16, 32, 96, 256] }, 'bench SD1.5 ControlNet config');
  const files = writeUNetFiles(dir, ucfg);
  const t0 = performance.now();
  const cnFile = path.join(dir, 'controlnet-sd15-random.safetensors');
  const cnBytes = writeRandomSafetensors(cnFile, controlNetParameterShapes(ccfg), 21);
  const cnWriteS = seconds(t0);

  // One weight file for both UNet graphs (the product also keys its UNet session by ControlNet inputs).
  const weights = SafetensorsFile.open(files.weightsFile);
  const ipAdapter = IpAdapterModel.load(files.ipFile);
  const cache = path.join(dir, 'cache');
  const opts = UNET_SESSION_OPTIONS;
  const rss: Record<string, number> = { before_sessions: Math.round(rssMb()) };
  const created: Record<string, number> = {};
  const open = async (what: string, build: () => BuiltModel) => {
    const t = performance.now();
    const s = await openSession(build(), cache, a, opts);
    created[what] = +seconds(t).toFixed(2);
    rss[`after_${what}`] = Math.round(rssMb());
    return s;
  };
  const plain = await open('unet', () => buildUNet(ucfg, weights, { ipAdapter, attention: a.attention, name: 'unet_ip' }).build());
  const withRes = await open('unet_residuals', () =>
    buildUNet(ucfg, weights, { ipAdapter, controlnet: true, attention: a.attention, name: 'unet_ip_cn' }).build(),
  );
  const cn = await open('controlnet', () => buildControlNet(ccfg, SafetensorsFile.open(cnFile), { attention: a.attention }).build());

  const feeds = unetFeeds(ucfg, wl);
  const imgH = wl.height * 8,
    imgW = wl.width * 8;
  const cnFeeds = {
    sample: feeds.sample,
    timestep: feeds.timestep,
    encoder_hidden_states: feeds.encoder_hidden_states, // text only
    controlnet_cond: new ort.Tensor(
      'float32',
      uniform(wl.batch * 3 * imgH * imgW, 6).map((v) => 0.5 + 0.5 * v),
      [wl.batch, 3, imgH, imgW],
    ),
    conditioning_scale: new ort.Tensor('float32', Float32Array.of(1), []),
  };
  const nRes = numDownResiduals(ucfg);
  const t = { unet: [] as Timing[], controlnet: [] as Timing[], unet_residuals: [] as Timing[] };
  for (let round = 0; round <= a.steps; round++) {
    // round 0 warms up
    checkFinite('UNet', (await timed(() => plain.run(feeds), t.unet)).noise_pred.data);
    const res = await timed(() => cn.run(cnFeeds), t.controlnet);
    const resFeeds: Record<string, ort.Tensor> = { ...feeds, mid_block_additional_residual: res[MID_RESIDUAL] };
    for (let i = 0; i < nRes; i++) resFeeds[`down_block_additional_residual_${i}`] = res[downResidualName(i)];
    checkFinite('UNet with residuals', (await timed(() => withRes.run(resFeeds), t.unet_residuals)).noise_pred.data);
  }
  await Promise.all([plain.release(), withRes.release(), cn.release()]);

  // Per round after the warm-up: wall and CPU ms of each network, and the ControlNet step (sum).
  const rounds = (k: keyof typeof t, f: 'wall' | 'cpu') => t[k].slice(1).map((x) => x[f]);
  const step = (f: 'wall' | 'cpu') => rounds('controlnet', f).map((c, i) => c + rounds('unet_residuals', f)[i]);
  const figures = (f: 'wall' | 'cpu') => {
    const m = {
      unet: median(rounds('unet', f)),
      controlnet: median(rounds('controlnet', f)),
      unet_residuals: median(rounds('unet_residuals', f)),
      step: median(step(f)),
    };
    return {
      controlnet: Math.round(m.controlnet),
      unet_with_residuals: Math.round(m.unet_residuals),
      controlnet_step: Math.round(m.step),
      plain_unet: Math.round(m.unet),
      overhead: Math.round(m.step - m.unet),
      overhead_vs_plain: +((m.step - m.unet) / m.unet).toFixed(3),
      residual_inputs_overhead: Math.round(m.unet_residuals - m.unet),
    };
  };
  const wall = figures('wall');
  const ms = (k: keyof typeof t, f: 'wall' | 'cpu') => rounds(k, f).map(Math.round);
  const cnGflop = controlNetGflop(ccfg, wl);
  const unetG = unetGflop(ucfg, wl);
  return {
    controlnet_ms_per_step_median: wall.controlnet,
    unet_with_residuals_ms_per_step_median: wall.unet_with_residuals,
    controlnet_step_ms_median: wall.controlnet_step,
    plain_unet_ms_per_step_median: wall.plain_unet,
    overhead_ms: wall.overhead,
    overhead_vs_plain: wall.overhead_vs_plain,
    // The same from CPU time (all threads): robust to other processes on the cores.
    cpu_ms_median: figures('cpu'),
    ms_per_step: {
      unet: ms('unet', 'wall'),
      controlnet: ms('controlnet', 'wall'),
      unet_residuals: ms('unet_residuals', 'wall'),
      controlnet_step: step('wall').map(Math.round),
    },
    cpu_ms_per_step: { unet: ms('unet', 'cpu'), controlnet: ms('controlnet', 'cpu'), unet_residuals: ms('unet_residuals', 'cpu') },
    warmup_ms: { unet: Math.round(t.unet[0].wall), controlnet: Math.round(t.controlnet[0].wall), unet_residuals: Math.round(t.unet_residuals[0].wall) },
    session_create_s: created,
    rss_mb: rss,
    peak_rss_mb: Math.round(rssMb()),
    gflop_per_step: { unet: +unetG.toFixed(1), controlnet: +cnGflop.toFixed(1) },
    gflop_per_s: { unet: +(unetG / (wall.plain_unet / 1000)).toFixed(1), controlnet: +(cnGflop / (wall.controlnet / 1000)).toFixed(1) },
    weight_bytes: { unet: files.weightBytes, controlnet: cnBytes, adapter: files.ipBytes },
    write_weights_s: +(files.writeS + cnWriteS).toFixed(1),
    workload: { ...wl, control_image: `${wl.batch}x3x${imgH}x${imgW}`, residuals: nRes + 1, cfg_passes: 'batch 2 = [uncond, cond]', attention: a.attention },
    session_options: describeOptions(opts, a),
  };
}
