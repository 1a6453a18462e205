/**
 * Batches and the render farm in the editor: the number of jobs a workflow's Sweep nodes make (the
 * Run button says it before a run), and Settings' "Run on" status line for a farm queue
 * (connected, workers online and their models, jobs waiting), polled from the host's farmStatus
 * channel. The renderer never talks to Redis: the host does (engine/farm/editor-queue.ts).
 */
import { useEffect, useMemo, useState } from 'react';
import type { z } from 'zod';
import type { FarmStatusSchema } from '../../engine/protocol.js';
import { countJobs, hasSweep } from '../../engine/sweep.js';
import { editor, host, useEditor } from '../editor.js';

type FarmStatus = z.infer<typeof FarmStatusSchema>;

/** Jobs the open workflow makes: 1 without a Sweep node, null when a folder decides (counted at Run). */
export function useJobCount(): number | null {
  const revision = useEditor((s) => s.revision);
  const specList = useEditor((s) => s.specList);
  return useMemo(() => {
    void revision;
    const wf = editor.getState().workflow();
    return hasSweep(wf) ? countJobs(wf, specList) : 1;
  }, [revision, specList]);
}

/** "Run", "Run 24 jobs" or "Run batch" (a folder of images: counted when it runs). */
export function runLabel(jobs: number | null): string {
  if (jobs === null) return 'Run batch';
  return jobs > 1 ? `Run ${jobs} jobs` : 'Run';
}

function describe(s: FarmStatus): string {
  if (!s) return '';
  if (!s.connected) return `not connected to ${s.queue}: ${s.error ?? 'no answer'}. Runs are refused (nothing is lost) until it answers.`;
  const w = s.workers.map((x) => {
    const n = Object.values(x.models).reduce((k, l) => k + l.length, 0);
    return `${x.id} (${n} model file${n === 1 ? '' : 's'}${x.busy ? ', busy' : ''})`;
  });
  const waiting = (s.counts.waiting ?? 0) + (s.counts.prioritized ?? 0) + (s.counts.delayed ?? 0);
  return `connected to ${s.queue}: ${w.length} worker${w.length === 1 ? '' : 's'} online${w.length ? ` — ${w.join(', ')}` : ' (start one: npm run worker -- --redis …)'}; ${waiting} job${waiting === 1 ? '' : 's'} waiting, ${s.counts.active ?? 0} running.`;
}

/** The status line of the saved farm queue (nothing when Run on this machine), every 3 s while shown. */
export function FarmStatusLine({ saved }: { saved: string | undefined }) {
  const [status, setStatus] = useState<FarmStatus>(null);
  useEffect(() => {
    if (!saved) return;
    let live = true;
    const poll = () =>
      void host()
        .call('farmStatus', {})
        .then(
          (s) => live && setStatus(s),
          (e: Error) => live && setStatus({ queue: saved, connected: false, error: e.message, workers: [], counts: {} }),
        );
    poll();
    const t = setInterval(poll, 3000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [saved]);
  if (!saved || !status) return null;
  return (
    <div className={`folder-report ${status.connected ? 'good' : 'bad'}`} role="status" aria-label="Farm status">
      {describe(status)}
    </div>
  );
}
