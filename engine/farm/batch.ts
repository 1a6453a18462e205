/**
 * engine/farm/: batches of jobs from one workflow (a sweep), on this machine or on a render farm.
 * This file: planning a batch (the expansion, with image folders listed where the workflow's images
 * resolve), the local queue (every job enqueued on the in-process engine, which runs them one after
 * another with one output cache, so a sweep re-runs only what its params reach) and the grid image
 * written beside the jobs' PNGs. The farm (BullMQ on Redis) is queue.ts (submitter) and worker.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import { nextNumberedFile } from '../../nodes/runtime/images.js';
import type { NodeSpec } from '../../nodes/spec.js';
import type { EngineApi, RunEvent } from '../api.js';
import type { Engine } from '../engine.js';
import { isAbsoluteRef } from '../image-refs.js';
import { outputPath } from '../paths.js';
import type { ValidationError, Workflow } from '../protocol.js';
import { expandSweeps, type SweepExpansion } from '../sweep.js';
import { composeGrid } from './grid.js';

const IMAGE_FILE = /\.(png|jpe?g|webp)$/i;

/**
 * Lists the images of a folder ref (`refs/`, relative to the workflow's folder, or `inputs/...`
 * in the inputs folder), sorted by name, as refs in the same form; null when it is no folder.
 */
export function imageFolderLister(workflowDir: string | null, inputsDir: string | null): (ref: string) => string[] | null {
  return (ref) => {
    if (isAbsoluteRef(ref)) return null;
    const clean = ref.replace(/[\\/]+$/, '');
    const candidates: string[] = [];
    if (workflowDir) candidates.push(path.join(workflowDir, clean));
    if (inputsDir && /^inputs([\\/]|$)/.test(clean)) candidates.push(path.join(inputsDir, clean.replace(/^inputs[\\/]?/, '')));
    for (const dir of candidates) {
      let names: string[];
      try {
        if (!fs.statSync(dir).isDirectory()) continue;
        names = fs.readdirSync(dir);
      } catch {
        continue;
      }
      return names
        .filter((n) => IMAGE_FILE.test(n) && fs.statSync(path.join(dir, n), { throwIfNoEntry: false })?.isFile())
        .sort()
        .map((n) => `${clean}/${n}`);
    }
    return null;
  };
}

/** The jobs of `wf` (one when it has no Sweep node), image folders listed beside the workflow / in the inputs folder. */
export function planBatch(
  wf: Workflow,
  specs: readonly NodeSpec[],
  workflowDir: string | null,
  inputsDir: string | null,
): SweepExpansion | { errors: ValidationError[] } {
  return expandSweeps(wf, specs, { listFolder: imageFolderLister(workflowDir, inputsDir) });
}

/** The Save Image prefix of the sweep (its first output node's), for the grid's file name. */
function gridPrefix(source: Workflow, specs: readonly NodeSpec[]): string {
  for (const n of source.nodes) {
    const spec = specs.find((s) => s.type === n.type);
    const p = spec?.output ? spec.params.find((x) => x.kind === 'string' && x.outputPrefix) : undefined;
    if (p) return `${String(n.params[p.name] ?? p.default)}-grid`;
  }
  return 'sweep-grid';
}

/** Writes the grid of a finished batch into `outputDir` (`<prefix>-grid_00001_.png`); returns its path. */
export async function writeGrid(
  expansion: SweepExpansion,
  firstImages: (Uint8Array | null)[],
  source: Workflow,
  specs: readonly NodeSpec[],
  outputDir: string,
): Promise<string> {
  const target = outputPath(outputDir, gridPrefix(source, specs));
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const file = nextNumberedFile(path.dirname(target), path.basename(target))(0);
  writeFileAtomicSync(file, await composeGrid(expansion, firstImages, source));
  return file;
}

export interface BatchJobOutcome {
  index: number;
  label: string;
  ok: boolean;
  cancelled?: boolean;
  error?: string;
  /** The PNGs it wrote. */
  images: string[];
}

export interface BatchOutcome {
  ok: boolean;
  cancelled: boolean;
  jobs: BatchJobOutcome[];
  /** The grid image, when the sweep asked for one. */
  grid?: string;
}

export interface LocalBatch {
  /** The engine's run id of each job, in job order (its RunEvents carry it). */
  runIds: string[];
  expansion: SweepExpansion;
  done: Promise<BatchOutcome>;
  cancel(): void;
}

