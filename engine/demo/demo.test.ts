/**
 * The demo model set: its files have the real layouts (parameter lists equal to the reference
 * fixtures' files for the same configs), generation is deterministic, and every example in
 * examples/ validates and runs end to end on it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../models/safetensors.js';
import { clipTextShapes, clipVisionShapes, ipAdapterShapes, ldmVaeShapes, type Shapes } from './weights.js';
import { parseVaeConfig, vaeParameterShapes } from '../../models/vae.js';
import { DEMO_NAMES, ensureDemoModels } from './demo.js';
import { createEngine } from '../engine.js';
import { parseWorkflow } from '../workflow.js';
import { crossAttnLayers, readUNetConfig } from '../../models/unet-config.js';
import { fixtureFolder } from '../../test/helpers/fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = fixtureFolder('tiny-sd15');
const haveFixtures = fs.existsSync(path.join(fixtures, 'cases', 'cases.json'));

function fileShapes(file: string): Shapes {
  const st = SafetensorsFile.open(file);
  return new Map(st.keys().map((k) => [k, st.get(k).shape]));
}
const sorted = (m: Shapes) => [...m].sort(([a], [b]) => a.localeCompare(b));

describe.skipIf(!haveFixtures)('demo parameter lists equal the reference files', () => {
  const cfg = (p: string) => JSON.parse(fs.readFileSync(path.join(fixtures, p), 'utf8'));
  it('CLIP text encoder', () => {
    const c = cfg('diffusers/text_encoder/config.json');
    const mine = clipTextShapes({
      vocab: c.vocab_size,
      positions: c.max_position_embeddings,
      hidden: c.hidden_size,
      inner: c.intermediate_size,
      layers: c.num_hidden_layers,
    });
    expect(sorted(mine)).toEqual(sorted(fileShapes(path.join(fixtures, 'diffusers/text_encoder/model.safetensors'))));
  });
  it('CLIP vision encoder with projection', () => {
    const c = cfg('image_encoder/config.json');
    const mine = clipVisionShapes({
      hidden: c.hidden_size,
      inner: c.intermediate_size,
      layers: c.num_hidden_layers,
      imageSize: c.image_size,
      patch: c.patch_size,
      projection: c.projection_dim,
    });
    expect(sorted(mine)).toEqual(sorted(fileShapes(path.join(fixtures, 'image_encoder/model.safetensors'))));
  });
  it('VAE', () => {
    const c = cfg('diffusers/vae/config.json');
    const mine = vaeParameterShapes(parseVaeConfig(c));
    expect(sorted(mine)).toEqual(sorted(fileShapes(path.join(fixtures, 'diffusers/vae/diffusion_pytorch_model.safetensors'))));
  });
  const modelFiles = fixtureFolder('model-files');
  it.skipIf(!fs.existsSync(path.join(modelFiles, 'vae', 'vae-ft-mse-tiny.safetensors')))(
    'standalone VAE in the original layout (model-files vae-ft-mse-tiny: no prefix, [C,C,1,1] attention)',
    () => {
      const mine = ldmVaeShapes(vaeParameterShapes(parseVaeConfig(cfg('diffusers/vae/config.json'))));
      expect(sorted(mine)).toEqual(sorted(fileShapes(path.join(modelFiles, 'vae', 'vae-ft-mse-tiny.safetensors'))));
    },
  );
  it('IP-Adapter (h94 layout)', () => {
    const unet = readUNetConfig(path.join(fixtures, 'diffusers/unet/config.json'));
    const mine = ipAdapterShapes({
      embedDim: 32,
      crossDim: unet.crossAttentionDim,
      tokens: 4,
      layers: crossAttnLayers(unet).map((l) => ({ index: l.index, hidden: l.hiddenSize })),
    });
    expect(sorted(mine)).toEqual(sorted(fileShapes(path.join(fixtures, 'ip-adapter_sd15-tiny.safetensors'))));
  });
});

describe('demo model set', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-demo-'));
  const engine = createEngine({
    modelsDir: path.join(tmp, 'none'),
    outputDir: path.join(tmp, 'out'),
    provider: 'cpu',
    userDataDir: path.join(tmp, 'user'),
    demo: true,
  });
  afterAll(() => engine.close());

  it('is generated deterministically', () => {
    const a = ensureDemoModels(path.join(tmp, 'a'));
    const b = ensureDemoModels(path.join(tmp, 'b'));
    for (const rel of [`ipadapter/${DEMO_NAMES.ipAdapter}`, `vae/${DEMO_NAMES.vae}`]) {
      expect(fs.readFileSync(path.join(a, rel)).equals(fs.readFileSync(path.join(b, rel))), rel).toBe(true);
    }
    expect(fs.readFileSync(path.join(a, 'README.txt'), 'utf8')).toMatch(/draw noise/);
  });

  const examples = fs.readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.json'));
  it("has two ControlNets (diffusers folders), so the ControlNet examples and the editor's ControlNet slot run", async () => {
    expect((await engine.listModels()).controlnet).toEqual([DEMO_NAMES.controlnetCanny, DEMO_NAMES.controlnetLineart]);
  });

  it('has the examples', () => {
    expect(examples.sort()).toEqual(
      expect.arrayContaining([
        'image-and-text.json',
        'image-prompt.json',
        'img2img-image-prompt.json',
        'lambda-sweep.json',
        'ip-canny-controlnet.json',
        'ip-two-controlnets.json',
        'inpaint-image-prompt.json',
        'style-transfer.json',
        'custom-vae.json',
        'image-prompt-dpmpp-2m-karras.json',
        'image-prompt-euler-a.json',
      ]),
    );
  });

  // Each example end to end (with 2 sampler steps, to keep the test short; the CLI runs them in full).
  for (const f of examples) {
    it(`runs examples/${f} end to end`, async () => {
      const file = path.join(root, 'examples', f);
      const wf = parseWorkflow(JSON.parse(fs.readFileSync(file, 'utf8'))).workflow!;
      for (const n of wf.nodes) if (['ddim-sampler', 'ksampler', 'ksampler-advanced'].includes(n.type)) n.params = { ...n.params, steps: 2 };
      const r = await engine.run(wf, { workflowDir: path.dirname(file) });
      expect(r.errors ?? [], JSON.stringify(r.errors)).toEqual([]);
      expect(r.ok, r.error).toBe(true);
      expect(r.images.length).toBeGreaterThan(0);
      for (const img of r.images) expect(fs.existsSync(img.path)).toBe(true);
    });
  }
});
