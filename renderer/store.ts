/**
 * Editor state (zustand, vanilla store: no React here; components read it via narrow selectors).
 * The document (nodes + edges) has undo/redo history; run state, outputs and notices do not.
 */
import { createStore } from 'zustand/vanilla';
import { applyEdgeChanges, applyNodeChanges, type EdgeChange, type NodeChange } from '@xyflow/react';
import type { EngineSettings, RunEvent, ValidationError, Workflow } from '../engine/api.js';
import type { HostInfo } from '../engine/protocol.js';
import type { ModelKind, NodeSpec, ParamValue } from '../nodes/types.js';
import {
  checkConnection, extractSelection, freshId, fromWorkflow, makeEdge, makeNode, pasteFragment, toWorkflow,
  type Connection, type Doc, type FlowEdge, type FlowNode, type SpecMap,
} from './graph.js';

export interface NodeRun {
  status: 'queued' | 'running' | 'done' | 'cached' | 'error';
  ms?: number;
  startedAt?: number;
  message?: string;
}
export interface RunInfo {
  runId: string;
  status: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  position?: number;
  workflow?: Workflow;
}
export interface OutputImage {
  id: string;
  runId: string;
  node: string;
  url: string;
  path: string;
  width: number;
  height: number;
  workflow?: Workflow;
}
export interface Progress {
  runId: string;
  node: string;
  step: number;
  total: number;
  preview?: string;
}
export interface Notice {
  id: number;
  level: 'info' | 'warn' | 'error';
  text: string;
}

export interface LoadOptions {
  /** Load as unsaved work (a recovered autosave). */
  dirty?: boolean;
  /** Keep the undo history (the caller committed first, so opening a file can be undone). */
  keepHistory?: boolean;
}

const HISTORY_LIMIT = 200;
/** Edits of the same param within this window form one undo step (a slider drag). */
const COALESCE_MS = 1200;

export interface EditorState extends Doc {
  specs: SpecMap;
  specList: NodeSpec[];
  models: Partial<Record<ModelKind, string[]>>;
  past: Doc[];
  future: Doc[];
  coalesce: { key: string; at: number } | null;
  dragging: boolean;
  /** Bumped by every document change; equal to savedRevision when nothing is unsaved. */
  revision: number;
  savedRevision: number;
  fileName: string | null;
  clipboard: Doc | null;
  runs: Record<string, RunInfo>;
  activeRun: string | null;
  nodeRuns: Record<string, NodeRun>;
  /** Latest on-card preview image URL per node (preprocessor results). */
  nodePreviews: Record<string, string>;
  progress: Progress | null;
  outputs: OutputImage[];
  selectedOutputs: string[];
  notices: Notice[];
  settings: EngineSettings | null;
  hostInfo: HostInfo | null;
  connected: boolean;
  examples: { name: string; title: string }[];

  setSpecs(list: NodeSpec[]): void;
  /** Records the current document as an undo step (call before changing it). */
  commit(coalesceKey?: string): void;
  /** Replaces the document without history (loading). */
  loadDoc(doc: Doc, fileName: string | null, opts?: LoadOptions): void;
  loadWorkflow(wf: Workflow, fileName: string | null, opts?: LoadOptions): string[];
  workflow(): Workflow;
  onNodesChange(changes: NodeChange<FlowNode>[]): void;
  onEdgesChange(changes: EdgeChange<FlowEdge>[]): void;
  connect(c: Connection): string | null;
  addNode(type: string, x: number, y: number, params?: Record<string, ParamValue>): string | null;
  setParam(node: string, name: string, value: ParamValue): void;
  deleteSelected(): void;
  selectAll(): void;
  copy(): number;
  paste(): void;
  undo(): void;
  redo(): void;
  markSaved(fileName: string): void;
  handleEvent(e: RunEvent): void;
  showErrors(errors: ValidationError[]): void;
  clearRunState(): void;
  notify(level: Notice['level'], text: string): void;
  dismiss(id: number): void;
  toggleOutput(id: string): void;
}

const MAX_NOTICES = 4;
const docOf = (s: Doc): Doc => ({ nodes: s.nodes, edges: s.edges });
/**
 * The previews of nodes still in the document. Ids are reused (n1, n2, ...), so a deleted node's
 * preview would otherwise show up on the next node that gets its id.
 */
