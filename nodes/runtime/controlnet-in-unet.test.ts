/**
 * ControlNets inside the UNet session (models/unet-controlnet.ts) through the engine, forced on the CPU
 * (EngineOptions.controlNetsInUNet), against today's separate sessions, on the tiny SD1.5 fixtures with an
 * IP-Adapter: a DDIM run of 4 steps with CFG gives the same latents after every step within 1e-5, for one
 * ControlNet, for two (one stored in F16) with windows and one on the positive prompt only, and for windows that
 * leave steps without any ControlNet (those steps run the plain UNet session).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../../engine/api.js';
import { createEngine, type Engine } from '../../engine/engine.js';
import { ModelStore } from '../../engine/model-store.js';
import { SafetensorsFile, encodeSafetensors, readTensorF32, roundToHalf, type TensorToWrite } from '../../models/safetensors.js';
import { fixtureFolder } from '../../test/helpers/fixtures.js';

const fixture = fixtureFolder('tiny-sd15');
const have = fs.existsSync(path.join(fixture, 'controlnet')) && fs.existsSync(path.join(fixture, 'image_encoder'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-cn-in-unet-'));
const HALF = path.join(tmp, 'controlnet-f16');

interface Control {
  net: 'fixture' | 'half';
  strength: number;
  start: number;
  end: number;
  /** Applied to the negative prompt too (default). */
  both?: boolean;
}

/** txt2img on the tiny fixtures: IP-Adapter, a chain of Apply ControlNet per prompt, DDIM 4 steps, CFG 5, 64x64, preview. */
function workflow(controls: Control[]): Workflow {
  const n = (id: string, type: string, params: Record<string, number | string | boolean> = {}) => ({ id, type, params });
  const e = (from: string, fp: string, to: string, tp: string) => ({ from: { node: from, port: fp }, to: { node: to, port: tp } });
  const nodes = [
    n('ckpt', 'load-checkpoint', { ckpt_name: path.join(fixture, 'diffusers'), config: '', tokenizer: '' }),
    n('ip_image', 'load-image', { image: path.join(fixture, 'cases', 'img_square_256.png') }),
    n('vision', 'load-clip-vision', { clip_name: path.join(fixture, 'image_encoder') }),
    n('encode', 'clip-vision-encode', { crop: 'center' }),
    n('adapter', 'load-ip-adapter', { ipadapter_file: path.join(fixture, 'ip-adapter_sd15-tiny.safetensors') }),
    n('proj', 'ip-adapter-projection', {}),
    n('apply_ip', 'apply-ip-adapter', { weight: 0.7, start_at: 0, end_at: 1 }),
    n('pos', 'text-encode', { text: 'a house by a lake' }),
    n('neg', 'text-encode', { text: 'blurry' }),
    n('cn_fixture', 'load-controlnet', { control_net_name: path.join(fixture, 'controlnet'), config: '' }),
    n('cn_half', 'load-controlnet', { control_net_name: HALF, config: '' }),
    n('control_image', 'load-image', { image: path.join(fixture, 'cases', 'control_edges_128.png') }),
    n('latent', 'empty-latent-image', { width: 64, height: 64, batch_size: 1 }),
    n('sampler', 'ddim-sampler', { seed: 7, steps: 4, cfg: 5, eta: 0, denoise: 1 }),
    n('decode', 'vae-decode', {}),
    n('preview', 'preview-image', {}),
  ];
  const edges = [
    e('vision', 'clip_vision', 'encode', 'clip_vision'),
    e('ip_image', 'image', 'encode', 'image'),
    e('adapter', 'ip_adapter', 'proj', 'ip_adapter'),
    e('encode', 'embeds', 'proj', 'embeds'),
    e('ckpt', 'model', 'apply_ip', 'model'),
    e('adapter', 'ip_adapter', 'apply_ip', 'ip_adapter'),
    e('proj', 'tokens', 'apply_ip', 'tokens'),
    e('ckpt', 'clip', 'pos', 'clip'),
    e('ckpt', 'clip', 'neg', 'clip'),
    e('apply_ip', 'model', 'sampler', 'model'),
    e('latent', 'latent', 'sampler', 'latent'),
    e('sampler', 'latent', 'decode', 'samples'),
    e('ckpt', 'vae', 'decode', 'vae'),
    e('decode', 'image', 'preview', 'images'),
  ];
  for (const which of ['pos', 'neg']) {
    let prev = which;
    controls.forEach((c, k) => {
      if (which === 'neg' && c.both === false) return;
      const id = `cn_${which}_${k}`;
      nodes.push(n(id, 'apply-controlnet', { strength: c.strength, start: c.start, end: c.end }));
      edges.push(e(prev, 'conditioning', id, 'conditioning'), e(`cn_${c.net}`, 'control_net', id, 'control_net'), e('control_image', 'image', id, 'image'));
      prev = id;
    });
    edges.push(e(prev, 'conditioning', 'sampler', which === 'pos' ? 'positive' : 'negative'));
  }
  return { format: 'ipadapter-studio/workflow', version: 1, nodes, edges } as Workflow;
}

let separate: Engine;
let inUNet: Engine;

