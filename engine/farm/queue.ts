/**
 * The submitting side of the render farm: turns the jobs of a batch into farm jobs (the workflow,
 * its images' bytes, its models' names: engine/farm/job.ts), adds them to the BullMQ queue (job id
 * = batch + index, so adding a job twice is a no-op: resuming re-adds what has no result yet),
 * follows them (QueueEvents for progress and completion, and a poll of the jobs' states as a
 * fallback), writes each result into the output folder exactly once, and cancels a batch (waiting
 * jobs removed, running ones told through a Redis channel and aborted through BullMQ's own job
 * cancellation). A lost connection is reported as a sentence (RedisLostError), never a hang.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis, type RedisOptions as IORedisOptions } from 'ioredis';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import { nextNumberedFile } from '../../nodes/runtime/images.js';
import type { NodeSpec } from '../../nodes/spec.js';
import { BUNDLE_IMAGE_TYPES, type BundleImage } from '../bundle-format.js';
import { resolveGraph } from '../graph-modes.js';
import { imageSize, sha256, storedNameOf } from '../hosts/inputs-store.js';
import { imageUses, inputsRef, isAbsoluteRef, mapImageRefs, refBaseName } from '../image-refs.js';
import { checkOutputPrefix, climbsOut, outputPath, type PathResolver } from '../paths.js';
import type { Workflow } from '../protocol.js';
import type { SweepJob } from '../sweep.js';
import {
  CANCEL_CHANNEL,
  FARM_PREFIX,
  FARM_QUEUE,
  FarmResultSchema,
  jobIdOf,
  WORKER_TTL_MS,
  WORKERS_KEY,
  type FarmJob,
  type FarmProgress,
  type FarmResult,
  type WorkerInfo,
} from './job.js';
import { redactedUrl, redisOptions } from './redis.js';

/** The farm job of one batch job: its images read where a run here would read them, its models by name. */
export function buildFarmJob(
  batch: string,
  job: Pick<SweepJob, 'index' | 'label' | 'workflow'>,
  of: number,
  specs: readonly NodeSpec[],
  paths: PathResolver,
): FarmJob {
  const problems: string[] = [];
  const images: Record<string, BundleImage> = {};
  const refs: Record<string, string> = {};
  // An image named by an absolute path (or one climbing out of the workflow's folder) travels as inputs/<stored name>:
  // a worker places every image inside its job's folder.
  const local = new Map<string, string>();
  const wf = mapImageRefs(job.workflow, specs, (u) => {
    if (!isAbsoluteRef(u.ref) && !climbsOut(u.ref)) return u.ref;
    const file = paths.resolveImage(u.ref);
    const bytes = file ? fs.readFileSync(file) : null;
    const size = bytes ? imageSize(bytes) : null;
    if (!bytes || !size) return u.ref; // reported below
    const ref = inputsRef(storedNameOf(refBaseName(u.ref), sha256(bytes), size.ext));
    local.set(ref, file!);
    return ref;
  });
  for (const use of imageUses(wf, specs)) {
    const where = `${use.title} (${use.node})`;
    const file = local.get(use.ref) ?? paths.resolveImage(use.ref);
    if (!file) {
      problems.push(`${where}: ${paths.missingImage(use.ref)}`);
      continue;
    }
    const bytes = fs.readFileSync(file);
    const size = imageSize(bytes);
    if (!size) {
      problems.push(`${where}: ${use.ref} is not a PNG, JPEG or WebP image`);
      continue;
    }
    const hash = sha256(bytes);
    images[hash] ??= {
      file: storedNameOf(refBaseName(use.ref), hash, size.ext),
      type: BUNDLE_IMAGE_TYPES[size.ext as keyof typeof BUNDLE_IMAGE_TYPES],
      data: bytes.toString('base64'),
    };
    refs[use.ref] = hash;
  }
  const specMap = new Map(specs.map((s) => [s.type, s]));
  const models: FarmJob['models'] = [];
  for (const n of resolveGraph(wf, specMap).workflow.nodes) {
    const spec = specMap.get(n.type);
    for (const p of spec?.params ?? []) {
      if (p.kind !== 'file') continue;
      const v = String(n.params[p.name] ?? p.default);
      if (!v) continue;
      if (path.isAbsolute(v) || path.win32.isAbsolute(v)) {
        problems.push(
          `${spec!.title} (${n.id}): model ${v} is an absolute path; a farm job names each model within the models folder (choose it from the list on the node)`,
        );
      } else if (!models.some((m) => m.kind === p.modelKind && m.name === v)) models.push({ kind: p.modelKind, name: v });
    }
  }
  if (problems.length) throw new Error(`cannot send job ${job.index + 1} to the farm: ${problems.join('; ')}`);
  return { v: 1, batch, index: job.index, of, label: job.label, workflow: wf as unknown as FarmJob['workflow'], images, refs, models };
}

