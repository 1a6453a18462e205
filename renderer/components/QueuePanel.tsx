/**
 * The queue panel: every job with its workflow's name, state and progress — the running one, the
 * pending ones in order (each with Remove), and the recently finished ones (Re-queue; a duplicate
 * says which run already wrote its images and offers Run anyway). Jobs of another machine (a
 * farm's, `where`) show the same way, "on <where>", or "waiting for the queue at <where>" while the
 * host holds them (Retry tries now). A sweep's pending jobs have Cancel batch. Data: the run slice (renderer/store/run.ts).
 */
import { useMemo } from 'react';
import { editor, host, useEditor } from '../editor.js';
import { requeue } from '../files.js';
import type { RunInfo } from '../store/index.js';
import './panels.css';

const STATE_LABEL: Record<RunInfo['status'], string> = {
  running: 'running',
  queued: 'waiting',
  done: 'done',
  failed: 'failed',
  cancelled: 'removed',
  duplicate: 'not run: no change',
};

/** What tells jobs of one document apart: the sampler's seed and steps and the first prompt (jobs whose workflow the editor has). */
export function jobSummary(wf: RunInfo['workflow']): string {
  if (!wf) return '';
  const sampler = wf.nodes.find((n) => 'seed' in n.params || 'noise_seed' in n.params);
  // A param fed by a Primitive (turned into an input), directly or through reroutes, runs with the primitive's value
  // (engine/graph-modes.ts).
  const byId = new Map(wf.nodes.map((n) => [n.id, n]));
  const param = (node: NonNullable<typeof sampler>, name: string) => {
    let from = byId.get(wf.edges.find((x) => x.to.node === node.id && x.to.port === name)?.from.node ?? '');
    for (let hops = 0; from?.type === 'reroute' && hops < wf.nodes.length; hops++) {
      const id = from.id;
      from = byId.get(wf.edges.find((x) => x.to.node === id)?.from.node ?? '');
    }
    return from?.type === 'primitive' ? from.params.value : node.params[name];
  };
  const text = wf.nodes.find((n) => n.type === 'text-encode' && typeof n.params.text === 'string' && n.params.text)?.params.text;
  const parts = [
    sampler ? `seed ${String(param(sampler, 'seed') ?? param(sampler, 'noise_seed'))}` : '',
    sampler && param(sampler, 'steps') !== undefined ? `${String(param(sampler, 'steps'))} steps` : '',
    text ? `“${String(text).replace(/\s+/g, ' ').slice(0, 80)}”` : '',
  ];
  return parts.filter(Boolean).join(' · ');
}

const clock = (ms?: number) => (ms ? new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '');
const base = (p: string) => p.split(/[\\/]/).pop() ?? p;

function order(runs: RunInfo[]): RunInfo[] {
  const rank = (r: RunInfo) => (r.status === 'running' ? 0 : r.status === 'queued' ? 1 : 2);
  return [...runs].sort(
    (a, b) =>
      rank(a) - rank(b) ||
      (rank(a) === 1 ? (a.position ?? 0) - (b.position ?? 0) : rank(a) === 2 ? (b.finishedAt ?? 0) - (a.finishedAt ?? 0) : 0) ||
      (a.submittedAt ?? 0) - (b.submittedAt ?? 0),
  );
}

