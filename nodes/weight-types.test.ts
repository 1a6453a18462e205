/**
 * Apply IP-Adapter's weight types through the engine (demo models, 2 DDIM steps): the formulas themselves are
 * checked in models/ip-adapter-layer-scales.test.ts; here, that the sampler feeds them as defined.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../engine/api.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import type { LatentValue } from './values.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-weight-types-'));
let engine: Engine;

beforeAll(() => {
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

/** The demo image-prompt workflow's sampler latents for Apply IP-Adapter's params `p`. */
async function latents(p: Record<string, string | number>, cfg = 7.5): Promise<Float32Array> {
  const wf: Workflow = ipAdapterWorkflow({ image: IMAGE, steps: 2, cfg, output: 'preview' });
  Object.assign(wf.nodes.find((n) => n.id === 'apply')!.params, p);
  let latent: LatentValue | undefined;
  const r = await engine.run(wf, { onNodeOutputs: (node, out) => node === 'sampler' && (latent = out.latent as LatentValue) });
  expect(r.errors ?? [], JSON.stringify(r.errors)).toEqual([]);
  expect(r.error ?? '').toBe('');
  return latent!.samples;
}

// The demo UNet's 11 cross-attention transformers in execution order (its transformer_index):
// 0-1 down_blocks.1, 2-3 down_blocks.2 (the composition layers), 4 mid, 5-7 up_blocks.1, 8-10 up_blocks.2.
describe('weight types through the executor', () => {
  it('a type whose factors are all 1 is the scalar λ, bit for bit (linear; layer weights of ones over any non-precise type)', async () => {
    const scalar = await latents({ weight: 0.7, weight_type: 'linear' });
    expect(await latents({ weight: 0.7, weight_type: 'ease in', layer_weights: Array(11).fill(1).join(', ') })).toEqual(scalar);
    expect(await latents({ weight: 0.7, weight_type: 'strong middle', layer_weights: Array(11).fill(1).join(', ') })).toEqual(scalar);
    expect(await latents({ weight: 0.7, weight_type: 'ease out' })).not.toEqual(scalar);
  });

  it('composition acts on the composition layers only: the style layers see no image (= λ only on down_blocks.2, at λ/4 and λ)', async () => {
    const comp = await latents({ weight: 1.5, weight_type: 'composition' });
    expect(await latents({ weight: 1.5, weight_type: 'linear', layer_weights: 'down_blocks.2.attentions.0:0.25, down_blocks.2.attentions.1:1' })).toEqual(comp);
    expect(comp).not.toEqual(await latents({ weight: 0 }));
    expect(comp).not.toEqual(await latents({ weight: 1.5, weight_type: 'style transfer' }));
  });

  it('style transfer is λ on every layer but down_blocks.2 and the mid block (ComfyUI: all but transformer_index 4-8 of SD1.5)', async () => {
    const style = await latents({ weight: 0.9, weight_type: 'style transfer' });
    const lw = ['down_blocks.1:1', 'up_blocks.1.attentions.2:1', 'up_blocks.2:1'].join(', ');
    expect(await latents({ weight: 0.9, layer_weights: lw })).toEqual(style);
  });

  it('the precise types give their plain type without guidance (the routed conditional branch attends to zero tokens: it adds exactly 0) and differ with it', async () => {
    expect(await latents({ weight_type: 'style transfer precise' }, 1)).toEqual(await latents({ weight_type: 'style transfer' }, 1));
    expect(await latents({ weight_type: 'composition precise' }, 1)).toEqual(await latents({ weight_type: 'composition' }, 1));
    expect(await latents({ weight_type: 'style transfer precise' })).not.toEqual(await latents({ weight_type: 'style transfer' }));
  });

  it('style and composition: weight_composition weighs the composition layers (same tokens when none are connected)', async () => {
    const sc = await latents({ weight: 0.8, weight_type: 'style and composition', weight_composition: 1.2 });
    const lw = [
      'down_blocks.1:1',
      'up_blocks.1.attentions.2:1',
      'up_blocks.2:1',
      `down_blocks.2.attentions.0:${0.3 / 0.8}`,
      `down_blocks.2.attentions.1:${1.2 / 0.8}`,
    ];
    const same = await latents({ weight: 0.8, layer_weights: lw.join(', ') });
    // λ·(wc/λ) is wc up to one rounding; compare closely, and against style transfer exactly where nothing differs.
    sc.forEach((v, i) => expect(v).toBeCloseTo(same[i]!, 5));
    expect(sc).not.toEqual(await latents({ weight: 0.8, weight_type: 'style transfer' }));
  });
});
