/**
 * The networks every graph profile is checked on (models/onnx/profile.test.ts, `npm run gpu-check`): the SD1.5-size
 * UNet (with an IP-Adapter's image layers) and VAE built from their parameter shapes over weight references that are
 * never read (building a graph reads no weight bytes), and the tiny fixture's text encoder, vision encoder, projector
 * and ControlNet from their files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCheckpoint } from '../../models/checkpoint.js';
import { buildClipTextEncoder, loadClipTextConfig } from '../../models/clip-text.js';
import { buildClipVision, resolveClipVision } from '../../models/clip-vision.js';
import { buildImageProj, IpAdapterModel } from '../../models/ip-adapter.js';
import { clipTextWeights } from '../../models/keymaps/clip-text.js';
import type { BuiltModel, WeightMap } from '../../models/onnx/graph.js';
import { SafetensorsFile, type TensorRef } from '../../models/safetensors.js';
import { buildUNet, unetParameterShapes } from '../../models/unet.js';
import { crossAttnLayers, parseUNetConfig } from '../../models/unet-config.js';
import { buildVaeDecoder, buildVaeEncoder, parseVaeConfig, vaeParameterShapes } from '../../models/vae.js';
import { fixtureFolder } from './fixtures.js';

export const SD15_UNET = parseUNetConfig({
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  attention_head_dim: 8,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
});
export const SD15_VAE = parseVaeConfig({
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  latent_channels: 4,
  norm_num_groups: 32,
  scaling_factor: 0.18215,
});

/** Weight references for `shapes` in a file that is never opened (dtype F16: the fp16 profile uses them as stored). */
export function unreadWeights(shapes: Map<string, number[]>, file: string, dtype: 'F16' | 'F32' = 'F16'): WeightMap {
  const refs = new Map<string, TensorRef>();
  let offset = 0;
  const size = dtype === 'F16' ? 2 : 4;
  for (const [key, shape] of shapes) {
    const length = shape.reduce((a, d) => a * d, 1) * size;
    refs.set(key, { file, key, dtype, shape, offset, length });
    offset += length;
  }
  return {
    get: (k) => {
      const r = refs.get(k);
      if (!r) throw new Error(`no weight ${k}`);
      return r;
    },
    has: (k) => refs.has(k),
  };
}

/** The SD1.5-size UNet with IP-Adapter image layers, and the VAE decoder / encoder (references only). */
export function sd15Graphs(dtype: 'F16' | 'F32' = 'F16'): Record<string, BuiltModel> {
  const unetW = unreadWeights(unetParameterShapes(SD15_UNET), '/nonexistent/sd15-unet.safetensors', dtype);
  const layers = new Map(crossAttnLayers(SD15_UNET).map((p) => [p.index, p]));
  const ipShapes = new Map<string, number[]>();
  for (const [i, p] of layers) for (const n of ['to_k_ip', 'to_v_ip']) ipShapes.set(`${i}.${n}.weight`, [p.hiddenSize, 768]);
  const ipW = unreadWeights(ipShapes, '/nonexistent/ip-adapter.safetensors', dtype);
  const ipAdapter = { layers, layerWeights: (i: number) => ({ toK: ipW.get(`${i}.to_k_ip.weight`), toV: ipW.get(`${i}.to_v_ip.weight`) }) };
  const vaeW = unreadWeights(vaeParameterShapes(SD15_VAE), '/nonexistent/sd15-vae.safetensors', dtype);
  return {
    unet_ip: buildUNet(SD15_UNET, unetW, { ipAdapter, name: 'unet' }).build(),
    vae_decoder: buildVaeDecoder(SD15_VAE, vaeW).build(),
    vae_encoder: buildVaeEncoder(SD15_VAE, vaeW).build(),
  };
}

/** The tiny fixture's networks from their files (null when the fixtures are not there). */
export function tinyGraphs(): Record<string, BuiltModel> | null {
  const dir = fixtureFolder('tiny-sd15');
  if (!fs.existsSync(path.join(dir, 'diffusers'))) return null;
  const ck = loadCheckpoint(path.join(dir, 'diffusers'));
  const te = path.join(dir, 'diffusers', 'text_encoder');
  const adapter = IpAdapterModel.load(path.join(dir, 'ip-adapter-plus_sd15-tiny.safetensors'));
  const vision = resolveClipVision(path.join(dir, 'image_encoder'));
  return {
    unet: buildUNet(ck.unet.config, ck.unet.weights, { ipAdapter: adapter }).build(),
    clip_text: buildClipTextEncoder(loadClipTextConfig(te), clipTextWeights(SafetensorsFile.open(path.join(te, 'model.safetensors')))).build(),
    clip_vision: buildClipVision(vision.config, vision.file).build(),
    image_proj: buildImageProj(adapter).build(),
  };
}
