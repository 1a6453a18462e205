/**
 * text_encoder section: helper A's CLIP text encoder at SD1.5's size (ViT-L/14 text tower, 12
 * layers x 768) with random weights, batch 2 x 77 tokens: build, session creation, ms per run.
 */
import * as path from 'node:path';
import { ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { CLIP_TEXT_SESSION_OPTIONS, SD15_TEXT_CONFIG, buildClipTextEncoder } from '../../models/clip-text.js';
import { type Args, describeOptions, median, openSession, rssMb, rssNowMb, timeRuns, writeRandomSafetensors } from './common.js';

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
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      p.set(`${b}.self_attn.${n}.weight`, [H, H]);
      p.set(`${b}.self_attn.${n}.bias`, [H]);
    }
    for (const n of ['layer_norm1', 'layer_norm2']) {
      p.set(`${b}.${n}.weight`, [H]);
      p.set(`${b}.${n}.bias`, [H]);
    }
    p.set(`${b}.mlp.fc1.weight`, [c.intermediate_size, H]);
    p.set(`${b}.mlp.fc1.bias`, [c.intermediate_size]);
    p.set(`${b}.mlp.fc2.weight`, [H, c.intermediate_size]);
    p.set(`${b}.mlp.fc2.bias`, [H]);
  }
  p.set('text_model.final_layer_norm.weight', [H]);
  p.set('text_model.final_layer_norm.bias', [H]);
  return p;
}

export async function benchTextEncoder(dir: string, a: Args): Promise<Record<string, unknown>> {
  const file = path.join(dir, 'text-encoder-random.safetensors');
  const bytes = writeRandomSafetensors(file, clipTextShapes(), 7);
  let t0 = performance.now();
  const built = buildClipTextEncoder({ ...SD15_TEXT_CONFIG }, SafetensorsFile.open(file)).build();
  const buildS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const session = await openSession(built, path.join(dir, 'cache'), a, CLIP_TEXT_SESSION_OPTIONS);
  const sessionS = (performance.now() - t0) / 1000;
  const rssSessionMb = rssMb();
  const rssSession = rssNowMb();
  const ids = new BigInt64Array(2 * 77).map((_, i) => BigInt(i % 77 === 0 ? 49406 : (i * 7919) % 49406));
  const { warmup_ms, ms, cpu_ms } = await timeRuns(a.steps, () => session.run({ input_ids: new ort.Tensor('int64', ids, [2, 77]) }));
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
    batch: 2,
    peak_rss_after_session_mb: Math.round(rssSessionMb),
    rss_after_session: rssSession,
    rss_after_runs: rssRuns,
    peak_rss_mb: Math.round(rssMb()),
    session_options: describeOptions(CLIP_TEXT_SESSION_OPTIONS, a),
  };
}
