/**
 * The engine's queue records (listQueue: names, states, positions) and deduplication: a job whose
 * images a finished run already wrote ends as its duplicate instead of writing them again, and runs
 * again once anything it depends on changes (a param, an input file, the images being deleted).
 * The workflow is Load Image -> Save Image: real nodes, no models needed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunEvent, Workflow } from './api.js';
import { createEngine } from './engine.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-queue-'));
const IMAGE = path.join(tmp, 'in.png');
fs.copyFileSync(fileURLToPath(new URL('../examples/images/init.png', import.meta.url)), IMAGE);

const wf = (prefix: string, image = IMAGE, title?: string): Workflow => ({
  format: 'ipadapter-studio/workflow',
  version: 3,
  nodes: [
    { id: 'load', type: 'load-image', params: { image } },
    { id: 'save', type: 'save-image', params: { filename_prefix: prefix } },
  ],
  edges: [{ from: { node: 'load', port: 'image' }, to: { node: 'save', port: 'images' } }],
  ...(title ? { meta: { title } } : {}),
});

const engine = createEngine({
  modelsDir: path.join(tmp, 'models'),
  outputDir: path.join(tmp, 'out'),
  provider: 'cpu',
  userDataDir: path.join(tmp, 'user'),
  demo: false,
});
const events: RunEvent[] = [];
engine.subscribe((e) => events.push(e));
afterAll(() => engine.close());

const written = () => fs.readdirSync(path.join(tmp, 'out')).sort();
const done = (runId: string) =>
  new Promise<RunEvent>((resolve) => {
    const off = engine.subscribe((e) => {
      if (e.type === 'run-done' && e.runId === runId) {
        off();
        resolve(e);
      }
    });
  });

describe('queue records', () => {
  it('names each job (meta.title, or the name given) and lists queued, running and finished jobs with positions', async () => {
    const a = engine.enqueue(wf('q/a', IMAGE, 'First'));
    const b = engine.enqueue(wf('q/b'), { name: 'my-flow.json' });
    const list = engine.listQueue();
    const ja = list.find((j) => j.runId === a.runId)!;
    const jb = list.find((j) => j.runId === b.runId)!;
    expect(ja.name).toBe('First');
    expect(['queued', 'running']).toContain(ja.state);
    expect(jb).toMatchObject({ name: 'my-flow.json', state: 'queued', position: 1 });
    expect(events.find((e) => e.type === 'queued' && e.runId === b.runId)).toMatchObject({ name: 'my-flow.json', position: 1 });
    await done(b.runId);
    const after = engine.listQueue();
    expect(after.find((j) => j.runId === a.runId)).toMatchObject({ state: 'done' });
    expect(after.find((j) => j.runId === b.runId)?.images?.[0]).toMatch(/b_00001_\.png$/);
  });

  it('a removed (cancelled) queued job is listed as cancelled, and the next job moves up', async () => {
    const a = engine.enqueue(wf('r/a'));
    const b = engine.enqueue(wf('r/b'));
    const c = engine.enqueue(wf('r/c'));
    engine.cancel(b.runId);
    expect(engine.listQueue().find((j) => j.runId === b.runId)?.state).toBe('cancelled');
    const jc = engine.listQueue().find((j) => j.runId === c.runId)!;
    expect(jc.state === 'running' || jc.position === 1).toBe(true);
    await Promise.all([done(a.runId), done(c.runId)]);
    expect(fs.existsSync(path.join(tmp, 'out', 'r'))).toBe(true);
    expect(fs.readdirSync(path.join(tmp, 'out', 'r')).sort()).toEqual(['a_00001_.png', 'c_00001_.png']);
  });
});

describe('deduplication', () => {
  it('an unchanged workflow is not written again: the job ends as a duplicate of the first, naming it', async () => {
    const first = engine.enqueue(wf('dup'), { dedupe: true });
    await done(first.runId);
    const before = written();
    const again = engine.enqueue(wf('dup'), { dedupe: true });
    expect(again.duplicateOf).toBe(first.runId);
    const end = await done(again.runId);
    expect(end).toMatchObject({ ok: true, duplicateOf: first.runId });
    expect(written()).toEqual(before);
    expect(engine.listQueue().find((j) => j.runId === again.runId)).toMatchObject({ state: 'duplicate', duplicateOf: first.runId });
    expect(engine.listQueue().find((j) => j.runId === again.runId)?.images?.[0]).toMatch(/dup_00001_\.png$/);
    // The layout and meta do not count; without dedupe (the CLI, "run anyway") it runs.
    const moved = wf('dup', IMAGE, 'Renamed');
    moved.nodes[0].ui = { x: 500, y: 20 };
    expect(engine.enqueue(moved, { dedupe: true }).duplicateOf).toBe(first.runId);
    const forced = engine.enqueue(wf('dup'));
    await done(forced.runId);
    expect(fs.existsSync(path.join(tmp, 'out', 'dup_00002_.png'))).toBe(true);
  });

  it('runs again when a param, an input file or the earlier images change', async () => {
    const other = engine.enqueue(wf('dup2'), { dedupe: true });
    await done(other.runId);
    expect(engine.enqueue(wf('dup2'), { dedupe: true }).duplicateOf).toBe(other.runId);
    // Another param value: a new job.
    const changed = engine.enqueue(wf('dup3'), { dedupe: true });
    expect(changed.duplicateOf).toBeUndefined();
    await done(changed.runId);
    // The input file changed (new mtime/size): a new job.
    const t = new Date(Date.now() + 5000);
    fs.utimesSync(IMAGE, t, t);
    const touched = engine.enqueue(wf('dup3'), { dedupe: true });
    expect(touched.duplicateOf).toBeUndefined();
    await done(touched.runId);
    // Its images deleted: runs again.
    for (const f of written().filter((x) => x.startsWith('dup3'))) fs.rmSync(path.join(tmp, 'out', f));
    const gone = engine.enqueue(wf('dup3'), { dedupe: true });
    expect(gone.duplicateOf).toBeUndefined();
    await done(gone.runId);
    expect(written().filter((x) => x.startsWith('dup3'))).toHaveLength(1);
  });
});
