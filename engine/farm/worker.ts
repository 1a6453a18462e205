/**
 * A render-farm worker: the engine as a BullMQ worker on the farm's queue (engine/farm/job.ts).
 * Each job is checked with the job and workflow schemas, its models looked up by name in this
 * worker's models folder (a job naming one it lacks is put back, delayed, for another worker, and
 * fails naming the files once every online worker has refused it), its images written into this
 * worker's own temporary folder (checked against their SHA-256), run on an in-process engine (one
 * per concurrency slot, each with its own output cache, queue and cancellation, all sharing one
 * model store: with --concurrency N each model is loaded once, not N times) and its PNGs returned; the slot's output
 * folder is emptied after every job (its images stay, rewritten only when a job brings other bytes,
 * so the cache keeps what was computed from them), and a job writes nothing outside the temporary folder. BullMQ does
 * the rest: locks and stalled-job detection (a killed worker's job goes back to the queue for
 * another), retries with backoff, progress events, cancellation (the job's AbortSignal).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions as IORedisOptions } from 'ioredis';
import { createEngine, type Engine } from '../engine.js';
import type { EngineSettings } from '../api.js';
import { imageUses, inputsFileOf, isAbsoluteRef } from '../image-refs.js';
import { climbsOut, listModels, PathResolver } from '../paths.js';
import { WorkflowSchema, summarise } from '../protocol.js';
import { parseWorkflow } from '../workflow.js';
import { sha256 } from '../hosts/inputs-store.js';
import { nodeSpecs } from '../../nodes/index.js';
import {
  CANCEL_CHANNEL,
  FARM_PREFIX,
  FARM_QUEUE,
  FarmJobSchema,
  HEARTBEAT_MS,
  modelList,
  WORKER_TTL_MS,
  WORKERS_KEY,
  type FarmJob,
  type FarmProgress,
  type FarmResult,
  type WorkerInfo,
} from './job.js';
import { redisOptions } from './redis.js';

export interface FarmWorkerOptions {
  redis: string;
  modelsDir: string;
  concurrency?: number;
  demo?: boolean;
  userDataDir: string;
  provider?: EngineSettings['provider'];
  /** BullMQ lock duration (ms); a dead worker's job is retried after it (and one stalled check). */
  lockMs?: number;
  /** A name for the logs and the status line (default host:pid). */
  name?: string;
  /**
   * The slots share one model store (default true). false: each slot loads its own copy of every model, as before
   * (kept for the benchmark's memory comparison, scripts/bench/farm.ts).
   */
  shareModels?: boolean;
  log?: (line: string) => void;
}

export interface FarmWorker {
  id: string;
  /** The models folder in use (the demo folder with --demo). */
  modelsDir: string;
  tempDir: string;
  /** The slots' engines (one per concurrency slot; tests and diagnostics read their model stores). */
  engines: Engine[];
  /** Resolves when BullMQ's connection is ready. */
  ready: Promise<void>;
  close(): Promise<void>;
}

interface Slot {
  engine: Engine;
  dir: string;
  busy: boolean;
}

const emptyDir = (dir: string) => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
};

/** Every file under `dir`, as POSIX paths relative to it. */
function filesUnder(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...filesUnder(dir, r));
    else if (e.isFile()) out.push(r);
  }
  return out.sort();
}

