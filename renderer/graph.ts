/**
 * The editor's scene model: React Flow nodes/edges <-> workflow JSON, and graph helpers.
 * No React here (style: the scene package does not import the view).
 */
import type { Edge, Node } from '@xyflow/react';
import type { Workflow, WorkflowNode } from '../engine/api.js';
import { canConnect, PORT_COLORS, PORT_TYPES, type ConnectVerdict, type PortType } from '../nodes/ports.js';
import { dynamicPortsOf } from '../nodes/spec.js';
import type { NodeSpec, ParamValue } from '../nodes/types.js';

import { WORKFLOW_VERSION } from '../engine/workflow.js';

/** Bypassed (passes its inputs through) or muted (does not run); engine/graph-modes.ts. */
export type NodeMode = 'bypass' | 'mute';

/**
 * The node's `ui` keys the editor reads besides its position: an imported `title`, `collapsed`
 * (header only), `color` (the card's tint), `inputs` (params turned into inputs, fed by a primitive).
 */
export interface NodeUi extends Record<string, unknown> {
  title?: string;
  collapsed?: boolean;
  color?: string;
  inputs?: string[];
}

export interface NodeData extends Record<string, unknown> {
  type: string;
  params: Record<string, ParamValue>;
  /** The workflow node's `ui` besides its position (an imported title), written back as it was. */
  ui?: NodeUi;
  mode?: NodeMode;
}
export type FlowNode = Node<NodeData, 'card'>;
/** The type on a wire: a port type, or `VALUE` (a primitive feeding params). */
export type WireType = PortType | 'VALUE';
export interface EdgeData extends Record<string, unknown> {
  portType: WireType;
}
export type FlowEdge = Edge<EdgeData>;
export type SpecMap = Record<string, NodeSpec>;

/** A group box on the canvas (`meta.groups`, ComfyUI's layout: bounding = [x, y, width, height]). */
export interface GroupBox {
  id: string;
  title: string;
  bounding: [number, number, number, number];
  color?: string;
}

export interface Doc {
  nodes: FlowNode[];
  edges: FlowEdge[];
  groups?: GroupBox[];
}

/** Colour of a wire or handle of type `t`. */
export const wireColor = (t: WireType | '*'): string => (t === 'VALUE' ? '#cfd8dc' : t === '*' ? '#9e9e9e' : (PORT_COLORS[t] ?? '#9e9e9e'));

/** A port as the canvas draws it: the spec's, a reroute's (`*` until wired), or a param turned into an input. */
export interface CanvasPort {
  name: string;
  type: WireType | '*';
  label?: string;
  optional?: boolean;
  /** A param turned into an input. */
  param?: boolean;
}

/** The type a reroute carries: its source's (through reroute chains), else what its first target takes. */
export function rerouteType(id: string, nodes: readonly FlowNode[], edges: readonly FlowEdge[], specs: SpecMap, seen = new Set<string>()): WireType | '*' {
  if (seen.has(id)) return '*';
  seen.add(id);
  const byId = (x: string) => nodes.find((n) => n.id === x);
  const inEdge = edges.find((e) => e.target === id && e.targetHandle === 'in');
  if (inEdge) {
    const src = byId(inEdge.source);
    if (src && specs[src.data.type]?.virtual === 'reroute') {
      const t = rerouteType(src.id, nodes, edges, specs, seen);
      if (t !== '*') return t;
    } else if (src) {
      const t = portsOf(src, specs, nodes, edges).outputs.find((p) => p.name === inEdge.sourceHandle)?.type;
      if (t && t !== '*') return t;
    }
  }
  for (const e of edges) {
    if (e.source !== id) continue;
    const dst = byId(e.target);
    if (!dst) continue;
    const t =
      specs[dst.data.type]?.virtual === 'reroute'
        ? rerouteType(dst.id, nodes, edges, specs, seen)
        : portsOf(dst, specs, nodes, edges).inputs.find((p) => p.name === e.targetHandle)?.type;
    if (t && t !== '*') return t;
  }
  return '*';
}

