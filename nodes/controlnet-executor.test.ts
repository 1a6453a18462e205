/**
 * ControlNets through the engine (workflow JSON -> executor -> sampler), on the demo models:
 * a ControlNet made for other block widths is refused on the sampler with a sentence naming both
 * files and both widths (and the engine serves the next run), and several ControlNets are summed
 * inside the sampler (diffusers MultiControlNetModel). Each run is 2 DDIM steps at 64x64.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlNetParameterShapes } from '../models/controlnet.js';
import { parseControlNetConfig } from '../models/controlnet-load.js';
import type { RunEvent, Workflow } from '../engine/api.js';
import { DEMO_NAMES, DEMO_UNET_CONFIG } from '../engine/demo/demo.js';
import { randomSafetensors } from '../engine/demo/weights.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const CONTROL = path.join(root, 'examples', 'images', 'init.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-cn-exec-'));
let engine: Engine;

/**
 * A ControlNet for another base: the demo UNet's block types and context width, but half its
 * block widths, so only the width check can refuse it.
 */
const NARROW_WIDTHS = [8, 16, 16, 16];
const NARROW = path.join(tmp, 'controlnet', 'control_narrow');

beforeAll(() => {
  engine = createEngine({
    modelsDir: path.join(tmp, 'none'),
    outputDir: path.join(tmp, 'out'),
    provider: 'cpu',
    userDataDir: path.join(tmp, 'user'),
    demo: true,
  });
  const cfg = {
    _class_name: 'ControlNetModel',
    in_channels: 4,
    conditioning_channels: 3,
    flip_sin_to_cos: true,
    freq_shift: 0,
    down_block_types: DEMO_UNET_CONFIG.down_block_types,
    block_out_channels: NARROW_WIDTHS,
    layers_per_block: 2,
    downsample_padding: 1,
    mid_block_scale_factor: 1,
    act_fn: 'silu',
    norm_num_groups: 8,
    norm_eps: 1e-5,
    cross_attention_dim: DEMO_UNET_CONFIG.cross_attention_dim,
    attention_head_dim: 1,
    use_linear_projection: false,
    conditioning_embedding_out_channels: [8, 8, 16, 16],
  };
  fs.mkdirSync(NARROW, { recursive: true });
  fs.writeFileSync(path.join(NARROW, 'config.json'), JSON.stringify(cfg));
  fs.writeFileSync(
    path.join(NARROW, 'diffusion_pytorch_model.safetensors'),
    randomSafetensors(controlNetParameterShapes(parseControlNetConfig(cfg, 'narrow')), 77),
  );
});
afterAll(async () => {
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const link = (wf: Workflow, a: string, ap: string, b: string, bp: string) => wf.edges.push({ from: { node: a, port: ap }, to: { node: b, port: bp } });

/**
 * The demo image-prompt workflow (2 steps, preview) with a chain of Apply ControlNet on BOTH
 * prompts, in order: each entry names a ControlNet (demo name or path) and its strength. The
 * control image is examples/images/init.png for all of them.
 */
function withControls(chain: { net: string; strength: number }[]): Workflow {
  const wf = ipAdapterWorkflow({ image: IMAGE, steps: 2, output: 'preview' });
  wf.nodes.push({ id: 'control_image', type: 'load-image', params: { image: CONTROL } });
  const loaders = new Map<string, string>();
  for (const { net } of chain) {
    if (loaders.has(net)) continue;
    const id = `cn_load_${loaders.size}`;
    loaders.set(net, id);
    wf.nodes.push({ id, type: 'load-controlnet', params: { control_net_name: net } });
  }
  for (const which of ['positive', 'negative']) {
    wf.edges = wf.edges.filter((e) => !(e.from.node === which && e.to.node === 'sampler'));
    let prev = which;
    chain.forEach(({ net, strength }, k) => {
      const id = `cn_${which}_${k}`;
      wf.nodes.push({ id, type: 'apply-controlnet', params: { strength, start: 0, end: 1 } });
      link(wf, prev, 'conditioning', id, 'conditioning');
      link(wf, loaders.get(net)!, 'control_net', id, 'control_net');
      link(wf, 'control_image', 'image', id, 'image');
      prev = id;
    });
    link(wf, prev, 'conditioning', 'sampler', which);
  }
  return wf;
}

/**
 * Runs a workflow; gives the latents after each sampler step and the node-error events. Cached
 * node outputs are forgotten first, so the sampler always runs (and traces its steps).
 */
async function run(wf: Workflow): Promise<{ ok: boolean; error?: string; steps: Float32Array[]; nodeErrors: { node: string; message: string }[] }> {
  const steps: Float32Array[] = [];
  const nodeErrors: { node: string; message: string }[] = [];
  const off = engine.subscribe((e: RunEvent) => {
    if (e.type === 'node-error') nodeErrors.push({ node: e.node, message: e.message });
  });
  engine.executor.clearCache();
  try {
    const r = await engine.run(wf, {
      trace: (t) => {
        if (t.node === 'sampler' && t.name === 'latents_after_step') steps[t.step!] = Float32Array.from(t.data);
      },
    });
    return { ok: r.ok, error: r.error, steps, nodeErrors };
  } finally {
    off();
  }
}

const maxDiff = (a: Float32Array[], b: Float32Array[]) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  a.forEach((s, i) => {
    for (let j = 0; j < s.length; j++) m = Math.max(m, Math.abs(s[j] - b[i][j]));
  });
  return m;
};

describe('ControlNet through the engine (demo models)', () => {
  it('refuses a ControlNet made for other block widths on the sampler, naming both files and widths; the next run is served', async () => {
    const bad = await run(withControls([{ net: NARROW, strength: 1 }]));
    expect(bad.ok).toBe(false);
    // The sampler is the first node that knows both the checkpoint and the ControlNet.
    expect(bad.nodeErrors.map((e) => e.node)).toEqual(['sampler']);
    expect(bad.error).toMatch(/^DDIM Sampler \(sampler\): /);
    const msg = bad.nodeErrors[0].message;
    expect(msg).toContain('ControlNet control_narrow');
    expect(msg).toContain(`checkpoint ${DEMO_NAMES.checkpoint}`);
    expect(msg).toContain(`[${NARROW_WIDTHS}]`);
    expect(msg).toContain(`[${DEMO_UNET_CONFIG.block_out_channels}]`);
    expect(bad.steps).toHaveLength(0); // refused before any step
    // ... and before the UNet built with residual inputs was loaded (only file headers were read).
    expect(engine.store.keys().filter((k) => k.startsWith('unet|') && k.endsWith('cn=1'))).toEqual([]);

    const good = await run(withControls([{ net: DEMO_NAMES.controlnetCanny, strength: 1 }]));
    expect(good.error ?? '').toBe('');
    expect(good.ok).toBe(true);
    expect(good.steps).toHaveLength(2);
    expect(good.nodeErrors).toEqual([]);
  }, 60_000);

  it('sums several ControlNets: two at strength 0.5 equal one at 1.0; two different ones differ from each alone', async () => {
    const canny = DEMO_NAMES.controlnetCanny;
    const lineart = DEMO_NAMES.controlnetLineart;
    const one = await run(withControls([{ net: canny, strength: 1 }]));
    const halves = await run(
      withControls([
        { net: canny, strength: 0.5 },
        { net: canny, strength: 0.5 },
      ]),
    );
    const none = await run(withControls([]));
    for (const r of [one, halves, none]) expect(r.error ?? '').toBe('');
    // 0.5 r + 0.5 r is r exactly in float32 (scaling by a power of two, then an exact sum).
    expect(maxDiff(halves.steps, one.steps)).toBeLessThanOrEqual(1e-6);
    expect(maxDiff(one.steps, none.steps)).toBeGreaterThan(1e-4); // the ControlNet acts at all

    const onlyLineart = await run(withControls([{ net: lineart, strength: 1 }]));
    const both = await run(
      withControls([
        { net: canny, strength: 1 },
        { net: lineart, strength: 1 },
      ]),
    );
    for (const r of [onlyLineart, both]) expect(r.error ?? '').toBe('');
    expect(maxDiff(both.steps, one.steps)).toBeGreaterThan(1e-4);
    expect(maxDiff(both.steps, onlyLineart.steps)).toBeGreaterThan(1e-4);
    expect(maxDiff(onlyLineart.steps, one.steps)).toBeGreaterThan(1e-4);
  }, 60_000);
});
