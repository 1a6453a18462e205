/**
 * IP-Adapter embeds (Encoder, Combine Embeds, Apply IP-Adapter (embeds), Save / Load Embeds) and the Noise
 * node: the combine methods against IPAdapterCombineEmbeds' formulas, the noise types against make_noise's,
 * and through the engine on the demo models: the embeds path equals the projection path bit for bit, saved
 * and loaded embeds give the same latents bit for bit, embeds of another adapter are refused naming both files.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../engine/api.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { TorchGenerator } from '../models/sampling/torch-randn.js';
import { SafetensorsFile } from '../models/safetensors.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import { ipAdapterCombineEmbeds } from './ip-adapter-combine-embeds.js';
import { makeNoise } from './ip-adapter-noise.js';
import { combineRows } from './runtime/ip-embeds.js';
import type { IpEmbedsValue, LatentValue } from './values.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');

describe('IP-Adapter Combine Embeds (IPAdapterCombineEmbeds, rows e_i stacked, elementwise)', () => {
  // Three rows of four values.
  const e = [
    [1, -2, 3, 0.5],
    [3, 2, -1, 0.25],
    [-2, 4, 1, 2],
  ];
  const rows = Float32Array.from(e.flat());
  const col = (j: number) => e.map((r) => r[j]!);
  const f32 = (xs: number[]) => Array.from(Float32Array.from(xs));
  const of = (m: Parameters<typeof combineRows>[2]) => Array.from(combineRows(rows, 3, m).data);

  it('concat keeps the rows; add = Σ e_i; average = Σ e_i / n; max / min elementwise', () => {
    expect(combineRows(rows, 3, 'concat')).toEqual({ data: rows, count: 3 });
    expect(of('add')).toEqual(f32([2, 4, 3, 2.75]));
    expect(of('average')).toEqual(f32([2 / 3, 4 / 3, 1, 2.75 / 3]));
    expect(of('max')).toEqual([3, 4, 3, 2]);
    expect(of('min')).toEqual([-2, -2, -1, 0.25]);
  });

  it('subtract = e_1 − mean(e_2..e_n)', () => {
    expect(of('subtract')).toEqual(f32([1 - 0.5, -2 - 3, 3 - 0, 0.5 - 1.125]));
  });

  it('norm average = mean_i(e_i / ‖e_·‖), the norm taken over the images for each element (torch.norm(dim=0))', () => {
    const want = [0, 1, 2, 3].map((j) => {
      const c = col(j);
      const norm = Math.hypot(...c);
      return c.reduce((a, v) => a + v / norm, 0) / 3;
    });
    of('norm average').forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 6));
  });

  it('the node stacks the rows of every input first, refuses embeds of two adapters, and subtract of one image', async () => {
    const emb = (adapterPath: string, data: number[][]): IpEmbedsValue => ({
      kind: 'IP_EMBEDS',
      adapterPath,
      adapterKind: 'base',
      visionPath: 'v',
      count: data.length,
      rowDims: [4],
      data: Float32Array.from(data.flat()),
    });
    const run = (inputs: Record<string, unknown>, method: string) => ipAdapterCombineEmbeds.execute(inputs, { method }, {} as never);
    const out = (await run({ embeds_1: emb('a', [e[0]!, e[1]!]), embeds_3: emb('a', [e[2]!]) }, 'add')).embeds as IpEmbedsValue;
    expect(out.count).toBe(1);
    expect(Array.from(out.data)).toEqual(f32([2, 4, 3, 2.75]));
    await expect(run({ embeds_1: emb('a', [e[0]!]), embeds_2: emb('b', [e[1]!]) }, 'add')).rejects.toThrow(/embeds_2 belongs to the adapter b, embeds_1 to a/);
    await expect(run({ embeds_1: emb('a', [e[0]!]) }, 'subtract')).rejects.toThrow(/at least two images/);
  });
});

describe('IP-Adapter Noise (make_noise on a 224x224 image, torch CPU streams seeded by int(sum(image)) % 1000000007)', () => {
  const black = new Float32Array(224 * 224 * 3);
  const n = black.length;

  it('fade on black, strength s: U·s with U = torch.rand of manual_seed(0); strength 0 gives the image', () => {
    const g = new TorchGenerator(0);
    const u = Float32Array.from({ length: n }, () => g.uniformFloat());
    expect(makeNoise('fade', 1, 0, black)).toEqual(u);
    const half = makeNoise('fade', 0.5, 0, black);
    expect(half[7]).toBe(Math.fround(u[7]! * 0.5));
    const grey = new Float32Array(n).fill(0.5);
    expect(makeNoise('fade', 0, 0, grey)).toEqual(grey);
  });

  it('dissolve replaces the pixels where the first uniform draw is below s by the second; gaussian adds N·s (clamped)', () => {
    const grey = new Float32Array(n).fill(0.5);
    const seed = Math.trunc(0.5 * n) % 1000000007;
    const g = new TorchGenerator(seed);
    const m = Float32Array.from({ length: n }, () => g.uniformFloat());
    const u = Float32Array.from({ length: n }, () => g.uniformFloat());
    const d = makeNoise('dissolve', 0.3, 0, grey);
    for (const i of [0, 1, 1000, n - 1]) expect(d[i]).toBe(m[i]! < 0.3 ? u[i] : 0.5);
    const share = d.filter((v, i) => v !== 0.5 || m[i]! < 0.3).length / n;
    expect(share).toBeCloseTo(0.3, 2);
    const gn = new TorchGenerator(seed).randn([n]);
    const gs = makeNoise('gaussian', 0.2, 0, grey);
    for (const i of [0, 5, n - 1]) expect(gs[i]).toBe(Math.min(1, Math.max(0, Math.fround(0.5 + Math.fround(gn[i]! * 0.2)))));
  });

  it('shuffle is deterministic for an image and flips it; blur smooths (a flat image stays flat)', () => {
    const grad = Float32Array.from({ length: n }, (_, i) => (Math.floor(i / 3) % 224) / 223);
    const a = makeNoise('shuffle', 0, 0, grad);
    expect(makeNoise('shuffle', 0, 0, grad)).toEqual(a);
    // strength 0: no added noise, a smooth warp (sigma 3.5), both flips: the left-to-right ramp now falls.
    const rowMean = (img: Float32Array, x: number) => Array.from({ length: 224 }, (_, y) => img[(y * 224 + x) * 3]!).reduce((s, v) => s + v, 0) / 224;
    expect(rowMean(a, 10)).toBeGreaterThan(rowMean(a, 210));
    const flat = new Float32Array(n).fill(0.25);
    makeNoise('fade', 0, 5, flat).forEach((v, i) => i % 997 === 0 && expect(v).toBeCloseTo(0.25, 6));
    const noisy = makeNoise('fade', 1, 0, black);
    const blurred = makeNoise('fade', 1, 7, black);
    const variance = (x: Float32Array) => x.reduce((s, v) => s + (v - 0.5) ** 2, 0) / x.length;
    expect(variance(blurred)).toBeLessThan(variance(noisy) / 4);
  });
});

describe('embeds through the engine (demo models)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-embeds-'));
  let engine: Engine;
  beforeAll(async () => {
    // Load Image's MASK is 1 - alpha: all transparent = a mask of ones; the left half transparent = keep the left half.
    const px = (f: (x: number) => number) => Buffer.from(Array.from({ length: 64 * 64 }, (_, i) => [90, 140, 200, f(i % 64)]).flat());
    await sharp(
      px(() => 0),
      { raw: { width: 64, height: 64, channels: 4 } },
    )
      .png()
      .toFile(path.join(tmp, 'ones.png'));
    await sharp(
      px((x) => (x < 32 ? 0 : 255)),
      { raw: { width: 64, height: 64, channels: 4 } },
    )
      .png()
      .toFile(path.join(tmp, 'left.png'));
    engine = createEngine({
      modelsDir: path.join(tmp, 'none'),
      outputDir: path.join(tmp, 'out'),
      provider: 'cpu',
      userDataDir: path.join(tmp, 'user'),
      demo: true,
    });
  });
  afterAll(async () => {
    await engine.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const link = (wf: Workflow, a: string, ap: string, b: string, bp: string) => wf.edges.push({ from: { node: a, port: ap }, to: { node: b, port: bp } });
  async function sample(wf: Workflow): Promise<LatentValue> {
    let latent: LatentValue | undefined;
    const r = await engine.run(wf, { onNodeOutputs: (node, out) => node === 'sampler' && (latent = out.latent as LatentValue) });
    expect(r.errors ?? [], JSON.stringify(r.errors)).toEqual([]);
    expect(r.error ?? '').toBe('');
    return latent!;
  }
  /** The standard workflow with Encoder -> Apply IP-Adapter (embeds) instead of Projection -> Apply IP-Adapter. */
  function viaEmbeds(source: 'encoder' | { load: string }, weight = 0.8): Workflow {
    const wf = ipAdapterWorkflow({ image: IMAGE, steps: 2, output: 'preview', weight });
    wf.nodes = wf.nodes.filter((n) => !['projection', 'apply'].includes(n.id));
    wf.edges = wf.edges.filter((e) => !['projection', 'apply'].includes(e.from.node) && !['projection', 'apply'].includes(e.to.node));
    wf.nodes.push({ id: 'apply', type: 'apply-ip-adapter-embeds', params: { weight, start_at: 0, end_at: 1 } });
    if (source === 'encoder') {
      wf.nodes.push({ id: 'encoder', type: 'ip-adapter-encoder', params: { weight: 1 } });
      link(wf, 'ip_adapter', 'ip_adapter', 'encoder', 'ip_adapter');
      link(wf, 'clip_vision', 'clip_vision', 'encoder', 'clip_vision');
      link(wf, 'image', 'image', 'encoder', 'image');
      link(wf, 'encoder', 'embeds', 'apply', 'embeds');
      link(wf, 'encoder', 'negative', 'apply', 'negative');
    } else {
      wf.nodes.push({ id: 'load', type: 'load-embeds', params: { file: source.load } });
      link(wf, 'ip_adapter', 'ip_adapter', 'load', 'ip_adapter');
      link(wf, 'load', 'embeds', 'apply', 'embeds');
    }
    link(wf, 'checkpoint', 'model', 'apply', 'model');
    link(wf, 'ip_adapter', 'ip_adapter', 'apply', 'ip_adapter');
    link(wf, 'apply', 'model', 'sampler', 'model');
    return wf;
  }

  it('Encoder -> Apply IP-Adapter (embeds) gives the latents of CLIP Vision Encode -> Projection -> Apply IP-Adapter, bit for bit', async () => {
    const ref = await sample(ipAdapterWorkflow({ image: IMAGE, steps: 2, output: 'preview', weight: 0.8 }));
    const emb = await sample(viaEmbeds('encoder'));
    expect(emb.samples).toEqual(ref.samples);
  });

  /** The Encoder's embeds for the demo image with params `p` and optionally a mask from `maskPng`'s alpha. */
  async function encoded(p: Record<string, string | number>, maskPng?: string): Promise<{ embeds: IpEmbedsValue }> {
    const wf = viaEmbeds('encoder');
    Object.assign(wf.nodes.find((n) => n.id === 'encoder')!.params, p);
    if (maskPng) {
      wf.nodes.push({ id: 'mask_image', type: 'load-image', params: { image: maskPng } });
      link(wf, 'mask_image', 'mask', 'encoder', 'mask');
    }
    let embeds: IpEmbedsValue | undefined;
    const r = await engine.run(wf, { onNodeOutputs: (node, out) => node === 'encoder' && (embeds = out.embeds as IpEmbedsValue) });
    expect(r.error ?? '').toBe('');
    return { embeds: embeds! };
  }

  it('Encoder: a mask of ones gives the embeds of no mask, a half mask others; image_weights multiply weight', async () => {
    const plain = await encoded({});
    const ones = await encoded({}, path.join(tmp, 'ones.png'));
    expect(ones.embeds.data).toEqual(plain.embeds.data);
    const left = await encoded({}, path.join(tmp, 'left.png'));
    expect(left.embeds.data).not.toEqual(plain.embeds.data);
    const half = await encoded({ weight: 0.5 });
    expect((await encoded({ weight: 1, image_weights: '0.5' })).embeds.data).toEqual(half.embeds.data);
    expect(Array.from(half.embeds.data.slice(0, 4))).toEqual(Array.from(plain.embeds.data.slice(0, 4), (v) => Math.fround(v * 0.5)));
  });

  it('Image Batch -> Encoder: one row per image (the rows of single encodes), image_weights weigh each image', async () => {
    const batched = async (weights: string) => {
      const wf = viaEmbeds('encoder');
      wf.nodes.push({ id: 'image_b', type: 'load-image', params: { image: path.join(root, 'examples', 'images', 'init.png') } });
      wf.nodes.push({ id: 'batch', type: 'image-batch', params: {} });
      wf.edges = wf.edges.filter((e) => !(e.to.node === 'encoder' && e.to.port === 'image'));
      link(wf, 'image', 'image', 'batch', 'image_1');
      link(wf, 'image_b', 'image', 'batch', 'image_2');
      link(wf, 'batch', 'image', 'encoder', 'image');
      Object.assign(wf.nodes.find((n) => n.id === 'encoder')!.params, { image_weights: weights });
      let embeds: IpEmbedsValue | undefined;
      const r = await engine.run(wf, { onNodeOutputs: (node, out) => node === 'encoder' && (embeds = out.embeds as IpEmbedsValue) });
      expect(r.error ?? '').toBe('');
      return embeds!;
    };
    const both = await batched('');
    expect(both.count).toBe(2);
    const len = both.data.length / 2;
    const single = (await encoded({})).embeds.data;
    both.data.slice(0, len).forEach((v, i) => expect(v).toBeCloseTo(single[i]!, 5));
    const weighted = await batched('1, 0.5');
    expect(weighted.data.slice(0, len)).toEqual(both.data.slice(0, len));
    expect(Array.from(weighted.data.slice(len))).toEqual(Array.from(both.data.slice(len), (v) => Math.fround(v * 0.5)));
  });

  it('embeds saved and loaded give the same latents bit for bit; the header names the adapter; another adapter is refused naming both files', async () => {
    const save = viaEmbeds('encoder');
    save.nodes.push({ id: 'save', type: 'save-embeds', params: { filename_prefix: 'emb/face' } });
    link(save, 'encoder', 'embeds', 'save', 'embeds');
    const direct = await sample(save);
    const file = path.join(tmp, 'out', 'emb', 'face_00001.safetensors');
    const st = SafetensorsFile.open(file);
    expect(st.metadata).toMatchObject({ format: 'ipadapter-studio/ip-embeds', adapter: 'ip-adapter_sd15.safetensors', adapter_kind: 'base' });
    expect(st.metadata.adapter_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(st.get('embeds').dtype).toBe('F32');
    // Loaded: no negative connected, so the unconditional embeds are the base adapter's zeros, as the Encoder's negative.
    const loaded = await sample(viaEmbeds({ load: 'emb/face_00001.safetensors' }));
    expect(loaded.samples).toEqual(direct.samples);

    // Another adapter file (same shapes, other content) in the models folder.
    const dir = path.join(tmp, 'user', 'demo-models', 'ipadapter');
    const bytes = fs.readFileSync(path.join(dir, 'ip-adapter_sd15.safetensors'));
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(path.join(dir, 'other-adapter.safetensors'), bytes);
    const wrong = viaEmbeds({ load: 'emb/face_00001.safetensors' });
    wrong.nodes.find((n) => n.id === 'ip_adapter')!.params.ipadapter_file = 'other-adapter.safetensors';
    const r = await engine.run(wrong);
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/face_00001\.safetensors holds embeds for the IP-Adapter ip-adapter_sd15\.safetensors, not for other-adapter\.safetensors/);
  });
});
