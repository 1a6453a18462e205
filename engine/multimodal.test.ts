/**
 * Multimodal prompts and inpainting through the engine, on the demo models (and the reference
 * fixture's Plus adapter when the fixtures are present): λ per block, the negative image
 * prompt, inpainting with the standard and the 9-channel UNet. Each run is 1-2 DDIM steps.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unetParameterShapes } from '../models/unet.js';
import { parseUNetConfig } from '../models/unet-config.js';
import { imageTokens } from '../nodes/runtime/sampler-unet.js';
import type { IpTokensValue, LatentValue } from '../nodes/values.js';
import type { Workflow } from './api.js';
import { DEMO_NAMES, DEMO_UNET_CONFIG } from './demo/demo.js';
import { randomSafetensors } from './demo/weights.js';
import { createEngine, type Engine } from './engine.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const INIT = path.join(root, 'examples', 'images', 'init.png');
const fixtures = fixtureFolder('tiny-sd15');
const haveFixtures = fs.existsSync(path.join(fixtures, 'cases', 'cases.json'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-multimodal-'));
let engine: Engine;

beforeAll(async () => {
  engine = createEngine({
    modelsDir: path.join(tmp, 'none'),
    outputDir: path.join(tmp, 'out'),
    provider: 'cpu',
    userDataDir: path.join(tmp, 'user'),
    demo: true,
  });
  // Masks: all transparent (mask 1 everywhere) and left half transparent.
  const px = (f: (x: number) => number) => Buffer.from(Array.from({ length: 64 * 64 }, (_, i) => [128, 128, 128, f(i % 64)]).flat());
  await sharp(
    px(() => 0),
    { raw: { width: 64, height: 64, channels: 4 } },
  )
    .png()
    .toFile(path.join(tmp, 'clear.png'));
  await sharp(
    px((x) => (x < 32 ? 0 : 255)),
    { raw: { width: 64, height: 64, channels: 4 } },
  )
    .png()
    .toFile(path.join(tmp, 'half.png'));
});
afterAll(async () => {
  await engine.close();
});

const link = (wf: Workflow, a: string, ap: string, b: string, bp: string) => wf.edges.push({ from: { node: a, port: ap }, to: { node: b, port: bp } });
const params = (wf: Workflow, id: string) => wf.nodes.find((n) => n.id === id)!.params;

/** The demo image-prompt workflow with a preview output and `steps` steps. */
function base(steps = 2, o: Parameters<typeof ipAdapterWorkflow>[0] = { image: IMAGE }): Workflow {
  return ipAdapterWorkflow({ steps, output: 'preview', ...o });
}

/** Turns a workflow into image-to-image from INIT (denoise < 1), optionally with a mask from `maskPng`'s alpha. */
function toImg2img(wf: Workflow, denoise: number, maskPng?: string): Workflow {
  wf.nodes = wf.nodes.filter((n) => n.id !== 'latent');
  wf.edges = wf.edges.filter((e) => e.from.node !== 'latent');
  wf.nodes.push({ id: 'init', type: 'load-image', params: { image: INIT } });
  wf.nodes.push({ id: 'encode', type: 'vae-encode', params: { mode: 'sample', seed: 3 } });
  link(wf, 'init', 'image', 'encode', 'pixels');
  link(wf, 'checkpoint', 'vae', 'encode', 'vae');
  link(wf, 'encode', 'latent', 'sampler', 'latent');
  params(wf, 'sampler').denoise = denoise;
  if (maskPng) {
    wf.nodes.push({ id: 'mask_image', type: 'load-image', params: { image: maskPng } });
    link(wf, 'mask_image', 'mask', 'encode', 'mask');
  }
  return wf;
}

/** Runs a workflow and returns the sampler's latent. */
async function sample(wf: Workflow): Promise<LatentValue> {
  let latent: LatentValue | undefined;
  const r = await engine.run(wf, {
    onNodeOutputs: (node, out) => {
      if (node === 'sampler') latent = out.latent as LatentValue;
    },
  });
  expect(r.errors ?? [], JSON.stringify(r.errors)).toEqual([]);
  expect(r.error ?? '').toBe('');
  return latent!;
}

