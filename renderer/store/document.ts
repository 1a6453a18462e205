/**
 * The document slice: the graph (nodes + edges) checked against the node specs, its undo/redo
 * history, the clipboard, and the file state (name, saved revision: dirty).
 */
import type { StateCreator } from 'zustand/vanilla';
import { applyEdgeChanges, applyNodeChanges } from '@xyflow/react';
import type { ParamValue } from '../../nodes/types.js';
import {
  boxOf,
  checkConnection,
  CARD_WIDTH,
  enclose,
  estimateHeight,
  extractSelection,
  freeSpot,
  freshId,
  fromWorkflow,
  makeEdge,
  makeNode,
  makeRoomBelow,
  membersOf,
  pasteFragment,
  portsOf,
  toWorkflow,
  wireTypeOf,
  type Doc,
  type FlowNode,
  type GroupBox,
} from '../graph.js';
import { previewsOf } from './run.js';
import type { DocumentSlice, EditorState } from './state.js';

const HISTORY_LIMIT = 200;
/** Edits of the same param within this window form one undo step (a slider drag). */
const COALESCE_MS = 1200;

const docOf = (s: Doc): Doc => ({ nodes: s.nodes, edges: s.edges, groups: s.groups ?? [] });

/** Group colours offered by the canvas menu (ComfyUI's palette, darkened for the dark canvas). */
export const GROUP_COLORS = ['#3f789e', '#8a5a3c', '#4a7a4a', '#7a4a7a', '#7a6a3a', '#3a6a6a', '#6a3a3a', '#5a5a5a'];

