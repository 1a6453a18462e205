/**
 * The run slice: the queue (runs: named jobs with their state and progress, the active one),
 * per-node run states, sampler progress, on-card previews and the gallery (this session's images
 * and the output folder's, with their parameters; a selection for export). No undo history.
 */
import type { StateCreator } from 'zustand/vanilla';
import type { FlowNode } from '../graph.js';
import { addWarning } from '../node-warnings.js';
import type { EditorState, NodeRun, OutputImage, RunInfo, RunSlice } from './state.js';

/** Finished jobs the queue panel keeps (older ones are dropped as new ones finish). */
export const FINISHED_SHOWN = 20;
/** Images the gallery holds (the output folder's listing is asked for at most this many). */
export const GALLERY_LIMIT = 300;

const isFinished = (r: RunInfo) => r.status !== 'queued' && r.status !== 'running';
const fileName = (p: string) => p.split(/[\\/]/).pop() ?? p;

/** The runs with the oldest finished ones beyond FINISHED_SHOWN left out. */
function trimFinished(runs: Record<string, RunInfo>): Record<string, RunInfo> {
  const done = Object.values(runs)
    .filter(isFinished)
    .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0));
  if (done.length <= FINISHED_SHOWN) return runs;
  const drop = new Set(done.slice(0, done.length - FINISHED_SHOWN).map((r) => r.runId));
  return Object.fromEntries(Object.entries(runs).filter(([id]) => !drop.has(id)));
}

/**
 * The previews of nodes still in the document. Ids are reused (n1, n2, ...), so a deleted node's
 * preview would otherwise show up on the next node that gets its id.
 */
export const previewsOf = (previews: Record<string, string>, nodes: FlowNode[]): Record<string, string> => {
  const ids = new Set(nodes.map((n) => n.id));
  return Object.keys(previews).every((id) => ids.has(id)) ? previews : Object.fromEntries(Object.entries(previews).filter(([id]) => ids.has(id)));
};