const previewsOf = (previews: Record<string, string>, nodes: FlowNode[]): Record<string, string> => {
  const ids = new Set(nodes.map((n) => n.id));
  return Object.keys(previews).every((id) => ids.has(id)) ? previews : Object.fromEntries(Object.entries(previews).filter(([id]) => ids.has(id)));
};
let noticeId = 1;

export function createEditorStore() {
  return createStore<EditorState>()((set, get) => ({
    nodes: [],
    edges: [],
    specs: {},
    specList: [],
    models: {},
    past: [],
    future: [],
    coalesce: null,
    dragging: false,
    revision: 0,
    savedRevision: 0,
    fileName: null,
    clipboard: null,
    runs: {},
    activeRun: null,
    nodeRuns: {},
    nodePreviews: {},
    progress: null,
    outputs: [],
    selectedOutputs: [],
    notices: [],
    settings: null,
    hostInfo: null,
    connected: false,
    examples: [],

    setSpecs: (list) => set({ specList: list, specs: Object.fromEntries(list.map((s) => [s.type, s])) }),

    commit: (key) => {
      const s = get();
      const now = Date.now();
      if (key && s.coalesce?.key === key && now - s.coalesce.at < COALESCE_MS) {
        set({ coalesce: { key, at: now }, revision: s.revision + 1 });
        return;
      }
      set({ past: [...s.past, docOf(s)].slice(-HISTORY_LIMIT), future: [], coalesce: key ? { key, at: now } : null, revision: s.revision + 1 });
    },

    loadDoc: (doc, fileName, opts) => {
      const rev = get().revision + 1;
      const history = opts?.keepHistory ? {} : { past: [], future: [] };
      // A new document (New, Open, an example) starts without the old one's run marks and previews.
      set({ ...doc, ...history, coalesce: null, fileName, revision: rev, savedRevision: opts?.dirty ? -1 : rev, nodeRuns: {}, nodePreviews: {} });
    },

    loadWorkflow: (wf, fileName, opts) => {
      const { problems, ...doc } = fromWorkflow(wf, get().specs);
      get().loadDoc(doc, fileName, opts);
      return problems;
    },

    workflow: () => toWorkflow(docOf(get())),

    onNodesChange: (changes) => {
      const s = get();
      const structural = changes.some((c) => c.type === 'remove' || c.type === 'add' || c.type === 'replace');
      const dragStart = !s.dragging && changes.some((c) => c.type === 'position' && c.dragging);
      const dragEnd = s.dragging && changes.some((c) => c.type === 'position' && !c.dragging);
      if (structural || dragStart) get().commit();
      // Removing a node removes its edges (React Flow sends those separately; keep the pair one undo step).
      const removed = new Set(changes.flatMap((c) => (c.type === 'remove' ? [c.id] : [])));
      const nodes = applyNodeChanges(changes, get().nodes);
      set({
        nodes,
        nodePreviews: removed.size ? previewsOf(get().nodePreviews, nodes) : get().nodePreviews,
        edges: removed.size ? get().edges.filter((e) => !removed.has(e.source) && !removed.has(e.target)) : get().edges,
        dragging: dragStart ? true : dragEnd ? false : s.dragging,
      });
    },

    onEdgesChange: (changes) => {
      if (changes.some((c) => c.type === 'remove' || c.type === 'add' || c.type === 'replace')) get().commit();
      set({ edges: applyEdgeChanges(changes, get().edges) });
    },

    connect: (c) => {
      const s = get();
      const verdict = checkConnection(c, s.nodes, s.edges, s.specs);
      if (!verdict.ok) return verdict.reason;
      const src = s.nodes.find((n) => n.id === c.source)!;
      const type = s.specs[src.data.type].outputs.find((p) => p.name === c.sourceHandle)!.type;
      get().commit();
      // An input takes one edge: a new connection replaces the old one.
      const edges = s.edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
      set({ edges: [...edges, makeEdge(c.source!, c.sourceHandle!, c.target!, c.targetHandle!, type)] });
      return null;
    },

    addNode: (type, x, y, params) => {
      const s = get();
      const spec = s.specs[type];
      if (!spec) return null;
      const id = freshId(s.nodes.map((n) => n.id))();
      get().commit();
      // A model picker whose default is not in the models folder starts on the first file there (as ComfyUI does).
      const picked: Record<string, ParamValue> = {};
      for (const p of spec.params) {
        const have = p.kind === 'file' ? s.models[p.modelKind] ?? [] : [];
        if (p.kind === 'file' && !p.optional && have.length && !have.includes(p.default)) picked[p.name] = have[0];
      }
      const node = { ...makeNode(id, spec, x, y, { ...picked, ...params }), selected: true };
      set({ nodes: [...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), node] });
      return id;
    },

    setParam: (node, name, value) => {
      get().commit(`param:${node}:${name}`);
      set({ nodes: get().nodes.map((n) => (n.id === node ? { ...n, data: { ...n.data, params: { ...n.data.params, [name]: value } } } : n)) });
    },

    deleteSelected: () => {
      const s = get();
      const gone = new Set(s.nodes.filter((n) => n.selected).map((n) => n.id));
      const edges = s.edges.filter((e) => !e.selected && !gone.has(e.source) && !gone.has(e.target));
      if (gone.size === 0 && edges.length === s.edges.length) return;
      get().commit();
      const nodes = s.nodes.filter((n) => !gone.has(n.id));
      set({ nodes, edges, nodePreviews: previewsOf(s.nodePreviews, nodes) });
    },

    selectAll: () => set({ nodes: get().nodes.map((n) => ({ ...n, selected: true })) }),

    copy: () => {
      const frag = extractSelection(docOf(get()));
      if (frag.nodes.length) set({ clipboard: frag });
      return frag.nodes.length;
    },

    paste: () => {
      const clip = get().clipboard;
      if (!clip?.nodes.length) return;
      get().commit();
      const doc = pasteFragment(docOf(get()), clip, { x: 40, y: 40 });
      // Pasting again offsets again (from the pasted copy).
      set({ ...doc, clipboard: extractSelection(doc) });
    },

    undo: () => {
      const s = get();
      const prev = s.past[s.past.length - 1];
      if (!prev) return;
      set({ ...prev, past: s.past.slice(0, -1), future: [docOf(s), ...s.future], coalesce: null, revision: s.revision + 1,
        nodePreviews: previewsOf(s.nodePreviews, prev.nodes) });
    },

    redo: () => {
      const s = get();
      const next = s.future[0];
      if (!next) return;
      set({ ...next, past: [...s.past, docOf(s)], future: s.future.slice(1), coalesce: null, revision: s.revision + 1,
        nodePreviews: previewsOf(s.nodePreviews, next.nodes) });
    },

    markSaved: (fileName) => set({ fileName, savedRevision: get().revision }),

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
          return set({ ...putRun({ status: 'running' }), activeRun: e.runId, progress: null,
            nodeRuns: Object.fromEntries(ids.map((id) => [id, { status: 'queued' } as NodeRun])) });
        }
        case 'node-start':
          return set(setNode(e.node, { status: 'running', startedAt: Date.now() }));
        case 'node-done':
          return set(setNode(e.node, { status: e.cached ? 'cached' : 'done', ms: e.ms }));
        case 'node-error':
          return set(setNode(e.node, { status: 'error', message: e.message }));
        case 'progress':
          return set({ progress: { runId: e.runId, node: e.node, step: e.step, total: e.total,
            preview: e.preview ? `data:image/png;base64,${e.preview.png}` : s.progress?.preview } });
        case 'node-preview': {
          const url = e.images.find((i) => i.url)?.url;
          const present = s.nodes.some((n) => n.id === e.node);
          return url && present ? set({ nodePreviews: { ...s.nodePreviews, [e.node]: url } }) : undefined;
        }
        case 'output': {
          const images = e.images.filter((i) => i.url).map((img, k): OutputImage => ({
            id: `${e.runId}:${e.node}:${k}`, runId: e.runId, node: e.node, url: img.url!, path: img.path,
            width: img.width, height: img.height, workflow: run?.workflow,
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

    // The same text again (a warning every run repeats) moves to the newest place instead of
    // stacking a copy; at most four show at once.
    notify: (level, text) => set({ notices: [...get().notices.filter((n) => n.text !== text), { id: noticeId++, level, text }].slice(-MAX_NOTICES) }),
    dismiss: (id) => set({ notices: get().notices.filter((n) => n.id !== id) }),
    toggleOutput: (id) => {
      const sel = get().selectedOutputs;
      set({ selectedOutputs: sel.includes(id) ? sel.filter((x) => x !== id) : [...sel, id] });
    },
  }));
}

export type EditorStore = ReturnType<typeof createEditorStore>;
export const isDirty = (s: EditorState) => s.revision !== s.savedRevision;
export const queueLength = (s: EditorState) => Object.values(s.runs).filter((r) => r.status === 'queued' || r.status === 'running').length;
