/**
 * Apply IP-Adapter through the executor on the demo models: several adapters on one model (chained nodes,
 * different files), attention masks, the precise weight types' routing, the limit of the UNet graph, and what
 * never rebuilds the UNet. The formulas checked:
 *   Z = Attn(Q, K, V) + Σ_k λ_k · m_k ⊙ Attn(Q, K'_k, V'_k)
 *   - a second adapter at λ = 0 gives the one-adapter image bit for bit;
 *   - two copies of one adapter at λ/2 each give the adapter at λ (the same term twice, halved);
 *   - a mask of ones gives the unmasked image bit for bit;
 *   - precise routing sends zero tokens to the conditional half on its layers: without guidance (cfg 1, no
 *     unconditional half) 'style transfer precise' is 'style transfer' bit for bit, with guidance it differs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../engine/api.js';
import { DEMO_NAMES, ensureDemoModels } from '../engine/demo/demo.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { MAX_IP_ADAPTERS } from '../models/unet.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import type { LatentValue } from './values.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-apply-'));
const user = path.join(tmp, 'user');
let engine: Engine;
let second: string; // another adapter file (a copy of the demo adapter under another name)
const logs: { level: string; message: string }[] = [];
const png = (name: string, w: number, h: number, f: (x: number, y: number) => number) =>
  sharp(Buffer.from(Array.from({ length: w * h }, (_, i) => Array(3).fill(f(i % w, Math.floor(i / w)))).flat()), { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(path.join(tmp, name));

beforeAll(async () => {
  const demo = ensureDemoModels(path.join(user, 'demo-models'));
  second = path.join(demo, 'ipadapter', 'second-adapter.safetensors');
  fs.copyFileSync(path.join(demo, 'ipadapter', DEMO_NAMES.ipAdapter), second);
  engine = createEngine({ modelsDir: path.join(tmp, 'none'), outputDir: path.join(tmp, 'out'), provider: 'cpu', userDataDir: user, demo: true });
  engine.subscribe((e) => {
    if (e.type === 'log') logs.push({ level: e.level, message: e.message });
  });
  await png('white.png', 64, 64, () => 255);
  await png('black.png', 64, 64, () => 0);
  await png('left.png', 64, 64, (x) => (x < 32 ? 255 : 0));
  await png('wide.png', 64, 32, () => 255);
});
afterAll(async () => {
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const link = (wf: Workflow, a: string, ap: string, b: string, bp: string) => wf.edges.push({ from: { node: a, port: ap }, to: { node: b, port: bp } });
const params = (wf: Workflow, id: string) => wf.nodes.find((n) => n.id === id)!.params;

/** The demo image-prompt workflow (2 steps, preview), with `extra` more Apply IP-Adapter nodes chained after `apply`. */
function workflow(o: { extra?: { id: string; file: string; weight: number }[]; cfg?: number } = {}): Workflow {
  const wf = ipAdapterWorkflow({ image: IMAGE, steps: 2, output: 'preview', cfg: o.cfg });
  let last = 'apply';
  for (const a of o.extra ?? []) {
    wf.edges = wf.edges.filter((e) => !(e.from.node === last && e.to.node === 'sampler' && e.to.port === 'model'));
    wf.nodes.push({ id: `${a.id}_loader`, type: 'load-ip-adapter', params: { ipadapter_file: a.file } });
    wf.nodes.push({ id: `${a.id}_projection`, type: 'ip-adapter-projection', params: { combine: 'concat' } });
    wf.nodes.push({ id: a.id, type: 'apply-ip-adapter', params: { weight: a.weight, start_at: 0, end_at: 1 } });
    link(wf, `${a.id}_loader`, 'ip_adapter', `${a.id}_projection`, 'ip_adapter');
    link(wf, 'vision_encode', 'embeds', `${a.id}_projection`, 'embeds');
    link(wf, last, 'model', a.id, 'model');
    link(wf, `${a.id}_loader`, 'ip_adapter', a.id, 'ip_adapter');
    link(wf, `${a.id}_projection`, 'tokens', a.id, 'tokens');
    link(wf, a.id, 'model', 'sampler', 'model');
    last = a.id;
  }
  return wf;
}

/** Feeds `apply`'s mask input from a mask PNG (Load Image -> Image To Mask). */
function withMask(wf: Workflow, file: string, apply = 'apply'): Workflow {
  wf.nodes.push({ id: `${apply}_mask_image`, type: 'load-image', params: { image: path.join(tmp, file) } });
  wf.nodes.push({ id: `${apply}_mask`, type: 'image-to-mask', params: { channel: 'red' } });
  link(wf, `${apply}_mask_image`, 'image', `${apply}_mask`, 'image');
  link(wf, `${apply}_mask`, 'mask', apply, 'mask');
  return wf;
}

