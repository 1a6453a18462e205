/**
 * The editor's "Run on": the hosts' engine wrapped so that, when the `farmQueue` setting names a
 * Redis (`redis://host:6379`), Run submits the workflow (each job of a sweep) to the render farm
 * instead of the in-process queue, and the farm's jobs look like local ones to the renderer: the
 * same RunEvents (queued with `where`, run-start, a progress event per sampler step, output with
 * the PNGs written into this machine's output folder, run-done), the same queue records
 * (listQueue), the same cancel. Redis is the host's business: the renderer only ever sees these
 * events and `farmStatus` (connected, workers online and their models, jobs waiting). When Redis
 * cannot be reached, Run is refused with a sentence and nothing is submitted: the workflow stays in
 * the editor, to run again (or on this machine) later.
 */
import * as fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { ImageRef, QueueJob, RunEvent, Workflow } from '../api.js';
import type { Engine } from '../engine.js';
import { imageSize } from '../hosts/inputs-store.js';
import { PathResolver } from '../paths.js';
import { planBatch, writeGrid } from './batch.js';
import { buildFarmJob, FarmClient, RedisLostError, writeFarmResult, type FarmStatus } from './queue.js';
import { newBatchId } from './submit.js';
import { redactedUrl } from './redis.js';

/** The setting's key in EngineSettings. */
export const FARM_SETTING = 'farmQueue';

export interface FarmEngine extends Engine {
  /** Status of the queue the settings name (null: Run on this machine). */
  farmStatus(): Promise<(FarmStatus & { queue: string }) | null>;
}

const FINISHED_KEPT = 20;

export function withFarm(engine: Engine, o: { inputsDir: string }): FarmEngine {
  const listeners = new Set<(e: RunEvent) => void>();
  const emit = (e: RunEvent) => {
    for (const l of [...listeners]) {
      try {
        l(e);
      } catch {
        /* a listener's bug is not the run's */
      }
    }
  };
  const records = new Map<string, QueueJob>();
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

  /** Submits the workflow's jobs; resolves once they are in Redis (or throws a sentence). */
  async function submit(url: string, wf: Workflow, name: string | undefined): Promise<{ runId: string }> {
    const specs = engine.nodeSpecs();
    const plan = planBatch(wf, specs, null, o.inputsDir);
    if ('errors' in plan) throw new Error(plan.errors.map((e) => e.message).join('; '));
    const batch = newBatchId(name ?? 'editor');
    const paths = new PathResolver(engine.modelsDir(), null, o.inputsDir);
    const farmJobs = plan.jobs.map((j) => buildFarmJob(batch, j, plan.jobs.length, specs, paths));
    let c: FarmClient;
    try {
      c = await connect(url);
    } catch (e) {
      throw new Error(
        `${(e as Error).message}; nothing was submitted: the workflow stays in the editor (run it again when the queue is back, or set Run on: this machine)`,
        { cause: e },
      );
    }
    const where = redactedUrl(url);
    const runIds = plan.jobs.map(() => randomUUID());
    const title = name ?? (typeof wf.meta?.title === 'string' ? wf.meta.title : 'untitled');
    await c.submit(farmJobs);
    plan.jobs.forEach((j, i) => {
      const jobName = plan.groups.length ? `${title} [${j.label}]` : title;
      records.set(runIds[i], { runId: runIds[i], name: jobName, state: 'queued', where, position: i, submittedAt: Date.now() });
      jobsOf.set(runIds[i], { batch, index: i });
      emit({ type: 'queued', runId: runIds[i], position: i, name: jobName, where });
    });
    const outputDir = engine.settings().outputDir;
    const firsts: (Uint8Array | null)[] = plan.jobs.map(() => null);
    const finish = (i: number, e: Extract<RunEvent, { type: 'run-done' }>) => {
      record(runIds[i], { state: e.ok ? 'done' : e.cancelled ? 'cancelled' : 'failed', finishedAt: Date.now(), ...(e.error ? { error: e.error } : {}) });
      emit(e);
    };
    void c
      .watch(
        batch,
        plan.jobs.map((j) => j.index),
        {
          onActive: (i) => {
            record(runIds[i], { state: 'running', position: undefined });
            emit({ type: 'run-start', runId: runIds[i] });
          },
          onProgress: (i, p) => {
            if (records.get(runIds[i])?.state === 'queued') {
              record(runIds[i], { state: 'running', position: undefined });
              emit({ type: 'run-start', runId: runIds[i] });
            }
            record(runIds[i], { progress: { step: p.step, total: p.total, node: p.node } });
            emit({ type: 'progress', runId: runIds[i], node: p.node, step: p.step, total: p.total });
          },
          onResult: (i, r) => {
            const files = writeFarmResult(outputDir, r);
            const images: ImageRef[] = files.map((f) => {
              const size = imageSize(fs.readFileSync(f));
              return { path: f, width: size?.width ?? 0, height: size?.height ?? 0 };
            });
            if (files[0]) firsts[i] = fs.readFileSync(files[0]);
            record(runIds[i], { images: files });
            emit({ type: 'output', runId: runIds[i], node: 'farm', images });
            finish(i, { type: 'run-done', runId: runIds[i], ok: true });
          },
          onFailed: (i, reason) =>
            finish(i, { type: 'run-done', runId: runIds[i], ok: false, ...(/cancelled/.test(reason) ? { cancelled: true } : { error: reason }) }),
          onMissing: (i) => c.submit([farmJobs[i]]),
        },
        { lostAfterMs: 10_000 },
      )
      .then(async () => {
        if (plan.grid && firsts.some((f) => f)) await writeGrid(plan, firsts, wf, specs, outputDir);
      })
      .catch((e: Error) => {
        const message =
          e instanceof RedisLostError ? `${e.message}; the jobs still in the queue run on, and their results are not collected until you run again` : e.message;
        emit({ type: 'log', level: 'warn', message });
        runIds.forEach((id, i) => {
          if (records.get(id)?.state === 'queued' || records.get(id)?.state === 'running')
            finish(i, { type: 'run-done', runId: id, ok: false, error: message });
        });
      });
    return { runId: runIds[0] };
  }

  const wrapped: FarmEngine = {
    ...engine,
    subscribe(l) {
      listeners.add(l);
      const off = engine.subscribe(l);
      return () => {
        listeners.delete(l);
        off();
      };
    },
    cancel(runId) {
      const j = jobsOf.get(runId);
      if (!j) return engine.cancel(runId);
      if (!client) return;
      // Watch then reports it cancelled (run-done), whether it was waiting (removed) or running (aborted on its worker).
      void client.cancelJobs(j.batch, [j.index]).catch(() => {});
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
    async close() {
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

/** The wrapped engine's farm submission, when it has one (host-api's enqueue). */
export function farmEnqueueOf(engine: unknown): ((wf: Workflow, opts: { name?: string }) => Promise<{ runId: string } | null>) | null {
  const f = (engine as { farmEnqueue?: unknown }).farmEnqueue;
  return typeof f === 'function' ? (f as (wf: Workflow, opts: { name?: string }) => Promise<{ runId: string } | null>) : null;
}
