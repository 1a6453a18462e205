/**
 * Load LoRA through the executor on the demo model set (engine/demo: loras/add_detail.safetensors,
 * a kohya LoRA with conv layers on the demo UNet and text encoder): strength 0 is the workflow
 * without the node bit for bit; a strength_model change re-runs only the sampler side and builds no
 * UNet session, a strength_clip change only Text Encode and what follows; stacked LoRAs change the
 * result; unknown keys are reported by name in the log; an SDXL LoRA is refused on the node.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../engine/api.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { DEMO_NAMES } from '../engine/demo/demo.js';
import { SafetensorsFile, encodeSafetensors, readTensorF32, type TensorToWrite } from '../models/safetensors.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import type { LatentValue } from './values.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-lora-'));
let engine: Engine;
const events: RunEvent[] = [];

beforeAll(() => {
  fs.mkdirSync(path.join(tmp, 'empty-models'));
  engine = createEngine({ modelsDir: path.join(tmp, 'empty-models'), outputDir: path.join(tmp, 'out'), provider: 'cpu', userDataDir: path.join(tmp, 'user') });
  engine.subscribe((e) => events.push(e));
});
afterAll(async () => {
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const LORA = DEMO_NAMES.lora;
type LoraOpt = { file: string; strengthModel?: number; strengthClip?: number };
const wf = (loras?: LoraOpt[]) => ipAdapterWorkflow({ image: IMAGE, steps: 2, output: 'preview', loras });

/** Runs and returns the sampler's latents and the nodes that executed (not served from the cache). */
async function run(loras?: LoraOpt[]): Promise<{ latents: Float32Array; ran: string[] }> {
  const before = Object.fromEntries(engine.executor.executions);
  let latents: Float32Array | null = null;
  const r = await engine.run(wf(loras), {
    onNodeOutputs: (node, out) => {
      if (node === 'sampler') latents = (out.latent as LatentValue).samples;
    },
  });
  expect(r.ok, r.error).toBe(true);
  const after = Object.fromEntries(engine.executor.executions);
  return {
    latents: latents!,
    ran: Object.keys(after)
      .filter((k) => after[k] !== before[k])
      .sort(),
  };
}
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const unetLoads = () => [...engine.store.loads].filter(([k]) => k.startsWith('unet|')).reduce((a, [, n]) => a + n, 0);
const textLoads = () => [...engine.store.loads].filter(([k]) => k.startsWith('clip-text|')).reduce((a, [, n]) => a + n, 0);