async function sample(wf: Workflow): Promise<Float32Array> {
  let latent: LatentValue | undefined;
  const r = await engine.run(wf, {
    onNodeOutputs: (node, out) => {
      if (node === 'sampler') latent = out.latent as LatentValue;
    },
  });
  expect(r.errors ?? [], JSON.stringify(r.errors)).toEqual([]);
  expect(r.error ?? '').toBe('');
  return latent!.samples;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const unetKeys = () => engine.store.keys().filter((k) => k.startsWith('unet|'));

describe('several adapters on one model', () => {
  it('stack: a second adapter file at λ = 0 changes nothing bit for bit; two copies at λ/2 equal one at λ', async () => {
    const single = workflow();
    params(single, 'apply').weight = 0.8;
    const a = await sample(single);
    const zero = workflow({ extra: [{ id: 'apply_2', file: second, weight: 0 }] });
    params(zero, 'apply').weight = 0.8;
    expect(Array.from(await sample(zero))).toEqual(Array.from(a));
    const halves = workflow({ extra: [{ id: 'apply_2', file: second, weight: 0.4 }] });
    params(halves, 'apply').weight = 0.4;
    const h = await sample(halves);
    expect(maxDiff(h, a)).toBeLessThan(1e-4);
    const other = workflow({ extra: [{ id: 'apply_2', file: second, weight: 0.9 }] });
    params(other, 'apply').weight = 0.4;
    expect(maxDiff(await sample(other), a)).toBeGreaterThan(1e-4);
  });

  it(`refuses a ${MAX_IP_ADAPTERS + 1}th adapter, naming the node`, async () => {
    const extra = Array.from({ length: MAX_IP_ADAPTERS }, (_, i) => ({
      id: `apply_${i + 2}`,
      file: i % 2 ? second : path.join(user, 'demo-models', 'ipadapter', DEMO_NAMES.ipAdapter),
      weight: 0.2,
    }));
    const r = await engine.run(workflow({ extra }));
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r.errors ?? r.error)).toMatch(
      new RegExp(`apply_${MAX_IP_ADAPTERS + 1}.*already has ${MAX_IP_ADAPTERS} IP-Adapters.*at most ${MAX_IP_ADAPTERS}`),
    );
  });

  it('changing λ, the window or the mask re-runs the sampler on the same UNet session', async () => {
    const wf = withMask(workflow({ extra: [{ id: 'apply_2', file: second, weight: 0.5 }] }), 'left.png', 'apply_2');
    await sample(wf);
    const keys = unetKeys();
    params(wf, 'apply_2').weight = 0.3;
    params(wf, 'apply').end_at = 0.5;
    await sample(wf);
    params(wf, 'apply_2_mask').invert = true;
    await sample(wf);
    expect(unetKeys()).toEqual(keys);
  });
});

describe('attention masks', () => {
  it('a mask of ones gives the unmasked image bit for bit; half a mask differs', async () => {
    const plain = await sample(workflow());
    expect(Array.from(await sample(withMask(workflow(), 'white.png')))).toEqual(Array.from(plain));
    expect(maxDiff(await sample(withMask(workflow(), 'left.png')), plain)).toBeGreaterThan(1e-5);
  });

  it('an empty mask is a warning naming the node; another aspect ratio is stretched with a notice', async () => {
    logs.length = 0;
    await sample(withMask(workflow(), 'black.png'));
    expect(logs.some((l) => l.level === 'warn' && /Apply IP-Adapter "apply".*mask is empty/.test(l.message))).toBe(true);
    logs.length = 0;
    await sample(withMask(workflow(), 'wide.png'));
    expect(
      logs.some((l) =>
        /Apply IP-Adapter "apply": the attention mask is 64x32, another aspect ratio than the 64x64 image; it is stretched to 32x32/.test(l.message),
      ),
    ).toBe(true);
  });
});

describe('precise weight types (routed tokens)', () => {
  it("without guidance 'style transfer precise' is 'style transfer' bit for bit (its routed layers give the conditional half zero tokens); with guidance it differs", async () => {
    const run = async (type: string, cfg: number) => {
      const wf = workflow({ cfg });
      params(wf, 'apply').weight_type = type;
      return sample(wf);
    };
    expect(Array.from(await run('style transfer precise', 1))).toEqual(Array.from(await run('style transfer', 1)));
    expect(maxDiff(await run('style transfer precise', 5), await run('style transfer', 5))).toBeGreaterThan(1e-5);
  });
});