/** A node's ports on the canvas (see CanvasPort); `nodes`/`edges` give a reroute its type. */
export function portsOf(
  node: FlowNode,
  specs: SpecMap,
  nodes: readonly FlowNode[] = [],
  edges: readonly FlowEdge[] = [],
): { inputs: CanvasPort[]; outputs: CanvasPort[] } {
  const spec = specs[node.data.type];
  if (!spec) return { inputs: [], outputs: [] };
  if (spec.dynamicPorts) {
    const d = dynamicPortsOf(node.data.params);
    return { inputs: d.inputs.map((p) => ({ ...p, type: p.type as PortType })), outputs: d.outputs.map((p) => ({ ...p, type: p.type as PortType })) };
  }
  if (spec.virtual === 'reroute') {
    const type = rerouteType(node.id, nodes, edges, specs);
    return { inputs: [{ name: 'in', type }], outputs: [{ name: 'out', type }] };
  }
  if (spec.virtual === 'primitive') return { inputs: [], outputs: [{ name: 'value', type: 'VALUE', label: 'value' }] };
  const converted = (node.data.ui?.inputs ?? []).flatMap((name): CanvasPort[] => {
    const p = spec.params.find((x) => x.name === name);
    return p ? [{ name, type: 'VALUE', label: p.label ?? p.name, optional: true, param: true }] : [];
  });
  return { inputs: [...spec.inputs, ...converted], outputs: spec.outputs };
}

/** The kind of value a param takes, for primitives: number params with the same bounds, enums with the same options, etc. */
export function paramKindKey(spec: NodeSpec | undefined, name: string): string {
  const p = spec?.params.find((x) => x.name === name);
  if (!p) return '?';
  if (p.kind === 'enum') return `enum:${p.options.join('|')}`;
  if (p.kind === 'number') return p.widget === 'seed' ? 'seed' : p.integer ? 'integer' : 'number';
  if (p.kind === 'file') return `file:${p.modelKind}`;
  return p.kind;
}

/** The param a primitive's widget shows: the first param it feeds (node spec, param spec), or null. */
export function primitiveTarget(id: string, nodes: readonly FlowNode[], edges: readonly FlowEdge[], specs: SpecMap) {
  for (const e of edges) {
    if (e.source !== id) continue;
    const dst = nodes.find((n) => n.id === e.target);
    const spec = dst && specs[dst.data.type];
    const param = spec?.params.find((p) => p.name === e.targetHandle);
    if (dst && spec && param) return { node: dst, spec, param };
  }
  return null;
}

export function edgeId(from: string, fromPort: string, to: string, toPort: string): string {
  return `${from}.${fromPort}->${to}.${toPort}`;
}

/** Default params of a node type. */
export function defaultParams(spec: NodeSpec): Record<string, ParamValue> {
  return Object.fromEntries(spec.params.map((p) => [p.name, p.default]));
}

/** A fresh id not used by `nodes`: n1, n2, ... */
export function freshId(taken: Iterable<string>): () => string {
  const used = new Set(taken);
  let k = 1;
  return () => {
    while (used.has(`n${k}`)) k++;
    const id = `n${k}`;
    used.add(id);
    return id;
  };
}

export function makeNode(id: string, spec: NodeSpec, x: number, y: number, params?: Record<string, ParamValue>): FlowNode {
  return { id, type: 'card', position: { x, y }, data: { type: spec.type, params: { ...defaultParams(spec), ...params } } };
}

export function makeEdge(from: string, fromPort: string, to: string, toPort: string, portType: WireType): FlowEdge {
  return {
    id: edgeId(from, fromPort, to, toPort),
    source: from,
    sourceHandle: fromPort,
    target: to,
    targetHandle: toPort,
    data: { portType },
    style: { stroke: wireColor(portType), strokeWidth: 2, ...(portType === 'VALUE' ? { strokeDasharray: '6 4' } : {}) },
  };
}

