import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageProjector, IpAdapterModel, checkAdapterMatchesVision, imageProjInputName, ipAdapterWeightsFor } from './ip-adapter.js';
import { parseClipVisionConfig } from './clip-vision.js';
import { encodeSafetensors, type TensorToWrite } from './safetensors.js';
import { seededUniform } from '../test/helpers/random.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ip-adapter-test-'));
const cacheDir = path.join(root, 'cache');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const u = seededUniform(3);
const rnd = (n: number, base = 0) => Float32Array.from({ length: n }, () => base + 0.5 * u());
const T = (shape: number[], base = 0): TensorToWrite => ({
  dtype: 'F32',
  shape,
  data: rnd(
    shape.reduce((a, d) => a * d, 1),
    base,
  ),
});

/** A base adapter: embed width D, N tokens of width C, processors 1 and 3. */
function writeBase(file: string, D: number, N: number, C: number): void {
  fs.writeFileSync(
    file,
    encodeSafetensors({
      'image_proj.proj.weight': T([N * C, D]),
      'image_proj.proj.bias': T([N * C]),
      'image_proj.norm.weight': T([C], 1),
      'image_proj.norm.bias': T([C]),
      'ip_adapter.1.to_k_ip.weight': T([6, C]),
      'ip_adapter.1.to_v_ip.weight': T([6, C]),
      'ip_adapter.3.to_k_ip.weight': T([10, C]),
      'ip_adapter.3.to_v_ip.weight': T([10, C]),
    }),
  );
}

const vision = parseClipVisionConfig({ hidden_size: 32, projection_dim: 12, num_attention_heads: 4, intermediate_size: 37, hidden_act: 'gelu' });