/** Thrown when Redis cannot be reached (at the start or in the middle of a batch). */
export class RedisLostError extends Error {}

export interface FarmStatus {
  connected: boolean;
  url: string;
  error?: string;
  workers: WorkerInfo[];
  counts: Record<string, number>;
}

export interface WatchHandlers {
  onProgress?(index: number, p: FarmProgress): void;
  onActive?(index: number): void;
  /** A job's result; called once per job. */
  onResult(index: number, r: FarmResult): void | Promise<void>;
  onFailed(index: number, reason: string): void | Promise<void>;
  /** The job is not in Redis (it lost its data): add it again. */
  onMissing?(index: number): void | Promise<void>;
}

export class FarmClient {
  private lastError = '';
  /** Job ids this client cancelled: watch reports them cancelled instead of submitting them again. */
  private dropped = new Set<string>();
  private constructor(
    readonly url: string,
    readonly queue: Queue,
    readonly events: QueueEvents,
    private redis: Redis,
  ) {}

  /** Connects; throws a RedisLostError sentence when Redis does not answer within `timeoutMs`. */
  static async connect(url: string, timeoutMs = 5000): Promise<FarmClient> {
    const connection = redisOptions(url);
    const redis = new Redis({ ...connection, lazyConnect: true } as IORedisOptions);
    let lastError = '';
    redis.on('error', (e: Error) => {
      lastError = e.message;
    });
    const shown = redactedUrl(url);
    try {
      await Promise.race([
        redis.connect(),
        new Promise((_, reject) => setTimeout(() => reject(new Error(lastError || `no answer in ${timeoutMs} ms`)), timeoutMs)),
      ]);
      await redis.ping();
    } catch (e) {
      redis.disconnect();
      throw new RedisLostError(`cannot reach Redis at ${shown}: ${lastError || (e as Error).message}`);
    }
    const queue = new Queue(FARM_QUEUE, { connection, prefix: FARM_PREFIX });
    const events = new QueueEvents(FARM_QUEUE, { connection: redisOptions(url, { forWorker: true }), prefix: FARM_PREFIX });
    const c = new FarmClient(url, queue, events, redis);
    queue.on('error', (e: Error) => (c.lastError = e.message));
    events.on('error', (e: Error) => (c.lastError = e.message));
    redis.on('error', (e: Error) => (c.lastError = e.message));
    await Promise.race([events.waitUntilReady(), new Promise((r) => setTimeout(r, timeoutMs))]);
    return c;
  }

  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  private lost(): RedisLostError {
    return new RedisLostError(`lost the connection to Redis at ${redactedUrl(this.url)}${this.lastError ? ` (${this.lastError})` : ''}`);
  }

  /** Connected?, the online workers and their models, the jobs waiting and running. */
  async status(): Promise<FarmStatus> {
    try {
      const all = await this.redis.hgetall(WORKERS_KEY);
      const workers = Object.values(all)
        .map((v) => JSON.parse(v) as WorkerInfo)
        .filter((w) => Date.now() - w.seen < WORKER_TTL_MS)
        .sort((a, b) => a.id.localeCompare(b.id));
      const counts = await this.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed');
      return { connected: true, url: redactedUrl(this.url), workers, counts };
    } catch (e) {
      return { connected: false, url: redactedUrl(this.url), error: this.lastError || (e as Error).message, workers: [], counts: {} };
    }
  }