/** Whether `b` is reachable downstream from `a` along edges. */
export function reachesIn(edges: readonly FlowEdge[]): (a: string, b: string) => boolean {
  const out = new Map<string, string[]>();
  for (const e of edges) out.set(e.source, [...(out.get(e.source) ?? []), e.target]);
  return (a, b) => {
    const seen = new Set<string>();
    const stack = [a];
    while (stack.length) {
      const n = stack.pop()!;
      if (n === b) return true;
      if (seen.has(n)) continue;
      seen.add(n);
      stack.push(...(out.get(n) ?? []));
    }
    return false;
  };
}

export interface Connection {
  source: string | null;
  sourceHandle?: string | null;
  target: string | null;
  targetHandle?: string | null;
}

/** The canvas's connection check: the shared `canConnect` over the port types of both ends. */
export function checkConnection(c: Connection, nodes: readonly FlowNode[], edges: readonly FlowEdge[], specs: SpecMap): ConnectVerdict {
  if (!c.source || !c.target || !c.sourceHandle || !c.targetHandle) return { ok: false, reason: 'incomplete connection' };
  const src = nodes.find((n) => n.id === c.source);
  const dst = nodes.find((n) => n.id === c.target);
  const out = src && portsOf(src, specs, nodes, edges).outputs.find((p) => p.name === c.sourceHandle);
  const inp = dst && portsOf(dst, specs, nodes, edges).inputs.find((p) => p.name === c.targetHandle);
  if (!out || !inp) return { ok: false, reason: 'unknown port' };
  // The edge this connection would replace (an input takes one edge) must not count for cycles.
  const rest = edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
  if ((out.type === 'VALUE') !== (inp.type === 'VALUE') && out.type !== '*' && inp.type !== '*') {
    return {
      ok: false,
      reason: out.type === 'VALUE' ? 'a primitive feeds params turned into inputs only' : `a ${out.type} output cannot feed a param; only a primitive can`,
    };
  }
  if (out.type === 'VALUE' && inp.type === 'VALUE') {
    // Every param a primitive feeds takes the same kind of value.
    const other = primitiveTarget(c.source, nodes, rest, specs);
    const want = other ? paramKindKey(other.spec, other.param.name) : null;
    const have = paramKindKey(specs[dst!.data.type], inp.name);
    if (want && want !== have)
      return {
        ok: false,
        reason: `this primitive feeds ${other!.spec.title}'s "${other!.param.label ?? other!.param.name}" (${want}); "${inp.label}" takes ${have}`,
      };
  }
  const type = (t: WireType | '*', other: WireType | '*') => (t === '*' ? (other === '*' ? 'LATENT' : other) : t) as PortType;
  return canConnect(
    { node: c.source, port: out.name, type: type(out.type, inp.type) },
    { node: c.target, port: inp.name, type: type(inp.type, out.type) },
    reachesIn(rest),
  );
}

/** The type a new wire from `c` carries (a reroute takes the other end's). */
export function wireTypeOf(c: Connection, nodes: readonly FlowNode[], edges: readonly FlowEdge[], specs: SpecMap): WireType {
  const src = nodes.find((n) => n.id === c.source);
  const dst = nodes.find((n) => n.id === c.target);
  const out = src ? portsOf(src, specs, nodes, edges).outputs.find((p) => p.name === c.sourceHandle)?.type : undefined;
  const inp = dst ? portsOf(dst, specs, nodes, edges).inputs.find((p) => p.name === c.targetHandle)?.type : undefined;
  const t = out && out !== '*' ? out : inp && inp !== '*' ? inp : 'LATENT';
  return t;
}