describe('IpAdapterModel', () => {
  it('reads an h94 .bin pickle (nested image_proj / ip_adapter dicts) like its safetensors twin', () => {
    const bin = IpAdapterModel.load('/work/shared/fixtures/model-files/pickles/ip-adapter_sd15-tiny.bin');
    const st = IpAdapterModel.load('/work/shared/fixtures/tiny-sd15/ip-adapter_sd15-tiny.safetensors');
    expect([bin.kind, bin.numTokens, bin.embedDim, [...bin.layers.keys()]]).toEqual([st.kind, st.numTokens, st.embedDim, [...st.layers.keys()]]);
    expect(() => IpAdapterModel.load(path.join(root, 'ip-adapter_sd15.bin'))).toThrow(/ip-adapter_sd15\.bin: cannot open/);
  });

  it('detects a base adapter and serves layer weights by processor index', () => {
    const f = path.join(root, 'base.safetensors');
    writeBase(f, 12, 4, 8);
    const a = IpAdapterModel.load(f);
    expect([a.kind, a.numTokens, a.embedDim, a.crossAttentionDim, [...a.layers.keys()]]).toEqual(['base', 4, 12, 8, [1, 3]]);
    expect(a.layerWeights(3).toK.shape).toEqual([10, 8]);
    expect(ipAdapterWeightsFor(a, 1).toV.key).toBe('ip_adapter.1.to_v_ip.weight');
    expect(() => a.layerWeights(5)).toThrow(/no ip_adapter\.5\.to_k_ip/);
    expect(() => checkAdapterMatchesVision(a, vision, '/models/clip_vision/vit.safetensors')).not.toThrow();
  });

  it('refuses an adapter whose width does not match the vision model, naming both files and widths', () => {
    const f = path.join(root, 'ip-adapter-wide.safetensors');
    writeBase(f, 16, 4, 8);
    const a = IpAdapterModel.load(f);
    let msg = '';
    try {
      checkAdapterMatchesVision(a, vision, '/models/clip_vision/vit.safetensors');
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/ip-adapter-wide\.safetensors/);
    expect(msg).toMatch(/\/models\/clip_vision\/vit\.safetensors/);
    expect(msg).toMatch(/width 16/);
    expect(msg).toMatch(/width 12/);
    expect(msg).toMatch(/one whose image embeddings \(projection_dim\) have width 16/);
  });

  it('a vit-G adapter (1280-wide image embeddings) given ViT-H asks for ViT-bigG, not ViT-H', () => {
    const f = path.join(root, 'ip-adapter_sd15_vit-G.safetensors');
    writeBase(f, 1280, 4, 8);
    const a = IpAdapterModel.load(f);
    let msg = '';
    try {
      checkAdapterMatchesVision(a, { ...vision, projectionDim: 1024, hiddenSize: 1280 }, 'CLIP-ViT-H-14.safetensors');
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/width 1280 .*CLIP-ViT-H-14\.safetensors gives width 1024/);
    expect(msg).toMatch(/choose the image encoder this adapter was trained with: OpenCLIP ViT-bigG\/14/);
    expect(msg).not.toMatch(/ViT-H\/14/);
    const h = path.join(root, 'ip-adapter_sd15.safetensors');
    writeBase(h, 1024, 4, 8);
    expect(() => checkAdapterMatchesVision(IpAdapterModel.load(h), { ...vision, projectionDim: 1280 }, 'bigG.safetensors')).toThrow(
      /trained with: OpenCLIP ViT-H\/14/,
    );
  });

  it('detects a Plus adapter (heads = to_q rows / 64, depth from layers)', () => {
    const f = path.join(root, 'plus.safetensors');
    const W = 8;
    const inner = 128;
    const D = 32;
    const C = 8;
    const t: Record<string, TensorToWrite> = {
      'image_proj.latents': T([1, 16, W]),
      'image_proj.proj_in.weight': T([W, D]),
      'image_proj.proj_in.bias': T([W]),
      'image_proj.proj_out.weight': T([C, W]),
      'image_proj.proj_out.bias': T([C]),
      'image_proj.norm_out.weight': T([C], 1),
      'image_proj.norm_out.bias': T([C]),
      'ip_adapter.1.to_k_ip.weight': T([6, C]),
      'ip_adapter.1.to_v_ip.weight': T([6, C]),
    };
    for (let d = 0; d < 2; d++) {
      const p = `image_proj.layers.${d}`;
      for (const n of ['0.norm1', '0.norm2', '1.0']) {
        t[`${p}.${n}.weight`] = T([W], 1);
        t[`${p}.${n}.bias`] = T([W]);
      }
      t[`${p}.0.to_q.weight`] = T([inner, W]);
      t[`${p}.0.to_kv.weight`] = T([2 * inner, W]);
      t[`${p}.0.to_out.weight`] = T([W, inner]);
      t[`${p}.1.1.weight`] = T([4 * W, W]);
      t[`${p}.1.3.weight`] = T([W, 4 * W]);
    }
    fs.writeFileSync(f, encodeSafetensors(t));
    const a = IpAdapterModel.load(f);
    expect([a.kind, a.numTokens, a.embedDim, a.crossAttentionDim, a.resampler?.heads, a.resampler?.depth]).toEqual(['plus', 16, 32, 8, 2, 2]);
    expect(() => checkAdapterMatchesVision(a, vision, 'vit.safetensors')).not.toThrow();
    expect(() => checkAdapterMatchesVision(a, { ...vision, hiddenSize: 1280 }, 'vit-h.safetensors')).toThrow(
      /hidden states.*width 32.*vit-h\.safetensors gives width 1280/,
    );
  });

  it('Plus: a batch of two equals its images one by one', async () => {
    const p = await ImageProjector.load(path.join(root, 'plus.safetensors'), { cacheDir });
    const n = 5 * 32;
    const x = Float32Array.from({ length: 2 * n }, (_, i) => Math.sin(i * 0.7));
    const both = await p.project({ data: x, dims: [2, 5, 32] });
    expect(both.dims).toEqual([2, 16, 8]);
    for (let b = 0; b < 2; b++) {
      const one = await p.project({ data: x.slice(b * n, (b + 1) * n), dims: [1, 5, 32] });
      one.data.forEach((v, i) => expect(Math.abs(v - both.data[b * 128 + i])).toBeLessThan(1e-5));
    }
    await expect(p.unconditional(null)).rejects.toThrow(/need the CLIP vision model/);
    await p.release();
  });
});

/** A full-face adapter (MLPProjModel): vision hidden width D, MLP width H, tokens of width C. */
function writeFullFace(file: string, D: number, H: number, C: number, extra: Record<string, TensorToWrite> = {}): void {
  fs.writeFileSync(
    file,
    encodeSafetensors({
      'image_proj.proj.0.weight': T([H, D]),
      'image_proj.proj.0.bias': T([H]),
      'image_proj.proj.2.weight': T([C, H]),
      'image_proj.proj.2.bias': T([C]),
      'image_proj.proj.3.weight': T([C], 1),
      'image_proj.proj.3.bias': T([C]),
      'ip_adapter.1.to_k_ip.weight': T([6, C]),
      'ip_adapter.1.to_v_ip.weight': T([6, C]),
      ...extra,
    }),
  );
}

