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

export interface NodeData extends Record<string, unknown> {
  type: string;
  params: Record<string, ParamValue>;
  /** The workflow node's `ui` besides its position (an imported title), written back as it was. */
  ui?: Record<string, unknown>;
}
export type FlowNode = Node<NodeData, 'card'>;
export interface EdgeData extends Record<string, unknown> {
  portType: PortType;
}
export type FlowEdge = Edge<EdgeData>;
export type SpecMap = Record<string, NodeSpec>;

export interface Doc {
  nodes: FlowNode[];
  edges: FlowEdge[];
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

export function makeEdge(from: string, fromPort: string, to: string, toPort: string, portType: PortType): FlowEdge {
  return {
    id: edgeId(from, fromPort, to, toPort),
    source: from,
    sourceHandle: fromPort,
    target: to,
    targetHandle: toPort,
    data: { portType },
    style: { stroke: PORT_COLORS[portType], strokeWidth: 2 },
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
  const out = src && specs[src.data.type]?.outputs.find((p) => p.name === c.sourceHandle);
  const inp = dst && specs[dst.data.type]?.inputs.find((p) => p.name === c.targetHandle);
  if (!out || !inp) return { ok: false, reason: 'unknown port' };
  // The edge this connection would replace (an input takes one edge) must not count for cycles.
  const rest = edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
  return canConnect({ node: c.source, port: out.name, type: out.type }, { node: c.target, port: inp.name, type: inp.type }, reachesIn(rest));
}

/** Scene -> workflow JSON (positions go to `ui`, which the engine never reads). */
export function toWorkflow(doc: Doc, meta?: Record<string, unknown>): Workflow {
  return {
    format: 'ipadapter-studio/workflow',
    version: WORKFLOW_VERSION,
    nodes: doc.nodes.map((n): WorkflowNode => ({
      id: n.id,
      type: n.data.type,
      params: { ...n.data.params },
      ui: { ...n.data.ui, x: Math.round(n.position.x), y: Math.round(n.position.y) },
    })),
    edges: doc.edges.map((e) => ({ from: { node: e.source, port: e.sourceHandle ?? '' }, to: { node: e.target, port: e.targetHandle ?? '' } })),
    ...(meta ? { meta } : {}),
  };
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
    return { id: n.id, type: 'card', position: { x: pos.x, y: pos.y }, data: { type: n.type, params, ...(Object.keys(uiRest).length ? { ui: uiRest } : {}) } };
  });
  const byId = new Map(wf.nodes.map((n) => [n.id, n]));
  const edges = wf.edges.map((e) => {
    const from = byId.get(e.from.node);
    const spec = specs[from?.type ?? ''];
    // A ComfyUI placeholder's ports are its own; the edge takes the type of the port it feeds when the placeholder's is not ours.
    const dyn = spec?.dynamicPorts && from ? dynamicPortsOf(from.params).outputs.find((p) => p.name === e.from.port)?.type : undefined;
    const port = spec?.outputs.find((p) => p.name === e.from.port);
    const target = specs[byId.get(e.to.node)?.type ?? '']?.inputs.find((p) => p.name === e.to.port)?.type;
    if (!port && !dyn) problems.push(`edge ${e.from.node}.${e.from.port}: unknown output`);
    const type = port?.type ?? (dyn && (PORT_TYPES as readonly string[]).includes(dyn) ? (dyn as PortType) : target) ?? 'MODEL';
    return makeEdge(e.from.node, e.from.port, e.to.node, e.to.port, type);
  });
  // A file without any positions (written by hand or by a script) gets the layered layout.
  if (nodes.length && wf.nodes.every((n) => !n.ui)) return { ...layout({ nodes, edges }, specs), problems };
  return { nodes, edges, problems };
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
const heightOf = (n: FlowNode, specs: SpecMap) => n.measured?.height ?? estimateHeight(specs[n.data.type]);

export interface LayoutOptions {
  gapX?: number;
  gapY?: number;
  /** At most this many columns: a longer chain shares columns (see `layout`). */
  maxColumns?: number;
}
const LAYOUT: Required<LayoutOptions> = { gapX: 50, gapY: 20, maxColumns: 5 };

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
  return placeColumns(
    doc,
    specs,
    columns.map((c) => c.map((n) => n.id)),
    opts,
  );
}

/** Copies the selected nodes and the edges between them (for copy/paste). */
export function extractSelection(doc: Doc): Doc {
  const nodes = doc.nodes.filter((n) => n.selected);
  const ids = new Set(nodes.map((n) => n.id));
  return { nodes, edges: doc.edges.filter((e) => ids.has(e.source) && ids.has(e.target)) };
}

/** Pastes a copied fragment with fresh ids, offset, selected. */
export function pasteFragment(doc: Doc, frag: Doc, offset: { x: number; y: number }): Doc {
  const next = freshId(doc.nodes.map((n) => n.id));
  const map = new Map(frag.nodes.map((n) => [n.id, next()]));
  const nodes = frag.nodes.map((n): FlowNode => ({
    id: map.get(n.id)!,
    type: 'card',
    selected: true,
    position: { x: n.position.x + offset.x, y: n.position.y + offset.y },
    data: { type: n.data.type, params: { ...n.data.params } },
  }));
  const edges = frag.edges.map((e) => makeEdge(map.get(e.source)!, e.sourceHandle!, map.get(e.target)!, e.targetHandle!, e.data!.portType));
  return {
    nodes: [...doc.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...nodes],
    edges: [...doc.edges.map((e) => (e.selected ? { ...e, selected: false } : e)), ...edges],
  };
}
