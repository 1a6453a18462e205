/**
 * The run slice: the queue (runs, the active one), per-node run states, sampler progress, on-card
 * previews and the output gallery (with its selection for export). No undo history.
 */
import type { StateCreator } from 'zustand/vanilla';
import type { FlowNode } from '../graph.js';
import type { EditorState, NodeRun, OutputImage, RunInfo, RunSlice } from './state.js';

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
        return set(putRun({ position: e.position }));
      case 'run-start': {
        const ids = run?.workflow?.nodes.map((n) => n.id) ?? s.nodes.map((n) => n.id);
        return set({
          ...putRun({ status: 'running' }),
          activeRun: e.runId,
          progress: null,
          nodeRuns: Object.fromEntries(ids.map((id) => [id, { status: 'queued' } as NodeRun])),
        });
      }
      case 'node-start':
        return set(setNode(e.node, { status: 'running', startedAt: Date.now() }));
      case 'node-done':
        return set(setNode(e.node, { status: e.cached ? 'cached' : 'done', ms: e.ms }));
      case 'node-error':
        return set(setNode(e.node, { status: 'error', message: e.message }));
      case 'progress':
        return set({
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
          .map((img, k): OutputImage => ({
            id: `${e.runId}:${e.node}:${k}`,
            runId: e.runId,
            node: e.node,
            url: img.url!,
            path: img.path,
            width: img.width,
            height: img.height,
            workflow: run?.workflow,
          }));
        return set({ outputs: [...images, ...s.outputs].slice(0, 48) });
      }
      case 'log':
        if (e.level === 'warn') get().notify('warn', e.message);
        return;
      case 'run-done': {
        const status = e.cancelled ? 'cancelled' : e.ok ? 'done' : 'failed';
        // Nodes that never ran in a cancelled or failed run lose their "queued" mark.
        const nodeRuns = Object.fromEntries(Object.entries(get().nodeRuns).filter(([, r]) => r.status !== 'queued' && r.status !== 'running'));
        set({ ...putRun({ status }), nodeRuns, activeRun: s.activeRun === e.runId ? null : s.activeRun, progress: null });
        if (e.errors?.length) get().showErrors(e.errors);
        if (e.cancelled) get().notify('info', 'Run cancelled.');
        else if (!e.ok && e.error && !e.errors?.length) get().notify('error', e.error);
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
        get().notify('error', (err.node ? `${err.node}: ` : '') + where + err.message);
      }
    }
    set({ nodeRuns });
  },

  clearRunState: () => set({ nodeRuns: {} }),

  toggleOutput: (id) => {
    const sel = get().selectedOutputs;
    set({ selectedOutputs: sel.includes(id) ? sel.filter((x) => x !== id) : [...sel, id] });
  },
});

export const queueLength = (s: EditorState) => Object.values(s.runs).filter((r) => r.status === 'queued' || r.status === 'running').length;
