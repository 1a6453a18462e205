/**
 * vision_encoder section: the CLIP vision encoder at the size IP-Adapter SD1.5 uses (OpenCLIP
 * ViT-H/14: hidden 1280, 32 layers, 16 heads, intermediate 5120, patch 14, image 224, projection
 * 1024; 2.5 GB of fp32 weights) with random weights, batch 1 x 3 x 224 x 224: build, session
 * creation, ms per run, peak RSS.
 */
import * as path from 'node:path';
import { ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { CLIP_VISION_SESSION_OPTIONS, type ClipVisionConfig, buildClipVision } from '../../models/clip-vision.js';
import { type Args, checkFinite, describeOptions, median, openSession, uniform, rssMb, rssNowMb, timeRuns, writeRandomSafetensors } from './common.js';

/** OpenCLIP ViT-H/14 (h94/IP-Adapter models/image_encoder/config.json). */
export const VIT_H_14: Readonly<ClipVisionConfig> = Object.freeze({
  hiddenSize: 1280,
  intermediateSize: 5120,
  numHiddenLayers: 32,
  numAttentionHeads: 16,
  imageSize: 224,
  patchSize: 14,
  numChannels: 3,
  projectionDim: 1024,
  hiddenAct: 'gelu',
  layerNormEps: 1e-5,
});

/** transformers CLIPVisionModelWithProjection parameter names/shapes (with its "pre_layrnorm" spelling). */
function clipVisionShapes(c: ClipVisionConfig): Map<string, number[]> {
  const C = c.hiddenSize;
  const grid = c.imageSize / c.patchSize;
  const p = new Map<string, number[]>([
    ['vision_model.embeddings.class_embedding', [C]],
    ['vision_model.embeddings.patch_embedding.weight', [C, c.numChannels, c.patchSize, c.patchSize]],
    ['vision_model.embeddings.position_embedding.weight', [grid * grid + 1, C]],
    ['vision_model.pre_layrnorm.weight', [C]],
    ['vision_model.pre_layrnorm.bias', [C]],
  ]);
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const b = `vision_model.encoder.layers.${l}`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      p.set(`${b}.self_attn.${n}.weight`, [C, C]);
      p.set(`${b}.self_attn.${n}.bias`, [C]);
    }
    for (const n of ['layer_norm1', 'layer_norm2']) {
      p.set(`${b}.${n}.weight`, [C]);
      p.set(`${b}.${n}.bias`, [C]);
    }
    p.set(`${b}.mlp.fc1.weight`, [c.intermediateSize, C]);
    p.set(`${b}.mlp.fc1.bias`, [c.intermediateSize]);
    p.set(`${b}.mlp.fc2.weight`, [C, c.intermediateSize]);
    p.set(`${b}.mlp.fc2.bias`, [C]);
  }
  p.set('vision_model.post_layernorm.weight', [C]);
  p.set('vision_model.post_layernorm.bias', [C]);
  p.set('visual_projection.weight', [c.projectionDim!, C]);
  return p;
}

export async function benchVisionEncoder(dir: string, a: Args): Promise<Record<string, unknown>> {
  const cfg = { ...VIT_H_14 };
  const file = path.join(dir, 'vision-encoder-random.safetensors');
  const bytes = writeRandomSafetensors(file, clipVisionShapes(cfg), 13);
  const rssBeforeMb = rssMb();
  let t0 = performance.now();
  const built = buildClipVision(cfg, SafetensorsFile.open(file)).build();
  const buildS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const session = await openSession(built, path.join(dir, 'cache'), a, CLIP_VISION_SESSION_OPTIONS);
  const sessionS = (performance.now() - t0) / 1000;
  const rssSessionMb = rssMb();
  const rssSession = rssNowMb();
  const S = cfg.imageSize;
  const pixel_values = new ort.Tensor('float32', uniform(3 * S * S, 5), [1, 3, S, S]);
  const { warmup_ms, ms, cpu_ms } = await timeRuns(a.steps, async () => {
    const out = await session.run({ pixel_values });
    checkFinite('vision encoder', out.image_embeds.data);
  });
  const rssRuns = rssNowMb();
  await session.release();
  return {
    ms_median: median(ms),
    ms,
    warmup_ms,
    cpu_ms,
    build_s: +buildS.toFixed(2),
    session_create_s: +sessionS.toFixed(2),
    weight_bytes: bytes,
    input: `1x3x${S}x${S}`,
    peak_rss_before_session_mb: Math.round(rssBeforeMb),
    peak_rss_after_session_mb: Math.round(rssSessionMb),
    rss_after_session: rssSession,
    rss_after_runs: rssRuns,
    peak_rss_mb: Math.round(rssMb()),
    session_options: describeOptions(CLIP_VISION_SESSION_OPTIONS, a),
  };
}
