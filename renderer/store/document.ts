/**
 * The document slice: the graph (nodes + edges) checked against the node specs, its undo/redo
 * history, the clipboard, and the file state (name, saved revision: dirty).
 */
import type { StateCreator } from 'zustand/vanilla';
import { applyEdgeChanges, applyNodeChanges } from '@xyflow/react';
import type { ParamValue } from '../../nodes/types.js';
import { checkConnection, extractSelection, freshId, fromWorkflow, makeEdge, makeNode, pasteFragment, toWorkflow, type Doc } from '../graph.js';
import { previewsOf } from './run.js';
import type { DocumentSlice, EditorState } from './state.js';

const HISTORY_LIMIT = 200;
/** Edits of the same param within this window form one undo step (a slider drag). */
const COALESCE_MS = 1200;

const docOf = (s: Doc): Doc => ({ nodes: s.nodes, edges: s.edges });

export const createDocumentSlice: StateCreator<EditorState, [], [], DocumentSlice> = (set, get) => ({
  nodes: [],
  edges: [],
  specs: {},
  specList: [],
  past: [],
  future: [],
  coalesce: null,
  dragging: false,
  revision: 0,
  savedRevision: 0,
  fileName: null,
  clipboard: null,

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
    set({
      ...doc,
      ...history,
      coalesce: null,
      fileName,
      revision: rev,
      savedRevision: opts?.dirty ? -1 : rev,
      nodeRuns: {},
      nodePreviews: {},
      imageOrigins: {},
      missingAsk: null,
      meta: undefined,
    });
  },

  loadWorkflow: (wf, fileName, opts) => {
    const { problems, ...doc } = fromWorkflow(wf, get().specs);
    get().loadDoc(doc, fileName, opts);
    if (wf.meta) set({ meta: wf.meta });
    return problems;
  },

  workflow: () => toWorkflow(docOf(get()), get().meta),

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
      const have = p.kind === 'file' ? (s.models[p.modelKind] ?? []) : [];
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
    set({
      ...prev,
      past: s.past.slice(0, -1),
      future: [docOf(s), ...s.future],
      coalesce: null,
      revision: s.revision + 1,
      nodePreviews: previewsOf(s.nodePreviews, prev.nodes),
    });
  },

  redo: () => {
    const s = get();
    const next = s.future[0];
    if (!next) return;
    set({
      ...next,
      past: [...s.past, docOf(s)],
      future: s.future.slice(1),
      coalesce: null,
      revision: s.revision + 1,
      nodePreviews: previewsOf(s.nodePreviews, next.nodes),
    });
  },

  markSaved: (fileName) => set({ fileName, savedRevision: get().revision }),

  replaceImageRefs: (map) => {
    const s = get();
    const swap = (type: string, name: string, v: ParamValue) =>
      typeof v === 'string' && Object.hasOwn(map, v) && s.specs[type]?.params.some((p) => p.name === name && p.kind === 'image') ? map[v] : v;
    const hit = (n: (typeof s.nodes)[number]) => Object.entries(n.data.params).some(([k, v]) => swap(n.data.type, k, v) !== v);
    if (!s.nodes.some(hit)) return;
    get().commit();
    set({
      nodes: get().nodes.map((n) =>
        hit(n) ? { ...n, data: { ...n.data, params: Object.fromEntries(Object.entries(n.data.params).map(([k, v]) => [k, swap(n.data.type, k, v)])) } } : n,
      ),
    });
  },
});

export const isDirty = (s: EditorState) => s.revision !== s.savedRevision;
