/**
 * Bench section `farm` (issue 16): the 24-job sweep (λ 4 x seed 6 of examples/lambda-seed-grid.json
 * on the demo models, 64 x 64, --steps DDIM steps, default 2) run three ways in one process run,
 * interleaved: on the in-process engine (the local queue), on the farm with one worker, and with
 * two (worker processes of scripts/worker.ts on a redis-server started here on a loopback port).
 * Each way runs once as a warm-up (models loaded, caches filled), then `rounds` times in turn.
 * Reported: wall ms per batch, ms per job, the farm's queue overhead per job (farm wall with one
 * worker minus the local wall, over 24), CPU ms of the submitter and of the workers (/proc). On this 2-core machine the demo jobs are
 * small, so the figure is the queue's overhead, not a speed-up; see README "Render farm".
 * Then the memory of `--concurrency 2`: two more workers, one whose slots share one model store (today) and one with
 * `--separate-models` (each slot its own copy, as before), each running the 24 jobs alone in turn (the other paused);
 * reported: their resident memory (VmRSS) and peak (VmHWM) from /proc, and the batch's wall time on each.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDemoModels } from '../../engine/demo/demo.js';
import { createEngine } from '../../engine/engine.js';
import { planBatch, runBatchLocally } from '../../engine/farm/batch.js';
import { createBatchFile, runFarmBatch } from '../../engine/farm/submit.js';
import type { Workflow } from '../../engine/protocol.js';
import { parseWorkflow } from '../../engine/workflow.js';
import { nodeSpecs } from '../../nodes/index.js';
import type { Args } from './common.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

/** user + system CPU ms of a process (Linux /proc), 0 elsewhere. */
function cpuMsOf(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** A memory line of /proc/<pid>/status (VmRSS, VmHWM) in MB, 0 elsewhere. */
function procStatusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? +(Number(m[1]) / 1024).toFixed(1) : 0;
  } catch {
    return 0;
  }
}

