/**
 * A batch on the render farm, as the CLI (and the hosts) run it: the batch file first (the sweep's
 * workflow, where its images resolve, and each job's state and PNGs, written atomically at every
 * change, beside the results in the output folder), then the jobs submitted, followed, and their
 * results written exactly once. When Redis cannot be reached, or is lost mid-batch, the run stops
 * with a sentence saying how many results arrived and how to resume: nothing is lost, since the
 * batch file holds everything needed to submit again (`npm run generate -- --resume FILE`), and
 * resuming adds only the jobs without a result (job ids are stable, so one still queued is not added twice).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import type { NodeSpec } from '../../nodes/spec.js';
import { PathResolver } from '../paths.js';
import type { Workflow } from '../protocol.js';
import type { SweepExpansion } from '../sweep.js';
import { parseWorkflow } from '../workflow.js';
import { planBatch, writeGrid } from './batch.js';
import type { FarmJob, FarmProgress } from './job.js';
import { buildFarmJob, FarmClient, RedisLostError, writeFarmResult } from './queue.js';
import { redactedUrl } from './redis.js';

export const BATCH_FILE_FORMAT = 'ipadapter-studio/farm-batch';

export interface BatchFileJob {
  index: number;
  label: string;
  state: 'pending' | 'done' | 'failed' | 'cancelled';
  images: string[];
  error?: string;
  worker?: string;
}

export interface BatchFile {
  format: typeof BATCH_FILE_FORMAT;
  version: 1;
  batch: string;
  queue: string;
  /** The workflow as submitted (Sweep node included). */
  workflow: Workflow;
  workflowDir: string | null;
  inputsDir: string | null;
  outputDir: string;
  priority?: number;
  jobs: BatchFileJob[];
  grid?: string;
}

/** A new batch id: the workflow's file stem and a short random suffix ([\w-] only). */
export function newBatchId(name: string): string {
  const stem = (name.replace(/\.(shared\.)?json$|\.png$/i, '').replace(/[^\w-]+/g, '_') || 'batch').slice(0, 40);
  return `${stem}-${randomUUID().slice(0, 8)}`;
}

export const batchFilePath = (outputDir: string, batch: string): string => path.join(outputDir, `${batch}.batch.json`);

export function readBatchFile(file: string): BatchFile {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as BatchFile;
  if (doc?.format !== BATCH_FILE_FORMAT || !Array.isArray(doc.jobs)) throw new Error(`${file} is not a farm batch file (format "${BATCH_FILE_FORMAT}")`);
  const wf = parseWorkflow(doc.workflow);
  if (!wf.workflow) throw new Error(`${file}: its workflow: ${wf.errors.map((e) => e.message).join('; ')}`);
  return { ...doc, workflow: wf.workflow };
}

export interface FarmRunOptions {
  specs: readonly NodeSpec[];
  log: (line: string) => void;
  onProgress?: (index: number, label: string, p: FarmProgress) => void;
  onJobDone?: (j: BatchFileJob, of: number) => void;
  signal?: AbortSignal;
  /** Redis unreachable this long (ms) mid-batch ends the run with RedisLostError's sentence. */
  lostAfterMs?: number;
  connectTimeoutMs?: number;
  modelsDir: string;
}

export interface FarmRunResult {
  ok: boolean;
  /** Set when Redis could not be reached or was lost: the sentence, with how to resume. */
  lost?: string;
  cancelled?: boolean;
  file: string;
  batch: BatchFile;
}

/** Creates the batch file of a new farm batch (all jobs pending). */
export function createBatchFile(
  wf: Workflow,
  expansion: SweepExpansion,
  o: { queue: string; outputDir: string; workflowDir: string | null; inputsDir: string | null; name: string; priority?: number },
): { file: string; batch: BatchFile } {
  const batch: BatchFile = {
    format: BATCH_FILE_FORMAT,
    version: 1,
    batch: newBatchId(o.name),
    queue: o.queue,
    workflow: wf,
    workflowDir: o.workflowDir,
    inputsDir: o.inputsDir,
    outputDir: o.outputDir,
    ...(o.priority ? { priority: o.priority } : {}),
    jobs: expansion.jobs.map((j) => ({ index: j.index, label: j.label, state: 'pending', images: [] })),
  };
  fs.mkdirSync(o.outputDir, { recursive: true });
  const file = batchFilePath(o.outputDir, batch.batch);
  writeFileAtomicSync(file, `${JSON.stringify(batch, null, 2)}\n`);
  return { file, batch };
}

