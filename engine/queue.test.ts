/**
 * The engine's queue records (listQueue: names, states, positions) and deduplication: a job whose
 * images a finished run already wrote ends as its duplicate instead of writing them again, and runs
 * again once anything it depends on changes (a param, an input file, the images being deleted).
 * With a queue state file, both survive a restart (engine/queue-state.ts): the records with their
 * workflows (summary, Re-queue), pending jobs as interrupted, and the finished runs deduplication knows.
 * The workflow is Load Image -> Save Image: real nodes, no models needed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunEvent, Workflow } from './api.js';
import { createEngine } from './engine.js';
import { FINISHED_KEYS_KEPT, INTERRUPTED, PENDING_KEPT, readQueueState, writeQueueState } from './queue-state.js';

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

describe('across a restart (queueStateFile)', () => {
  const dir = path.join(tmp, 'restart');
  const stateFile = path.join(dir, 'user', 'queue-state.json');
  const open = () =>
    createEngine({
      modelsDir: path.join(tmp, 'models'),
      outputDir: path.join(dir, 'out'),
      provider: 'cpu',
      userDataDir: path.join(dir, 'user'),
      demo: false,
      queueStateFile: stateFile,
    });
  const doneOn = (e: ReturnType<typeof open>, runId: string) =>
    new Promise<RunEvent>((resolve) => {
      const off = e.subscribe((ev) => {
        if (ev.type === 'run-done' && ev.runId === runId) {
          off();
          resolve(ev);
        }
      });
    });

  it('a restarted engine lists the finished jobs with their workflows and still knows an unchanged graph is written', async () => {
    const first = open();
    const a = first.enqueue(wf('kept/a', IMAGE, 'Kept'), { dedupe: true });
    await doneOn(first, a.runId);
    await first.close();
    const files = fs.readdirSync(path.join(dir, 'out', 'kept'));
    expect(files).toEqual(['a_00001_.png']);
    // Nothing but the state file in the folder: it was written atomically (no temporary left).
    expect(fs.readdirSync(path.dirname(stateFile)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const second = open();
    try {
      const listed = second.listQueue().find((j) => j.runId === a.runId);
      expect(listed).toMatchObject({ name: 'Kept', state: 'done' });
      expect(listed?.images?.[0]).toMatch(/kept[\\/]a_00001_\.png$/);
      // The workflow as it ran: the panel's summary and Re-queue.
      expect(listed?.workflow?.nodes.map((n) => [n.type, n.params])).toEqual([
        ['load-image', { image: IMAGE }],
        ['save-image', { filename_prefix: 'kept/a' }],
      ]);
      // Deduplication remembers: the same graph ends as a duplicate of the run before the restart, writing nothing.
      const again = second.enqueue(wf('kept/a', IMAGE, 'Kept'), { dedupe: true });
      expect(again.duplicateOf).toBe(a.runId);
      expect(await doneOn(second, again.runId)).toMatchObject({ ok: true, duplicateOf: a.runId });
      expect(fs.readdirSync(path.join(dir, 'out', 'kept'))).toEqual(['a_00001_.png']);
      // Re-queue (the renderer sends the listed workflow back, forced) writes a new image.
      const requeued = second.enqueue(listed!.workflow!, { name: listed!.name });
      await doneOn(second, requeued.runId);
      expect(fs.readdirSync(path.join(dir, 'out', 'kept')).sort()).toEqual(['a_00001_.png', 'a_00002_.png']);
    } finally {
      await second.close();
    }
  });

  it('jobs pending when the engine closed come back as interrupted, re-queueable; a damaged file starts empty', async () => {
    const e = open();
    const a = e.enqueue(wf('pend/a'), { dedupe: true });
    const b = e.enqueue(wf('pend/b'), { name: 'second' });
    await e.close();
    const back = open();
    try {
      const jb = back.listQueue().find((j) => j.runId === b.runId);
      expect(jb).toMatchObject({ name: 'second', state: 'failed', error: INTERRUPTED });
      expect(jb?.position).toBeUndefined();
      expect(jb?.workflow?.nodes[1].params.filename_prefix).toBe('pend/b');
      expect(back.listQueue().find((j) => j.runId === a.runId)?.state).toMatch(/^(done|failed)$/);
    } finally {
      await back.close();
    }
    fs.writeFileSync(stateFile, '{"format": "ipadapter-studio/queue-state", "version": 1, "records": [');
    expect(readQueueState(stateFile)).toMatchObject({ records: [], finished: [], problem: expect.stringContaining('is damaged') });
    const fresh = open();
    const logs: string[] = [];
    fresh.subscribe((ev) => ev.type === 'log' && logs.push(ev.message));
    await new Promise((r) => setTimeout(r, 20));
    expect(fresh.listQueue()).toEqual([]);
    expect(logs.join('\n')).toMatch(/queue-state\.json is damaged; the queue starts empty/);
    await fresh.close();
  });

  it('keeps the newest FINISHED_KEYS_KEPT finished runs', () => {
    const file = path.join(dir, 'bounded.json');
    const finished = Array.from({ length: FINISHED_KEYS_KEPT + 50 }, (_, i): [string, { runId: string; images: string[] }] => [
      `k${i}`,
      { runId: `r${i}`, images: [] },
    ]);
    writeQueueState(file, { records: [], finished });
    const back = readQueueState(file);
    expect(back.finished).toHaveLength(FINISHED_KEYS_KEPT);
    expect(back.finished[0][0]).toBe('k50');
    expect(back.finished.at(-1)?.[0]).toBe(`k${FINISHED_KEYS_KEPT + 49}`);
  });

  it('writes the finished records and the next PENDING_KEPT pending jobs of a long queue', () => {
    const file = path.join(dir, 'pending.json');
    const at = 1000;
    const pending = Array.from({ length: PENDING_KEPT + 40 }, (_, i) => ({
      runId: `p${i}`,
      name: 'sweep',
      state: 'queued' as const,
      position: i + 1,
      submittedAt: at,
    }));
    const running = { runId: 'run', name: 'sweep', state: 'running' as const, submittedAt: at };
    const finished = [{ runId: 'f', name: 'done one', state: 'done' as const, submittedAt: at, finishedAt: at }];
    writeQueueState(file, { records: [...finished, running, ...pending.reverse()], finished: [] });
    const back = readQueueState(file).records;
    expect(back).toHaveLength(1 + PENDING_KEPT);
    // The running job and the next to run (positions 1 ...) are kept; the last ones in line are left out.
    const ids = new Set(back.filter((r) => r.error === INTERRUPTED).map((r) => r.runId));
    expect(ids.size).toBe(PENDING_KEPT);
    expect(ids.has('run')).toBe(true);
    for (let i = 0; i < PENDING_KEPT - 1; i++) expect(ids.has(`p${i}`)).toBe(true);
    expect(back.some((r) => r.runId === `p${PENDING_KEPT - 1}`)).toBe(false);
    expect(back.find((r) => r.runId === 'f')).toMatchObject({ state: 'done' });
  });
});