describe('full-face IpAdapterModel', () => {
  it("is told apart by its keys (image_proj.proj.3 = the MLP's LayerNorm), not by its name", () => {
    const f = path.join(root, 'some-adapter.safetensors');
    writeFullFace(f, 32, 24, 8);
    const a = IpAdapterModel.load(f);
    expect([a.kind, a.numTokens, a.embedDim, a.crossAttentionDim, [...a.layers.keys()]]).toEqual(['full-face', 257, 32, 8, [1]]);
    expect(imageProjInputName(a.kind)).toBe('penultimate_hidden_states');
    // Its input is the vision model's hidden states (hidden_size 32), not image_embeds (projection_dim 12).
    expect(() => checkAdapterMatchesVision(a, vision, 'vit.safetensors')).not.toThrow();
    // Named like a full-face file but holding a base projection: a base adapter.
    const named = path.join(root, 'ip-adapter-full-face_sd15.safetensors');
    writeBase(named, 12, 4, 8);
    expect(IpAdapterModel.load(named).kind).toBe('base');
    // The fixture's tiny replica of h94's file.
    expect(IpAdapterModel.load(path.join(fixtureFolder('model-files'), 'ip-adapter-full-face_sd15-tiny.safetensors')).kind).toBe('full-face');
  });

  it('an MLP without its LayerNorm (FaceID) and mismatched MLP widths are refused with the reason', () => {
    const faceId = path.join(root, 'faceid.safetensors');
    fs.writeFileSync(
      faceId,
      encodeSafetensors({
        'image_proj.proj.0.weight': T([16, 12]),
        'image_proj.proj.0.bias': T([16]),
        'image_proj.proj.2.weight': T([32, 16]),
        'image_proj.proj.2.bias': T([32]),
        'image_proj.norm.weight': T([8], 1),
        'image_proj.norm.bias': T([8]),
        'ip_adapter.1.to_k_ip.weight': T([6, 8]),
        'ip_adapter.1.to_v_ip.weight': T([6, 8]),
      }),
    );
    expect(() => IpAdapterModel.load(faceId)).toThrow(/faceid\.safetensors: not a supported IP-Adapter file: .*FaceID/);
    const bad = path.join(root, 'full-face-bad.safetensors');
    writeFullFace(bad, 32, 24, 8, { 'image_proj.proj.2.weight': T([8, 20]) });
    expect(() => IpAdapterModel.load(bad)).toThrow(/image_proj\.proj\.2\.weight takes width 20, but image_proj\.proj\.0 gives 24/);
    const wrongC = path.join(root, 'full-face-c.safetensors');
    writeFullFace(wrongC, 32, 24, 8, { 'image_proj.proj.2.weight': T([10, 24]), 'image_proj.proj.2.bias': T([10]) });
    expect(() => IpAdapterModel.load(wrongC)).toThrow(/proj\.2 output width 10 differs from the to_k_ip width 8/);
  });

  it('a full-face adapter of another encoder width is refused, naming both files and both widths', () => {
    const f = path.join(root, 'ip-adapter-full-face_sd15.safetensors');
    writeFullFace(f, 1280, 1280, 8);
    const a = IpAdapterModel.load(f);
    let msg = '';
    try {
      checkAdapterMatchesVision(a, { ...vision, hiddenSize: 1024, projectionDim: 768 }, '/models/clip_vision/clip-vit-large-patch14.safetensors');
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain(f);
    expect(msg).toContain('/models/clip_vision/clip-vit-large-patch14.safetensors');
    expect(msg).toMatch(/hidden states \(hidden_size\) of width 1280 \(image_proj\.proj\.0 in-features\)/);
    expect(msg).toMatch(/gives width 1024/);
    expect(msg).toMatch(/trained with: OpenCLIP ViT-H\/14/);
  });

  it('projects every token: LayerNorm(Linear2(GELU_erf(Linear1(h)))), zero-pixel states for unconditional', async () => {
    const f = path.join(root, 'full-face-proj.safetensors');
    const D = 32;
    const H = 24;
    const C = 8;
    writeFullFace(f, D, H, C);
    const p = await ImageProjector.load(f, { cacheDir });
    expect(p.inputName).toBe('penultimate_hidden_states');
    const { readTensorF32 } = await import('./safetensors.js');
    const w = (k: string) => readTensorF32(p.adapter.weights.get(`image_proj.proj.${k}`));
    const [W0, b0, W2, b2, g, beta] = [w('0.weight'), w('0.bias'), w('2.weight'), w('2.bias'), w('3.weight'), w('3.bias')];
    const erf = (x: number) => {
      // Abramowitz-Stegun 7.1.26 is too coarse; integrate instead
      let s = 0;
      const n = 2000;
      for (let i = 0; i < n; i++) {
        const t = ((i + 0.5) * x) / n;
        s += Math.exp(-t * t);
      }
      return ((2 / Math.sqrt(Math.PI)) * s * x) / n;
    };
    const token = (h: Float32Array) => {
      const a = Array.from({ length: H }, (_, o) => {
        const v = b0[o] + h.reduce((s, x, i) => s + x * W0[o * D + i], 0);
        return 0.5 * v * (1 + erf(v / Math.SQRT2));
      });
      const y = Array.from({ length: C }, (_, o) => b2[o] + a.reduce((s, x, i) => s + x * W2[o * H + i], 0));
      const mu = y.reduce((s, v) => s + v, 0) / C;
      const vr = y.reduce((s, v) => s + (v - mu) ** 2, 0) / C;
      return y.map((v, c) => ((v - mu) / Math.sqrt(vr + 1e-5)) * g[c] + beta[c]);
    };
    const T3 = 5;
    const x = Float32Array.from({ length: 2 * T3 * D }, (_, i) => Math.sin(i * 0.37));
    const got = await p.project({ data: x, dims: [2, T3, D] });
    expect(got.dims).toEqual([2, T3, C]);
    for (let t = 0; t < 2 * T3; t++) token(x.slice(t * D, (t + 1) * D)).forEach((v, c) => expect(Math.abs(got.data[t * C + c] - v)).toBeLessThan(1e-5));
    await expect(p.project({ data: x, dims: [2, 5 * D] })).rejects.toThrow(/penultimate_hidden_states must be \(B, T, 32\)/);
    await expect(p.unconditional(null)).rejects.toThrow(/IP-Adapter full-face need the CLIP vision model/);
    await p.release();
  });
});

describe('ImageProjector', () => {
  it('base: LayerNorm(reshape(Linear(x))) for a batch, and zero-embedding unconditional tokens', async () => {
    const f = path.join(root, 'base-proj.safetensors');
    writeBase(f, 12, 4, 8);
    const p = await ImageProjector.load(f, { cacheDir });
    const w = p.adapter.weights;
    const { readTensorF32 } = await import('./safetensors.js');
    const W = readTensorF32(w.get('image_proj.proj.weight'));
    const b = readTensorF32(w.get('image_proj.proj.bias'));
    const g = readTensorF32(w.get('image_proj.norm.weight'));
    const beta = readTensorF32(w.get('image_proj.norm.bias'));
    const x = Float32Array.from({ length: 24 }, (_, i) => Math.cos(i));
    const ref = (xb: Float32Array) => {
      const y = Array.from({ length: 32 }, (_, o) => b[o] + xb.reduce((s, v, i) => s + v * W[o * 12 + i], 0));
      const out: number[] = [];
      for (let n = 0; n < 4; n++) {
        const r = y.slice(n * 8, n * 8 + 8);
        const mu = r.reduce((s, v) => s + v, 0) / 8;
        const vr = r.reduce((s, v) => s + (v - mu) ** 2, 0) / 8;
        r.forEach((v, c) => out.push(((v - mu) / Math.sqrt(vr + 1e-5)) * g[c] + beta[c]));
      }
      return out;
    };
    const got = await p.project({ data: x, dims: [2, 12] });
    expect(got.dims).toEqual([2, 4, 8]);
    const want = [...ref(x.slice(0, 12)), ...ref(x.slice(12))];
    want.forEach((v, i) => expect(Math.abs(got.data[i] - v)).toBeLessThan(1e-5));
    const un = await p.unconditional(null);
    ref(new Float32Array(12)).forEach((v, i) => expect(Math.abs(un.data[i] - v)).toBeLessThan(1e-5));
    await expect(p.project({ data: x, dims: [1, 24] })).rejects.toThrow(/image_embeds must be \(B, 12\)/);
    await p.release();
  });
});
