/**
 * vae_decode section: helper D's VAE decoder at SD1.5's size (128/256/512/512) with random
 * weights, 1 x 4 x 64 x 64 -> 1 x 3 x 512 x 512: build, session creation, ms per run.
 */
import * as path from 'node:path';
import { ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { buildVaeDecoder, parseVaeConfig, type VaeConfig } from '../../models/vae.js';
import { type Args, describeOptions, median, openSession, randn, rssMb, timeRuns, writeRandomSafetensors } from './common.js';

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

export async function benchVaeDecode(dir: string, a: Args): Promise<Record<string, unknown>> {
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
  const { warmup_ms, ms, cpu_ms } = await timeRuns(a.steps, () => session.run({ latents }));
  await session.release();
  return { ms_median: median(ms), ms, warmup_ms, cpu_ms, build_s: +buildS.toFixed(2), session_create_s: +sessionS.toFixed(2), weight_bytes: bytes, output: '1x3x512x512', peak_rss_mb: Math.round(rssMb()), session_options: describeOptions({}, a) };
}