export async function benchFarm(dir: string, a: Args): Promise<Record<string, unknown>> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return { error: 'redis-server is not installed (apt-get install redis-server)' };
  const steps = a.stepsGiven ? a.steps : 2;
  const rounds = 2;
  const userData = path.join(dir, 'farm-user');
  ensureDemoModels(path.join(userData, 'demo-models'));
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  fs.copyFileSync(path.join(root, 'examples', 'images', 'image-prompt.png'), path.join(dir, 'images', 'image-prompt.png'));
  const wf = parseWorkflow(JSON.parse(fs.readFileSync(path.join(root, 'examples', 'lambda-seed-grid.json'), 'utf8'))).workflow as Workflow;
  for (const n of wf.nodes) {
    if (n.type === 'ddim-sampler') n.params = { ...n.params, steps };
    if (n.type === 'empty-latent-image') n.params = { ...n.params, width: 64, height: 64 };
    if (n.type === 'sweep') n.params = { ...n.params, x_values: '0, 0.25, 0.5, 1', y_values: '1, 2, 3, 4, 5, 6' };
  }
  const specs = nodeSpecs();
  const plan = planBatch(wf, specs, dir, null);
  if ('errors' in plan) throw new Error(plan.errors.map((e) => e.message).join('; '));
  const jobs = plan.jobs.length;

  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  children.push(redis);
  const engine = createEngine({
    modelsDir: path.join(dir, 'none'),
    outputDir: path.join(dir, 'local-out'),
    provider: 'cpu',
    userDataDir: userData,
    demo: true,
  });
  const workers: ChildProcess[] = [];
  const startWorker = (name: string, extra: string[] = []) =>
    new Promise<ChildProcess>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', 'scripts/worker.ts', '--redis', url, '--demo', '--user-data', userData, '--name', name, ...extra], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(p);
      let out = '';
      p.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve(p);
      });
      p.once('exit', (c) => reject(new Error(`worker ${name} exited (${c}): ${out}`)));
    });

  let n = 0;
  const local = async () => {
    const out = path.join(dir, `local-${n++}`);
    engine.updateSettings({ outputDir: out });
    const t0 = performance.now();
    const res = await runBatchLocally(engine, wf, plan, { workflowDir: dir }).done;
    if (!res.ok) throw new Error(`local batch failed: ${res.jobs.find((j) => !j.ok)?.error}`);
    return { wall: performance.now() - t0 };
  };
  const farm = async () => {
    const out = path.join(dir, `farm-${n++}`);
    const { file } = createBatchFile(wf, plan, { queue: url, outputDir: out, workflowDir: dir, inputsDir: null, name: 'bench' });
    const t0 = performance.now();
    const r = await runFarmBatch(file, { specs, modelsDir: path.join(userData, 'demo-models'), log: () => {} });
    const wall = performance.now() - t0;
    if (!r.ok) throw new Error(`farm batch failed: ${r.lost ?? r.batch.jobs.find((j) => j.state !== 'done')?.error}`);
    const doneFile = JSON.parse(fs.readFileSync(file, 'utf8')) as { jobs: { worker?: string }[] };
    return { wall, workers: new Set(doneFile.jobs.map((j) => j.worker)).size };
  };

  type Way = 'local' | 'farm_1_worker' | 'farm_2_workers';
  const walls: Record<Way, number[]> = { local: [], farm_1_worker: [], farm_2_workers: [] };
  const cpu: Record<Way, { submitter: number; workers: number }> = {
    local: { submitter: 0, workers: 0 },
    farm_1_worker: { submitter: 0, workers: 0 },
    farm_2_workers: { submitter: 0, workers: 0 },
  };
  const workersUsed: number[] = [];
  let memory: Record<string, unknown> | undefined;
  try {
    await new Promise((r) => setTimeout(r, 300));
    workers.push(await startWorker('bench-1'));
    const second = await startWorker('bench-2');
    const stopSecond = () => second.kill('SIGSTOP');
    const contSecond = () => second.kill('SIGCONT');
    // The second worker is paused (SIGSTOP: it takes no job) for the one-worker runs.
    const ways: [Way, () => Promise<{ wall: number; workers?: number }>][] = [
      ['local', local],
      [
        'farm_1_worker',
        async () => {
          stopSecond();
          try {
            return await farm();
          } finally {
            contSecond();
          }
        },
      ],
      ['farm_2_workers', farm],
    ];
    // Warm-up: each way once (the workers load their models and fill their caches).
    for (const [, fn] of ways) await fn();
    for (let r = 0; r < rounds; r++) {
      for (const [name, fn] of ways) {
        const c0 = process.cpuUsage();
        const w0 = cpuMsOf(workers[0].pid!) + cpuMsOf(second.pid!);
        const res = await fn();
        const c1 = process.cpuUsage(c0);
        walls[name].push(res.wall);
        cpu[name].submitter += (c1.user + c1.system) / 1000 / rounds;
        cpu[name].workers += (cpuMsOf(workers[0].pid!) + cpuMsOf(second.pid!) - w0) / rounds;
        if (name === 'farm_2_workers' && res.workers) workersUsed.push(res.workers);
      }
    }
    // --concurrency 2: one model store for both slots vs a copy per slot. The two workers above are paused meanwhile.
    for (const w of [workers[0], second]) w.kill('SIGSTOP');
    const shared = await startWorker('bench-c2-shared', ['--concurrency', '2']);
    const separate = await startWorker('bench-c2-separate', ['--concurrency', '2', '--separate-models']);
    // Each way: the named worker alone (the other paused).
    const memWays: [string, ChildProcess][] = [
      ['shared_store', separate],
      ['separate_stores', shared],
    ];
    const memWall: Record<string, number[]> = { shared_store: [], separate_stores: [] };
    for (let r = 0; r < 2; r++) {
      for (const [name, off] of memWays) {
        off.kill('SIGSTOP');
        try {
          memWall[name].push((await farm()).wall);
        } finally {
          off.kill('SIGCONT');
        }
      }
    }
    const mem = (p: ChildProcess) => ({ rss_mb: procStatusMb(p.pid!, 'VmRSS'), peak_rss_mb: procStatusMb(p.pid!, 'VmHWM') });
    const ms = mem(shared);
    const mp = mem(separate);
    memory = {
      concurrency: 2,
      shared_store: { ...ms, wall_ms: memWall.shared_store.map(Math.round) },
      separate_stores: { ...mp, wall_ms: memWall.separate_stores.map(Math.round) },
      peak_rss_saved_mb: +(mp.peak_rss_mb - ms.peak_rss_mb).toFixed(1),
      note: 'each worker ran the 24 jobs twice alone (the other paused), its two slots busy at once; demo models are tiny, so the saving is ONNX Runtime sessions and their arenas, and grows with real models (one SD1.5 UNet is ~1.7 GB in fp16, ~3.4 GB in fp32)',
    };
    for (const w of [workers[0], second]) w.kill('SIGCONT');
  } finally {
    await engine.close();
    for (const c of children.reverse()) if (c.exitCode === null) c.kill('SIGKILL');
  }
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const fig = (w: Way) => ({
    wall_ms: walls[w].map((x) => Math.round(x)),
    ms_per_job: +(mean(walls[w]) / jobs).toFixed(1),
    cpu_ms_submitter: Math.round(cpu[w].submitter),
    cpu_ms_workers: Math.round(cpu[w].workers),
  });
  const localMean = mean(walls.local);
  return {
    jobs,
    steps,
    size: '64x64',
    rounds,
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
    local: fig('local'),
    farm_1_worker: fig('farm_1_worker'),
    farm_2_workers: { ...fig('farm_2_workers'), workers_that_took_jobs: workersUsed },
    queue_overhead_ms_per_job_1_worker: +((mean(walls.farm_1_worker) - localMean) / jobs).toFixed(1),
    two_workers_vs_one: +(mean(walls.farm_1_worker) / mean(walls.farm_2_workers)).toFixed(2),
    worker_memory_concurrency_2: memory,
    note: 'overhead = (farm wall - local wall) / jobs: job JSON + images through Redis, the worker picking it up, the PNG back and written, polling; the local queue has none of it. On 2 cores two workers share the same CPUs, so their ratio says little about GPU machines (README: Render farm).',
  };
}
