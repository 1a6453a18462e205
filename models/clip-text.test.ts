import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClipTextEncoder, SD15_TEXT_CONFIG, buildClipTextEncoder, clipTextConfigFromJson, type ClipTextConfig } from './clip-text.js';
import { clipTextWeights, prefixedWeights } from './keymaps/clip-text.js';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from './safetensors.js';
import { seededUniform } from '../test/helpers/random.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clip-text-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const cfg: ClipTextConfig = clipTextConfigFromJson({
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  vocab_size: 50,
});

/** Random weights of `cfg` under `prefix` + transformers names, written to a temp safetensors. */
function writeWeights(file: string, prefix: string): void {
  const u = seededUniform(1);
  const rnd = (n: number, scale = 0.3, base = 0) => Float32Array.from({ length: n }, () => base + scale * u());
  const t: Record<string, TensorToWrite> = {};
  const add = (k: string, shape: number[], base = 0) => {
    t[prefix + k] = {
      dtype: 'F32',
      shape,
      data: rnd(
        shape.reduce((a, d) => a * d, 1),
        0.3,
        base,
      ),
    };
  };
  const C = cfg.hidden_size;
  add('text_model.embeddings.token_embedding.weight', [cfg.vocab_size, C]);
  add('text_model.embeddings.position_embedding.weight', [cfg.max_position_embeddings, C]);
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const l = `text_model.encoder.layers.${i}.`;
    for (const n of ['layer_norm1', 'layer_norm2']) {
      add(`${l}${n}.weight`, [C], 1);
      add(`${l}${n}.bias`, [C]);
    }
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      add(`${l}self_attn.${n}.weight`, [C, C]);
      add(`${l}self_attn.${n}.bias`, [C]);
    }
    add(`${l}mlp.fc1.weight`, [cfg.intermediate_size, C]);
    add(`${l}mlp.fc1.bias`, [cfg.intermediate_size]);
    add(`${l}mlp.fc2.weight`, [C, cfg.intermediate_size]);
    add(`${l}mlp.fc2.bias`, [C]);
  }
  add('text_model.final_layer_norm.weight', [C], 1);
  add('text_model.final_layer_norm.bias', [C]);
  fs.writeFileSync(file, encodeSafetensors(t));
}

describe('CLIP text encoder', () => {
  const plain = path.join(root, 'model.safetensors');
  const ldm = path.join(root, 'ckpt.safetensors');
  writeWeights(plain, '');
  writeWeights(ldm, 'cond_stage_model.transformer.');
  const row = (first: number) => [49 - 1, first, 7, 3, ...Array.from({ length: 73 }, () => 49)];

  it('gives (B, 77, C), is causal, and reads the single-file layout identically', async () => {
    const enc = await ClipTextEncoder.load(clipTextWeights(SafetensorsFile.open(plain)), cfg, { cacheDir: path.join(root, 'cache') });
    const { data, dims } = await enc.encode([row(5), row(6)]);
    expect(dims).toEqual([2, 77, 8]);
    expect(data.length).toBe(2 * 77 * 8);
    expect(data.every(Number.isFinite)).toBe(true);
    // Tokens differ only at position 1: position 0 of both rows is equal, position 1 differs.
    expect(Array.from(data.subarray(0, 8))).toEqual(Array.from(data.subarray(77 * 8, 77 * 8 + 8)));
    expect(Array.from(data.subarray(8, 16))).not.toEqual(Array.from(data.subarray(77 * 8 + 8, 77 * 8 + 16)));
    const enc2 = await ClipTextEncoder.load(clipTextWeights(SafetensorsFile.open(ldm)), cfg, { cacheDir: path.join(root, 'cache') });
    expect(Array.from((await enc2.encode([row(5)])).data)).toEqual(Array.from(data.subarray(0, 77 * 8)));
    await expect(enc.encode([[1, 2, 3]])).rejects.toThrow(/77/);
    await enc.release();
    await enc2.release();
  });

  it('refuses weights whose shapes do not match the config, naming the tensor and both shapes', () => {
    const w = prefixedWeights(SafetensorsFile.open(ldm), 'cond_stage_model.transformer.');
    expect(() => buildClipTextEncoder(SD15_TEXT_CONFIG, w)).toThrow(/token_embedding\.weight has shape \[50,8\].*expects \[49408,768\]/);
    expect(() => prefixedWeights(SafetensorsFile.open(plain), 'x.').get('text_model.final_layer_norm.weight')).toThrow(
      /missing tensor "x\.text_model\.final_layer_norm\.weight"/,
    );
  });

  it('parses configs and rejects unsupported activations', () => {
    expect(clipTextConfigFromJson({ text_config: { ...SD15_TEXT_CONFIG } })).toEqual(SD15_TEXT_CONFIG);
    expect(() => clipTextConfigFromJson({ ...SD15_TEXT_CONFIG, hidden_act: 'relu' })).toThrow(/hidden_act "relu"/);
    const w = clipTextWeights(SafetensorsFile.open(plain));
    expect(buildClipTextEncoder(cfg, w).initializers.some((t) => t.name.includes('layers.1.'))).toBe(true);
    expect(buildClipTextEncoder(cfg, w, { skipLastLayers: 1 }).initializers.some((t) => t.name.includes('layers.1.'))).toBe(false);
  });
});
