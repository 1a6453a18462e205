/**
 * Load VAE through the engine, from workflow JSON, on the reference fixture files: the standalone
 * VAE of model-files reproduces its standalone_vae reference through VAE Decode; a checkpoint
 * shipped without a VAE (the tiny-sd15 single file with its first_stage_model.* keys dropped, as
 * .safetensors and as a torch.save .ckpt) runs with a Load VAE node, and without one fails on the
 * VAE node with "add a Load VAE node", naming the checkpoint's node; the next run works.
 * Runs take the case's explicit initial latents through the engine's noise hook.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../engine/api.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { TensorSpec, torchZip, type StorageSpec } from '../models/pickle/testing.js';
import { SafetensorsFile, encodeSafetensors, readTensorBytes, readTensorF32, type TensorToWrite } from '../models/safetensors.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import type { ImageValue } from './values.js';

const base = fixtureFolder('tiny-sd15');
const files = fixtureFolder('model-files');
const have = fs.existsSync(path.join(base, 'checkpoint-ldm.safetensors')) && fs.existsSync(path.join(files, 'cases', 'standalone_vae.safetensors'));

describe.skipIf(!have)('Load VAE through the executor (reference fixtures)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-load-vae-'));
  const models = path.join(tmp, 'models');
  const noVae = { st: path.join(models, 'checkpoints', 'no-vae.safetensors'), ckpt: path.join(models, 'checkpoints', 'no-vae-pickle.ckpt') };
  const diffusers = path.join(base, 'diffusers');
  const ldmVae = path.join(files, 'vae', 'vae-ft-mse-tiny.safetensors');
  let engine: Engine;
  let ref: { latents: Float32Array; image: Float32Array };

  beforeAll(() => {
    // The single-file checkpoint without its VAE, as safetensors and as a torch.save zip (.ckpt, state_dict-wrapped).
    const ck = SafetensorsFile.open(path.join(base, 'checkpoint-ldm.safetensors'));
    const kept = ck.keys().filter((k) => !k.startsWith('first_stage_model.'));
    expect(kept.length).toBeLessThan(ck.keys().length);
    const tensors: Record<string, TensorToWrite> = {};
    const storages: Record<string, StorageSpec> = {};
    const stateDict: Record<string, TensorSpec> = {};
    kept.forEach((k, i) => {
      const r = ck.get(k);
      expect(r.dtype).toBe('F32');
      tensors[k] = { dtype: 'F32', shape: r.shape, data: readTensorF32(r) };
      storages[String(i)] = { dtype: 'F32', bytes: readTensorBytes(r) };
      stateDict[k] = new TensorSpec(String(i), r.shape);
    });
    fs.mkdirSync(path.dirname(noVae.st), { recursive: true });
    fs.writeFileSync(noVae.st, encodeSafetensors(tensors));
    fs.writeFileSync(noVae.ckpt, torchZip({ state_dict: stateDict, global_step: 1 }, storages, 'no-vae-pickle'));
    engine = createEngine({ modelsDir: models, outputDir: path.join(tmp, 'out'), provider: 'cpu', userDataDir: path.join(tmp, 'user'), demo: false });
    const cases = SafetensorsFile.open(path.join(files, 'cases', 'standalone_vae.safetensors'));
    ref = { latents: readTensorF32(cases.get('txt2img.latents')), image: readTensorF32(cases.get('txt2img.image')) };
  });
  afterAll(async () => {
    await engine.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** standalone_vae/txt2img as a user wires it: base models, IP-Adapter λ 0.6, 6 DDIM steps, 128x128. */
  const txt2img = (checkpoint: string, vae?: { file: string; config?: string }): Workflow =>
    ipAdapterWorkflow({
      image: path.join(files, 'cases', 'ip_landscape_300x200.png'),
      prompt: 'a photo of a cat',
      negative: '',
      weight: 0.6,
      steps: 6,
      cfg: 7.5,
      width: 128,
      height: 128,
      checkpoint,
      checkpointConfig: checkpoint === diffusers ? undefined : diffusers,
      clipVision: path.join(base, 'image_encoder'),
      ipAdapter: path.join(base, 'ip-adapter_sd15-tiny.safetensors'),
      output: 'preview',
      vae,
    });

  /** Runs with the case's initial latents; returns the result and VAE Decode's image. */
  async function run(wf: Workflow) {
    let image: Float32Array | undefined;
    const r = await engine.run(wf, {
      noise: (req) => {
        if (req.purpose !== 'latents') throw new Error(`unexpected ${req.purpose} draw`);
        return ref.latents.slice();
      },
      onNodeOutputs: (node, out) => {
        if (node === 'decode') image = (out.image as ImageValue).data;
      },
    });
    return { r, image };
  }
  const maxErr = (a: Float32Array | undefined, b: Float32Array) =>
    a && a.length === b.length ? a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0) : Infinity;

  it('VAE Decode with Load VAE on the standalone LDM file (config: the base pipeline) equals the standalone_vae reference', async () => {
    const { r, image } = await run(txt2img(diffusers, { file: ldmVae, config: diffusers }));
    expect(r.error ?? '').toBe('');
    expect(maxErr(image, ref.image)).toBeLessThan(2e-3);
    // The same workflow with the checkpoint's own VAE decodes differently: Load VAE was used.
    const own = await run(txt2img(diffusers));
    expect(own.r.ok).toBe(true);
    expect(maxErr(own.image, ref.image)).toBeGreaterThan(0.05);
  });

  it('the diffusers VAE folder gives the same image (its own config.json)', async () => {
    const { r, image } = await run(txt2img(diffusers, { file: path.join(files, 'vae', 'sd-vae-ft-mse-tiny') }));
    expect(r.error ?? '').toBe('');
    expect(maxErr(image, ref.image)).toBeLessThan(2e-3);
  });

  for (const kind of ['st', 'ckpt'] as const) {
    it(`a checkpoint without a VAE (${kind === 'st' ? '.safetensors' : '.ckpt pickle'}) runs with Load VAE, and without it fails naming the node, then runs again`, async () => {
      const ok = await run(txt2img(noVae[kind], { file: ldmVae, config: diffusers }));
      expect(ok.r.error ?? '').toBe('');
      expect(maxErr(ok.image, ref.image)).toBeLessThan(2e-3); // UNet and text encoder of the file (the .ckpt's through the pickle reader)

      const bad = await run(txt2img(noVae[kind]));
      expect(bad.r.ok).toBe(false);
      const name = path.basename(noVae[kind]).replace(/\./g, '\\.');
      expect(bad.r.error).toMatch(
        new RegExp(`^VAE Decode \\(decode\\): the checkpoint ${name} \\(loaded by Load Checkpoint "checkpoint"\\) has no VAE .*add a Load VAE node`),
      );

      // VAE Encode fed by the checkpoint's VAE says the same.
      const img2img = txt2img(noVae[kind]);
      img2img.nodes = img2img.nodes.filter((n) => n.id !== 'latent');
      img2img.nodes.push(
        { id: 'init', type: 'load-image', params: { image: path.join(files, 'cases', 'init_128.png') } },
        { id: 'encode', type: 'vae-encode', params: { mode: 'mean', seed: 0 } },
      );
      img2img.edges = img2img.edges.filter((e) => e.from.node !== 'latent');
      img2img.edges.push(
        { from: { node: 'init', port: 'image' }, to: { node: 'encode', port: 'pixels' } },
        { from: { node: 'checkpoint', port: 'vae' }, to: { node: 'encode', port: 'vae' } },
        { from: { node: 'encode', port: 'latent' }, to: { node: 'sampler', port: 'latent' } },
      );
      const enc = await engine.run(img2img);
      expect(enc.error).toMatch(/^VAE Encode \(encode\): the checkpoint .* has no VAE .*add a Load VAE node/);

      const again = await run(txt2img(noVae[kind], { file: path.join(files, 'pickles', 'vae-ft-mse-tiny.ckpt'), config: diffusers }));
      expect(again.r.error ?? '').toBe('');
      expect(maxErr(again.image, ref.image)).toBeLessThan(2e-3);
    });
  }

  it('Load VAE refuses a file that is not a VAE, and a single tiny file without its config, on its own node', async () => {
    const lora = await engine.run(txt2img(diffusers, { file: path.join(files, 'loras', 'kohya-lora-tiny.safetensors') }));
    expect(lora.error).toMatch(/^Load VAE \(vae\): kohya-lora-tiny\.safetensors: not a VAE/);
    const noConfig = await engine.run(txt2img(diffusers, { file: ldmVae }));
    expect(noConfig.error).toMatch(
      /^Load VAE \(vae\): vae-ft-mse-tiny\.safetensors: its block widths \[8,16,32,32\] are not multiples of SD1\.5's 32 norm groups.*"config" param/,
    );
  });
});