beforeAll(() => {
  if (!have) return;
  // A second ControlNet: the fixture's tensors scaled by 0.9, stored as F16.
  fs.mkdirSync(HALF, { recursive: true });
  fs.copyFileSync(path.join(fixture, 'controlnet', 'config.json'), path.join(HALF, 'config.json'));
  const st = SafetensorsFile.open(path.join(fixture, 'controlnet', 'diffusion_pytorch_model.safetensors'));
  const out: Record<string, TensorToWrite> = {};
  for (const k of st.keys()) {
    const f32 = readTensorF32(st.get(k)).map((v) => v * 0.9);
    const data = new Uint16Array(f32.length);
    roundToHalf(f32, 'F16', data);
    out[k] = { dtype: 'F16', shape: st.get(k).shape, data };
  }
  fs.writeFileSync(path.join(HALF, 'diffusion_pytorch_model.safetensors'), encodeSafetensors(out));
  const engine = (name: string, controlNetsInUNet?: boolean) =>
    createEngine({
      modelsDir: path.join(tmp, 'none'),
      outputDir: path.join(tmp, name, 'out'),
      userDataDir: path.join(tmp, name),
      cacheDir: path.join(tmp, 'cache'),
      provider: 'cpu',
      demo: false,
      ...(controlNetsInUNet ? { controlNetsInUNet } : {}),
    });
  separate = engine('separate');
  inUNet = engine('in-unet', true);
});
afterAll(async () => {
  await separate?.close();
  await inUNet?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function latents(engine: Engine, wf: Workflow): Promise<Float32Array[]> {
  const steps: Float32Array[] = [];
  engine.executor.clearCache();
  expect(engine.validate(wf)).toEqual([]);
  const r = await engine.run(wf, {
    trace: (t) => {
      if (t.node === 'sampler' && t.name === 'latents_after_step') steps[t.step!] = Float32Array.from(t.data);
    },
  });
  expect(r.error ?? '').toBe('');
  expect(steps).toHaveLength(4);
  return steps;
}

const maxDiff = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((s, i) => s.reduce((m, v, j) => Math.max(m, Math.abs(v - b[i]![j]!)), 0)));

describe('where the ControlNets run', () => {
  it('inside the UNet session on GPU providers, their own sessions on the CPU, unless forced', () => {
    const store = (o: Partial<ConstructorParameters<typeof ModelStore>[0]>) => new ModelStore({ cacheDir: path.join(tmp, 'stores'), provider: 'cpu', ...o });
    expect(store({}).controlNetsInUNet).toBe(false);
    for (const provider of ['webgpu', 'cuda', 'dml'] as const) expect(store({ provider }).controlNetsInUNet).toBe(true);
    expect(store({ controlNetsInUNet: true }).controlNetsInUNet).toBe(true);
    expect(store({ provider: 'webgpu', controlNetsInUNet: false }).controlNetsInUNet).toBe(false);
  });
});

describe.skipIf(!have)('ControlNets inside the UNet session, through the engine (tiny SD1.5, CPU forced)', () => {
  it('one ControlNet on both prompts: the same latents as separate sessions; no ControlNet session of its own', async () => {
    const wf = workflow([{ net: 'fixture', strength: 0.9, start: 0, end: 1 }]);
    const a = await latents(separate, wf);
    const b = await latents(inUNet, wf);
    expect(maxDiff(a, b)).toBeLessThanOrEqual(1e-5);
    expect(maxDiff(a, await latents(separate, workflow([])))).toBeGreaterThan(1e-3); // the ControlNet acts
    const keys = inUNet.store.keys();
    expect(keys.filter((k) => k.startsWith('unet-cn|'))).toHaveLength(1);
    expect(keys.filter((k) => k.startsWith('controlnet|'))).toEqual([]);
    expect(keys.filter((k) => k.startsWith('unet|') && k.includes('|cn=1'))).toEqual([]);
    expect(separate.store.keys().filter((k) => k.startsWith('controlnet|'))).toHaveLength(1);
  }, 240_000);

  it('two ControlNets (one F16) with windows, one on the positive prompt only: the same latents', async () => {
    const wf = workflow([
      { net: 'fixture', strength: 0.8, start: 0, end: 0.5 },
      { net: 'half', strength: 1.2, start: 0.25, end: 1, both: false },
    ]);
    expect(maxDiff(await latents(separate, wf), await latents(inUNet, wf))).toBeLessThanOrEqual(1e-5);
    expect(inUNet.store.keys().filter((k) => k.startsWith('unet-cn|') && k.endsWith('|k=2'))).toHaveLength(1);
  }, 240_000);

  it('windows that leave steps without any ControlNet: those steps run the plain UNet; the same latents', async () => {
    const wf = workflow([
      { net: 'fixture', strength: 1, start: 0, end: 0.25 },
      { net: 'half', strength: 0.6, start: 0.75, end: 1 },
    ]);
    expect(maxDiff(await latents(separate, wf), await latents(inUNet, wf))).toBeLessThanOrEqual(1e-5);
    expect(inUNet.store.keys().filter((k) => k.startsWith('unet|') && k.includes('|cn=0'))).toHaveLength(1);
  }, 240_000);
});
