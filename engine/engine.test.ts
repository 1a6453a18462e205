/**
 * The engine on the demo model set (tiny random weights generated into a temp folder):
 * the output cache across runs, cancellation mid-sampling, the queue, and the CLI.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from './api.js';
import { main } from './hosts/cli.js';
import { createEngine, type Engine } from './engine.js';
import { readEmbeddedWorkflow, readTextChunks } from './png.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import { parseWorkflow } from './workflow.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-engine-'));
let engine: Engine;
const events: RunEvent[] = [];

beforeAll(() => {
  fs.mkdirSync(path.join(tmp, 'empty-models'));
  engine = createEngine({ modelsDir: path.join(tmp, 'empty-models'), outputDir: path.join(tmp, 'out'), provider: 'cpu', userDataDir: path.join(tmp, 'user') });
  engine.subscribe((e) => events.push(e));
});
afterAll(async () => {
  await engine.close();
});

describe('engine on the demo models', () => {
  it('uses the demo set for an empty models folder and says so', async () => {
    expect(engine.isDemo()).toBe(true);
    const models = await engine.listModels();
    expect(models.checkpoints).toEqual(['stable-diffusion-v1-5']);
    expect(models.ipadapter).toEqual(['ip-adapter_sd15.safetensors']);
    expect(engine.validate(ipAdapterWorkflow({ image: IMAGE }))).toEqual([]);
  });

  it('changing only λ re-runs the sampler (and what follows) but not encoders or loaders', async () => {
    const r1 = await engine.run(ipAdapterWorkflow({ image: IMAGE, weight: 1 }));
    expect(r1.ok).toBe(true);
    const before = Object.fromEntries(engine.executor.executions);
    const unetLoads = [...engine.store.loads].filter(([k]) => k.startsWith('unet|')).length;
    const r2 = await engine.run(ipAdapterWorkflow({ image: IMAGE, weight: 0.5 }));
    expect(r2.ok).toBe(true);
    const after = Object.fromEntries(engine.executor.executions);
    const ran = Object.keys(after)
      .filter((k) => after[k] !== before[k])
      .sort();
    expect(ran).toEqual(['apply', 'decode', 'out', 'sampler']);
    expect(after.vision_encode).toBe(1);
    expect(after.positive).toBe(1);
    expect(after.checkpoint).toBe(1);
    // The UNet graph takes λ as an input: no new UNet session for a new λ.
    expect([...engine.store.loads].filter(([k]) => k.startsWith('unet|')).length).toBe(unetLoads);
    expect(r2.images).toHaveLength(1);
    expect(fs.existsSync(r2.images[0].path)).toBe(true);
  });

  it('cancels at step 3 of 10, then serves a full run normally', async () => {
    const wf = ipAdapterWorkflow({ image: IMAGE, steps: 10, seed: 5 });
    const { runId, done } = engine.start(wf);
    const off = engine.subscribe((e) => {
      if (e.type === 'progress' && e.runId === runId && e.step === 3) engine.cancel(runId);
    });
    const r = await done;
    off();
    expect(r).toMatchObject({ ok: false, cancelled: true });
    const steps = events.filter((e) => e.type === 'progress' && e.runId === runId).map((e) => (e as { step: number }).step);
    expect(steps).toEqual([1, 2, 3]);
    expect(events.find((e) => e.type === 'run-done' && e.runId === runId)).toMatchObject({ ok: false, cancelled: true });
    const full = await engine.run(wf);
    expect(full.ok).toBe(true);
    const fullSteps = events.filter((e) => e.type === 'progress' && e.runId === full.runId);
    expect(fullSteps).toHaveLength(10);
    expect((fullSteps[9] as { preview?: { png: string } }).preview?.png).toBeTruthy();
  });

  it('runs one workflow at a time, in order, and reports queue positions', async () => {
    const a = engine.start(ipAdapterWorkflow({ image: IMAGE, seed: 11, output: 'preview' }));
    const b = engine.start(ipAdapterWorkflow({ image: IMAGE, seed: 12, output: 'preview' }));
    const queued = events.filter((e) => e.type === 'queued' && (e.runId === a.runId || e.runId === b.runId));
    expect(queued.map((e) => (e as { position: number }).position)).toEqual([0, 1]);
    await Promise.all([a.done, b.done]);
    const order = events
      .filter((e) => (e.type === 'run-start' || e.type === 'run-done') && (e.runId === a.runId || e.runId === b.runId))
      .map((e) => `${e.type}:${e.runId === a.runId ? 'a' : 'b'}`);
    expect(order).toEqual(['run-start:a', 'run-done:a', 'run-start:b', 'run-done:b']);
  });

  it('several image prompts: concat keeps 4 tokens per image, average gives 4; a negative image prompt is accepted', async () => {
    const counts: Record<string, number> = {};
    for (const combine of ['concat', 'average']) {
      const wf = ipAdapterWorkflow({ image: IMAGE, steps: 1, output: 'preview' });
      wf.nodes.push({ id: 'image2', type: 'load-image', params: { image: path.join(root, 'examples', 'images', 'init.png') } });
      wf.nodes.push({ id: 'vision_encode2', type: 'clip-vision-encode', params: { crop: 'pad' } });
      wf.nodes.find((n) => n.id === 'projection')!.params = { combine };
      const link = (a: string, ap: string, b: string, bp: string) => wf.edges.push({ from: { node: a, port: ap }, to: { node: b, port: bp } });
      link('image2', 'image', 'vision_encode2', 'image');
      link('clip_vision', 'clip_vision', 'vision_encode2', 'clip_vision');
      link('vision_encode2', 'embeds', 'projection', 'embeds_2');
      link('projection', 'tokens', 'apply', 'negative'); // the same tokens as a negative prompt: legal, if odd
      const r = await engine.run(wf, {
        onNodeOutputs: (node, out) => {
          if (node === 'projection') counts[combine] = (out.tokens as { tokens: number }).tokens;
        },
      });
      expect(r.error ?? '').toBe('');
    }
    expect(counts).toEqual({ concat: 8, average: 4 });
  });

  it('runs from a models folder whose entries are symlinks (ComfyUI setups, HF caches)', async () => {
    const demo = engine.modelsDir();
    const linked = path.join(tmp, 'linked-models');
    for (const kind of ['checkpoints', 'clip_vision', 'ipadapter']) {
      fs.mkdirSync(path.join(linked, kind), { recursive: true });
      for (const f of fs.readdirSync(path.join(demo, kind))) fs.symlinkSync(path.join(demo, kind, f), path.join(linked, kind, f));
    }
    const e2 = createEngine({ modelsDir: linked, outputDir: path.join(tmp, 'out2'), provider: 'cpu', userDataDir: path.join(tmp, 'user2') });
    try {
      expect(e2.isDemo()).toBe(false);
      const r = await e2.run(ipAdapterWorkflow({ image: IMAGE, steps: 1 }));
      expect(r.error ?? '').toBe('');
      expect(r.ok).toBe(true);
    } finally {
      await e2.close();
    }
  });

  it('reports validation errors as a failed run without executing anything', async () => {
    const wf = ipAdapterWorkflow({ image: 'missing.png', weight: 9 });
    const r = await engine.run(wf);
    expect(r.ok).toBe(false);
    expect(r.errors?.map((e) => `${e.node}.${e.param}`).sort()).toEqual(['apply.weight', 'image.image']);
  });
});

describe('CLI', () => {
  it('--demo from an empty models folder writes a PNG that carries its workflow and parameters', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-cli-'));
    const wfFile = path.join(dir, 'wf.json');
    fs.copyFileSync(IMAGE, path.join(dir, 'prompt.png'));
    fs.writeFileSync(wfFile, JSON.stringify(ipAdapterWorkflow({ image: 'prompt.png', steps: 2, prefix: 'cli/run' })));
    const out: string[] = [];
    const io = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => out.push(s) }, env: {} };
    const code = await main(
      [
        wfFile,
        '--models',
        path.join(dir, 'models'),
        '--out',
        path.join(dir, 'out'),
        '--user-data',
        path.join(tmp, 'user'),
        '--set',
        'apply.weight=0.7',
        '--set',
        'positive.text=42',
        '--demo',
      ],
      io,
    );
    expect(code, out.join('')).toBe(0);
    expect(out.join('')).toMatch(/Demo mode: .*draw noise/);
    const png = fs.readFileSync(path.join(dir, 'out', 'cli', 'run_00001_.png'));
    const embedded = parseWorkflow(readEmbeddedWorkflow(png)).workflow!;
    expect(embedded.nodes.find((n) => n.id === 'apply')!.params.weight).toBe(0.7);
    expect(embedded.nodes.find((n) => n.id === 'positive')!.params.text).toBe('42'); // a string param stays a string
    expect(readTextChunks(png).parameters).toMatch(
      /^42\nNegative prompt: low quality\nSteps: 2, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 64x64, Model: stable-diffusion-v1-5, IP-Adapter: ip-adapter_sd15, IP-Adapter weight: 0.7$/,
    );
    // The PNG itself reopens as a workflow (relative paths resolve next to the file given).
    fs.copyFileSync(path.join(dir, 'out', 'cli', 'run_00001_.png'), path.join(dir, 'reopen.png'));
    const again = await main(
      [path.join(dir, 'reopen.png'), '--models', path.join(dir, 'models'), '--out', path.join(dir, 'out'), '--user-data', path.join(tmp, 'user'), '--demo'],
      io,
    );
    expect(again).toBe(0);
    expect(fs.existsSync(path.join(dir, 'out', 'cli', 'run_00002_.png'))).toBe(true);
  });

  it('exits 2 with every validation error for an invalid workflow or a bad --set', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-cli-'));
    const wfFile = path.join(dir, 'wf.json');
    fs.writeFileSync(wfFile, JSON.stringify(ipAdapterWorkflow({ image: 'nope.png', prefix: '../escape' })));
    const err: string[] = [];
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) }, env: {} };
    const args = ['--models', path.join(dir, 'models'), '--out', path.join(dir, 'out'), '--user-data', path.join(tmp, 'user')];
    expect(await main([wfFile, ...args], io)).toBe(2);
    expect(err.join('')).toMatch(/\[image\] .*nope\.png/);
    expect(err.join('')).toMatch(/\[out\] .*"\.\.\/escape" contains "\.\."/);
    err.length = 0;
    expect(await main([wfFile, ...args, '--set', 'sampler.steps=many'], io)).toBe(2);
    expect(err.join('')).toMatch(/"many" is not a number/);
    expect(await main([], io)).toBe(2);
  });
});