/** Scene -> workflow JSON (positions go to `ui`, which the engine never reads). */
export function toWorkflow(doc: Doc, meta?: Record<string, unknown>): Workflow {
  // The groups are the document's (undoable); the rest of meta is kept as it was opened.
  const { groups: _old, ...rest } = meta ?? {};
  const groups = (doc.groups ?? []).map(({ id: _id, ...g }) => ({ ...g, bounding: g.bounding.map(Math.round) }));
  const outMeta = groups.length ? { ...rest, groups } : rest;
  return {
    format: 'ipadapter-studio/workflow',
    version: WORKFLOW_VERSION,
    nodes: doc.nodes.map((n): WorkflowNode => ({
      id: n.id,
      type: n.data.type,
      params: { ...n.data.params },
      ...(n.data.mode ? { mode: n.data.mode } : {}),
      ui: { ...n.data.ui, x: Math.round(n.position.x), y: Math.round(n.position.y) },
    })),
    edges: doc.edges.map((e) => ({ from: { node: e.source, port: e.sourceHandle ?? '' }, to: { node: e.target, port: e.targetHandle ?? '' } })),
    ...(meta || groups.length ? { meta: outMeta } : {}),
  };
}

/** `meta.groups` of a workflow (ours or an imported ComfyUI one's) as group boxes. */
export function groupsOf(meta: Record<string, unknown> | undefined): GroupBox[] {
  const list = Array.isArray(meta?.groups) ? (meta.groups as unknown[]) : [];
  return list.flatMap((g, i): GroupBox[] => {
    if (typeof g !== 'object' || g === null) return [];
    const o = g as Record<string, unknown>;
    const b = Array.isArray(o.bounding) ? o.bounding.map(Number) : [];
    if (b.length !== 4 || b.some((v) => !Number.isFinite(v))) return [];
    return [
      {
        id: `g${i + 1}`,
        title: typeof o.title === 'string' ? o.title : 'Group',
        bounding: b as GroupBox['bounding'],
        ...(typeof o.color === 'string' ? { color: o.color } : {}),
      },
    ];
  });
}

/**
 * Workflow JSON -> scene. Unknown node types and ports are kept (the card says what is wrong and
 * validation reports them); params missing from the file take the spec's defaults.
 */
export function fromWorkflow(wf: Workflow, specs: SpecMap): Doc & { problems: string[] } {
  const problems: string[] = [];
  const nodes = wf.nodes.map((n, i): FlowNode => {
    const spec = specs[n.type];
    if (!spec) problems.push(`node ${n.id}: unknown node type ${n.type}`);
    const params = { ...(spec ? defaultParams(spec) : {}), ...n.params };
    const pos = n.ui ?? { x: (i % 5) * 300, y: Math.floor(i / 5) * 260 };
    const { x: _x, y: _y, ...uiRest } = n.ui ?? { x: 0, y: 0 };
    const data: NodeData = { type: n.type, params, ...(Object.keys(uiRest).length ? { ui: uiRest } : {}), ...(n.mode ? { mode: n.mode } : {}) };
    return { id: n.id, type: 'card', position: { x: pos.x, y: pos.y }, data };
  });
  const byId = new Map(wf.nodes.map((n) => [n.id, n]));
  const edges = wf.edges.map((e) => {
    const from = byId.get(e.from.node);
    const spec = specs[from?.type ?? ''];
    if (spec?.virtual === 'primitive') return makeEdge(e.from.node, e.from.port, e.to.node, e.to.port, 'VALUE');
    if (spec?.virtual === 'reroute') return makeEdge(e.from.node, e.from.port, e.to.node, e.to.port, 'LATENT'); // typed below
    // A ComfyUI placeholder's ports are its own; the edge takes the type of the port it feeds when the placeholder's is not ours.
    const dyn = spec?.dynamicPorts && from ? dynamicPortsOf(from.params).outputs.find((p) => p.name === e.from.port)?.type : undefined;
    const port = spec?.outputs.find((p) => p.name === e.from.port);
    const target = specs[byId.get(e.to.node)?.type ?? '']?.inputs.find((p) => p.name === e.to.port)?.type;
    if (!port && !dyn) problems.push(`edge ${e.from.node}.${e.from.port}: unknown output`);
    const type = port?.type ?? (dyn && (PORT_TYPES as readonly string[]).includes(dyn) ? (dyn as PortType) : target) ?? 'MODEL';
    return makeEdge(e.from.node, e.from.port, e.to.node, e.to.port, type);
  });
  // A reroute's wires take the type it carries.
  const typed = edges.map((e) => {
    const src = nodes.find((n) => n.id === e.source);
    if (!src || specs[src.data.type]?.virtual !== 'reroute') return e;
    const t = rerouteType(src.id, nodes, edges, specs);
    return t === '*' ? e : makeEdge(e.source, e.sourceHandle!, e.target, e.targetHandle!, t);
  });
  const groups = groupsOf(wf.meta);
  // A file without any positions (written by hand or by a script) gets the layered layout.
  if (nodes.length && wf.nodes.every((n) => !n.ui)) return { ...layout({ nodes, edges: typed }, specs), groups, problems };
  return { nodes, edges: typed, groups, problems };
}

