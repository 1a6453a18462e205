/**
 * vae_decode section: helper D's VAE decoder at SD1.5's size (128/256/512/512) with random
 * weights, 1 x 4 x 64 x 64 -> 1 x 3 x 512 x 512: build, session creation, ms per run.
 */
import * as path from 'node:path';
import { ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { buildVaeDecoder, parseVaeConfig, vaeParameterShapes } from '../../models/vae.js';
import { type Args, describeOptions, median, openSession, uniform, rssMb, timeRuns, writeRandomSafetensors } from './common.js';

export async function benchVaeDecode(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = parseVaeConfig(
    {
      in_channels: 3,
      out_channels: 3,
      latent_channels: 4,
      block_out_channels: [128, 256, 512, 512],
      layers_per_block: 2,
      norm_num_groups: 32,
      scaling_factor: 0.18215,
      down_block_types: Array(4).fill('DownEncoderBlock2D'),
      up_block_types: Array(4).fill('UpDecoderBlock2D'),
    },
    'bench SD1.5 VAE config',
  );
  const file = path.join(dir, 'vae-decoder-random.safetensors');
  const bytes = writeRandomSafetensors(file, vaeParameterShapes(cfg, 'decoder'), 11);
  let t0 = performance.now();
  const built = buildVaeDecoder(cfg, SafetensorsFile.open(file)).build();
  const buildS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const session = await openSession(built, path.join(dir, 'cache'), a);
  const sessionS = (performance.now() - t0) / 1000;
  const latents = new ort.Tensor('float32', uniform(4 * 64 * 64, 9), [1, 4, 64, 64]);
  const { warmup_ms, ms, cpu_ms } = await timeRuns(a.steps, () => session.run({ latents }));
  await session.release();
  return {
    ms_median: median(ms),
    ms,
    warmup_ms,
    cpu_ms,
    build_s: +buildS.toFixed(2),
    session_create_s: +sessionS.toFixed(2),
    weight_bytes: bytes,
    output: '1x3x512x512',
    peak_rss_mb: Math.round(rssMb()),
    session_options: describeOptions({}, a),
  };
}
