/**
 * The render farm end to end, on a real Redis (Debian's redis-server, started here on a free
 * loopback port; .ci/run installs it): two worker processes (npm run worker's script) on the demo
 * models, batches submitted through the CLI (engine/hosts/cli.ts --queue). Checked: a 24-job sweep
 * arrives exactly once and byte for byte as the same jobs run locally; a worker SIGKILLed mid-job
 * has its job retried by the other (stalled-job detection) and it still arrives once; cancelling a
 * batch removes its waiting jobs; Redis stopped mid-batch gives a sentence, loses nothing, and
 * --resume completes the batch; a job naming a model no worker has fails naming it; a worker with
 * --concurrency 2 runs two jobs at once on one shared model store, and cancelling one leaves the others intact.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoModels } from '../demo/demo.js';
import { createEngine } from '../engine.js';
import type { Workflow } from '../protocol.js';
import { parseWorkflow, stringifyWorkflow } from '../workflow.js';
import { planBatch, runBatchLocally } from './batch.js';
import { FARM_PREFIX, FARM_QUEUE } from './job.js';
import { createBatchFile, readBatchFile, runFarmBatch, type BatchFile } from './submit.js';
import { FarmClient } from './queue.js';
import { startFarmWorker } from './worker.js';
import { nodeSpecs } from '../../nodes/index.js';
import { withFarm } from './editor-queue.js';
import { createApiHandlers } from '../hosts/host-api.js';
import { storeImageBytes } from '../hosts/inputs-store.js';
import type { QueueJob, RunEvent } from '../api.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-farm-'));
const userData = path.join(tmp, 'user');
const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

let port = 0;
let url = '';
let redis: ChildProcess | null = null;
const workers = new Map<string, { proc: ChildProcess; log: string[] }>();
const children = new Set<ChildProcess>();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function startRedis(): Promise<void> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
  children.add(proc);
  redis = proc;
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.write('PING\r\n');
      });
      c.once('data', (d) => {
        c.destroy();
        r(d.toString().startsWith('+PONG'));
      });
      c.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis-server did not start on port ${port}`);
}

/** One command to the test's Redis (e.g. SAVE); resolves with its first reply line. */
function redisCommand(cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(`${cmd}\r\n`));
    c.once('data', (d) => {
      c.destroy();
      resolve(d.toString().trim());
    });
    c.once('error', reject);
  });
}

async function stopRedis(): Promise<void> {
  const proc = redis!;
  redis = null;
  if (proc.exitCode !== null) return;
  await new Promise<void>((r) => {
    proc.once('exit', () => r());
    proc.kill('SIGTERM');
  });
}

const node = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const p = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
};

async function startWorker(name: string): Promise<void> {
  const proc = node(['scripts/worker.ts', '--redis', url, '--demo', '--user-data', userData, '--name', name, '--lock-ms', '3000']);
  const log: string[] = [];
  workers.set(name, { proc, log });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`worker ${name} did not start: ${log.join('')}`)), 60_000);
    const onData = (d: Buffer) => {
      log.push(d.toString());
      if (/ready/.test(log.join(''))) {
        clearTimeout(t);
        resolve();
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    proc.once('exit', (code) => reject(new Error(`worker ${name} exited (${code}): ${log.join('')}`)));
  });
}

interface CliRun {
  proc: ChildProcess;
  out: string[];
  done: Promise<number>;
}
function cli(args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const proc = node(['engine/hosts/cli.ts', ...args, '--user-data', userData, '--demo'], env);
  const out: string[] = [];
  proc.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  proc.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
  const done = new Promise<number>((r) => proc.once('exit', (code, sig) => r(code ?? (sig ? 128 : -1))));
  return { proc, out, done };
}

/** The sweep: weight x seed (by default 4 x 6 = 24 jobs) of lambda-seed-grid.json at 64 x 64, `steps` steps. */
function sweepFile(name: string, weights: string, seeds: string, steps = 2): string {
  const wf = parseWorkflow(JSON.parse(fs.readFileSync(path.join(root, 'examples', 'lambda-seed-grid.json'), 'utf8'))).workflow!;
  for (const n of wf.nodes) {
    if (n.type === 'ddim-sampler') n.params = { ...n.params, steps };
    if (n.type === 'empty-latent-image') n.params = { ...n.params, width: 64, height: 64 };
    if (n.type === 'save-image') n.params = { ...n.params, filename_prefix: name };
    if (n.type === 'sweep') n.params = { ...n.params, x_values: weights, y_values: seeds };
  }
  const file = path.join(tmp, `${name}.json`);
  fs.writeFileSync(file, stringifyWorkflow(wf));
  return file;
}