/** Runs (or resumes) the batch of `file` on the farm at `batch.queue`. */
export async function runFarmBatch(file: string, opts: FarmRunOptions): Promise<FarmRunResult> {
  const batch = readBatchFile(file);
  const save = () => writeFileAtomicSync(file, `${JSON.stringify(batch, null, 2)}\n`);
  const plan = planBatch(batch.workflow, opts.specs, batch.workflowDir, batch.inputsDir);
  if ('errors' in plan) throw new Error(plan.errors.map((e) => e.message).join('; '));
  if (plan.jobs.length !== batch.jobs.length) throw new Error(`${file}: the workflow now makes ${plan.jobs.length} jobs, the batch has ${batch.jobs.length}`);
  const paths = new PathResolver(opts.modelsDir, batch.workflowDir, batch.inputsDir);
  // Resuming submits every job without a result (failed and cancelled ones too).
  for (const j of batch.jobs) if (j.state !== 'done') Object.assign(j, { state: 'pending', error: undefined });
  const pending = batch.jobs.filter((j) => j.state === 'pending').map((j) => j.index);
  const farmJobs = new Map<number, FarmJob>(pending.map((i) => [i, buildFarmJob(batch.batch, plan.jobs[i], plan.jobs.length, opts.specs, paths)]));
  const done = () => batch.jobs.filter((j) => j.state === 'done').length;
  const resumeHint = () =>
    `${done()} of ${batch.jobs.length} results are in ${batch.outputDir}; the batch is kept in ${file}: run npm run generate -- --resume ${file} when Redis is back`;

  let client: FarmClient;
  try {
    client = await FarmClient.connect(batch.queue, opts.connectTimeoutMs ?? 5000);
  } catch (e) {
    if (e instanceof RedisLostError) return { ok: false, lost: `${e.message}; nothing was lost: ${resumeHint()}`, file, batch };
    throw e;
  }
  const onAbort = () => void client.cancelBatch(batch.batch, pending).catch(() => {});
  opts.signal?.addEventListener('abort', onAbort);
  try {
    const status = await client.status();
    opts.log(
      `queue ${redactedUrl(batch.queue)}: ${status.workers.length} worker(s) online${status.workers.length ? ` (${status.workers.map((w) => w.id).join(', ')})` : ''}; submitting ${pending.length} of ${batch.jobs.length} job(s) of batch ${batch.batch}`,
    );
    await client.submit([...farmJobs.values()], { priority: batch.priority });
    await client.watch(
      batch.batch,
      pending,
      {
        onProgress: (i, p) => opts.onProgress?.(i, batch.jobs[i].label, p),
        onResult: (i, r) => {
          const j = batch.jobs[i];
          if (j.state === 'done') return; // written already (exactly once)
          j.images = writeFarmResult(batch.outputDir, r);
          j.state = 'done';
          j.worker = r.worker;
          save();
          opts.onJobDone?.(j, batch.jobs.length);
        },
        onFailed: (i, reason) => {
          const j = batch.jobs[i];
          j.state = /cancelled/i.test(reason) ? 'cancelled' : 'failed';
          j.error = reason;
          save();
          opts.onJobDone?.(j, batch.jobs.length);
        },
        onMissing: async (i) => {
          opts.log(`job ${i + 1} is no longer in the queue (Redis restarted?): submitting it again`);
          await client.submit([farmJobs.get(i)!], { priority: batch.priority });
        },
      },
      { lostAfterMs: opts.lostAfterMs, signal: opts.signal },
    );
    if (opts.signal?.aborted) {
      await client.cancelBatch(batch.batch, pending).catch(() => {});
      for (const j of batch.jobs) if (j.state === 'pending') j.state = 'cancelled';
      save();
      return { ok: false, cancelled: true, file, batch };
    }
  } catch (e) {
    if (e instanceof RedisLostError || !client.connected) {
      return { ok: false, lost: `${(e as Error).message}; nothing was lost: ${resumeHint()}`, file, batch };
    }
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await client.close();
  }
  if (plan.grid && batch.jobs.some((j) => j.images.length)) {
    const firsts = batch.jobs.map((j) => (j.state === 'done' && j.images[0] && fs.existsSync(j.images[0]) ? fs.readFileSync(j.images[0]) : null));
    batch.grid = await writeGrid(plan, firsts, batch.workflow, opts.specs, batch.outputDir);
    save();
  }
  return { ok: batch.jobs.every((j) => j.state === 'done'), file, batch };
}