describe('Load LoRA on the demo set', () => {
  let plain: Float32Array;

  it('strength 0 (model and clip) gives the workflow without Load LoRA bit for bit', async () => {
    plain = (await run()).latents;
    const zero = await run([{ file: LORA, strengthModel: 0, strengthClip: 0 }]);
    expect(same(zero.latents, plain)).toBe(true);
    const log = events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
    expect(
      log.some((m) => /Load LoRA \(lora_1\): add_detail\.safetensors \(kohya\): \d+ of \d+ keys matched, \d+ UNet and 12 text encoder modules$/.test(m)),
    ).toBe(true);
  });

  it('changing strength_model re-runs only the sampler side and builds no new UNet session', async () => {
    const a = await run([{ file: LORA, strengthModel: 0.8, strengthClip: 0 }]);
    expect(same(a.latents, plain)).toBe(false);
    const loads = unetLoads();
    const texts = textLoads();
    const b = await run([{ file: LORA, strengthModel: -0.5, strengthClip: 0 }]);
    expect(b.ran).toEqual(['apply', 'decode', 'lora_1', 'out', 'sampler']); // not Text Encode, CLIP Vision Encode, projection, loaders
    expect(same(b.latents, a.latents)).toBe(false);
    expect(unetLoads()).toBe(loads);
    expect(textLoads()).toBe(texts);
  });

  it('changing strength_clip re-runs Text Encode and what follows, with the same text encoder session', async () => {
    const texts = textLoads();
    const loads = unetLoads();
    const c = await run([{ file: LORA, strengthModel: -0.5, strengthClip: 0.7 }]);
    expect(c.ran).toEqual(['decode', 'lora_1', 'negative', 'out', 'positive', 'sampler']);
    const d = await run([{ file: LORA, strengthModel: -0.5, strengthClip: 1.2 }]);
    expect(d.ran).toEqual(['decode', 'lora_1', 'negative', 'out', 'positive', 'sampler']);
    expect(same(c.latents, d.latents)).toBe(false);
    expect(textLoads()).toBe(texts); // its graph was built with the LoRA at strength 0 already
    expect(unetLoads()).toBe(loads);
  });

  it('stacks: two Load LoRA nodes add their deltas (the same file twice = the summed strength)', async () => {
    const once = await run([{ file: LORA, strengthModel: 0.6, strengthClip: 0.4 }]);
    const twice = await run([
      { file: LORA, strengthModel: 0.2, strengthClip: 0.1 },
      { file: LORA, strengthModel: 0.4, strengthClip: 0.3 },
    ]);
    let maxErr = 0;
    for (let i = 0; i < once.latents.length; i++) maxErr = Math.max(maxErr, Math.abs(once.latents[i] - twice.latents[i]));
    expect(maxErr).toBeLessThan(1e-4);
  });

  it('reports the keys that match no layer by name, and refuses an SDXL LoRA on the node', async () => {
    const demoLora = SafetensorsFile.open(path.join(engine.modelsDir(), 'loras', LORA));
    const t: Record<string, TensorToWrite> = {};
    for (const k of demoLora.keys().slice(0, 6)) t[k] = { dtype: 'F32', shape: demoLora.get(k).shape, data: readTensorF32(demoLora.get(k)) };
    t['lora_unet_down_blocks_9_resnets_0_conv1.lora_down.weight'] = { dtype: 'F32', shape: [4, 4], data: new Float32Array(16) };
    t['lora_te_text_model_encoder_layers_0_mlp_fc1.dora_scale'] = { dtype: 'F32', shape: [1, 32], data: new Float32Array(32) };
    const extra = path.join(tmp, 'extra-keys.safetensors');
    fs.writeFileSync(extra, encodeSafetensors(t));
    const n = events.length;
    const r = await engine.run(wf([{ file: extra, strengthModel: 1, strengthClip: 1 }]));
    expect(r.ok, r.error).toBe(true);
    const warn = events.slice(n).find((e) => e.type === 'log' && e.level === 'warn') as { message: string } | undefined;
    expect(warn?.message).toMatch(
      /extra-keys\.safetensors \(kohya\): 6 of 8 keys matched.*2 key\(s\) match no module of the model and are not applied: .*lora_unet_down_blocks_9_resnets_0_conv1\.lora_down\.weight/,
    );
    expect(warn?.message).toMatch(/dora_scale/);

    const sdxl = path.join(tmp, 'sdxl-lora.safetensors');
    fs.writeFileSync(
      sdxl,
      encodeSafetensors({
        'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight': {
          dtype: 'F16',
          shape: [4, 2048],
          data: new Uint16Array(4 * 2048),
        },
        'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight': {
          dtype: 'F16',
          shape: [640, 4],
          data: new Uint16Array(640 * 4),
        },
      }),
    );
    const bad = await engine.run(wf([{ file: sdxl }]));
    expect(bad.ok).toBe(false);
    expect(bad.error).toMatch(
      /Load LoRA \(lora_1\): the LoRA sdxl-lora\.safetensors does not fit stable-diffusion-v1-5: .*attn2\.to_k is \[32,32\].*\[4,2048\].*SDXL/,
    );
    // The engine runs the next workflow normally.
    expect((await run()).latents).toEqual(plain);
  });
});