/** The same jobs run on the in-process engine (the reference for byte equality). */
async function runLocally(file: string, out: string): Promise<void> {
  const engine = createEngine({ modelsDir: path.join(tmp, 'none'), outputDir: out, provider: 'cpu', userDataDir: userData, demo: true });
  try {
    const wf = parseWorkflow(JSON.parse(fs.readFileSync(file, 'utf8'))).workflow as Workflow;
    const plan = planBatch(wf, engine.nodeSpecs(), path.dirname(file), null);
    if ('errors' in plan) throw new Error(JSON.stringify(plan.errors));
    const res = await runBatchLocally(engine, wf, plan, { workflowDir: path.dirname(file) }).done;
    expect(res.ok).toBe(true);
  } finally {
    await engine.close();
  }
}

const pngs = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.png') && !f.includes('-grid_')) : []).sort();
const batchOf = (dir: string): { file: string; batch: BatchFile } => {
  const f = fs.readdirSync(dir).find((x) => x.endsWith('.batch.json'))!;
  return { file: path.join(dir, f), batch: readBatchFile(path.join(dir, f)) };
};
const waitFor = async (what: string, cond: () => boolean | Promise<boolean>, ms = 60_000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
const expectSameBytes = (a: string, b: string, names: string[]) => {
  for (const n of names) expect(fs.readFileSync(path.join(a, n)).equals(fs.readFileSync(path.join(b, n))), n).toBe(true);
};

/** An editor (web host's API handlers) on a farm-enabled engine with the demo models, output into `tmp/<name>`, its events recorded. */
const editorOnFarm = (name: string) => {
  const out = path.join(tmp, name);
  const inputsDir = path.join(userData, 'inputs');
  const stored = storeImageBytes(inputsDir, 'image-prompt.png', fs.readFileSync(path.join(tmp, 'images', 'image-prompt.png')));
  const engine = withFarm(createEngine({ modelsDir: path.join(tmp, 'none'), outputDir: out, provider: 'cpu', userDataDir: userData, demo: true }), {
    inputsDir,
  });
  const h = createApiHandlers({ engine, host: 'web', info: () => ({}) as never, examplesDir: path.join(root, 'examples'), inputsDir });
  const events: RunEvent[] = [];
  const off = engine.subscribe((e) => events.push(e));
  return { out, inputsDir, stored, engine, h, events, off };
};

describe('render farm on a real Redis', () => {
  beforeAll(async () => {
    if (!haveRedis) throw new Error('redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)');
    fs.mkdirSync(path.join(tmp, 'images'), { recursive: true });
    fs.copyFileSync(path.join(root, 'examples', 'images', 'image-prompt.png'), path.join(tmp, 'images', 'image-prompt.png'));
    ensureDemoModels(path.join(userData, 'demo-models'));
    port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    await startRedis();
    await Promise.all([startWorker('wA'), startWorker('wB')]);
  }, 180_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a 24-job sweep through the CLI: every result arrives exactly once, byte for byte as the same jobs run locally, from both workers', async () => {
    const file = sweepFile('sweep24', '0, 0.25, 0.5, 1', '1, 2, 3, 4, 5, 6');
    const farmOut = path.join(tmp, 'farm24');
    const run = cli([file, '--queue', url, '--out', farmOut]);
    const localOut = path.join(tmp, 'local24');
    await runLocally(file, localOut);
    expect(await run.done, run.out.join('')).toBe(0);
    const names = pngs(farmOut);
    expect(names).toHaveLength(24);
    expect(names).toEqual(pngs(localOut));
    expect(names.every((n) => /_00001_\.png$/.test(n))).toBe(true); // none written twice
    expectSameBytes(farmOut, localOut, [...names, 'sweep24-grid_00001_.png']);
    const { batch } = batchOf(farmOut);
    expect(batch.jobs.map((j) => j.state)).toEqual(Array(24).fill('done'));
    expect(batch.jobs.every((j) => j.images.length === 1)).toBe(true);
    expect(new Set(batch.jobs.map((j) => j.worker))).toEqual(new Set(['wA', 'wB']));
  });

  it('a worker SIGKILLed mid-job: BullMQ sees the job stalled, the other worker runs it, and it arrives exactly once', async () => {
    const file = sweepFile('killed', '0, 1', '1, 2', 60);
    const out = path.join(tmp, 'killed');
    const run = cli([file, '--queue', url, '--out', out]);
    const queue = new Queue(FARM_QUEUE, { connection: { host: '127.0.0.1', port }, prefix: FARM_PREFIX });
    let victim = '';
    let jobId = '';
    try {
      await waitFor('a job part-way through its steps', async () => {
        for (const j of await queue.getActive()) {
          const p = j.progress as { step?: number; total?: number };
          if (j.id?.startsWith('killed-') && j.processedBy && p?.step && p.step >= 2 && p.step < (p.total ?? 0) - 5) {
            victim = j.processedBy;
            jobId = j.id;
            return true;
          }
        }
        return false;
      });
      workers.get(victim)!.proc.kill('SIGKILL');
      workers.delete(victim);
      expect(await run.done, run.out.join('')).toBe(0);
    } finally {
      await queue.close();
    }
    const index = Number(jobId.split('-').pop());
    const { batch } = batchOf(out);
    expect(batch.jobs.map((j) => j.state)).toEqual(['done', 'done', 'done', 'done']);
    const survivor = victim === 'wA' ? 'wB' : 'wA';
    expect(batch.jobs[index].worker).toBe(survivor);
    const names = pngs(out);
    expect(names).toHaveLength(4);
    const localOut = path.join(tmp, 'killed-local');
    await runLocally(file, localOut);
    expectSameBytes(out, localOut, names);
    await startWorker(victim); // two workers again for the next tests
  });

  it('cancelling the batch (SIGINT to the CLI) removes its waiting jobs from the queue', async () => {
    const file = sweepFile('cancel', '0, 0.5, 1', '1, 2, 3, 4', 20);
    const out = path.join(tmp, 'cancel');
    const run = cli([file, '--queue', url, '--out', out]);
    await waitFor('a first result', () => pngs(out).length >= 1);
    run.proc.kill('SIGINT');
    expect(await run.done, run.out.join('')).toBe(130);
    expect(run.out.join('')).toMatch(/cancelled: the batch's waiting jobs were removed/);
    const queue = new Queue(FARM_QUEUE, { connection: { host: '127.0.0.1', port }, prefix: FARM_PREFIX });
    try {
      const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
      expect(counts.waiting + counts.prioritized + counts.delayed).toBe(0);
      await waitFor('the running jobs to stop', async () => (await queue.getJobCounts('active')).active === 0, 20_000);
    } finally {
      await queue.close();
    }
    const { batch } = batchOf(out);
    const done = batch.jobs.filter((j) => j.state === 'done').length;
    expect(done).toBeLessThan(12);
    expect(batch.jobs.filter((j) => j.state === 'cancelled').length).toBe(12 - done);
    expect(pngs(out)).toHaveLength(done);
  });

  it('Redis stopped mid-batch: a clear sentence, nothing lost; --resume after Redis is back completes it exactly once', async () => {
    const file = sweepFile('lost', '0, 0.5, 1', '1, 2, 3, 4', 20);
    const out = path.join(tmp, 'lost');
    const run = cli([file, '--queue', url, '--out', out], { IPA_FARM_LOST_MS: '2000' });
    await waitFor('a first result', () => pngs(out).length >= 1);
    await stopRedis();
    const code = await run.done;
    const text = run.out.join('');
    expect(code, text).toBe(1);
    const { file: batchFile, batch } = batchOf(out);
    expect(text).toContain(`lost the connection to Redis at ${url}`);
    expect(text).toMatch(
      new RegExp(
        `nothing was lost: \\d+ of 12 results are in ${out}; the batch is kept in ${batchFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: run npm run generate -- --resume`,
      ),
    );
    const before = batch.jobs.filter((j) => j.state === 'done').length;
    expect(before).toBeLessThan(12);
    expect(pngs(out)).toHaveLength(before);

    await startRedis(); // empty: the queue's jobs are gone, the batch file has them
    const resumed = cli(['--resume', batchFile]);
    expect(await resumed.done, resumed.out.join('')).toBe(0);
    expect(resumed.out.join('')).toContain(`resuming batch ${batch.batch}: ${12 - before} of 12 job(s) without a result`);
    const names = pngs(out);
    expect(names).toHaveLength(12);
    expect(names.every((n) => /_00001_\.png$/.test(n))).toBe(true);
    const localOut = path.join(tmp, 'lost-local');
    await runLocally(file, localOut);
    expectSameBytes(out, localOut, [...names, 'lost-grid_00001_.png']);
  });

  it('the editor with Run on a queue: the host submits, RunEvents and queue records look like local ones, the PNGs land in its output folder; farmStatus lists the workers; with an unreachable queue the jobs are held in the editor', async () => {
    const { out, stored, engine, h, events, off } = editorOnFarm('editor');
    try {
      await h.updateSettings({ farmQueue: url });
      const status = await h.farmStatus({});
      expect(status?.connected).toBe(true);
      expect(status!.workers.map((w) => w.id).sort()).toEqual(['wA', 'wB']);
      expect(status!.workers[0].models.checkpoints.length).toBeGreaterThan(0);
      const wf = parseWorkflow(JSON.parse(fs.readFileSync(sweepFile('editor', '0', '1, 2'), 'utf8'))).workflow!;
      for (const n of wf.nodes) if (n.type === 'load-image') n.params = { ...n.params, image: stored.value };
      const { runId } = await h.enqueue({ workflow: wf, name: 'seeds' });
      await waitFor('both jobs done', () => events.filter((e) => e.type === 'run-done').length >= 2);
      const queued = events.filter((e): e is Extract<RunEvent, { type: 'queued' }> => e.type === 'queued');
      expect(queued.map((e) => [e.name, e.where])).toEqual([
        ['seeds [weight=0, seed=1]', url],
        ['seeds [weight=0, seed=2]', url],
      ]);
      expect(queued[0].runId).toBe(runId);
      for (const q of queued) {
        expect(events.some((e) => e.type === 'progress' && e.runId === q.runId)).toBe(true);
        expect(events.find((e) => e.type === 'run-done' && e.runId === q.runId)).toMatchObject({ ok: true });
      }
      const outputs = events.filter((e): e is Extract<RunEvent, { type: 'output' }> => e.type === 'output').flatMap((e) => e.images.map((i) => i.path));
      expect(outputs.map((f) => path.basename(f)).sort()).toEqual(['editor-001_00001_.png', 'editor-002_00001_.png']);
      for (const f of outputs) expect(path.dirname(f)).toBe(out);
      const records = h.listQueue({}) as QueueJob[];
      expect(records.filter((r) => r.where === url).map((r) => r.state)).toEqual(['done', 'done']);
      await waitFor('the grid', () => fs.existsSync(path.join(out, 'editor-grid_00001_.png')));

      // A queue that is not there: Run is accepted, the jobs are held in the editor (shown as waiting for it); removing one there ends it.
      const dead = `redis://127.0.0.1:${await freePort()}`;
      await h.updateSettings({ farmQueue: dead });
      const held = await h.enqueue({ workflow: wf, name: 'seeds' });
      expect(held.runIds).toHaveLength(2);
      await waitFor('the jobs held', () => (h.listQueue({}) as QueueJob[]).filter((r) => r.held === `waiting for the queue at ${dead}`).length === 2);
      expect(events.some((e) => e.type === 'log' && /cannot reach Redis at .*2 job\(s\) wait in the editor/.test(e.message))).toBe(true);
      for (const id of held.runIds!) h.cancel({ runId: id });
      expect(held.runIds!.map((id) => events.find((e) => e.type === 'run-done' && e.runId === id))).toMatchObject([{ cancelled: true }, { cancelled: true }]);
      expect((await h.farmStatus({}))?.connected).toBe(false);
      await h.updateSettings({ farmQueue: '' });
      expect(await h.farmStatus({})).toBeNull();
    } finally {
      off();
      await engine.close();
    }
  });

  it('the editor with Redis unreachable at Run and lost mid-batch: the jobs wait in the editor, go to the queue when it is back, and every result (those Redis kept too) arrives exactly once', async () => {
    const { out, stored, engine, h, events, off } = editorOnFarm('editor-held');
    const heldNow = () => (h.listQueue({}) as QueueJob[]).filter((r) => r.held === `waiting for the queue at ${url}`);
    const doneOk = () => events.filter((e) => e.type === 'run-done' && e.ok);
    try {
      await stopRedis();
      await h.updateSettings({ farmQueue: url });
      const wf = parseWorkflow(JSON.parse(fs.readFileSync(sweepFile('held', '0, 1', '1, 2, 3', 12), 'utf8'))).workflow!;
      for (const n of wf.nodes) if (n.type === 'load-image') n.params = { ...n.params, image: stored.value };
      const { runIds } = await h.enqueue({ workflow: wf, name: 'held' });
      expect(runIds).toHaveLength(6);
      await waitFor('all six held', () => heldNow().length === 6, 20_000);
      expect(events.filter((e) => e.type === 'run-done')).toEqual([]);

      await startRedis(); // the held jobs are submitted by the editor's retry
      await waitFor('a first result', () => doneOk().length >= 1, 120_000);
      expect(heldNow()).toEqual([]);
      // Lost mid-batch: what Redis holds now (jobs done but not yet collected, jobs waiting) is saved, and comes back with it.
      await redisCommand('SAVE');
      await stopRedis();
      const before = doneOk().length;
      expect(before).toBeLessThan(6);
      await waitFor('the open jobs held again', () => heldNow().length === 6 - before, 30_000);
      expect(events.filter((e) => e.type === 'run-done' && !e.ok)).toEqual([]);
      await startRedis();
      fs.rmSync(path.join(tmp, 'dump.rdb'), { force: true }); // later restarts start empty
      await waitFor('all six results', () => doneOk().length === 6, 180_000);
      for (const id of runIds!) expect(events.filter((e) => e.type === 'run-done' && e.runId === id)).toHaveLength(1);
      expect(heldNow()).toEqual([]);
      expect(pngs(out)).toEqual([
        'held-001_00001_.png',
        'held-002_00001_.png',
        'held-003_00001_.png',
        'held-004_00001_.png',
        'held-005_00001_.png',
        'held-006_00001_.png',
      ]);
      await waitFor('the grid', () => fs.existsSync(path.join(out, 'held-grid_00001_.png')));
    } finally {
      off();
      await engine.close();
      if (!redis) await startRedis();
    }
  });

  it('the editor restarted with farm jobs open (held while Redis was down, then in Redis): the next start lists them, submits and collects them, each result exactly once; finished ones stay listed with their workflows', async () => {
    const out = path.join(tmp, 'editor-restart');
    const inputsDir = path.join(userData, 'inputs');
    const stateFile = path.join(tmp, 'restart-user', 'farm-jobs.json');
    const stored = storeImageBytes(inputsDir, 'image-prompt.png', fs.readFileSync(path.join(tmp, 'images', 'image-prompt.png')));
    // One host's life: the engine wrapped as web.ts / electron do it, with the same state file each time.
    const host = () => {
      const engine = withFarm(createEngine({ modelsDir: path.join(tmp, 'none'), outputDir: out, provider: 'cpu', userDataDir: userData, demo: true }), {
        inputsDir,
        stateFile,
      });
      const h = createApiHandlers({ engine, host: 'web', info: () => ({}) as never, examplesDir: path.join(root, 'examples'), inputsDir });
      const events: RunEvent[] = [];
      engine.subscribe((e) => events.push(e));
      return { engine, h, events, ends: (id: string) => events.filter((e) => e.type === 'run-done' && e.runId === id) };
    };
    const saved = () => JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { batches: { open: number[]; runIds: string[] }[]; records: QueueJob[] };
    const names = ['restart [weight=0, seed=1]', 'restart [weight=1, seed=1]', 'restart [weight=0, seed=2]', 'restart [weight=1, seed=2]']; // X varies fastest

    // 1. Redis is down at Run: the four jobs are held, and the app is closed.
    await stopRedis();
    const a = host();
    await a.h.updateSettings({ farmQueue: url });
    const wf = parseWorkflow(JSON.parse(fs.readFileSync(sweepFile('restart', '0, 1', '1, 2', 12), 'utf8'))).workflow!;
    for (const n of wf.nodes) if (n.type === 'load-image') n.params = { ...n.params, image: stored.value };
    const { runIds } = await a.h.enqueue({ workflow: wf, name: 'restart' });
    expect(runIds).toHaveLength(4);
    await waitFor('all four held', () => (a.h.listQueue({}) as QueueJob[]).filter((r) => r.held).length === 4, 20_000);
    await a.engine.close();
    expect(saved().batches).toMatchObject([{ open: [0, 1, 2, 3], runIds }]);

    // 2. The next start, Redis back: the jobs are listed as before (names, workflows) and go to the queue; closed after a first result.
    await startRedis();
    const b = host();
    const listed = (b.h.listQueue({}) as QueueJob[]).filter((r) => runIds!.includes(r.runId));
    expect(listed.map((r) => [r.runId, r.name, r.where, r.batch])).toEqual(runIds!.map((id, i) => [id, names[i], url, runIds![0]]));
    expect(listed.every((r) => r.workflow?.nodes.some((n) => n.type === 'save-image'))).toBe(true);
    await waitFor('a first result after the restart', () => b.events.some((e) => e.type === 'run-done' && e.ok), 120_000);
    await b.engine.close();
    const firstDone = runIds!.filter((id) => b.ends(id).length);
    expect(firstDone.length).toBeLessThan(4);
    expect(saved().batches[0].open).toHaveLength(4 - firstDone.length);

    // As if the app had been killed after writing one result's PNG and before saving that it had it: that job is open again.
    const reopened = firstDone[0];
    const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { batches: { open: number[]; runIds: string[] }[] };
    state.batches[0].open.push(runIds!.indexOf(reopened));
    fs.writeFileSync(stateFile, JSON.stringify(state));

    // 3. Started again: the rest (running on the workers meanwhile, or waiting) are collected, and the reopened one is
    // run or collected again but its PNG, already there with the same bytes, is not written twice.
    const c = host();
    const again = runIds!.filter((id) => id === reopened || !firstDone.includes(id));
    await waitFor('the other results', () => again.every((id) => c.ends(id).length === 1), 180_000);
    for (const id of runIds!) expect(b.ends(id).length + c.ends(id).length, id).toBe(id === reopened ? 2 : 1);
    for (const id of firstDone) if (id !== reopened) expect(c.ends(id)).toEqual([]);
    expect(pngs(out)).toEqual(['restart-001_00001_.png', 'restart-002_00001_.png', 'restart-003_00001_.png', 'restart-004_00001_.png']);
    await waitFor('the grid', () => fs.existsSync(path.join(out, 'restart-grid_00001_.png')));
    await waitFor('the state saved', () => saved().batches.length === 0);
    await c.engine.close();

    // 4. And again: nothing is open, the finished jobs are listed with their workflows (Re-queue), nothing is submitted.
    const d = host();
    try {
      const listed = d.h.listQueue({}) as QueueJob[];
      const done = runIds!.map((id) => listed.find((r) => r.runId === id)!); // by job (they share one submission time)
      expect(done.map((r) => [r?.name, r?.state])).toEqual(names.map((n) => [n, 'done']));
      expect(done.every((r) => r.workflow && r.images?.length === 1)).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      expect(d.events.filter((e) => e.type === 'queued' || e.type === 'run-done')).toEqual([]);
      expect(fs.readdirSync(path.dirname(stateFile)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    } finally {
      await d.engine.close();
    }
  });

  it('a damaged farm-jobs file: the editor starts with none restored and says so, and writes a good one at the next change', async () => {
    const stateFile = path.join(tmp, 'damaged-user', 'farm-jobs.json');
    fs.mkdirSync(path.dirname(stateFile), { recursive: true });
    fs.writeFileSync(stateFile, '{"format": "ipadapter-studio/farm-jobs", "version": 1, "batches": [{');
    const inputsDir = path.join(userData, 'inputs');
    const engine = withFarm(
      createEngine({ modelsDir: path.join(tmp, 'none'), outputDir: path.join(tmp, 'damaged'), provider: 'cpu', userDataDir: userData, demo: true }),
      {
        inputsDir,
        stateFile,
      },
    );
    const events: RunEvent[] = [];
    engine.subscribe((e) => events.push(e));
    try {
      await waitFor('the warning', () => events.some((e) => e.type === 'log' && e.level === 'warn'), 5_000);
      expect(events.find((e) => e.type === 'log' && e.level === 'warn')).toMatchObject({
        message: expect.stringMatching(/farm-jobs\.json could not be read .*none were restored/),
      });
      expect(engine.listQueue()).toEqual([]);
      // Held jobs are written again (a queue that is not there holds them).
      const h = createApiHandlers({ engine, host: 'web', info: () => ({}) as never, examplesDir: path.join(root, 'examples'), inputsDir });
      await h.updateSettings({ farmQueue: `redis://127.0.0.1:${await freePort()}` });
      const wf = parseWorkflow(JSON.parse(fs.readFileSync(sweepFile('damaged', '0', '1'), 'utf8'))).workflow!;
      const stored = storeImageBytes(inputsDir, 'image-prompt.png', fs.readFileSync(path.join(tmp, 'images', 'image-prompt.png')));
      for (const n of wf.nodes) if (n.type === 'load-image') n.params = { ...n.params, image: stored.value };
      const { runIds } = await h.enqueue({ workflow: wf, name: 'damaged' });
      const saved = () => JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { batches: { runIds: string[]; open: number[]; submitted: boolean }[] };
      expect(saved().batches).toMatchObject([{ runIds, open: [0], submitted: false }]);
      // Removed while held, never having reached a Redis: the sweep is gone from the file (nothing to retry).
      await waitFor('the job held', () => engine.listQueue().some((r) => r.runId === runIds![0] && r.held));
      h.cancel({ runId: runIds![0] });
      await waitFor('the sweep gone from the file', () => saved().batches.length === 0, 10_000); // at once, or when a connection attempt under way fails
    } finally {
      await engine.close();
    }
  });

  it("the editor's Cancel batch on the farm, with a priority: the sweep's prioritized waiting jobs leave the queue, the running ones stop, each reported once", async () => {
    const { out, stored, engine, h, events, off } = editorOnFarm('editor-cancel');
    const queue = new Queue(FARM_QUEUE, { connection: { host: '127.0.0.1', port }, prefix: FARM_PREFIX });
    try {
      await h.updateSettings({ farmQueue: url, farmPriority: 5 }); // Settings' farm priority: the jobs wait as BullMQ prioritized ones
      const wf = parseWorkflow(JSON.parse(fs.readFileSync(sweepFile('ecancel', '0, 0.5, 1', '1, 2, 3, 4', 20), 'utf8'))).workflow!;
      for (const n of wf.nodes) if (n.type === 'load-image') n.params = { ...n.params, image: stored.value };
      const { runIds } = await h.enqueue({ workflow: wf, name: 'ecancel' });
      expect(runIds).toHaveLength(12);
      await waitFor('a job running', () => events.some((e) => e.type === 'run-start'), 60_000);
      expect((await queue.getJobCounts('prioritized')).prioritized).toBeGreaterThan(0);
      // The panel's Cancel batch: a cancel for each pending job of the sweep, in one tick.
      for (const r of h.listQueue({}) as QueueJob[])
        if (r.batch === runIds![0] && (r.state === 'queued' || r.state === 'running')) h.cancel({ runId: r.runId });
      await waitFor('every job reported', () => runIds!.every((id) => events.some((e) => e.type === 'run-done' && e.runId === id)), 60_000);
      // The jobs are reported at once; their removal from Redis (BullMQ's job.remove, the workers' abort) follows.
      await waitFor(
        'no job of the batch waiting',
        async () => {
          const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
          return c.waiting + c.prioritized + c.delayed === 0;
        },
        20_000,
      );
      await waitFor('the running jobs to stop', async () => (await queue.getJobCounts('active')).active === 0, 20_000);
      const ends = runIds!.map((id) => events.filter((e): e is Extract<RunEvent, { type: 'run-done' }> => e.type === 'run-done' && e.runId === id));
      for (const e of ends) expect(e).toHaveLength(1);
      const done = ends.filter((e) => e[0].ok).length;
      expect(done).toBeLessThan(12);
      expect(ends.filter((e) => e[0].cancelled).length).toBe(12 - done);
      expect(pngs(out)).toHaveLength(done);
      await h.updateSettings({ farmPriority: 0 });
    } finally {
      off();
      await queue.close();
      await engine.close();
    }
  });

  it('a job naming a model no worker has fails with the missing file named, after every online worker refused it', async () => {
    const file = sweepFile('missing', '0', '1');
    const out = path.join(tmp, 'missing');
    const run = cli([file, '--queue', url, '--out', out, '--set', 'checkpoint.ckpt_name=not-on-any-worker.safetensors']);
    expect(await run.done).toBe(1);
    expect(run.out.join('')).toMatch(/failed: no worker online has checkpoints\/not-on-any-worker\.safetensors \(refused by (wA, wB|wB, wA)\)/);
  });

  it('a Redis that is not there: the CLI says so and keeps the batch to resume', async () => {
    const file = sweepFile('nowhere', '0', '1');
    const out = path.join(tmp, 'nowhere');
    const dead = await freePort();
    const run = cli([file, '--queue', `redis://127.0.0.1:${dead}`, '--out', out]);
    expect(await run.done).toBe(1);
    expect(run.out.join('')).toMatch(new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${dead}: .*ECONNREFUSED.*nothing was lost: 0 of 1 results`));
    expect(batchOf(out).batch.jobs[0].state).toBe('pending');
  });
  it('a worker with --concurrency 2: two jobs at once on one shared model store (each model loaded once), one cancelled mid-run, the others byte for byte as run locally', async () => {
    // Its own Redis, so the two worker processes above take none of these jobs.
    const port2 = await freePort();
    const url2 = `redis://127.0.0.1:${port2}`;
    const r2 = spawn('redis-server', ['--port', String(port2), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
    children.add(r2);
    const logs: string[] = [];
    let worker: Awaited<ReturnType<typeof startFarmWorker>> | null = null;
    let client: FarmClient | null = null;
    try {
      await waitFor(
        'the second Redis',
        async () =>
          FarmClient.connect(url2, 500).then(
            (c) => (void c.close(), true),
            () => false,
          ),
        20_000,
      );
      worker = await startFarmWorker({
        redis: url2,
        modelsDir: path.join(tmp, 'none'),
        demo: true,
        userDataDir: userData,
        concurrency: 2,
        name: 'wC',
        lockMs: 3000,
        log: (l) => logs.push(l),
      });
      await worker.ready;
      expect(worker.engines).toHaveLength(2);
      expect(worker.engines[1].store).toBe(worker.engines[0].store);

      const file = sweepFile('conc', '0, 0.5, 1', '1', 40);
      const out = path.join(tmp, 'conc');
      const wf = parseWorkflow(JSON.parse(fs.readFileSync(file, 'utf8'))).workflow as Workflow;
      const specs = nodeSpecs();
      const plan = planBatch(wf, specs, tmp, null);
      if ('errors' in plan) throw new Error(JSON.stringify(plan.errors));
      const { file: batchFile, batch } = createBatchFile(wf, plan, { queue: url2, outputDir: out, workflowDir: tmp, inputsDir: null, name: 'conc' });
      const done = runFarmBatch(batchFile, { specs, modelsDir: path.join(userData, 'demo-models'), log: () => {} });
      // Both slots busy at once: each slot's engine has a running job.
      const running = () => worker!.engines.map((e) => e.listQueue().find((j) => j.state === 'running' && (j.progress?.step ?? 0) >= 2));
      await waitFor('two jobs running at once', () => running().every(Boolean), 120_000);
      // Cancel one of the two: its slot's engine aborts it; the other slot's job goes on, and the third job takes the freed slot.
      client = await FarmClient.connect(url2, 3000);
      const queue2 = new Queue(FARM_QUEUE, { connection: { host: '127.0.0.1', port: port2 }, prefix: FARM_PREFIX });
      const ids = (await queue2.getActive()).map((j) => j.id!);
      await queue2.close();
      expect(ids).toHaveLength(2);
      const victim = Math.max(...ids.map((id) => Number(id.split('-').pop())));
      await client.cancelJobs(batch.batch, [victim]);
      const res = await done;
      const states = res.batch.jobs.map((j) => j.state);
      expect(states[victim]).toBe('cancelled');
      expect(states.filter((x) => x === 'done')).toHaveLength(2);
      // Each model was loaded once for both slots.
      const loads = [...worker.engines[0].store.loads.values()];
      expect(loads.length).toBeGreaterThan(0);
      expect(
        loads.every((n) => n === 1),
        JSON.stringify(Object.fromEntries(worker.engines[0].store.loads)),
      ).toBe(true);
      const localOut = path.join(tmp, 'conc-local');
      await runLocally(file, localOut);
      const names = pngs(out);
      expect(names).toHaveLength(2);
      expect(names.every((n) => !n.startsWith(`conc-00${victim + 1}_`))).toBe(true);
      expectSameBytes(out, localOut, names);
    } finally {
      await client?.close();
      await worker?.close();
      r2.kill('SIGKILL');
    }
  });
});