export const createRunSlice: StateCreator<EditorState, [], [], RunSlice> = (set, get) => ({
  runs: {},
  activeRun: null,
  nodeRuns: {},
  nodePreviews: {},
  nodeWarnings: {},
  progress: null,
  outputs: [],
  selectedOutputs: [],

  handleEvent: (e) => {
    const s = get();
    const run = s.runs[e.runId ?? ''] ?? (e.runId ? { runId: e.runId, status: 'queued' as const } : undefined);
    const putRun = (patch: Partial<RunInfo>) => (run ? { runs: { ...get().runs, [run.runId]: { ...run, ...patch } } } : {});
    const setNode = (id: string, r: NodeRun) => ({ nodeRuns: { ...get().nodeRuns, [id]: r } });
    switch (e.type) {
      case 'queued':
        return set(
          putRun({
            position: e.position,
            submittedAt: run?.submittedAt ?? Date.now(),
            ...(e.name && !run?.name ? { name: e.name } : {}),
            ...(e.where ? { where: e.where } : {}),
            held: e.held,
          }),
        );
      case 'run-start': {
        const ids = run?.workflow?.nodes.map((n) => n.id) ?? s.nodes.map((n) => n.id);
        return set({
          ...putRun({ status: 'running', position: undefined }),
          activeRun: e.runId,
          progress: null,
          nodeRuns: Object.fromEntries(ids.map((id) => [id, { status: 'queued' } as NodeRun])),
        });
      }
      case 'node-start': {
        // The node runs again: its warnings are what this execution logs (renderer/node-warnings.ts).
        const { [e.node]: _, ...nodeWarnings } = s.nodeWarnings;
        return set({ ...setNode(e.node, { status: 'running', startedAt: Date.now() }), nodeWarnings });
      }
      case 'node-done':
        return set(setNode(e.node, { status: e.cached ? 'cached' : 'done', ms: e.ms }));
      case 'node-error':
        return set(setNode(e.node, { status: 'error', message: e.message }));
      case 'progress':
        return set({
          ...putRun({ progress: { step: e.step, total: e.total } }),
          progress: {
            runId: e.runId,
            node: e.node,
            step: e.step,
            total: e.total,
            preview: e.preview ? `data:image/png;base64,${e.preview.png}` : s.progress?.preview,
          },
        });
      case 'node-preview': {
        const url = e.images.find((i) => i.url)?.url;
        const present = s.nodes.some((n) => n.id === e.node);
        return url && present ? set({ nodePreviews: { ...s.nodePreviews, [e.node]: url } }) : undefined;
      }
      case 'output': {
        const images = e.images
          .filter((i) => i.url)
          .map((img): OutputImage => ({
            id: img.url!,
            runId: e.runId,
            node: e.node,
            url: img.url!,
            path: img.path,
            width: img.width,
            height: img.height,
            workflow: run?.workflow,
          }));
        const ids = new Set(images.map((i) => i.id));
        return set({
          ...putRun({ images: [...(run?.images ?? []), ...e.images.map((i) => i.path)] }),
          outputs: [...images, ...s.outputs.filter((o) => !ids.has(o.id))].slice(0, GALLERY_LIMIT),
        });
      }
      case 'log':
        if (e.level === 'warn') get().notify('warn', e.message);
        if (e.level === 'warn' && e.node) {
          const ran = run?.workflow?.nodes.find((n) => n.id === e.node) ?? s.nodes.find((n) => n.id === e.node)?.data;
          const w = addWarning(s.nodeWarnings[e.node], e.node, e.message, ran, s.specs);
          if (w) set({ nodeWarnings: { ...get().nodeWarnings, [e.node]: w } });
        }
        return;
      case 'run-done': {
        const status = e.duplicateOf ? 'duplicate' : e.cancelled ? 'cancelled' : e.ok ? 'done' : 'failed';
        const original = e.duplicateOf ? s.runs[e.duplicateOf] : undefined;
        // Nodes that never ran in a cancelled or failed run lose their "queued" mark (a duplicate never touched them).
        const nodeRuns = e.duplicateOf
          ? s.nodeRuns
          : Object.fromEntries(Object.entries(get().nodeRuns).filter(([, r]) => r.status !== 'queued' && r.status !== 'running'));
        const patch: Partial<RunInfo> = {
          status,
          finishedAt: Date.now(),
          progress: undefined,
          position: undefined,
          held: undefined,
          ...(e.duplicateOf ? { duplicateOf: e.duplicateOf, images: original?.images ?? run?.images } : {}),
          ...(e.error ? { error: e.error } : {}),
        };
        const runs = trimFinished(putRun(patch).runs ?? get().runs);
        set({ runs, nodeRuns, activeRun: s.activeRun === e.runId ? null : s.activeRun, progress: e.duplicateOf ? s.progress : null });
        // The errors of earlier runs are gone once a run succeeds.
        if (e.ok && !e.duplicateOf) get().clearNotices('run');
        if (e.duplicateOf) {
          const names = (original?.images ?? []).map(fileName);
          get().notify(
            'info',
            `Nothing changed since an earlier run, so nothing was written again${names.length ? `: its images are ${names.join(', ')}` : ''}. Change a param or the seed for new images, or use Run anyway in the queue.`,
            'run',
          );
        }
        if (e.errors?.length) get().showErrors(e.errors);
        if (e.cancelled) get().notify('info', 'Run cancelled.', 'run');
        else if (!e.ok && e.error && !e.errors?.length) get().notify('error', e.error, 'run');
        return;
      }
    }
  },

  showErrors: (errors) => {
    const nodeRuns: Record<string, NodeRun> = { ...get().nodeRuns };
    const known = new Set(get().nodes.map((n) => n.id));
    for (const err of errors) {
      const where = err.param ? `${err.param}: ` : err.port ? `${err.port}: ` : '';
      if (err.node && known.has(err.node)) {
        // On its own card a message needs no "Title (id): " prefix (the engine writes one for the CLI).
        const esc = err.node.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const text = err.message.replace(new RegExp(`^[^:\\n]*\\(${esc}\\):\\s*`), '');
        const prev = nodeRuns[err.node]?.status === 'error' ? nodeRuns[err.node].message + '\n' : '';
        nodeRuns[err.node] = { status: 'error', message: prev + (text === err.message ? where : '') + text };
      } else {
        get().notify('error', (err.node ? `${err.node}: ` : '') + where + err.message, 'run');
      }
    }
    set({ nodeRuns });
  },

  clearRunState: () => set({ nodeRuns: {} }),

  toggleOutput: (id) => {
    const sel = get().selectedOutputs;
    set({ selectedOutputs: sel.includes(id) ? sel.filter((x) => x !== id) : [...sel, id] });
  },

  setGallery: (items) => {
    const s = get();
    const live = new Map(s.outputs.map((o) => [o.id, o]));
    const listed = items.map((it): OutputImage => {
      const known = live.get(it.url);
      return {
        ...known,
        id: it.url,
        url: it.url,
        path: known?.path ?? it.file,
        width: it.width || known?.width || 0,
        height: it.height || known?.height || 0,
        parameters: it.parameters,
        hasWorkflow: it.hasWorkflow,
        title: it.title,
        mtimeMs: it.mtimeMs,
      };
    });
    const ids = new Set(listed.map((o) => o.id));
    // This session's images the folder does not list (previews, another output folder) stay in front.
    const outputs = [...s.outputs.filter((o) => !ids.has(o.id) && o.runId), ...listed].slice(0, GALLERY_LIMIT);
    const present = new Set(outputs.map((o) => o.id));
    set({ outputs, selectedOutputs: s.selectedOutputs.filter((id) => present.has(id)) });
  },

  mergeQueue: (jobs) => {
    const runs = { ...get().runs };
    for (const j of jobs) {
      const had = runs[j.runId];
      runs[j.runId] = {
        ...had,
        runId: j.runId,
        status: j.state,
        name: had?.name ?? j.name,
        submittedAt: had?.submittedAt ?? j.submittedAt,
        ...(j.where ? { where: j.where } : {}),
        position: j.position,
        progress: j.progress ? { step: j.progress.step, total: j.progress.total } : had?.progress,
        ...(j.finishedAt ? { finishedAt: j.finishedAt } : {}),
        ...(j.duplicateOf ? { duplicateOf: j.duplicateOf } : {}),
        ...(j.images ? { images: j.images } : {}),
        ...(j.error ? { error: j.error } : {}),
        held: j.held,
        ...(j.batch ? { batch: j.batch } : {}),
        // The host keeps each job's workflow: after a reload the panel still shows its summary and offers Re-queue.
        ...(had?.workflow || j.workflow ? { workflow: had?.workflow ?? j.workflow } : {}),
      };
    }
    set({ runs: trimFinished(runs) });
  },

  clearFinished: () => set({ runs: Object.fromEntries(Object.entries(get().runs).filter(([, r]) => !isFinished(r))) }),
});

export const queueLength = (s: EditorState) => Object.values(s.runs).filter((r) => r.status === 'queued' || r.status === 'running').length;