describe('λ per block', () => {
  it('a custom list with all values equal gives exactly the scalar λ; presets change the result', async () => {
    const scalar = base();
    params(scalar, 'apply').weight = 0.7;
    const custom = base();
    Object.assign(params(custom, 'apply'), { weight: 1, layer_weights: Array(11).fill(0.7).join(', ') });
    const a = await sample(scalar);
    const b = await sample(custom);
    expect(b.samples).toEqual(a.samples); // bit-identical
    const style = base();
    Object.assign(params(style, 'apply'), { weight: 0.7, weight_type: 'style transfer' });
    expect((await sample(style)).samples).not.toEqual(a.samples);
  });

  it('a custom list of the wrong length fails on the sampler with the layer count', async () => {
    const wf = base(1);
    Object.assign(params(wf, 'apply'), { layer_weights: '1, 1, 1' });
    const r = await engine.run(wf);
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/3 numbers, but this UNet has 11 cross-attention layers/);
    Object.assign(params(wf, 'apply'), { layer_weights: 'one' });
    expect(engine.validate(wf)).toEqual([
      expect.objectContaining({ node: 'apply', param: 'layer_weights', message: expect.stringMatching(/"one" is not a number/) }),
    ]);
  });
});

describe('negative image prompt', () => {
  it('its tokens replace the unconditional image tokens', () => {
    const tok = (v: number): IpTokensValue => ({
      kind: 'IP_TOKENS',
      adapterPath: 'a',
      tokens: 4,
      dim: 2,
      cond: new Float32Array(8).fill(v),
      uncond: new Float32Array(8),
    });
    const adapter = { kind: 'IP_ADAPTER' as const, path: 'a', adapterKind: 'base' as const, tokensPerImage: 4, crossDim: 2 };
    const t = imageTokens([{ adapter, tokens: tok(1), negative: tok(-3), scale: 1, start: 0, end: 1 }])!;
    expect(Array.from(t.cond)).toEqual(Array(8).fill(1));
    expect(Array.from(t.uncond)).toEqual(Array(8).fill(-3));
    expect(Array.from(imageTokens([{ adapter, tokens: tok(1), scale: 1, start: 0, end: 1 }])!.uncond)).toEqual(Array(8).fill(0));
  });

  it('changes the guided result, and nothing without guidance (cfg 1 has no unconditional branch)', async () => {
    const withNeg = (cfg: number) => {
      const wf = base();
      params(wf, 'sampler').cfg = cfg;
      wf.nodes.push({ id: 'neg_image', type: 'load-image', params: { image: INIT } });
      wf.nodes.push({ id: 'neg_encode', type: 'clip-vision-encode', params: { crop: 'center' } });
      wf.nodes.push({ id: 'neg_projection', type: 'ip-adapter-projection', params: { combine: 'concat' } });
      link(wf, 'neg_image', 'image', 'neg_encode', 'image');
      link(wf, 'clip_vision', 'clip_vision', 'neg_encode', 'clip_vision');
      link(wf, 'neg_encode', 'embeds', 'neg_projection', 'embeds');
      link(wf, 'ip_adapter', 'ip_adapter', 'neg_projection', 'ip_adapter');
      link(wf, 'neg_projection', 'tokens', 'apply', 'negative');
      return wf;
    };
    const plain = (cfg: number) => {
      const wf = base();
      params(wf, 'sampler').cfg = cfg;
      return wf;
    };
    expect((await sample(withNeg(7.5))).samples).not.toEqual((await sample(plain(7.5))).samples);
    expect((await sample(withNeg(1))).samples).toEqual((await sample(plain(1))).samples);
  });
});