/** A card's width on the canvas (styles.css `.card`). */
export const CARD_WIDTH = 270;

/**
 * Estimated card height, for layout before React measured the cards (fitted to the measured
 * cards: header 40, a port row 24, the params block 15 + 40 a field, 74 a prompt, 171 an image).
 */
export function estimateHeight(spec: NodeSpec | undefined): number {
  if (!spec) return 80;
  const h = 40 + Math.max(spec.inputs.length, spec.outputs.length) * 24;
  if (!spec.params.length) return h;
  // An optional image (a mask) starts as a one-line picker.
  const fields = spec.params.map((p) => (p.kind === 'string' && p.multiline ? 74 : p.kind === 'image' ? (p.optional ? 50 : 171) : 40));
  return h + 15 + fields.reduce((a, b) => a + b, 0) + 6 * (fields.length - 1);
}

/** A node's height: as drawn when React measured it, else estimated from its spec. */
const heightOf = (n: FlowNode, specs: SpecMap) => n.measured?.height ?? (n.data.ui?.collapsed ? COLLAPSED_HEIGHT : estimateHeight(specs[n.data.type]));
/** A collapsed card: its header. */
export const COLLAPSED_HEIGHT = 34;

export interface LayoutOptions {
  gapX?: number;
  gapY?: number;
  /** At most this many columns: a longer chain shares columns (see `layout`). */
  maxColumns?: number;
  /** null: the layered layout only, even when it does not fit the reference canvas at a readable zoom. */
  canvas?: null;
}
const LAYOUT = { gapX: 50, gapY: 20, maxColumns: 5 };

/**
 * Places columns of node ids left to right, each stacked top-down in the given order (producers
 * of a node in the same column must come above it). Nodes in no column keep their position.
 */
export function placeColumns(doc: Doc, specs: SpecMap, columns: string[][], opts: LayoutOptions = {}): Doc {
  const { gapX, gapY } = { ...LAYOUT, ...opts };
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const placed = new Map<string, { x: number; y: number }>();
  columns.forEach((ids, col) => {
    let y = 0;
    for (const id of ids) {
      const n = byId.get(id);
      if (!n) continue;
      placed.set(id, { x: col * (CARD_WIDTH + gapX), y });
      y += heightOf(n, specs) + gapY;
    }
  });
  return { nodes: doc.nodes.map((n) => ({ ...n, position: placed.get(n.id) ?? n.position })), edges: doc.edges };
}

/**
 * Keeps every column (same x) and the order of its cards, and stacks them again with their
 * measured heights: a layout made from estimated heights, tidied once React has drawn the cards.
 */
export function restack(doc: Doc, specs: SpecMap, opts: LayoutOptions = {}): Doc {
  const cols = new Map<number, FlowNode[]>();
  for (const n of doc.nodes) cols.set(n.position.x, [...(cols.get(n.position.x) ?? []), n]);
  const { gapY } = { ...LAYOUT, ...opts };
  const placed = new Map<string, number>();
  for (const list of cols.values()) {
    let y = Math.min(...list.map((n) => n.position.y));
    for (const n of [...list].sort((a, b) => a.position.y - b.position.y)) {
      placed.set(n.id, y);
      y += heightOf(n, specs) + gapY;
    }
  }
  return { nodes: doc.nodes.map((n) => ({ ...n, position: { x: n.position.x, y: placed.get(n.id)! } })), edges: doc.edges };
}

