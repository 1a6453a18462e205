/**
 * The local queue's memory across restarts (the hosts pass `queueStateFile`, <userData>/queue-state.json):
 * the queue panel's records — each with its workflow, so a restarted app lists the same rows with
 * their summary and Re-queue — and deduplication's finished runs (output key → run id and images),
 * so "an unchanged graph is not written twice" still holds after a restart.
 *
 *   const state = readQueueState(file);           // { records, finished } (empty when absent or unreadable)
 *   const saver = queueStateSaver(file, () => snapshot);
 *   saver.touch();                                // written soon, once (bursts coalesce)
 *   saver.flush();                                // written now, if anything changed since the last write
 *   saver.stop();                                 // the same, and never again (the engine closing)
 *
 * Bounded: at most FINISHED_KEYS_KEPT finished keys (the newest), the finished records the engine keeps and the
 * next PENDING_KEPT pending jobs; written at most every MIN_WRITE_GAP_MS.
 * Written atomically (models/fs-atomic.ts), so a crash leaves the previous state, never half a file.
 * Jobs that were queued or running when the app stopped did not run: they come back as failed,
 * saying so, and can be queued again.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { writeFileAtomicSync } from '../models/fs-atomic.js';
import { QueueJobSchema, type QueueJob } from './protocol.js';

/** How many finished runs' output keys deduplication remembers (the newest). */
export const FINISHED_KEYS_KEPT = 2000;
/** How many pending jobs are written (the next to run): a sweep of thousands does not rewrite all their workflows each time. */
export const PENDING_KEPT = 256;
/** Writes are at least this far apart (ms): a run of short jobs changes state many times a second. */
export const MIN_WRITE_GAP_MS = 500;

export interface FinishedRun {
  runId: string;
  images: string[];
}

export interface QueueState {
  records: QueueJob[];
  /** Output key → the finished run that wrote those images, oldest first. */
  finished: [string, FinishedRun][];
}

const FileSchema = z.object({
  format: z.literal('ipadapter-studio/queue-state'),
  version: z.literal(1),
  records: z.array(z.unknown()),
  finished: z.array(z.tuple([z.string(), z.object({ runId: z.string(), images: z.array(z.string()) })])),
});

/** The sentence a job gets that was pending when the app stopped. */
export const INTERRUPTED = 'not run: the app was closed before this job finished (Re-queue runs it)';

/**
 * The saved state, or an empty one when the file is absent; a damaged file (or a record that no longer
 * fits the schema) is skipped, with `problem` saying so, rather than refusing to start.
 */
export function readQueueState(file: string): QueueState & { problem?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], finished: [] };
    return { records: [], finished: [], problem: `could not read the queue's saved state ${file}: ${(e as Error).message}` };
  }
  let parsed: z.infer<typeof FileSchema>;
  try {
    parsed = FileSchema.parse(JSON.parse(text));
  } catch {
    return { records: [], finished: [], problem: `the queue's saved state ${file} is damaged; the queue starts empty` };
  }
  const now = Date.now();
  const records: QueueJob[] = [];
  for (const r of parsed.records) {
    const ok = QueueJobSchema.safeParse(r);
    if (!ok.success) continue;
    const j = ok.data;
    // Pending when the app stopped: it never finished here (a host-held farm job is restored by its own state).
    if (j.state === 'queued' || j.state === 'running') {
      const { position: _p, progress: _g, held: _h, ...rest } = j;
      records.push({ ...rest, state: 'failed', finishedAt: j.finishedAt ?? now, error: INTERRUPTED });
    } else records.push(j);
  }
  return { records, finished: parsed.finished.slice(-FINISHED_KEYS_KEPT) };
}

/** Writes the state now (atomically). */
export function writeQueueState(file: string, state: QueueState): void {
  const pending = state.records.filter((r) => r.state === 'queued' || r.state === 'running');
  const dropped = new Set(
    pending
      .sort((a, b) => (a.position ?? -1) - (b.position ?? -1))
      .slice(PENDING_KEPT)
      .map((r) => r.runId),
  );
  const body = {
    format: 'ipadapter-studio/queue-state',
    version: 1,
    records: dropped.size ? state.records.filter((r) => !dropped.has(r.runId)) : state.records,
    finished: state.finished.slice(-FINISHED_KEYS_KEPT),
  };
  writeFileAtomicSync(file, JSON.stringify(body));
}

/**
 * A coalescing writer: `touch()` schedules one write on the next tick, `flush()` writes at once.
 * A failed write is reported through `onError` (the engine logs it) and tried again at the next change.
 */
export function queueStateSaver(file: string, snapshot: () => QueueState, onError: (message: string) => void = () => {}) {
  let scheduled: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  /** Changed since the last write (a failed write stays due). */
  let dirty = false;
  let last = 0;
  const write = () => {
    last = Date.now();
    if (scheduled) clearTimeout(scheduled);
    scheduled = null;
    try {
      writeQueueState(file, snapshot());
      dirty = false;
    } catch (e) {
      onError((e as Error).message);
    }
  };
  return {
    touch() {
      if (stopped) return;
      dirty = true;
      if (scheduled) return;
      scheduled = setTimeout(write, Math.max(0, last + MIN_WRITE_GAP_MS - Date.now()));
      scheduled.unref?.();
    },
    flush() {
      if (dirty) write();
    },
    /**
     * Writes what changed since the last write, and nothing after (the engine closing: jobs it then cancels count as
     * interrupted, as the file already has them pending). An idle engine writes nothing at close.
     */
    stop() {
      if (stopped) return;
      if (dirty) write();
      stopped = true;
    },
  };
}