function Job({ job, runs, ahead }: { job: RunInfo; runs: Record<string, RunInfo>; ahead: number }) {
  const name = job.name ?? 'untitled';
  const pending = job.status === 'queued' || job.status === 'running';
  const remove = () =>
    void host()
      .call('cancel', { runId: job.runId })
      .catch((e: Error) => editor.getState().notify('error', e.message));
  // Every pending job of its sweep, local or farm: each is cancelled (the farm host sends them to BullMQ as one batch).
  const cancelBatch = () => {
    for (const r of Object.values(runs))
      if (r.batch === job.batch && (r.status === 'queued' || r.status === 'running'))
        void host()
          .call('cancel', { runId: r.runId })
          .catch((e: Error) => editor.getState().notify('error', e.message));
  };
  const retry = () =>
    void host()
      .call('farmRetry', {})
      .catch((e: Error) => editor.getState().notify('error', e.message));
  const original = job.duplicateOf ? runs[job.duplicateOf] : undefined;
  const summary = jobSummary(job.workflow);
  const detail =
    job.status === 'running'
      ? job.progress
        ? `step ${job.progress.step} of ${job.progress.total}`
        : 'starting…'
      : job.status === 'queued'
        ? job.held
          ? 'held in the editor'
          : ahead === 0
            ? 'next'
            : `after ${ahead} more`
        : job.status === 'duplicate'
          ? `identical to ${original ? `the run of ${clock(original.submittedAt)}` : 'an earlier run'}${job.images?.length ? `: ${job.images.map(base).join(', ')}` : ''}`
          : job.status === 'done'
            ? job.images?.length
              ? job.images.map(base).join(', ')
              : 'finished'
            : job.status === 'failed'
              ? (job.error ?? 'failed')
              : 'removed from the queue';
  return (
    <li className="queue-job" data-state={job.status} aria-label={`${name}, ${STATE_LABEL[job.status]}`}>
      <div className="queue-row">
        <span className="queue-name" title={name}>
          {name}
        </span>
        <span className={`queue-state state-${job.status}`}>{STATE_LABEL[job.status]}</span>
      </div>
      {summary && (
        <div className="queue-summary" title={summary}>
          {summary}
        </div>
      )}
      {job.held && job.status === 'queued' && (
        <div className="queue-summary queue-held" title={job.held}>
          {job.held}
        </div>
      )}
      {job.status === 'running' && (
        <div
          className="progress wide"
          role="progressbar"
          aria-label={`${name} progress`}
          aria-valuemin={0}
          aria-valuemax={job.progress?.total ?? 1}
          aria-valuenow={job.progress?.step ?? 0}
        >
          <div className="bar" style={{ width: `${job.progress ? (100 * job.progress.step) / Math.max(1, job.progress.total) : 0}%` }} />
        </div>
      )}
      <div className="queue-row">
        <span className="queue-detail" title={detail}>
          {clock(job.submittedAt)}
          {job.where && !job.held ? ` · on ${job.where}` : ''} · {detail}
        </span>
        <span className="queue-buttons">
          {pending && job.held && (
            <button type="button" className="small" onClick={retry} aria-label={`Retry ${name}`} title="Try the queue again now">
              Retry
            </button>
          )}
          {pending && job.batch && (
            <button
              type="button"
              className="small"
              onClick={cancelBatch}
              aria-label={`Cancel batch of ${name}`}
              title="Remove or stop every pending job of this sweep"
            >
              Cancel batch
            </button>
          )}
          {pending && (
            <button type="button" className="small" onClick={remove} aria-label={`${job.status === 'running' ? 'Stop' : 'Remove'} ${name}`}>
              {job.status === 'running' ? 'Stop' : 'Remove'}
            </button>
          )}
          {!pending && job.workflow && (
            <button
              type="button"
              className="small"
              onClick={() => void requeue(editor, host(), job.runId, true)}
              aria-label={`${job.status === 'duplicate' ? 'Run anyway' : 'Re-queue'} ${name}`}
              title={job.status === 'duplicate' ? 'Run it even though its images are already on disk' : 'Queue this workflow again, as it was'}
            >
              {job.status === 'duplicate' ? 'Run anyway' : 'Re-queue'}
            </button>
          )}
        </span>
      </div>
    </li>
  );
}

export function QueuePanel() {
  const runs = useEditor((s) => s.runs);
  const list = useMemo(() => order(Object.values(runs)), [runs]);
  if (!list.length) return null;
  const pending = list.filter((r) => r.status === 'queued' || r.status === 'running').length;
  const finished = list.length - pending;
  return (
    <section className="queue-panel" aria-label="Queue">
      <div className="panel-head">
        <h2>
          Queue{' '}
          <span className="count" aria-label={`${pending} pending`}>
            {pending}
          </span>
        </h2>
        {finished > 0 && (
          <button type="button" className="link" onClick={() => editor.getState().clearFinished()}>
            Clear finished
          </button>
        )}
      </div>
      <ol className="queue-list">
        {list.map((j) => (
          <Job key={j.runId} job={j} runs={runs} ahead={list.filter((r) => r.status === 'queued').indexOf(j)} />
        ))}
      </ol>
    </section>
  );
}