/**
 * Runs a batch on the in-process engine: every job is enqueued at once (the engine's queue shows
 * and runs them in order, named "<name> [λ=…]"), then the grid is written from each job's first
 * image. Works through the hosts' EngineApi (enqueue + events); `workflowDir` needs the engine's
 * own `start` (the CLI's relative image refs).
 */
export function runBatchLocally(
  engine: EngineApi & { start?: Engine['start'] },
  source: Workflow,
  expansion: SweepExpansion,
  opts: { workflowDir?: string | null; name?: string; onJobDone?: (j: BatchJobOutcome) => void } = {},
): LocalBatch {
  const specs = engine.nodeSpecs();
  const outcomes = new Map<string, { images: string[]; resolve: (o: BatchJobOutcome) => void; index: number; label: string }>();
  const early: RunEvent[] = [];
  const off = engine.subscribe((e) => {
    if (!('runId' in e) || !e.runId) return;
    const o = outcomes.get(e.runId);
    if (!o) return void early.push(e);
    if (e.type === 'output') o.images.push(...e.images.map((i) => i.path));
    if (e.type === 'run-done') {
      o.resolve({
        index: o.index,
        label: o.label,
        ok: e.ok,
        ...(e.cancelled ? { cancelled: true } : {}),
        ...(e.error ? { error: e.error } : {}),
        images: o.images,
      });
    }
  });
  const promises: Promise<BatchJobOutcome>[] = [];
  const runIds: string[] = [];
  for (const job of expansion.jobs) {
    const name = `${opts.name ?? (typeof source.meta?.title === 'string' ? source.meta.title : 'sweep')}${job.label ? ` [${job.label}]` : ''}`;
    const runId =
      opts.workflowDir && engine.start
        ? engine.start(job.workflow, { workflowDir: opts.workflowDir, name }).runId
        : engine.enqueue(job.workflow, { name }).runId;
    runIds.push(runId);
    promises.push(
      new Promise((resolve) => {
        outcomes.set(runId, { images: [], resolve, index: job.index, label: job.label });
      }),
    );
    // Events a synchronous start already sent (a run that began or ended at once).
    for (const e of early.splice(0)) {
      if (e.type === 'run-done' || e.type === 'output') {
        const o = outcomes.get((e as { runId: string }).runId);
        if (o && e.type === 'output') o.images.push(...e.images.map((i) => i.path));
        if (o && e.type === 'run-done') o.resolve({ index: o.index, label: o.label, ok: e.ok, ...(e.error ? { error: e.error } : {}), images: o.images });
      }
    }
  }
  let cancelled = false;
  const done = (async (): Promise<BatchOutcome> => {
    const jobs: BatchJobOutcome[] = [];
    try {
      for (const p of promises) {
        const o = await p;
        jobs.push(o);
        opts.onJobDone?.(o);
      }
    } finally {
      off();
    }
    const out: BatchOutcome = { ok: jobs.every((j) => j.ok), cancelled, jobs };
    if (expansion.grid && !cancelled && jobs.some((j) => j.images.length)) {
      const firsts = jobs.map((j) => (j.images[0] ? fs.readFileSync(j.images[0]) : null));
      out.grid = await writeGrid(expansion, firsts, source, specs, engine.settings().outputDir);
    }
    return out;
  })();
  return {
    runIds,
    expansion,
    done,
    cancel() {
      cancelled = true;
      for (const id of [...runIds].reverse()) engine.cancel(id);
    },
  };
}

/**
 * The editor's Run of a workflow with a Sweep node (host-api `enqueue`): plans it (image folders
 * in the inputs folder), queues every job, and writes the grid when the last one ends. Throws the
 * sweep's errors as one sentence. Returns the first job's run id and all of them.
 */
export function enqueueBatch(
  engine: EngineApi,
  wf: Workflow,
  o: { name?: string; inputsDir: string | null },
): { runId: string; runIds: string[]; jobs: number } {
  const plan = planBatch(wf, engine.nodeSpecs(), null, o.inputsDir);
  if ('errors' in plan) throw new Error(plan.errors.map((e) => e.message).join('; '));
  const b = runBatchLocally(engine, wf, plan, { name: o.name });
  void b.done.catch(() => {});
  return { runId: b.runIds[0], runIds: b.runIds, jobs: plan.jobs.length };
}
