/**
 * Issue 13 item 10: NaN / Inf weights and float data labelled as another type of the same size are
 * named on their loader node (a sampled look at every tensor, models/weight-sanity.ts), and an image
 * decoded to NaN / Inf everywhere is named on VAE Decode, instead of a black image without a word.
 * Through the real engine and the demo model set; the reference fixtures' files give no warning.
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
import { weightValueProblem } from '../models/weight-sanity.js';
import { fillTensor, joinSafetensors, splitSafetensors, tensorEntry } from '../test/helpers/corrupt.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-weight-values-')));
const demo = ensureDemoModels(path.join(tmp, 'demo'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function example(name: string): Workflow {
  const { workflow } = parseWorkflow(JSON.parse(fs.readFileSync(path.join(root, 'examples', name), 'utf8')));
  for (const n of workflow!.nodes) if ('steps' in n.params) n.params.steps = 2;
  return workflow!;
}

/** Runs `example` on a copy of the demo set changed by `change`; the warnings and the outcome. */
async function runWith(name: string, example_: string, change: (models: string) => void) {
  const models = path.join(tmp, name);
  fs.cpSync(demo, models, { recursive: true });
  change(models);
  const engine = createEngine({ modelsDir: models, outputDir: path.join(models, 'out'), provider: 'cpu', userDataDir: path.join(models, 'user'), demo: false });
  const warnings: string[] = [];
  engine.subscribe((e: RunEvent) => e.type === 'log' && e.level === 'warn' && warnings.push(e.message));
  try {
    const r = await engine.run(example(example_), { workflowDir: path.join(root, 'examples') });
    return { r, warnings };
  } finally {
    await engine.close();
  }
}

const UNET = 'checkpoints/stable-diffusion-v1-5/unet/diffusion_pytorch_model.safetensors';

describe('weight values', () => {
  it('the demo set runs without a warning about its weights', async () => {
    const { r, warnings } = await runWith('clean', 'image-prompt.json', () => {});
    expect(r.ok).toBe(true);
    expect(warnings.filter((w) => /NaN|not weights|labelled/.test(w))).toEqual([]);
  });

  it('NaN weights in the UNet: Load Checkpoint names the file and tensor, VAE Decode says the image is all NaN', async () => {
    const { r, warnings } = await runWith('nan-unet', 'image-prompt.json', (m) => fillTensor(path.join(m, UNET), 'conv_in.weight', NaN));
    expect(r.ok).toBe(true); // a warning, not a refusal: the user sees why the image is black
    expect(warnings).toContainEqual(
      expect.stringMatching(
        /^Load Checkpoint \(\w+\): diffusion_pytorch_model\.safetensors: tensor "conv_in\.weight" holds NaN or infinite values \(\d+ of \d+ sampled\)/,
      ),
    );
    expect(warnings).toContainEqual(expect.stringMatching(/^VAE Decode \(\w+\): every value of the decoded image is NaN or infinite/));
  });

  it('float32 data labelled I32 in a standalone VAE: Load VAE names the tensor', async () => {
    const { warnings } = await runWith('relabelled-vae', 'custom-vae.json', (m) => {
      const file = path.join(m, 'vae', 'vae-ft-mse-840000-ema-pruned.safetensors');
      const { header, data } = splitSafetensors(fs.readFileSync(file));
      tensorEntry(header, 'decoder.conv_out.weight').dtype = 'I32';
      fs.writeFileSync(file, joinSafetensors(header, data));
    });
    expect(warnings).toContainEqual(
      expect.stringMatching(
        /^Load VAE \(\w+\): vae-ft-mse-840000-ema-pruned\.safetensors: tensor "decoder\.conv_out\.weight" is labelled I32 but holds values of about/,
      ),
    );
  });

  it('F16 data labelled BF16, and Inf values, are named; a zero tensor is not', () => {
    const file = path.join(tmp, 'mixed.safetensors');
    const f16 = Buffer.alloc(64 * 2);
    for (let i = 0; i < 64; i++) f16.writeUInt16LE(0x211f, i * 2); // 0.01 as F16 = about 5e-19 read as BF16
    const zeros = Buffer.alloc(64 * 4);
    fs.writeFileSync(
      file,
      joinSafetensors(
        { a_zero: { dtype: 'F32', shape: [64], data_offsets: [0, 256] }, b_relabelled: { dtype: 'BF16', shape: [64], data_offsets: [256, 384] } },
        Buffer.concat([zeros, f16]),
      ),
    );
    expect(weightValueProblem(file)).toMatch(
      /^mixed\.safetensors: tensor "b_relabelled" holds values of about \d\.\de-19, not weights: its data is likely of another type than its BF16 label/,
    );
    fillTensor(file, 'a_zero', Infinity);
    expect(weightValueProblem(file)).toMatch(/tensor "a_zero" holds NaN or infinite values .*\(and 1 more tensor\)/);
  });

  it("the reference fixtures' model files give no warning", () => {
    const files: string[] = [];
    for (const name of ['tiny-sd15', 'model-files']) {
      const dir = fixtureFolder(name);
      if (!dir || !fs.existsSync(dir)) continue;
      const walk = (d: string) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, e.name);
          if (e.isDirectory() && e.name !== 'malicious' && e.name !== 'cases') walk(p);
          else if (e.isFile() && /\.(safetensors|ckpt|bin|pt|pth)$/.test(e.name)) files.push(p);
        }
      };
      walk(dir);
    }
    const problems = files.map((f) => weightValueProblem(f)).filter(Boolean);
    expect(problems).toEqual([]);
  });
});
