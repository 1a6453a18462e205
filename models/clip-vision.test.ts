import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClipVision, inferClipVisionConfig, resolveClipVision } from './clip-vision.js';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from './safetensors.js';
import { seededUniform } from '../test/helpers/random.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clip-vision-test-'));
const cacheDir = path.join(root, 'cache');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const CONFIG = {
  model_type: 'clip_vision_model',
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  image_size: 28,
  patch_size: 14,
  projection_dim: 4,
  hidden_act: 'gelu',
  layer_norm_eps: 1e-5,
  num_channels: 3,
};

/** Random CLIPVisionModelWithProjection weights for CONFIG (transformers names). */
function weights(): Buffer {
  const u = seededUniform(7);
  const rnd = (n: number, base = 0) => Float32Array.from({ length: n }, () => base + 0.4 * u());
  const t: Record<string, TensorToWrite> = {};
  const add = (k: string, shape: number[], base = 0) => {
    t[k] = {
      dtype: 'F32',
      shape,
      data: rnd(
        shape.reduce((a, d) => a * d, 1),
        base,
      ),
    };
  };
  const C = CONFIG.hidden_size;
  const ln = (k: string) => {
    add(`${k}.weight`, [C], 1);
    add(`${k}.bias`, [C]);
  };
  add('vision_model.embeddings.class_embedding', [C]);
  add('vision_model.embeddings.patch_embedding.weight', [C, 3, 14, 14]);
  add('vision_model.embeddings.position_embedding.weight', [5, C]);
  ln('vision_model.pre_layrnorm');
  for (let i = 0; i < CONFIG.num_hidden_layers; i++) {
    const l = `vision_model.encoder.layers.${i}`;
    ln(`${l}.layer_norm1`);
    ln(`${l}.layer_norm2`);
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      add(`${l}.self_attn.${p}.weight`, [C, C]);
      add(`${l}.self_attn.${p}.bias`, [C]);
    }
    add(`${l}.mlp.fc1.weight`, [12, C]);
    add(`${l}.mlp.fc1.bias`, [12]);
    add(`${l}.mlp.fc2.weight`, [C, 12]);
    add(`${l}.mlp.fc2.bias`, [C]);
  }
  ln('vision_model.post_layernorm');
  add('visual_projection.weight', [4, C]);
  return encodeSafetensors(t);
}

const dir = path.join(root, 'image_encoder');
fs.mkdirSync(dir);
fs.writeFileSync(path.join(dir, 'model.safetensors'), weights());
fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CONFIG));

describe('ClipVision', () => {
  it('encodes a batch like its images one by one', async () => {
    const v = await ClipVision.load(dir, { cacheDir });
    expect(v.config.numAttentionHeads).toBe(2);
    const n = 3 * 28 * 28;
    const px = Float32Array.from({ length: 2 * n }, (_, i) => Math.sin(i * 0.37));
    const both = await v.encode({ data: px, dims: [2, 3, 28, 28] });
    expect(both.imageEmbeds!.dims).toEqual([2, 4]);
    expect(both.penultimate.dims).toEqual([2, 5, 8]);
    for (let b = 0; b < 2; b++) {
      const one = await v.encode({ data: px.slice(b * n, (b + 1) * n), dims: [1, 3, 28, 28] });
      one.imageEmbeds!.data.forEach((x, i) => expect(Math.abs(x - both.imageEmbeds!.data[b * 4 + i])).toBeLessThan(1e-5));
      one.penultimate.data.forEach((x, i) => expect(Math.abs(x - both.penultimate.data[b * 40 + i])).toBeLessThan(1e-5));
    }
    await expect(v.encode({ data: new Float32Array(n), dims: [1, 3, 14, 56] })).rejects.toThrow(/pixel_values must be \(B, 3, 28, 28\)/);
    await v.release();
  });

  it('infers widths from shapes for a single file, and refuses a config that does not fit', () => {
    const single = path.join(root, 'single', 'clip-vit-tiny.safetensors');
    fs.mkdirSync(path.dirname(single));
    fs.copyFileSync(path.join(dir, 'model.safetensors'), single);
    const cfg = inferClipVisionConfig(SafetensorsFile.open(single), single);
    expect([cfg.hiddenSize, cfg.numHiddenLayers, cfg.imageSize, cfg.patchSize, cfg.projectionDim, cfg.intermediateSize]).toEqual([8, 2, 28, 14, 4, 12]);
    expect(resolveClipVision(single).config.hiddenSize).toBe(8);

    const bad = path.join(root, 'bad');
    fs.mkdirSync(bad);
    fs.copyFileSync(path.join(dir, 'model.safetensors'), path.join(bad, 'model.safetensors'));
    fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...CONFIG, hidden_size: 16 }));
    expect(() => resolveClipVision(bad)).toThrow(
      /model\.safetensors: tensor "vision_model\.embeddings\.class_embedding" has shape \[8\], the config expects \[16\]/,
    );
    expect(() => resolveClipVision(path.join(root, 'x.bin'))).toThrow(/not found/);
  });
});