export const createDocumentSlice: StateCreator<EditorState, [], [], DocumentSlice> = (set, get) => ({
  nodes: [],
  edges: [],
  groups: [],
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
      groups: doc.groups ?? [],
      ...history,
      coalesce: null,
      fileName,
      revision: rev,
      savedRevision: opts?.dirty ? -1 : rev,
      nodeRuns: {},
      nodePreviews: {},
      nodeWarnings: {},
      imageOrigins: {},
      missingAsk: null,
      meta: undefined,
      // The old document's run errors and notices are not about this one.
      notices: get().notices.filter((n) => !n.cause),
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
    // A drawn card that grew from a run (its error, its preview: they stay) pushes the cards it
    // would cover down. Growth while a file opens (thumbnails arriving) moves nothing, so the
    // positions saved are the file's on every machine; a sampler's progress overlays its header.
    const before = new Map(s.nodes.map((n) => [n.id, n.measured?.height]));
    const grown = changes.flatMap((c) => {
      const was = c.type === 'dimensions' ? before.get(c.id) : undefined;
      const fromRun = c.type === 'dimensions' && (s.nodeRuns[c.id]?.status === 'error' || s.nodePreviews[c.id] !== undefined);
      return c.type === 'dimensions' && c.dimensions && fromRun && was !== undefined && c.dimensions.height > was + 1 ? [c.id] : [];
    });
    let nodes = applyNodeChanges(changes, get().nodes);
    if (grown.length && !s.dragging) nodes = makeRoomBelow({ nodes, edges: s.edges }, s.specs, grown)?.nodes ?? nodes;
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
    const type = wireTypeOf(c, s.nodes, s.edges, s.specs);
    get().commit();
    // An input takes one edge: a new connection replaces the old one.
    const edges = s.edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
    // A primitive wired for the first time takes the value the param had (a seed: its control after generate too, as ComfyUI's).
    const src = s.nodes.find((n) => n.id === c.source)!;
    const dst = s.nodes.find((n) => n.id === c.target)!;
    const control = dst.data.params.control_after_generate;
    const seed = s.specs[dst.data.type]?.params.some((p) => p.name === c.targetHandle && p.kind === 'number' && p.widget === 'seed');
    const taken = { value: dst.data.params[c.targetHandle!], ...(control !== undefined && seed ? { control_after_generate: control } : {}) };
    const nodes =
      s.specs[src.data.type]?.virtual === 'primitive' && src.data.params.value === undefined && dst.data.params[c.targetHandle!] !== undefined
        ? s.nodes.map((n) => (n.id === src.id ? { ...n, data: { ...n.data, params: { ...n.data.params, ...taken } } } : n))
        : s.nodes;
    set({ nodes, edges: [...edges, makeEdge(c.source!, c.sourceHandle!, c.target!, c.targetHandle!, type)] });
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
    // The nearest spot where the new card covers no other (and keeps a gap from its neighbours).
    const at = freeSpot(docOf(s), s.specs, { x, y }, { w: CARD_WIDTH, h: estimateHeight(spec) });
    const node = { ...makeNode(id, spec, at.x, at.y, { ...picked, ...params }), selected: true };
    set({ nodes: [...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), node] });
    return id;
  },

  addNodeWired: (type, x, y, from) => {
    const s = get();
    const spec = s.specs[type];
    if (!spec) return null;
    const end = s.nodes.find((n) => n.id === from.node);
    const port = end && portsOf(end, s.specs, s.nodes, s.edges)[from.side === 'source' ? 'outputs' : 'inputs'].find((p) => p.name === from.port);
    if (!end || !port) return null;
    // A new card to the right of a wire from an output, to the left of one from an input.
    const id = get().addNode(type, from.side === 'source' ? x : x - CARD_WIDTH, y);
    if (!id) return null;
    const cur = get();
    const made = cur.nodes.find((n) => n.id === id)!;
    const ports = portsOf(made, cur.specs, cur.nodes, cur.edges)[from.side === 'source' ? 'inputs' : 'outputs'];
    const match = ports.find((p) => p.type === port.type || p.type === '*' || port.type === '*');
    if (!match) return id;
    const c =
      from.side === 'source'
        ? { source: from.node, sourceHandle: from.port, target: id, targetHandle: match.name }
        : { source: id, sourceHandle: match.name, target: from.node, targetHandle: from.port };
    // The node and its wire are one undo step.
    const past = get().past;
    const reason = get().connect(c);
    if (!reason) set({ past: past });
    return id;
  },

  setMode: (ids, mode) => {
    if (!ids.length) return;
    get().commit();
    const set1 = new Set(ids);
    set({
      nodes: get().nodes.map((n) => {
        if (!set1.has(n.id) || get().specs[n.data.type]?.virtual) return n;
        const { mode: _m, ...data } = n.data;
        return { ...n, data: mode ? { ...data, mode } : data };
      }),
    });
  },

  setUi: (ids, patch) => {
    if (!ids.length) return;
    get().commit();
    const set1 = new Set(ids);
    set({
      nodes: get().nodes.map((n) => {
        if (!set1.has(n.id)) return n;
        const ui = { ...n.data.ui, ...patch };
        for (const [k, v] of Object.entries(patch)) if (v === undefined || v === false) delete ui[k];
        const { ui: _u, ...data } = n.data;
        return { ...n, data: Object.keys(ui).length ? { ...data, ui } : data };
      }),
    });
  },

  convertParam: (node, name, toInput) => {
    const s = get();
    const n = s.nodes.find((x) => x.id === node);
    if (!n || !s.specs[n.data.type]?.params.some((p) => p.name === name)) return;
    const have = n.data.ui?.inputs ?? [];
    if (toInput === have.includes(name)) return;
    const inputs = toInput ? [...have, name] : have.filter((x) => x !== name);
    get().setUi([node], { inputs: inputs.length ? inputs : undefined });
    // Back to a widget: the wire into it goes.
    if (!toInput) set({ edges: get().edges.filter((e) => !(e.target === node && e.targetHandle === name)) });
  },

  addReroute: (edgeId, x, y) => {
    const s = get();
    const e = s.edges.find((x1) => x1.id === edgeId);
    const spec = s.specs.reroute;
    if (!e || !spec) return null;
    get().commit();
    const id = freshId(s.nodes.map((n) => n.id))();
    const node: FlowNode = makeNode(id, spec, x - 12, y - 12);
    const t = e.data?.portType ?? 'LATENT';
    const edges = [
      ...s.edges.filter((x1) => x1.id !== edgeId),
      makeEdge(e.source, e.sourceHandle!, id, 'in', t),
      makeEdge(id, 'out', e.target, e.targetHandle!, t),
    ];
    set({ nodes: [...s.nodes, node], edges });
    return id;
  },

  addGroup: (ids, title) => {
    const s = get();
    const boxes = s.nodes.filter((n) => ids.includes(n.id)).map((n) => boxOf(n, s.specs));
    if (!boxes.length) return null;
    get().commit();
    const taken = new Set((s.groups ?? []).map((g) => g.id));
    let k = 1;
    while (taken.has(`g${k}`)) k++;
    const g: GroupBox = { id: `g${k}`, title: title ?? 'Group', bounding: enclose(boxes), color: GROUP_COLORS[(k - 1) % GROUP_COLORS.length] };
    set({ groups: [...(s.groups ?? []), g] });
    return g.id;
  },

  updateGroup: (id, patch, coalesceKey) => {
    get().commit(coalesceKey);
    set({ groups: (get().groups ?? []).map((g) => (g.id === id ? { ...g, ...patch } : g)) });
  },

  removeGroup: (id) => {
    get().commit();
    set({ groups: (get().groups ?? []).filter((g) => g.id !== id) });
  },

  moveGroup: (id, dx, dy, members) => {
    const s = get();
    const g = (s.groups ?? []).find((x) => x.id === id);
    if (!g || (!dx && !dy)) return;
    const ids = new Set(members ?? membersOf(g, docOf(s), s.specs));
    set({
      groups: (s.groups ?? []).map((x) => (x.id === id ? { ...x, bounding: [x.bounding[0] + dx, x.bounding[1] + dy, x.bounding[2], x.bounding[3]] } : x)),
      nodes: s.nodes.map((n) => (ids.has(n.id) ? { ...n, position: { x: n.position.x + dx, y: n.position.y + dy } } : n)),
    });
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

  paste: (at) => {
    const clip = get().clipboard;
    if (!clip?.nodes.length) return;
    get().commit();
    const doc = pasteFragment(docOf(get()), clip, { x: 40, y: 40 }, get().specs, at);
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
