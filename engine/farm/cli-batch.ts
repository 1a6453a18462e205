/**
 * The CLI's batches (`npm run generate`): a workflow with a Sweep node runs its jobs on the
 * in-process engine (one after another, one output cache) or, with `--queue redis://…`, on the
 * render farm; `--resume FILE` submits again what a farm batch file has no result for yet.
 * Exit codes as the CLI's: 0 done, 1 a job failed or Redis was lost (the batch file says how to
 * resume), 2 the sweep is not valid, 130 interrupted (the farm batch is cancelled).
 */
import * as path from 'node:path';
import type { RunEvent, Workflow } from '../api.js';
import type { Engine } from '../engine.js';
import { planBatch, runBatchLocally } from './batch.js';
import { redactedUrl, redisOptions } from './redis.js';
import { createBatchFile, readBatchFile, runFarmBatch } from './submit.js';
import type { NodeSpec } from '../../nodes/spec.js';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';

export interface BatchCliOptions {
  file: string;
  out: string;
  models: string;
  inputsDir: string;
  queue?: string;
  priority?: number;
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
}

/** Waits for SIGINT during `fn`, handing it an AbortSignal. */
async function withInterrupt<T>(fn: (signal: AbortSignal, interrupted: () => boolean) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  try {
    return await fn(ac.signal, () => ac.signal.aborted);
  } finally {
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
  }
}

/** Runs the batch of `wf` here or on the farm; returns the exit code. */
export async function runBatchCli(engine: Engine, wf: Workflow, o: BatchCliOptions): Promise<number> {
  const specs = engine.nodeSpecs();
  const workflowDir = path.dirname(o.file);
  const plan = planBatch(wf, specs, workflowDir, o.inputsDir);
  if ('errors' in plan) {
    o.stderr.write(`the sweep is not valid (${plan.errors.length} error(s)):\n`);
    for (const e of plan.errors) o.stderr.write(`  ${e.node ? `[${e.node}] ` : ''}${e.message}\n`);
    return 2;
  }
  const axes = plan.groups.map((g) => g.axes.map((a) => `${a.node}.${a.param} (${a.values.length})`).join(' + ')).join(' x ');
  o.stdout.write(`batch: ${plan.jobs.length} job(s)${axes ? ` over ${axes}` : ''}${o.queue ? ` on ${redactedUrl(o.queue)}` : ' on this machine'}\n`);
  if (o.queue) {
    try {
      redisOptions(o.queue);
    } catch (e) {
      o.stderr.write(`--queue: ${(e as Error).message}\n`);
      return 2;
    }
    const { file } = createBatchFile(wf, plan, {
      queue: o.queue,
      outputDir: path.resolve(o.out),
      workflowDir,
      inputsDir: o.inputsDir,
      name: path.basename(o.file),
      priority: o.priority,
    });
    o.stdout.write(`batch file: ${file}\n`);
    return farm(file, specs, o, engine.modelsDir());
  }
  return withInterrupt(async (signal, interrupted) => {
    const byRun = new Map<string, number>();
    const off = engine.subscribe((e: RunEvent) => {
      if (e.type === 'run-start' && byRun.has(e.runId)) {
        const j = plan.jobs[byRun.get(e.runId)!];
        o.stdout.write(`job ${j.index + 1}/${plan.jobs.length}${j.label ? ` (${j.label})` : ''}\n`);
      }
    });
    const batch = runBatchLocally(engine, wf, plan, {
      workflowDir,
      onJobDone: (j) => {
        if (!j.ok && !j.cancelled) o.stderr.write(`job ${j.index + 1} (${j.label}) failed: ${j.error}\n`);
      },
    });
    batch.runIds.forEach((id, i) => byRun.set(id, i));
    signal.addEventListener('abort', () => batch.cancel());
    const res = await batch.done.finally(off);
    if (res.grid) o.stdout.write(`grid: ${res.grid}\n`);
    const failed = res.jobs.filter((j) => !j.ok);
    if (interrupted()) {
      o.stderr.write(`cancelled (${res.jobs.filter((j) => j.ok).length} of ${res.jobs.length} job(s) done)\n`);
      return 130;
    }
    o.stdout.write(
      `done: ${res.jobs.length - failed.length} of ${res.jobs.length} job(s), ${res.jobs.reduce((n, j) => n + j.images.length, 0)} image(s) in ${path.resolve(o.out)}\n`,
    );
    return failed.length ? 1 : 0;
  });
}

/** `--resume FILE`. */
export async function resumeBatchCli(file: string, o: Omit<BatchCliOptions, 'file' | 'out' | 'inputsDir'>, specs: readonly NodeSpec[]): Promise<number> {
  try {
    const b = readBatchFile(file);
    const open = b.jobs.filter((j) => j.state === 'pending').length;
    o.stdout.write(`resuming batch ${b.batch}: ${open} of ${b.jobs.length} job(s) without a result\n`);
    if (o.queue && o.queue !== b.queue) {
      // Another address for the same farm (e.g. Redis moved): the file remembers the new one.
      writeFileAtomicSync(file, `${JSON.stringify({ ...b, queue: o.queue }, null, 2)}\n`);
    }
  } catch (e) {
    o.stderr.write(`--resume ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  return farm(path.resolve(file), specs, o, o.models);
}

async function farm(file: string, specs: readonly NodeSpec[], o: Pick<BatchCliOptions, 'stdout' | 'stderr'>, modelsDir: string): Promise<number> {
  return withInterrupt(async (signal, interrupted) => {
    const tty = !!o.stdout.isTTY;
    let bar = false;
    const line = (s: string) => {
      if (bar) o.stdout.write('\n');
      bar = false;
      o.stdout.write(`${s}\n`);
    };
    let res;
    try {
      res = await runFarmBatch(file, {
        specs,
        modelsDir,
        signal,
        log: line,
        lostAfterMs: Number(process.env.IPA_FARM_LOST_MS) || undefined,
        onProgress: (i, label, p) => {
          if (!tty) return;
          o.stdout.write(`\rjob ${i + 1} (${label}) ${p.node} ${p.step}/${p.total}   `);
          bar = true;
        },
        onJobDone: (j, of) => {
          if (j.state === 'done')
            line(`job ${j.index + 1}/${of}${j.label ? ` (${j.label})` : ''}: ${j.images.map((f) => `wrote ${f}`).join(', ')} [${j.worker}]`);
          else line(`job ${j.index + 1}/${of}${j.label ? ` (${j.label})` : ''}: ${j.state}: ${j.error}`);
        },
      });
    } catch (e) {
      line(`farm: ${(e as Error).message}`);
      return 2;
    }
    if (res.lost) {
      o.stderr.write(`${res.lost}\n`);
      return 1;
    }
    if (res.cancelled || interrupted()) {
      const d = res.batch.jobs.filter((j) => j.state === 'done').length;
      o.stderr.write(`cancelled: the batch's waiting jobs were removed from the queue (${d} of ${res.batch.jobs.length} done); resume with --resume ${file}\n`);
      return 130;
    }
    if (res.batch.grid) line(`grid: ${res.batch.grid}`);
    const failed = res.batch.jobs.filter((j) => j.state !== 'done');
    line(`done: ${res.batch.jobs.length - failed.length} of ${res.batch.jobs.length} job(s) in ${res.batch.outputDir}`);
    return failed.length ? 1 : 0;
  });
}