  /** Adds the jobs (a job already in the queue under its id is left as it is). */
  async submit(jobs: FarmJob[], opts: { priority?: number; attempts?: number } = {}): Promise<void> {
    await this.redis.srem(`${FARM_PREFIX}:farm:cancelled`, ...new Set(jobs.map((j) => j.batch))).catch(() => {});
    await this.queue.addBulk(
      jobs.map((j) => ({
        name: 'run',
        data: j,
        opts: {
          jobId: jobIdOf(j.batch, j.index),
          attempts: opts.attempts ?? 3,
          backoff: { type: 'exponential', delay: 1000 },
          ...(opts.priority ? { priority: opts.priority } : {}),
          removeOnFail: { age: 24 * 3600 },
        },
      })),
    );
  }

  /**
   * Follows the jobs (by index) until each has a result or has failed; results are handed over
   * once each, and the job is then removed from Redis. Rejects with RedisLostError when Redis
   * stays unreachable for `lostAfterMs`.
   */
  async watch(batch: string, indices: number[], h: WatchHandlers, opts: { lostAfterMs?: number; pollMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    const open = new Set(indices);
    const ids = new Map(indices.map((i) => [jobIdOf(batch, i), i]));
    let wake: () => void = () => {};
    const onEvent = ({ jobId }: { jobId: string }) => {
      if (ids.has(jobId)) wake();
    };
    const onProgress = ({ jobId, data }: { jobId: string; data: unknown }) => {
      const i = ids.get(jobId);
      if (i !== undefined && open.has(i) && typeof data === 'object' && data) h.onProgress?.(i, data as FarmProgress);
    };
    const onActive = ({ jobId }: { jobId: string }) => {
      const i = ids.get(jobId);
      if (i !== undefined && open.has(i)) h.onActive?.(i);
    };
    this.events.on('completed', onEvent);
    this.events.on('failed', onEvent);
    this.events.on('progress', onProgress);
    this.events.on('active', onActive);
    let downSince = 0;
    const absent = new Map<number, number>();
    try {
      while (open.size) {
        if (opts.signal?.aborted) return;
        try {
          for (const i of [...open]) {
            const id = jobIdOf(batch, i);
            if (this.dropped.has(id)) {
              open.delete(i);
              await h.onFailed(i, 'cancelled');
              continue;
            }
            const state = await this.queue.getJobState(id);
            if (state === 'unknown') {
              // Gone (Redis restarted without its data): after two looks, the caller adds it again.
              absent.set(i, (absent.get(i) ?? 0) + 1);
              if (absent.get(i)! >= 2 && h.onMissing) {
                absent.delete(i);
                await h.onMissing(i);
              }
              continue;
            }
            absent.delete(i);
            if (state !== 'completed' && state !== 'failed') continue;
            // Read after the state: the job's return value and failure reason are set by then.
            const job = await Job.fromId(this.queue, id);
            if (!job) continue;
            open.delete(i);
            if (state === 'completed') {
              const r = FarmResultSchema.safeParse(job.returnvalue);
              if (r.success) await h.onResult(i, r.data);
              else await h.onFailed(i, 'the worker returned no valid result');
              await job.remove().catch(() => {});
            } else await h.onFailed(i, job.failedReason || 'failed');
          }
          downSince = 0;
        } catch (e) {
          if (this.connected) throw e;
          this.lastError ||= (e as Error).message;
          downSince ||= Date.now();
        }
        if (!this.connected) downSince ||= Date.now();
        if (downSince && Date.now() - downSince > (opts.lostAfterMs ?? 10_000)) throw this.lost();
        if (!open.size) break;
        await new Promise<void>((r) => {
          const t = setTimeout(r, opts.pollMs ?? 1000);
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    } finally {
      this.events.off('completed', onEvent);
      this.events.off('failed', onEvent);
      this.events.off('progress', onProgress);
      this.events.off('active', onActive);
    }
  }

  /** Cancels a batch: its waiting jobs are removed, running ones aborted on their workers. Returns how many were removed from the queue. */
  async cancelBatch(batch: string, indices: number[]): Promise<number> {
    for (const i of indices) this.dropped.add(jobIdOf(batch, i));
    await this.redis.sadd(`${FARM_PREFIX}:farm:cancelled`, batch);
    await this.redis.expire(`${FARM_PREFIX}:farm:cancelled`, 24 * 3600);
    await this.redis.publish(CANCEL_CHANNEL, JSON.stringify({ batch }));
    let removed = 0;
    for (const i of indices) {
      const job = await Job.fromId(this.queue, jobIdOf(batch, i));
      if (!job) continue;
      const state = await job.getState();
      if (state === 'waiting' || state === 'delayed' || state === 'prioritized') {
        await job
          .remove()
          .then(() => removed++)
          .catch(() => {});
      }
    }
    return removed;
  }

  /** Cancels some jobs of a batch: removed when waiting, aborted on their worker when running. Returns how many were removed. */
  async cancelJobs(batch: string, indices: number[]): Promise<number> {
    const ids = indices.map((i) => jobIdOf(batch, i));
    for (const id of ids) this.dropped.add(id);
    await this.redis.publish(CANCEL_CHANNEL, JSON.stringify({ jobs: ids }));
    let removed = 0;
    for (const id of ids) {
      const job = await Job.fromId(this.queue, id);
      const state = job ? await job.getState() : 'unknown';
      if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized')) {
        await job
          .remove()
          .then(() => removed++)
          .catch(() => {});
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.events.close(), this.queue.close()]);
    this.redis.disconnect();
  }
}

/**
 * Writes a job's PNGs into `outputDir` under the names they had on the worker (`<prefix>-007_00001_.png`);
 * a name already taken gets the next free number, as Save Image numbers them. Returns the paths.
 * With `since` (the batch's submission time), a PNG that is already there under that name or a numbered one, with the
 * same bytes and written since then, is this very result collected before (the app stopped after writing it and before
 * saving that it had): its path is returned and nothing is written twice.
 */
export function writeFarmResult(outputDir: string, r: FarmResult, opts: { since?: number } = {}): string[] {
  const written: string[] = [];
  for (const img of r.images) {
    const bad = checkOutputPrefix(img.name);
    if (bad || !/\.png$/i.test(img.name))
      throw new Error(`the worker ${r.worker} returned the file name "${img.name}", which is not a PNG inside the output folder`);
    let target = outputPath(outputDir, img.name);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const bytes = Buffer.from(img.data, 'base64');
    const before = opts.since !== undefined ? sameResultWritten(target, bytes, opts.since) : null;
    if (before) {
      written.push(before);
      continue;
    }
    if (fs.existsSync(target)) {
      const base = path.basename(target).replace(/(_\d{5,}_)?\.png$/i, '');
      target = nextNumberedFile(path.dirname(target), base)(0);
    }
    writeFileAtomicSync(target, bytes);
    written.push(target);
  }
  return written;
}

/** `target` or a numbered sibling of it (`<base>_00002_.png`) holding exactly `bytes`, modified at or after `since`; else null. */
function sameResultWritten(target: string, bytes: Buffer, since: number): string | null {
  const dir = path.dirname(target);
  const base = path.basename(target).replace(/(_\d{5,}_)?\.png$/i, '');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return null;
  }
  const numbered = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_\\d{5,}_\\.png$`, 'i');
  for (const name of names.filter((n) => n === path.basename(target) || numbered.test(n)).sort()) {
    const file = path.join(dir, name);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st?.isFile() || st.size !== bytes.length || st.mtimeMs < since) continue;
    if (fs.readFileSync(file).equals(bytes)) return file;
  }
  return null;
}

export type { Workflow };