export async function startFarmWorker(opts: FarmWorkerOptions): Promise<FarmWorker> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const id = opts.name ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 4)}`;
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 1));
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipas-worker-'));
  const specs = nodeSpecs();
  const slots: Slot[] = [];
  for (let i = 0; i < concurrency; i++) {
    const dir = path.join(tempDir, `slot-${i}`);
    for (const d of ['out', 'inputs', 'wf']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const engine = createEngine({
      modelsDir: opts.modelsDir,
      outputDir: path.join(dir, 'out'),
      inputsDir: path.join(dir, 'inputs'),
      userDataDir: opts.userDataDir,
      provider: opts.provider ?? 'cpu',
      demo: opts.demo === true,
      // ONNX Runtime's run is synchronous on this thread (onnxruntime-node), so slots never compute at the same instant:
      // a second copy of the models would buy no speed, only memory. Each slot keeps its own executor (output cache) and abort.
      ...(i > 0 && opts.shareModels !== false ? { store: slots[0].engine.store } : {}),
    });
    slots.push({ engine, dir, busy: false });
  }
  const modelsDir = slots[0].engine.modelsDir();
  const resolver = new PathResolver(modelsDir);
  const models = () => listModels(modelsDir) as Record<string, string[]>;
  const connection = redisOptions(opts.redis, { forWorker: true });

  const heart = new Redis(connection as IORedisOptions);
  const sub = new Redis(connection as IORedisOptions);
  for (const c of [heart, sub]) c.on('error', () => {}); // ioredis reconnects; BullMQ's own errors are logged below
  const info = (): WorkerInfo => ({
    id,
    host: os.hostname(),
    pid: process.pid,
    concurrency,
    models: models(),
    busy: slots.filter((s) => s.busy).length,
    seen: Date.now(),
  });
  const beat = () => heart.hset(WORKERS_KEY, id, JSON.stringify(info())).catch(() => {});
  void beat();
  const timer = setInterval(beat, HEARTBEAT_MS);

  /** Online workers' ids (heartbeat fresher than WORKER_TTL_MS). */
  const online = async (): Promise<string[]> => {
    const all = await heart.hgetall(WORKERS_KEY);
    return Object.entries(all)
      .filter(([, v]) => {
        try {
          return Date.now() - (JSON.parse(v) as WorkerInfo).seen < WORKER_TTL_MS;
        } catch {
          return false;
        }
      })
      .map(([k]) => k);
  };

  const active = new Map<string, string>(); // job id -> batch
  const processor = async (job: Job, token?: string, signal?: AbortSignal): Promise<FarmResult> => {
    const parsed = FarmJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`the job is not a valid farm job: ${summarise(parsed.error)}`);
    const data: FarmJob = parsed.data;
    if (await heart.sismember(`${FARM_PREFIX}:farm:cancelled`, data.batch)) throw new UnrecoverableError('cancelled by the submitter');

    const missing = data.models.filter((m) => !resolver.resolveModel(m.kind, m.name));
    if (missing.length) {
      const refusedBy = [...new Set([...(data.refusedBy ?? []), id])];
      const others = (await online()).filter((w) => !refusedBy.includes(w));
      if (!others.length) {
        throw new UnrecoverableError(
          `no worker online has ${modelList(missing)} (refused by ${refusedBy.join(', ')}); put the files in a worker's models folder`,
        );
      }
      log(`job ${job.id}: refused, this worker lacks ${modelList(missing)}; left for ${others.join(', ')}`);
      await job.updateData({ ...data, refusedBy });
      await job.moveToDelayed(Date.now() + 1000, token);
      throw new DelayedError();
    }

    const slot = slots.find((s) => !s.busy);
    if (!slot) throw new Error('internal: no free engine slot');
    slot.busy = true;
    active.set(String(job.id), data.batch);
    const t0 = performance.now();
    try {
      emptyDir(path.join(slot.dir, 'out'));
      const wf = checkedWorkflow(data);
      // The images, where the workflow's refs resolve: inputs/<file> in the inputs folder, the rest beside the workflow.
      for (const [ref, hash] of Object.entries(data.refs)) {
        if (isAbsoluteRef(ref) || climbsOut(ref) || ref.includes('\0')) throw new UnrecoverableError(`image ${ref} is not a path inside the job`);
        const img = data.images[hash];
        if (!img) throw new UnrecoverableError(`the job names image ${ref} but carries no bytes for it`);
        const bytes = Buffer.from(img.data, 'base64');
        if (sha256(bytes) !== hash) throw new UnrecoverableError(`the job's image ${ref} is damaged: its bytes do not match its SHA-256`);
        const stored = inputsFileOf(ref);
        const target = stored !== null ? path.join(slot.dir, 'inputs', stored) : path.join(slot.dir, 'wf', ref);
        // Written only when it differs from what an earlier job left there: an unchanged file keeps its
        // identity (size, mtime), so the engine's cache still holds what was computed from it (the vision encoder's output).
        const same = fs.existsSync(target) && fs.statSync(target).isFile() && sha256(fs.readFileSync(target)) === hash;
        if (!same) {
          fs.mkdirSync(path.dirname(target), { recursive: true });
          fs.rmSync(target, { recursive: true, force: true });
          fs.writeFileSync(target, bytes);
        }
      }
      const run = slot.engine.start(wf, { workflowDir: path.join(slot.dir, 'wf') });
      const onAbort = () => slot.engine.cancel(run.runId);
      signal?.addEventListener('abort', onAbort);
      let last = 0;
      const off = slot.engine.subscribe((e) => {
        if (e.type !== 'progress' || e.runId !== run.runId) return;
        const now = Date.now();
        if (e.step < e.total && now - last < 150) return;
        last = now;
        const p: FarmProgress = { node: e.node, step: e.step, total: e.total };
        void job.updateProgress(p as unknown as object).catch(() => {});
      });
      const outcome = await run.done.finally(() => {
        off();
        signal?.removeEventListener('abort', onAbort);
      });
      if (outcome.cancelled) throw new UnrecoverableError('cancelled by the submitter');
      if (outcome.errors?.length) throw new UnrecoverableError(`the workflow is not valid: ${outcome.errors.map((e) => e.message).join('; ')}`);
      if (!outcome.ok) throw new Error(outcome.error ?? 'the run failed');
      const out = path.join(slot.dir, 'out');
      const images = filesUnder(out).map((name) => ({ name, data: fs.readFileSync(path.join(out, name)).toString('base64') }));
      const ms = Math.round(performance.now() - t0);
      log(`job ${job.id} (${data.label || 'run'}): ${images.length} image(s) in ${ms} ms`);
      return { images, worker: id, ms };
    } finally {
      active.delete(String(job.id));
      emptyDir(path.join(slot.dir, 'out'));
      slot.busy = false;
      void beat();
    }
  };

  /** The job's workflow, checked with the channels' schema and parsed; refs and models that could leave the temporary folder are refused. */
  function checkedWorkflow(data: FarmJob) {
    const shape = WorkflowSchema.safeParse(data.workflow);
    if (!shape.success) throw new UnrecoverableError(`the job's workflow is not valid: ${summarise(shape.error)}`);
    const parsed = parseWorkflow(shape.data);
    if (!parsed.workflow) throw new UnrecoverableError(`the job's workflow is not valid: ${parsed.errors.map((e) => e.message).join('; ')}`);
    for (const u of imageUses(parsed.workflow, specs)) {
      if (isAbsoluteRef(u.ref) || climbsOut(u.ref) || u.ref.includes('\0')) {
        throw new UnrecoverableError(`${u.title} (${u.node}): image ${u.ref} is not a path inside the job (farm jobs carry their images)`);
      }
      if (!data.refs[u.ref]) throw new UnrecoverableError(`${u.title} (${u.node}): the job carries no image for ${u.ref}`);
    }
    for (const n of parsed.workflow.nodes) {
      const spec = specs.find((s) => s.type === n.type);
      for (const p of spec?.params ?? []) {
        const v = n.params[p.name];
        if (p.kind === 'file' && typeof v === 'string' && v && (path.isAbsolute(v) || path.win32.isAbsolute(v) || climbsOut(v))) {
          throw new UnrecoverableError(`${spec!.title} (${n.id}): model ${v} is not a name within the models folder`);
        }
      }
    }
    return parsed.workflow;
  }

  const worker = new Worker(FARM_QUEUE, processor, {
    connection,
    prefix: FARM_PREFIX,
    concurrency,
    name: id,
    lockDuration: opts.lockMs ?? 30_000,
    stalledInterval: Math.max(500, Math.round((opts.lockMs ?? 30_000) / 2)),
    maxStalledCount: 2,
  });
  void sub.subscribe(CANCEL_CHANNEL).catch(() => {});
  sub.on('message', (_ch: string, msg: string) => {
    try {
      const m = JSON.parse(msg) as { batch?: string; jobs?: string[] };
      for (const [jobId, batch] of active) if (m.batch === batch || m.jobs?.includes(jobId)) worker.cancelJob(jobId, 'cancelled by the submitter');
    } catch {
      /* not ours */
    }
  });

  let lastError = '';
  worker.on('error', (e) => {
    const msg = (e as Error).message;
    if (msg !== lastError) log(`redis: ${msg}`);
    lastError = msg;
  });
  worker.on('ready', () => {
    if (lastError) log('redis: connected again');
    lastError = '';
  });
  worker.on('failed', (job, e) => {
    if (job && !(e instanceof DelayedError) && e.name !== 'DelayedError') log(`job ${job.id}: failed: ${e.message}`);
  });
  return {
    id,
    modelsDir,
    tempDir,
    engines: slots.map((s) => s.engine),
    ready: worker.waitUntilReady().then(() => {}),
    async close() {
      clearInterval(timer);
      await worker.close();
      await heart.hdel(WORKERS_KEY, id).catch(() => {});
      heart.disconnect();
      sub.disconnect();
      for (const s of [...slots].reverse()) await s.engine.close(); // the store's owner (slot 0) last
      fs.rmSync(tempDir, { recursive: true, force: true });
    },
  };
}