/**
 * Layered layout: a node's layer is the longest path from a source; a source sits in the layer
 * just before its first consumer, so loaders stay near their users. A chain longer than
 * `maxColumns` folds: the two neighbouring layers with the smallest combined height share a
 * column (the earlier one on top) until the columns fit, so the whole graph stays readable on one
 * screen rather than a long thin strip. Used by Tidy and for workflows without positions.
 */
export function layout(doc: Doc, specs: SpecMap, opts: LayoutOptions = {}): Doc {
  const { gapY, maxColumns } = { ...LAYOUT, ...opts };
  const incoming = new Map<string, string[]>();
  for (const e of doc.edges) incoming.set(e.target, [...(incoming.get(e.target) ?? []), e.source]);
  const depth = new Map<string, number>();
  const visit = (id: string, stack: Set<string>): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (stack.has(id)) return 0;
    stack.add(id);
    const d = Math.max(-1, ...(incoming.get(id) ?? []).map((s) => visit(s, stack))) + 1;
    stack.delete(id);
    depth.set(id, d);
    return d;
  };
  for (const n of doc.nodes) visit(n.id, new Set());
  const consumers = new Map<string, number[]>();
  for (const e of doc.edges) consumers.set(e.source, [...(consumers.get(e.source) ?? []), depth.get(e.target)!]);
  for (const n of doc.nodes) {
    if ((incoming.get(n.id) ?? []).length === 0 && consumers.has(n.id)) depth.set(n.id, Math.max(0, Math.min(...consumers.get(n.id)!) - 1));
  }
  const layers: FlowNode[][] = [];
  for (const n of doc.nodes) (layers[depth.get(n.id)!] ??= []).push(n);
  // Layers no node landed in (a source moved right) drop out; then fold to maxColumns.
  let columns = layers.filter((l) => l?.length);
  const height = (col: FlowNode[]) => col.reduce((h, n) => h + heightOf(n, specs) + gapY, 0);
  while (columns.length > Math.max(1, maxColumns)) {
    let best = 0;
    for (let i = 1; i < columns.length - 1; i++) {
      if (height(columns[i]) + height(columns[i + 1]) < height(columns[best]) + height(columns[best + 1])) best = i;
    }
    columns = [...columns.slice(0, best), [...columns[best], ...columns[best + 1]], ...columns.slice(best + 2)];
  }
  const layered = placeColumns(
    doc,
    specs,
    columns.map((c) => c.map((n) => n.id)),
    opts,
  );
  if (opts.canvas === null || fitZoom(layered, specs) >= READABLE_ZOOM) return layered;
  // Too large for one screen at a readable zoom: fill columns top-down in the layers' order up to
  // a height, the height that fits the reference canvas best (producers stay left of or above their consumers).
  const order = columns.flat();
  let best = layered;
  for (let k = 0; k <= 50; k++) {
    const maxH = (REFERENCE_CANVAS.height / READABLE_ZOOM) * (0.5 + k / 50);
    const cols: string[][] = [];
    let cur: string[] = [];
    let h = 0;
    for (const n of order) {
      const nh = heightOf(n, specs) + gapY;
      if (cur.length && h + nh > maxH) {
        cols.push(cur);
        cur = [];
        h = 0;
      }
      cur.push(n.id);
      h += nh;
    }
    if (cur.length) cols.push(cur);
    const packed = placeColumns(doc, specs, cols, opts);
    if (fitZoom(packed, specs) > fitZoom(best, specs) + 0.01) best = packed;
  }
  return best;
}

/**
 * The canvas a layout is made for: the editor at 1600 x 1000 less the side panel (300), the
 * toolbar and banner, and fit view's padding (Canvas.tsx FIT_VIEW): about 1250 x 790.
 */
export const REFERENCE_CANVAS = { width: 1250, height: 790 };
/** Below this zoom card text gets hard to read; layouts aim to fit the reference canvas at it. */
export const READABLE_ZOOM = 0.7;

