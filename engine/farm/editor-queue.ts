/**
 * The editor's "Run on": the hosts' engine wrapped so that, when the `farmQueue` setting names a
 * Redis (`redis://host:6379`), Run submits the workflow (each job of a sweep) to the render farm
 * instead of the in-process queue, and the farm's jobs look like local ones to the renderer: the
 * same RunEvents (queued with `where`, run-start, a progress event per sampler step, output with
 * the PNGs written into this machine's output folder, run-done), the same queue records
 * (listQueue), the same cancel. Redis is the host's business: the renderer only ever sees these
 * events and `farmStatus` (connected, workers online and their models, jobs waiting). When Redis
 * cannot be reached (at Run, or lost in the middle of a batch), the jobs without a result are held
 * here ("waiting for the queue at redis://…" in the queue panel) and submitted again every few
 * seconds until it answers; jobs already in Redis keep running there and their results are
 * collected when the connection returns (a job is added under its id, so re-adding is a no-op).
 *
 * With `stateFile` (the hosts: <userData>/farm-jobs.json) the sweeps whose jobs have no result yet —
 * held or in Redis — and the finished farm jobs' records survive a restart of the app: written
 * atomically at every change (a job submitted, finished or cancelled), read back by the next
 * withFarm, whose jobs are submitted again under the same ids (a job already in Redis is left as it
 * is, one whose result was collected is no longer open) and followed, so each result arrives once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import type { ImageRef, QueueJob, RunEvent, Workflow } from '../api.js';
import { QueueJobSchema, WorkflowSchema } from '../protocol.js';
import type { Engine } from '../engine.js';
import { imageSize } from '../hosts/inputs-store.js';
import { PathResolver } from '../paths.js';
import { planBatch, writeGrid } from './batch.js';
import type { FarmJob } from './job.js';
import { buildFarmJob, FarmClient, RedisLostError, writeFarmResult, type FarmStatus } from './queue.js';
import { newBatchId } from './submit.js';
import { redactedUrl } from './redis.js';
import { listenerSet } from '../listeners.js';

/** Where a host keeps the local queue's records and deduplication's finished runs across restarts (engine/queue-state.ts). */
export const queueStateFileOf = (userDataDir: string): string => path.join(userDataDir, 'queue-state.json');
/** Where a host keeps the farm's open sweeps and finished farm jobs across restarts (withFarm's stateFile). */
export const farmStateFileOf = (userDataDir: string): string => path.join(userDataDir, 'farm-jobs.json');

/** The setting's key in EngineSettings. */
export const FARM_SETTING = 'farmQueue';

export interface FarmEngine extends Engine {
  /** Status of the queue the settings name (null: Run on this machine). */
  farmStatus(): Promise<(FarmStatus & { queue: string }) | null>;
  /** Held jobs try the queue now. */
  farmRetry(): void;
}

const FINISHED_KEPT = 20;
/** How often held jobs try the queue again. */
const RETRY_MS = 2000;
/** Redis unreachable this long in the middle of a batch: its open jobs are held until it answers. */
const LOST_AFTER_MS = 5000;

/** What `stateFile` holds: the open sweeps (enough to build their jobs again) and the finished farm jobs' records. */
const FarmStateSchema = z.object({
  format: z.literal('ipadapter-studio/farm-jobs'),
  version: z.literal(1),
  batches: z.array(
    z.object({
      url: z.string(),
      batch: z.string(),
      wf: WorkflowSchema,
      runIds: z.array(z.string()),
      open: z.array(z.number().int().nonnegative()),
      cancelLater: z.array(z.number().int().nonnegative()),
      /** The first PNG of each finished job (the grid's cells), by index. */
      firsts: z.record(z.string(), z.string()),
      priority: z.number().optional(),
      /** The name the queue shows (a sweep's jobs add their values) and when Run was pressed. */
      title: z.string(),
      submittedAt: z.number(),
      /** A connected Redis was asked to add its jobs (absent in older files: assumed). */
      submitted: z.boolean().optional(),
    }),
  ),
  records: z.array(z.unknown()),
});
type FarmState = z.infer<typeof FarmStateSchema>;

