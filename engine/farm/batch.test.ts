/**
 * Batches on the local queue (the in-process engine): a sweep reuses the executor's cache (each
 * model loaded once, the encoders run once), and examples/lambda-seed-grid.json gives its six PNGs,
 * each carrying its own workflow, and the labelled grid carrying the sweep.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ipAdapterWorkflow } from '../../test/helpers/workflows.js';
import { createEngine, type Engine } from '../engine.js';
import { readEmbeddedWorkflow } from '../png.js';
import type { Workflow } from '../protocol.js';
import { parseWorkflow } from '../workflow.js';
import { planBatch, runBatchLocally } from './batch.js';
import { createApiHandlers } from '../hosts/host-api.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-batch-'));
let engine: Engine;

beforeAll(() => {
  engine = createEngine({
    modelsDir: path.join(tmp, 'models'),
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

const plan = (wf: Workflow, dir: string | null = null) => {
  const p = planBatch(wf, engine.nodeSpecs(), dir, null);
  if ('errors' in p) throw new Error(p.errors.map((e) => e.message).join('; '));
  return p;
};

describe('a sweep on the local queue', () => {
  it('sweeping λ over 5 values loads each model once and runs the vision and text encoders once; the sampler runs 5 times', async () => {
    engine.executor.clearCache();
    await engine.unloadModels();
    const loadsBefore = new Map(engine.store.loads);
    const execBefore = new Map(engine.executor.executions);
    const wf = ipAdapterWorkflow({ image: IMAGE, steps: 2, prefix: 'lambda5' });
    wf.nodes.push({ id: 'sweep', type: 'sweep', params: { x_param: 'apply.weight', x_values: '0:1:0.25' } });
    const p = plan(wf);
    expect(p.jobs.map((j) => j.values['apply.weight'])).toEqual([0, 0.25, 0.5, 0.75, 1]);
    const res = await runBatchLocally(engine, wf, p).done;
    expect(res.jobs.map((j) => j.ok)).toEqual([true, true, true, true, true]);
    const ran = (id: string) => (engine.executor.executions.get(id) ?? 0) - (execBefore.get(id) ?? 0);
    expect({ vision: ran('vision_encode'), positive: ran('positive'), negative: ran('negative'), projection: ran('projection') }).toEqual({
      vision: 1,
      positive: 1,
      negative: 1,
      projection: 1,
    });
    expect({ apply: ran('apply'), sampler: ran('sampler'), decode: ran('decode'), out: ran('out') }).toEqual({ apply: 5, sampler: 5, decode: 5, out: 5 });
    const loaded = [...engine.store.loads].filter(([k, n]) => n > (loadsBefore.get(k) ?? 0));
    expect(loaded.length).toBeGreaterThan(3); // UNet, text encoder, vision encoder, VAE, adapter...
    for (const [k, n] of loaded) expect(n - (loadsBefore.get(k) ?? 0), k).toBe(1);
    // The five PNGs are different images (λ reaches the sampler), each named after its job.
    const files = res.jobs.map((j) => path.basename(j.images[0]));
    expect(files).toEqual(['lambda5-001_00001_.png', 'lambda5-002_00001_.png', 'lambda5-003_00001_.png', 'lambda5-004_00001_.png', 'lambda5-005_00001_.png']);
    const pixels = await Promise.all(res.jobs.map((j) => sharp(j.images[0]).raw().toBuffer()));
    expect(new Set(pixels.map((b) => b.toString('base64'))).size).toBe(5);
  });

  it('examples/lambda-seed-grid.json: 6 jobs, each PNG carries its own plain workflow, and the grid (3 x 2 cells, labelled) carries the sweep', async () => {
    const file = path.join(root, 'examples', 'lambda-seed-grid.json');
    const wf = parseWorkflow(JSON.parse(fs.readFileSync(file, 'utf8'))).workflow!;
    for (const n of wf.nodes) {
      if (n.type === 'ddim-sampler') n.params = { ...n.params, steps: 2 };
      if (n.type === 'empty-latent-image') n.params = { ...n.params, width: 64, height: 64 };
    }
    const p = plan(wf, path.dirname(file));
    expect(p.jobs.map((j) => j.label)).toEqual([
      'weight=0, seed=1',
      'weight=0.5, seed=1',
      'weight=1, seed=1',
      'weight=0, seed=2',
      'weight=0.5, seed=2',
      'weight=1, seed=2',
    ]);
    const res = await runBatchLocally(engine, wf, p, { workflowDir: path.dirname(file) }).done;
    expect(res.ok).toBe(true);
    for (const j of res.jobs) {
      const carried = readEmbeddedWorkflow(fs.readFileSync(j.images[0])) as Workflow;
      expect(carried.nodes.some((n) => n.type === 'sweep')).toBe(false);
      expect(carried.nodes.find((n) => n.id === 'apply_ip_adapter')!.params.weight).toBe(p.jobs[j.index].values['apply_ip_adapter.weight']);
      expect(carried.nodes.find((n) => n.id === 'sampler')!.params.seed).toBe(p.jobs[j.index].values['sampler.seed']);
    }
    expect(path.basename(res.grid!)).toBe('lambda-seed-grid-grid_00001_.png');
    const grid = fs.readFileSync(res.grid!);
    const meta = await sharp(grid).metadata();
    // 3 columns and 2 rows of 64 px cells with 4 px gaps, a 36 px header and a label column.
    expect(meta.height).toBe(36 + 2 * (64 + 4) + 4);
    expect(meta.width! - 3 * (64 + 4) - 4).toBeGreaterThan(40);
    const carried = readEmbeddedWorkflow(grid) as Workflow;
    expect(carried.nodes.find((n) => n.type === 'sweep')?.params.x_param).toBe('apply_ip_adapter.weight');
    // The top-left cell is job 1's image, scaled into place.
    const cell = await sharp(grid)
      .extract({ left: meta.width! - 3 * 68, top: 36, width: 64, height: 64 })
      .removeAlpha()
      .raw()
      .toBuffer();
    const first = await sharp(res.jobs[0].images[0]).removeAlpha().raw().toBuffer();
    expect(cell.equals(first)).toBe(true);
  });

  it('cancelling a batch cancels the jobs not yet run; no grid is written', async () => {
    const wf = ipAdapterWorkflow({ image: IMAGE, steps: 2, prefix: 'cancelled' });
    wf.nodes.push({ id: 'sweep', type: 'sweep', params: { x_param: 'sampler.seed', x_values: '1,2,3,4,5,6' } });
    const b = runBatchLocally(engine, wf, plan(wf));
    b.cancel();
    const res = await b.done;
    expect(res.cancelled).toBe(true);
    expect(res.jobs.filter((j) => j.cancelled).length).toBeGreaterThanOrEqual(5);
    expect(res.grid).toBeUndefined();
  });

  it("the editor's Run (host-api enqueue) of a sweep queues one named job per value and writes the grid after the last", async () => {
    const wf = ipAdapterWorkflow({ image: IMAGE, steps: 2, prefix: 'editor' });
    wf.nodes.push({ id: 'sweep', type: 'sweep', params: { x_param: 'sampler.seed', x_values: '1,2,3' } });
    const h = createApiHandlers({
      engine,
      host: 'web',
      info: () => ({}) as never,
      examplesDir: path.join(root, 'examples'),
      inputsDir: path.join(tmp, 'inputs'),
    });
    const seen: string[] = [];
    const off = engine.subscribe((e) => {
      if (e.type === 'run-done' && e.ok) seen.push(e.runId);
    });
    const { runId } = await h.enqueue({ workflow: wf, name: 'seeds' });
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (fs.existsSync(path.join(tmp, 'out', 'editor-grid_00001_.png'))) {
          clearInterval(t);
          r();
        }
      }, 50);
    });
    off();
    const jobs = engine.listQueue().filter((j) => j.name.startsWith('seeds ['));
    expect(jobs.map((j) => j.name)).toEqual(['seeds [seed=1]', 'seeds [seed=2]', 'seeds [seed=3]']);
    expect(jobs[0].runId).toBe(runId);
    expect(seen).toEqual(jobs.map((j) => j.runId));
    const bad = { ...wf, nodes: wf.nodes.map((n) => (n.id === 'sweep' ? { ...n, params: { x_param: 'nope.seed', x_values: '1' } } : n)) };
    await expect(h.enqueue({ workflow: bad })).rejects.toThrow(/Sweep \(sweep\): X param nope\.seed names no node/);
  });
});
