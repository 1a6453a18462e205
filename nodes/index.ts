/** nodes/: one file per node type (declaration + execute), the specs they share (spec, ports, values, types); runtime/ below. */
/**
 * Every node type, listed explicitly (palette order). The palette, validation and executor
 * read these definitions; `nodeSpecs()` strips `execute` for the renderer.
 */
import type { NodeDef, NodeSpec } from './types.js';
import { loadCheckpoint } from './load-checkpoint.js';
import { loadVae } from './load-vae.js';
import { loadLora } from './load-lora.js';
import { loadImage } from './load-image.js';
import { loadClipVision } from './load-clip-vision.js';
import { clipVisionEncode } from './clip-vision-encode.js';
import { loadIpAdapter } from './load-ip-adapter.js';
import { ipAdapterProjection } from './ip-adapter-projection.js';
import { applyIpAdapter } from './apply-ip-adapter.js';
import { ipAdapterEncoder } from './ip-adapter-encoder.js';
import { ipAdapterCombineEmbeds } from './ip-adapter-combine-embeds.js';
import { applyIpAdapterEmbeds } from './apply-ip-adapter-embeds.js';
import { saveEmbeds } from './save-embeds.js';
import { loadEmbeds } from './load-embeds.js';
import { ipAdapterNoise } from './ip-adapter-noise.js';
import { ipAdapterUnifiedLoader } from './ip-adapter-unified-loader.js';
import { ipAdapterTiled } from './ip-adapter-tiled.js';
import { textEncode } from './text-encode.js';
import { emptyLatentImage } from './empty-latent-image.js';
import { ddimSampler } from './ddim-sampler.js';
import { kSampler } from './ksampler.js';
import { kSamplerAdvanced } from './ksampler-advanced.js';
import { vaeDecode } from './vae-decode.js';
import { vaeEncode } from './vae-encode.js';
import { setLatentNoiseMask } from './set-latent-noise-mask.js';
import { imageToMask } from './image-to-mask.js';
import { saveImage } from './save-image.js';
import { previewImage } from './preview-image.js';
import { loadControlNet } from './load-controlnet.js';
import { applyControlNet } from './apply-controlnet.js';
import { canny } from './canny.js';
import { lineart } from './lineart.js';
import { scribble } from './scribble.js';
import { imageResize } from './image-resize.js';
import { imageBatch } from './image-batch.js';
import { comfyuiNode } from './comfyui-node.js';
import { reroute } from './reroute.js';
import { note } from './note.js';
import { primitive } from './primitive.js';
import { sweep } from './sweep.js';

export const NODE_DEFS: NodeDef[] = [
  loadCheckpoint,
  loadVae,
  loadLora,
  loadImage,
  loadClipVision,
  clipVisionEncode,
  loadIpAdapter,
  ipAdapterUnifiedLoader,
  ipAdapterProjection,
  applyIpAdapter,
  ipAdapterEncoder,
  ipAdapterCombineEmbeds,
  applyIpAdapterEmbeds,
  ipAdapterTiled,
  saveEmbeds,
  loadEmbeds,
  ipAdapterNoise,
  textEncode,
  emptyLatentImage,
  ddimSampler,
  kSampler,
  kSamplerAdvanced,
  vaeDecode,
  vaeEncode,
  setLatentNoiseMask,
  imageToMask,
  saveImage,
  previewImage,
  loadControlNet,
  applyControlNet,
  canny,
  lineart,
  scribble,
  imageResize,
  imageBatch,
  comfyuiNode,
  reroute,
  note,
  primitive,
  sweep,
];

/** The serialisable part of a definition (what the renderer receives). */
export function toSpec(d: NodeDef): NodeSpec {
  const { execute: _e, check: _c, outputDeps: _o, ...spec } = d;
  return JSON.parse(JSON.stringify(spec)) as NodeSpec;
}

export function nodeSpecs(defs: NodeDef[] = NODE_DEFS): NodeSpec[] {
  return defs.map(toSpec);
}