export function withFarm(engine: Engine, o: { inputsDir: string; stateFile?: string }): FarmEngine {
  const listeners = listenerSet<RunEvent>();
  const emit = listeners.emit;
  const records = new Map<string, QueueJob>();
  const cancelling = new Map<string, Set<number>>();
  const jobsOf = new Map<string, { batch: string; index: number }>();
  let client: FarmClient | null = null;
  const queueUrl = () => {
    const q = (engine.settings() as { farmQueue?: string }).farmQueue;
    return typeof q === 'string' && q.trim() ? q.trim() : null;
  };
  const connect = async (url: string): Promise<FarmClient> => {
    if (client && client.url === url && client.connected) return client;
    const old = client;
    client = null;
    if (old) void old.close();
    client = await FarmClient.connect(url, 3000);
    return client;
  };
  const record = (runId: string, patch: Partial<QueueJob>) => {
    const r = records.get(runId);
    if (r) records.set(runId, { ...r, ...patch });
    const done = [...records.values()].filter((j) => j.state !== 'queued' && j.state !== 'running');
    for (const j of done.slice(0, Math.max(0, done.length - FINISHED_KEPT))) records.delete(j.runId);
  };

  /** A sweep submitted from the editor: its jobs (by index) still without a result, held while the queue is unreachable. */
  interface EditorBatch {
    url: string;
    batch: string;
    wf: Workflow;
    plan: Extract<ReturnType<typeof planBatch>, { jobs: unknown }>;
    farmJobs: FarmJob[];
    runIds: string[];
    open: Set<number>;
    /** Cancelled while held: removed from Redis (if an earlier submission put them there) once it answers. */
    cancelLater: Set<number>;
    firsts: (Uint8Array | null)[];
    /** The file each finished job's first PNG was written to (persisted: the grid after a restart). */
    firstFiles: Map<number, string>;
    held: string | null;
    pumping: boolean;
    /** BullMQ priority (Settings' farm priority when Run was pressed). */
    priority?: number;
    title: string;
    submittedAt: number;
    /** Read back from the state file at start. */
    restored?: boolean;
    /** Its jobs were handed to a connected Redis at least once (else a held job removed here has nothing to remove there). */
    submitted: boolean;
  }
  const batches = new Map<string, EditorBatch>();
  let retryTimer: ReturnType<typeof setTimeout> | null = null;
  let closed = false;
  /** Writes the open sweeps and the finished records now (atomically); a failed write is said, and tried again at the next change. */
  const save = () => {
    if (!o.stateFile) return;
    const state: FarmState = {
      format: 'ipadapter-studio/farm-jobs',
      version: 1,
      batches: [...batches.values()].map((b) => ({
        url: b.url,
        batch: b.batch,
        wf: b.wf,
        runIds: b.runIds,
        open: [...b.open],
        cancelLater: [...b.cancelLater],
        firsts: Object.fromEntries([...b.firstFiles].map(([i, f]) => [String(i), f])),
        ...(b.priority ? { priority: b.priority } : {}),
        title: b.title,
        submittedAt: b.submittedAt,
        submitted: b.submitted,
      })),
      records: [...records.values()].filter((r) => r.state !== 'queued' && r.state !== 'running'),
    };
    try {
      writeFileAtomicSync(o.stateFile, JSON.stringify(state));
    } catch (e) {
      emit({ type: 'log', level: 'warn', message: `the farm's jobs could not be saved (${(e as Error).message}); they are kept while the app runs` });
    }
  };
  const finish = (b: EditorBatch, i: number, e: Extract<RunEvent, { type: 'run-done' }>) => {
    if (!b.open.delete(i)) return;
    record(b.runIds[i], {
      state: e.ok ? 'done' : e.cancelled ? 'cancelled' : 'failed',
      finishedAt: Date.now(),
      held: undefined,
      ...(e.error ? { error: e.error } : {}),
    });
    save();
    emit(e);
  };
  /** The queue cannot be reached: the batch's open jobs wait here, shown as such, and are submitted when it answers again. */
  const hold = (b: EditorBatch, why: string) => {
    const held = `waiting for the queue at ${redactedUrl(b.url)}`;
    if (b.held !== held)
      emit({ type: 'log', level: 'warn', message: `${why}; ${b.open.size} job(s) wait in the editor and are submitted when the queue answers again` });
    b.held = held;
    for (const i of b.open) {
      record(b.runIds[i], { state: 'queued', held, progress: undefined, position: i });
      emit({ type: 'queued', runId: b.runIds[i], position: i, where: redactedUrl(b.url), held });
    }
    scheduleRetry();
  };
  const scheduleRetry = () => {
    if (retryTimer || closed) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      for (const b of batches.values()) if (b.held && !b.pumping) void pump(b);
    }, RETRY_MS);
    retryTimer.unref?.();
  };
  /** Submits the batch's open jobs (idempotent: a job already in Redis stays as it is) and follows them until each has a result. */
  async function pump(b: EditorBatch): Promise<void> {
    if (b.pumping || closed) return;
    b.pumping = true;
    try {
      let c: FarmClient;
      try {
        c = await connect(b.url);
        if (b.cancelLater.size) {
          await c.cancelJobs(b.batch, [...b.cancelLater]);
          b.cancelLater.clear();
          save();
        }
        if (!b.open.size) {
          batches.delete(b.batch);
          save();
          return;
        }
        if (!b.submitted) {
          b.submitted = true; // before the call: were it to fail half-way, a later removal still goes to Redis
          save();
        }
        await c.submit(
          [...b.open].map((i) => b.farmJobs[i]),
          b.priority ? { priority: b.priority } : {},
        );
      } catch (e) {
        if (closed) return;
        if (!b.open.size && !b.submitted) {
          batches.delete(b.batch); // all removed while this attempt was under way, and Redis never had them
          save();
          return;
        }
        return hold(b, (e as Error).message);
      }
      if (b.held) {
        b.held = null;
        for (const i of b.open) {
          record(b.runIds[i], { held: undefined });
          emit({ type: 'queued', runId: b.runIds[i], position: i, where: redactedUrl(b.url) });
        }
      }
      const outputDir = engine.settings().outputDir;
      try {
        await c.watch(
          b.batch,
          [...b.open],
          {
            onActive: (i) => {
              record(b.runIds[i], { state: 'running', position: undefined });
              emit({ type: 'run-start', runId: b.runIds[i] });
            },
            onProgress: (i, p) => {
              if (records.get(b.runIds[i])?.state === 'queued') {
                record(b.runIds[i], { state: 'running', position: undefined });
                emit({ type: 'run-start', runId: b.runIds[i] });
              }
              record(b.runIds[i], { progress: { step: p.step, total: p.total, node: p.node } });
              emit({ type: 'progress', runId: b.runIds[i], node: p.node, step: p.step, total: p.total });
            },
            onResult: (i, r) => {
              if (!b.open.has(i)) return;
              // A sweep from before a restart: a result written then, just before the app stopped (before it was saved as
              // such), is not written again. Within one session the open set already hands each result over once.
              const files = writeFarmResult(outputDir, r, b.restored ? { since: b.submittedAt } : {});
              const images: ImageRef[] = files.map((f) => {
                const size = imageSize(fs.readFileSync(f));
                return { path: f, width: size?.width ?? 0, height: size?.height ?? 0 };
              });
              if (files[0]) {
                b.firsts[i] = fs.readFileSync(files[0]);
                b.firstFiles.set(i, files[0]);
              }
              record(b.runIds[i], { images: files });
              emit({ type: 'output', runId: b.runIds[i], node: 'farm', images });
              finish(b, i, { type: 'run-done', runId: b.runIds[i], ok: true });
            },
            onFailed: (i, reason) =>
              finish(b, i, { type: 'run-done', runId: b.runIds[i], ok: false, ...(/cancelled/.test(reason) ? { cancelled: true } : { error: reason }) }),
            onMissing: (i) => c.submit([b.farmJobs[i]]),
          },
          { lostAfterMs: LOST_AFTER_MS },
        );
      } catch (e) {
        if (closed) return; // the app is closing: the open jobs stay in the state file for the next start
        if (e instanceof RedisLostError || !c.connected) return hold(b, (e as Error).message);
        emit({ type: 'log', level: 'warn', message: (e as Error).message });
        for (const i of [...b.open]) finish(b, i, { type: 'run-done', runId: b.runIds[i], ok: false, error: (e as Error).message });
      }
      if (b.open.size) return; // cancelled ones are reported by their cancel
      batches.delete(b.batch);
      save();
      if (b.plan.grid && b.firsts.some((f) => f)) await writeGrid(b.plan, b.firsts, b.wf, engine.nodeSpecs(), outputDir);
    } finally {
      b.pumping = false;
    }
  }

  /**
   * Turns the workflow into farm jobs and hands them to the queue; resolves with their runIds at once. When Redis cannot be
   * reached (now, or later in the batch), the jobs wait in the editor and go to the queue when it answers again.
   */
  function submit(url: string, wf: Workflow, name: string | undefined): { runId: string; runIds: string[] } {
    const specs = engine.nodeSpecs();
    const plan = planBatch(wf, specs, null, o.inputsDir);
    if ('errors' in plan) throw new Error(plan.errors.map((e) => e.message).join('; '));
    const batch = newBatchId(name ?? 'editor');
    const paths = new PathResolver(engine.modelsDir(), null, o.inputsDir);
    const farmJobs = plan.jobs.map((j) => buildFarmJob(batch, j, plan.jobs.length, specs, paths));
    const where = redactedUrl(url);
    const runIds = plan.jobs.map(() => randomUUID());
    const title = name ?? (typeof wf.meta?.title === 'string' ? wf.meta.title : 'untitled');
    const b: EditorBatch = {
      url,
      batch,
      wf,
      plan,
      farmJobs,
      runIds,
      open: new Set(plan.jobs.map((_, i) => i)),
      cancelLater: new Set(),
      firsts: plan.jobs.map(() => null),
      firstFiles: new Map(),
      held: null,
      pumping: false,
      priority: (engine.settings() as { farmPriority?: number }).farmPriority || undefined,
      title,
      submittedAt: Date.now(),
      submitted: false,
    };
    batches.set(batch, b);
    plan.jobs.forEach((j, i) => {
      const jobName = jobNameOf(plan, title, i);
      records.set(runIds[i], {
        runId: runIds[i],
        name: jobName,
        state: 'queued',
        where,
        position: i,
        submittedAt: b.submittedAt,
        batch: runIds[0],
        workflow: j.workflow,
      });
      jobsOf.set(runIds[i], { batch, index: i });
      emit({ type: 'queued', runId: runIds[i], position: i, name: jobName, where });
    });
    save();
    void pump(b);
    return { runId: runIds[0], runIds };
  }

  /**
   * The previous session's state: finished records listed again, open sweeps rebuilt (their jobs built again from the
   * workflow, under the same batch id and runIds) and pumped: submitted (a no-op for a job Redis has) and followed.
   */
  function restore(file: string) {
    let state: FarmState;
    try {
      state = FarmStateSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        setTimeout(
          () => emit({ type: 'log', level: 'warn', message: `the farm's saved jobs ${file} could not be read (${(e as Error).message}); none were restored` }),
          0,
        );
      return;
    }
    for (const r of state.records) {
      const ok = QueueJobSchema.safeParse(r);
      if (ok.success) records.set(ok.data.runId, ok.data);
    }
    const specs = engine.nodeSpecs();
    for (const s of state.batches) {
      const plan = planBatch(s.wf, specs, null, o.inputsDir);
      const where = redactedUrl(s.url);
      const lost = (why: string) => {
        s.runIds.forEach((runId, i) => {
          if (!s.open.includes(i)) return;
          records.set(runId, { runId, name: s.title, state: 'failed', where, submittedAt: s.submittedAt, finishedAt: Date.now(), error: why });
        });
        setTimeout(() => emit({ type: 'log', level: 'warn', message: `the farm jobs of ${s.title} saved before the restart cannot run again: ${why}` }), 0);
      };
      if ('errors' in plan) {
        lost(plan.errors.map((e) => e.message).join('; '));
        continue;
      }
      if (plan.jobs.length !== s.runIds.length) {
        lost(`the workflow now makes ${plan.jobs.length} jobs instead of ${s.runIds.length} (an image folder changed)`);
        continue;
      }
      let farmJobs: FarmJob[];
      try {
        const paths = new PathResolver(engine.modelsDir(), null, o.inputsDir);
        farmJobs = plan.jobs.map((j) => buildFarmJob(s.batch, j, plan.jobs.length, specs, paths));
      } catch (e) {
        lost((e as Error).message);
        continue;
      }
      const firstFiles = new Map(Object.entries(s.firsts).map(([i, f]) => [Number(i), f]));
      const b: EditorBatch = {
        url: s.url,
        batch: s.batch,
        wf: s.wf,
        plan,
        farmJobs,
        runIds: s.runIds,
        open: new Set(s.open.filter((i) => i < s.runIds.length)),
        cancelLater: new Set(s.cancelLater),
        firsts: plan.jobs.map((_, i) => {
          const f = firstFiles.get(i);
          return f && fs.existsSync(f) ? fs.readFileSync(f) : null;
        }),
        firstFiles,
        held: null,
        pumping: false,
        ...(s.priority ? { priority: s.priority } : {}),
        title: s.title,
        submittedAt: s.submittedAt,
        restored: true,
        submitted: s.submitted ?? true,
      };
      batches.set(b.batch, b);
      s.runIds.forEach((runId, i) => {
        jobsOf.set(runId, { batch: b.batch, index: i });
        if (!b.open.has(i)) return;
        const name = jobNameOf(plan, s.title, i);
        records.set(runId, {
          runId,
          name,
          state: 'queued',
          where,
          position: i,
          submittedAt: s.submittedAt,
          batch: s.runIds[0],
          workflow: plan.jobs[i].workflow,
        });
      });
      void pump(b);
    }
  }
  if (o.stateFile) restore(o.stateFile);

  const wrapped: FarmEngine = {
    ...engine,
    subscribe(l) {
      const offFarm = listeners.add(l);
      const off = engine.subscribe(l);
      return () => {
        offFarm();
        off();
      };
    },
    cancel(runId) {
      const j = jobsOf.get(runId);
      if (!j) return engine.cancel(runId);
      const b = batches.get(j.batch);
      if (!b?.open.has(j.index)) return;
      if (b.held || !client?.connected) {
        // Held here: it leaves the editor now, and Redis forgets it (if an earlier submission put it there) once it answers.
        b.cancelLater.add(j.index);
        finish(b, j.index, { type: 'run-done', runId, ok: false, cancelled: true });
        // Every job removed and none ever reached Redis: nothing is left to tell it, so the sweep goes now (not retried forever).
        if (!b.open.size && !b.submitted && !b.pumping) {
          batches.delete(b.batch);
          save();
        }
        return;
      }
      // Cancels of one batch in the same tick go as one: the whole batch's open jobs → cancelBatch, else cancelJobs.
      const pending = cancelling.get(b.batch) ?? new Set<number>();
      pending.add(j.index);
      if (cancelling.has(b.batch)) return;
      cancelling.set(b.batch, pending);
      queueMicrotask(() => {
        cancelling.delete(b.batch);
        const c = client;
        if (!c) return;
        // Watch then reports each cancelled (run-done), whether it was waiting (removed) or running (aborted on its worker).
        const all = [...b.open].every((i) => pending.has(i));
        void (all ? c.cancelBatch(b.batch, [...pending]) : c.cancelJobs(b.batch, [...pending])).catch(() => {});
      });
    },
    listQueue: () => [...engine.listQueue(), ...records.values()].sort((a, b) => a.submittedAt - b.submittedAt),
    async farmStatus() {
      const url = queueUrl();
      if (!url) return null;
      try {
        const c = await connect(url);
        return { ...(await c.status()), queue: redactedUrl(url) };
      } catch (e) {
        return { connected: false, url: redactedUrl(url), queue: redactedUrl(url), error: (e as Error).message, workers: [], counts: {} };
      }
    },
    farmRetry() {
      for (const b of batches.values()) if (b.held) void pump(b);
    },
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer); // the state file is written at every change: nothing to write here
      if (client) await client.close();
      await engine.close();
    },
  };
  return Object.assign(wrapped, {
    /** Run: on the farm when the settings name one, else on this machine. */
    farmEnqueue: async (wf: Workflow, opts: { name?: string }) => {
      const url = queueUrl();
      return url ? submit(url, wf, opts.name) : null;
    },
  });
}

/** A farm job's name in the queue: the run's name, with the job's values for a sweep. */
const jobNameOf = (plan: Extract<ReturnType<typeof planBatch>, { jobs: unknown }>, title: string, i: number) =>
  plan.groups.length ? `${title} [${plan.jobs[i].label}]` : title;

/** The wrapped engine's farm submission, when it has one (host-api's enqueue). */
export function farmEnqueueOf(engine: unknown): ((wf: Workflow, opts: { name?: string }) => Promise<{ runId: string; runIds: string[] } | null>) | null {
  const f = (engine as { farmEnqueue?: unknown }).farmEnqueue;
  return typeof f === 'function' ? (f as (wf: Workflow, opts: { name?: string }) => Promise<{ runId: string; runIds: string[] } | null>) : null;
}
