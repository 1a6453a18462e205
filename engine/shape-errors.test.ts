/**
 * Issue 13 item 4: a tensor with the right byte count but the wrong shape (its first two axes swapped
 * in the header, or halved and doubled; the bytes untouched) in each kind of model file fails the run on a node with
 * the sentence of models/shape-check.ts (or the loader's own), naming the file, the tensor and both
 * shapes, before any graph reaches ONNX Runtime. Through the real engine, examples and demo model set.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEvent, Workflow } from './api.js';
import { ensureDemoModels } from './demo/demo.js';
import { createEngine } from './engine.js';
import { parseWorkflow } from './workflow.js';
import { joinSafetensors, misshaped, reshapeTensor, splitSafetensors, tensorEntry } from '../test/helpers/corrupt.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-shapes-')));
const demo = ensureDemoModels(path.join(tmp, 'demo'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** An example with 2 sampler steps. */
function example(name: string): Workflow {
  const { workflow: wf } = parseWorkflow(JSON.parse(fs.readFileSync(path.join(root, 'examples', name), 'utf8')));
  for (const n of wf!.nodes) if ('steps' in n.params) n.params.steps = 2;
  return wf!;
}

/** Runs a bundled example on the models in `models` (no demo fallback); the run's result and its node errors. */
async function runOn(models: string, name: string): Promise<{ ok: boolean; errors: string[] }> {
  const engine = createEngine({ modelsDir: models, outputDir: path.join(models, 'out'), provider: 'cpu', userDataDir: path.join(models, 'user'), demo: false });
  const errors: string[] = [];
  engine.subscribe((e: RunEvent) => e.type === 'node-error' && errors.push(e.message));
  try {
    const r = await engine.run(example(name), { workflowDir: path.join(root, 'examples') });
    return { ok: r.ok, errors };
  } finally {
    await engine.close();
  }
}

const CK = 'checkpoints/stable-diffusion-v1-5';
const cases: { network: string; file: string; key: RegExp; example: string; says: RegExp; both?: boolean }[] = [
  {
    network: 'UNet',
    file: `${CK}/unet/diffusion_pytorch_model.safetensors`,
    key: /ff\.net\.0\.proj\.weight$/,
    example: 'image-prompt.json',
    says: /needs \[/,
    both: true,
  },
  {
    network: 'text encoder',
    file: `${CK}/text_encoder/model.safetensors`,
    key: /mlp\.fc2\.weight$/,
    example: 'image-prompt.json',
    says: /needs \[/,
    both: true,
  },
  {
    network: "checkpoint's VAE",
    file: `${CK}/vae/diffusion_pytorch_model.safetensors`,
    key: /^decoder\.up_blocks\.\d\.resnets\.\d\.conv1\.weight$|^decoder\.conv_in\.weight$/,
    example: 'image-prompt.json',
    says: /needs \[/,
    both: true,
  },
  {
    network: 'standalone VAE',
    file: 'vae/vae-ft-mse-840000-ema-pruned.safetensors',
    key: /^decoder\..*conv.*\.weight$/,
    example: 'custom-vae.json',
    says: /needs \[/,
  },
  {
    network: 'CLIP vision',
    file: 'clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K/model.safetensors',
    key: /mlp\.fc1\.weight$/,
    example: 'image-prompt.json',
    says: /needs \[/,
    both: true,
  },
  {
    network: 'IP-Adapter projection',
    file: 'ipadapter/ip-adapter_sd15.safetensors',
    key: /^image_proj\.proj\.weight$/,
    example: 'image-prompt.json',
    says: /tensor "image_proj\.proj\.(weight|bias)" has shape \[\d+(, \d+)?\], but the IP-Adapter image projection needs \[/,
  },
  { network: 'IP-Adapter layer', file: 'ipadapter/ip-adapter_sd15.safetensors', key: /to_k_ip\.weight$/, example: 'image-prompt.json', says: /to_k_ip/ },
  {
    network: 'ControlNet',
    file: 'controlnet/control_v11p_sd15_canny/diffusion_pytorch_model.safetensors',
    key: /^controlnet_cond_embedding\..*\.weight$/,
    example: 'ip-canny-controlnet.json',
    says: /does not match the config .*conditioning_embedding_out_channels/,
  },
  { network: 'LoRA', file: 'loras/add_detail.safetensors', key: /lora_down\.weight$/, example: 'image-prompt-lora.json', says: /does not fit/ },
];

describe('a right-byte-count, wrong-shape tensor', () => {
  for (const c of cases) {
    it(`in the ${c.network} file fails on a node naming the file, the tensor and both shapes`, async () => {
      const models = path.join(tmp, c.network.replace(/\W+/g, '-'));
      fs.cpSync(demo, models, { recursive: true });
      const file = path.join(models, c.file);
      const header = splitSafetensors(fs.readFileSync(file)).header;
      const key = Object.keys(header).find((k) => c.key.test(k) && tensorEntry(header, k).shape.length >= 2)!;
      expect(key).toBeDefined();
      const shape = tensorEntry(header, key).shape;
      reshapeTensor(file, key, misshaped(shape));
      const r = await runOn(models, c.example);
      expect(r.ok).toBe(false);
      expect(r.errors).toHaveLength(1);
      const msg = r.errors[0]!;
      expect(msg).toContain(path.basename(file));
      expect(msg).toMatch(c.says);
      expect(msg).not.toMatch(/onnxruntime|Non-zero status|MatMul|Gemm|Conv node|BigInt|Incompatible dimensions/i);
      if (c.both) {
        expect(msg).toContain(`tensor "${key}" has shape [${misshaped(shape).join(', ')}], but the`);
        expect(msg).toContain(`needs [${shape.join(', ')}] there`);
      }
    });
  }
});

describe('found by the fuzz run (scripts/fuzz.ts)', () => {
  const change = async (name: string, file: string, edit: (h: ReturnType<typeof splitSafetensors>['header']) => void, example_: string) => {
    const models = path.join(tmp, name);
    fs.cpSync(demo, models, { recursive: true });
    const f = path.join(models, file);
    const { header, data } = splitSafetensors(fs.readFileSync(f));
    edit(header);
    fs.writeFileSync(f, joinSafetensors(header, data));
    const r = await runOn(models, example_);
    expect(r.ok).toBe(false);
    return r.errors;
  };

  it('an IP-Adapter layer weight of one axis: the reader names the tensor, the node error the file too', async () => {
    const errors = await change(
      'ip-flat',
      'ipadapter/ip-adapter_sd15.safetensors',
      (h) => {
        const e = tensorEntry(h, 'ip_adapter.1.to_v_ip.weight');
        e.shape = [e.shape.reduce((a, d) => a * d, 1)];
      },
      'image-prompt.json',
    );
    expect(errors).toEqual([
      expect.stringMatching(/^ip-adapter_sd15\.safetensors: tensor "ip_adapter\.1\.to_v_ip\.weight" has shape \[\d+\], which has no axis 1/),
    ]);
  });

  it('a UNet tensor removed: the builder names the module, the node error the file too', async () => {
    const errors = await change(
      'unet-missing',
      'checkpoints/stable-diffusion-v1-5/unet/diffusion_pytorch_model.safetensors',
      (h) => {
        const k = Object.keys(h).find((x) => /attentions\.0\.transformer_blocks\.0\.norm1\.weight$/.test(x))!;
        delete h[k];
      },
      'image-prompt.json',
    );
    expect(errors).toEqual([expect.stringMatching(/^diffusion_pytorch_model\.safetensors: /)]);
  });
});