/** The zoom at which the cards (measured or estimated) fit the reference canvas (at most 1). */
export function fitZoom(doc: Doc, specs: SpecMap, canvas = REFERENCE_CANVAS): number {
  if (!doc.nodes.length) return 1;
  const b = doc.nodes.map((n) => boxOf(n, specs));
  const w = Math.max(...b.map((x) => x.x + x.w)) - Math.min(...b.map((x) => x.x));
  const h = Math.max(...b.map((x) => x.y + x.h)) - Math.min(...b.map((x) => x.y));
  return Math.min(1, canvas.width / w, canvas.height / h);
}

/** A card's box on the canvas: measured when drawn, else estimated. */
export interface Box {
  id: string;
  x: number;
  y: number;
  w: number;
  h: number;
}
export function boxOf(n: FlowNode, specs: SpecMap): Box {
  return { id: n.id, x: n.position.x, y: n.position.y, w: n.measured?.width ?? CARD_WIDTH, h: heightOf(n, specs) };
}
const intersects = (a: Box, b: Box, gap = 0) => a.x < b.x + b.w + gap && b.x < a.x + a.w + gap && a.y < b.y + b.h + gap && b.y < a.y + a.h + gap;

/** Pairs of cards whose boxes intersect (ids), for "these cards overlap: Tidy?". */
export function overlappingCards(doc: Doc, specs: SpecMap): [string, string][] {
  const boxes = doc.nodes.map((n) => boxOf(n, specs));
  const out: [string, string][] = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) if (intersects(boxes[i], boxes[j])) out.push([boxes[i].id, boxes[j].id]);
  return out;
}

/** Free space kept around a placed card, so a drag from a port never grabs the neighbour. */
export const PLACE_GAP = 32;

/**
 * The free spot nearest to (x, y) for a card of size w x h: no other card within PLACE_GAP of it.
 * Searched on a 16 px grid in growing rings (right and down first at equal distance).
 */
export function freeSpot(
  doc: Doc,
  specs: SpecMap,
  at: { x: number; y: number },
  size: { w: number; h: number },
  ignore: Set<string> = new Set(),
): { x: number; y: number } {
  const boxes = doc.nodes.filter((n) => !ignore.has(n.id)).map((n) => boxOf(n, specs));
  const free = (x: number, y: number) => boxes.every((b) => !intersects({ id: '', x, y, w: size.w, h: size.h }, b, PLACE_GAP));
  if (free(at.x, at.y)) return at;
  const step = 16;
  for (let r = 1; r < 300; r++) {
    const ring: { x: number; y: number; d: number }[] = [];
    for (let i = -r; i <= r; i++) {
      for (const [dx, dy] of [
        [i, -r],
        [i, r],
        [-r, i],
        [r, i],
      ]) {
        ring.push({ x: at.x + dx * step, y: at.y + dy * step, d: Math.hypot(dx, dy) - (dx >= 0 && dy >= 0 ? 0.01 : 0) });
      }
    }
    ring.sort((a, b) => a.d - b.d);
    const hit = ring.find((p) => free(p.x, p.y));
    if (hit) return { x: hit.x, y: hit.y };
  }
  return at;
}

/**
 * A card grew (an error, a preview): the cards it now covers move down out of its way, and the
 * cards those cover in turn, so a taller card never hides another. Returns null when nothing moved.
 */
export function makeRoomBelow(doc: Doc, specs: SpecMap, grown: string[]): Doc | null {
  const boxes = new Map(doc.nodes.map((n) => [n.id, boxOf(n, specs)]));
  const queue = [...grown];
  const moved = new Set<string>();
  for (let guard = 0; queue.length && guard < 10_000; guard++) {
    const a = boxes.get(queue.shift()!);
    if (!a) continue;
    for (const b of boxes.values()) {
      if (b.id === a.id || b.y < a.y || !intersects(a, b)) continue;
      b.y = a.y + a.h + LAYOUT.gapY;
      moved.add(b.id);
      queue.push(b.id);
    }
  }
  if (!moved.size) return null;
  return { ...doc, nodes: doc.nodes.map((n) => (moved.has(n.id) ? { ...n, position: { x: n.position.x, y: boxes.get(n.id)!.y } } : n)) };
}