describe('inpainting with the image prompt', () => {
  it('a mask of all ones inpaints exactly like image-to-image at the same denoise', async () => {
    const img2img = await sample(toImg2img(base(), 0.6));
    const inpaint = await sample(toImg2img(base(), 0.6, path.join(tmp, 'clear.png')));
    expect(inpaint.noiseMask?.data.every((v) => v === 1)).toBe(true);
    expect(inpaint.samples).toEqual(img2img.samples);
  });

  it('keeps the init latents exactly where the mask is 0 and changes them where it is 1', async () => {
    let init: LatentValue | undefined;
    let out: LatentValue | undefined;
    const r = await engine.run(toImg2img(base(), 0.6, path.join(tmp, 'half.png')), {
      onNodeOutputs: (node, o) => {
        if (node === 'encode') init = o.latent as LatentValue;
        if (node === 'sampler') out = o.latent as LatentValue;
      },
    });
    expect(r.error ?? '').toBe('');
    const [, C, h, w] = out!.dims;
    let kept = 0;
    let changed = 0;
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < h * w; i++) {
        const k = c * h * w + i;
        if (i % w < w / 2)
          changed += out!.samples[k] !== init!.samples[k] ? 1 : 0; // transparent half: mask 1
        else kept += out!.samples[k] === init!.samples[k] ? 1 : 0;
      }
    }
    expect(kept).toBe((C * h * w) / 2);
    expect(changed).toBeGreaterThan(((C * h * w) / 2) * 0.99);
  });

  it('a 9-channel inpainting UNet gets [latents, mask, masked image latents]; without a mask it is refused', async () => {
    // A demo-sized inpainting checkpoint: the demo's parts with a 9-input-channel UNet.
    const demoCk = path.join(engine.modelsDir(), 'checkpoints', DEMO_NAMES.checkpoint);
    const ck = path.join(tmp, 'sd15-inpainting');
    fs.mkdirSync(path.join(ck, 'unet'), { recursive: true });
    for (const part of ['vae', 'text_encoder', 'tokenizer', 'scheduler', 'model_index.json']) fs.symlinkSync(path.join(demoCk, part), path.join(ck, part));
    const cfg = { ...DEMO_UNET_CONFIG, in_channels: 9 };
    fs.writeFileSync(path.join(ck, 'unet', 'config.json'), JSON.stringify(cfg));
    fs.writeFileSync(
      path.join(ck, 'unet', 'diffusion_pytorch_model.safetensors'),
      randomSafetensors(unetParameterShapes(parseUNetConfig(cfg, 'inpainting')), 99),
    );
    const half = await sample(toImg2img(base(2, { image: IMAGE, checkpoint: ck }), 1, path.join(tmp, 'half.png')));
    const clear = await sample(toImg2img(base(2, { image: IMAGE, checkpoint: ck }), 1, path.join(tmp, 'clear.png')));
    expect(half.samples).not.toEqual(clear.samples); // the mask channel reaches the UNet
    // A ControlNet (4 input channels) drives the 9-channel UNet: it sees the latent channels only.
    const cn = toImg2img(base(1, { image: IMAGE, checkpoint: ck }), 1, path.join(tmp, 'half.png'));
    cn.nodes.push({ id: 'cn', type: 'load-controlnet', params: { control_net_name: DEMO_NAMES.controlnetCanny } });
    for (const which of ['positive', 'negative']) {
      cn.nodes.push({ id: `cn_${which}`, type: 'apply-controlnet', params: { strength: 1, start: 0, end: 1 } });
      cn.edges = cn.edges.filter((e) => !(e.from.node === which && e.to.node === 'sampler'));
      link(cn, which, 'conditioning', `cn_${which}`, 'conditioning');
      link(cn, 'cn', 'control_net', `cn_${which}`, 'control_net');
      link(cn, 'init', 'image', `cn_${which}`, 'image');
      link(cn, `cn_${which}`, 'conditioning', 'sampler', which);
    }
    await sample(cn);
    const r = await engine.run(toImg2img(base(1, { image: IMAGE, checkpoint: ck }), 1));
    expect(r.error).toMatch(/inpainting model \(its UNet takes 9 channels\): give the sampler a masked latent/);
  });
});

describe.skipIf(!haveFixtures)('IP-Adapter Plus through the engine (reference fixture)', () => {
  it('projects 16 tokens per image and samples with them', async () => {
    const e = createEngine({
      modelsDir: fixtures,
      outputDir: path.join(tmp, 'out-plus'),
      provider: 'cpu',
      userDataDir: path.join(tmp, 'user-plus'),
      demo: false,
    });
    try {
      const wf = ipAdapterWorkflow({
        image: IMAGE,
        steps: 2,
        output: 'preview',
        width: 64,
        height: 64,
        checkpoint: path.join(fixtures, 'diffusers'),
        clipVision: path.join(fixtures, 'image_encoder'),
        ipAdapter: path.join(fixtures, 'ip-adapter-plus_sd15-tiny.safetensors'),
      });
      let tokens: IpTokensValue | undefined;
      const r = await e.run(wf, {
        onNodeOutputs: (node, out) => {
          if (node === 'projection') tokens = out.tokens as IpTokensValue;
        },
      });
      expect(r.error ?? '').toBe('');
      expect(r.ok).toBe(true);
      expect(tokens!.tokens).toBe(16);
      expect(tokens!.uncond).not.toEqual(tokens!.cond);
    } finally {
      await e.close();
    }
  });
});