/** After a relayout: each group box is fitted again around the cards that were inside it before. */
export function refitGroups(before: Doc, after: Doc, specs: SpecMap): GroupBox[] {
  return (before.groups ?? []).map((g) => {
    const ids = membersOf(g, before, specs);
    const boxes = after.nodes.filter((n) => ids.includes(n.id)).map((n) => boxOf(n, specs));
    return boxes.length ? { ...g, bounding: enclose(boxes) } : g;
  });
}

/** The cards whose centre lies inside a group box. */
export function membersOf(g: GroupBox, doc: Doc, specs: SpecMap): string[] {
  const [x, y, w, h] = g.bounding;
  return doc.nodes
    .map((n) => boxOf(n, specs))
    .filter((b) => b.x + b.w / 2 >= x && b.x + b.w / 2 <= x + w && b.y + b.h / 2 >= y && b.y + b.h / 2 <= y + h)
    .map((b) => b.id);
}

/** A group's bounding box around cards: room for its title bar above them. */
export function enclose(boxes: Box[]): GroupBox['bounding'] {
  const pad = 20;
  const x = Math.min(...boxes.map((b) => b.x)) - pad;
  const y = Math.min(...boxes.map((b) => b.y)) - pad - 34;
  const r = Math.max(...boxes.map((b) => b.x + b.w)) + pad;
  const bottom = Math.max(...boxes.map((b) => b.y + b.h)) + pad;
  return [x, y, r - x, bottom - y];
}

/** Copies the selected nodes and the edges between them (for copy/paste). */
export function extractSelection(doc: Doc): Doc {
  const nodes = doc.nodes.filter((n) => n.selected);
  const ids = new Set(nodes.map((n) => n.id));
  return { nodes, edges: doc.edges.filter((e) => ids.has(e.source) && ids.has(e.target)) };
}

/**
 * Pastes a copied fragment with fresh ids, selected: its top-left card at `at` (the pointer) when
 * given, else next to the original; moved to the nearest spot where it covers no card.
 */
export function pasteFragment(doc: Doc, frag: Doc, offset: { x: number; y: number }, specs: SpecMap = {}, at?: { x: number; y: number }): Doc {
  const next = freshId(doc.nodes.map((n) => n.id));
  const map = new Map(frag.nodes.map((n) => [n.id, next()]));
  const fb = frag.nodes.map((n) => boxOf(n, specs));
  const minX = Math.min(...fb.map((b) => b.x));
  const minY = Math.min(...fb.map((b) => b.y));
  const size = { w: Math.max(...fb.map((b) => b.x + b.w)) - minX, h: Math.max(...fb.map((b) => b.y + b.h)) - minY };
  const want = at ?? { x: minX + offset.x, y: minY + offset.y };
  const spot = fb.length ? freeSpot(doc, specs, want, size) : want;
  const d = { x: spot.x - minX, y: spot.y - minY };
  const nodes = frag.nodes.map((n): FlowNode => ({
    id: map.get(n.id)!,
    type: 'card',
    selected: true,
    position: { x: n.position.x + d.x, y: n.position.y + d.y },
    data: { type: n.data.type, params: { ...n.data.params }, ...(n.data.ui ? { ui: { ...n.data.ui } } : {}), ...(n.data.mode ? { mode: n.data.mode } : {}) },
    ...(n.measured ? { measured: n.measured } : {}),
  }));
  const edges = frag.edges.map((e) => makeEdge(map.get(e.source)!, e.sourceHandle!, map.get(e.target)!, e.targetHandle!, e.data!.portType));
  return {
    nodes: [...doc.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...nodes],
    edges: [...doc.edges.map((e) => (e.selected ? { ...e, selected: false } : e)), ...edges],
  };
}
