/**
 * The graph canvas (React Flow): controlled by the store; connections checked while dragging by
 * the shared canConnect (compatible ports light up); double-click opens the palette at the
 * pointer; a wire dropped on empty canvas opens it filtered to nodes that can take the wire; the
 * right-click menu (ContextMenu.tsx) acts on the canvas, a node, a wire or a group; groups are
 * boxes under the cards that move the cards inside them; overlapping cards offer Tidy.
 */
import { memo, useCallback, useEffect, useMemo, useRef, useState, type MouseEvent as ReactMouseEvent } from 'react';
import {
  Background,
  Controls,
  MiniMap,
  NodeResizeControl,
  ReactFlow,
  useReactFlow,
  type Connection,
  type Edge,
  type FinalConnectionState,
  type IsValidConnection,
  type Node,
  type NodeChange,
  type NodeProps,
} from '@xyflow/react';
import { editor, pointer, useEditor } from '../editor.js';
import { checkConnection, membersOf, overlappingCards, type FlowEdge, type FlowNode, type GroupBox } from '../graph.js';
import { ContextMenu, type MenuTarget } from './ContextMenu.js';
import { NodeCard } from './NodeCard.js';

type GroupNode = Node<{ group: GroupBox }, 'groupbox'>;
/** Window event asking a group's title to become editable (detail: the group id). */
const RENAME_GROUP = 'ipa-rename-group';
const GROUP_PREFIX = 'group:';

/** A group: a tinted box with its title bar (drag it to move the group and its cards) and a resize corner. */
const GroupBoxNode = memo(function GroupBoxNode({ data }: NodeProps<GroupNode>) {
  const g = data.group;
  const color = g.color ?? '#3f789e';
  const [editing, setEditing] = useState(false);
  useEffect(() => {
    const on = (e: Event) => (e as CustomEvent<string>).detail === g.id && setEditing(true);
    window.addEventListener(RENAME_GROUP, on);
    return () => window.removeEventListener(RENAME_GROUP, on);
  }, [g.id]);
  const done = (v: string | null) => {
    setEditing(false);
    if (v !== null && v.trim() && v.trim() !== g.title) editor.getState().updateGroup(g.id, { title: v.trim() });
  };
  return (
    <div className="group-box" style={{ borderColor: color, background: `${color}26` }} role="region" aria-label={`Group ${g.title}`}>
      <div
        className="group-title"
        style={{ background: color }}
        title="Drag to move the group and its nodes; double-click to rename; right-click for its menu"
        onDoubleClick={(e) => {
          e.stopPropagation();
          setEditing(true);
        }}
      >
        {editing ? (
          <input
            className="nodrag"
            aria-label="Group title"
            autoFocus
            defaultValue={g.title}
            onBlur={(e) => done(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter') done(e.currentTarget.value);
              if (e.key === 'Escape') done(null);
              e.stopPropagation();
            }}
          />
        ) : (
          g.title
        )}
      </div>
      <NodeResizeControl position="bottom-right" minWidth={160} minHeight={90} className="group-resize" />
    </div>
  );
});

const nodeTypes = { card: NodeCard, groupbox: GroupBoxNode };

/**
 * How "fit view" frames the workflow: a fixed margin, more at the bottom, where the zoom buttons,
 * the notices and the minimap sit (the minimap is 160 x 100 at the bottom right), so none of them
 * covers a card after fit view; never above 100 % (a single card is not blown up) nor below 50 %,
 * where card text gets too small to read (a larger graph is framed at its centre and panned).
 */
export const FIT_VIEW = { padding: { top: '16px', right: '24px', bottom: '124px', left: '24px' }, minZoom: 0.7, maxZoom: 1 } as const;
const MINIMAP = { width: 160, height: 100 };

/** A wire dropped on empty canvas: the end it came from. */
export interface WireDrop {
  node: string;
  port: string;
  side: 'source' | 'target';
}

const isValidConnection: IsValidConnection<FlowEdge> = (c: Connection | Edge) => {
  const s = editor.getState();
  return checkConnection(c, s.nodes, s.edges, s.specs).ok;
};

const onConnect = (c: Connection) => {
  const reason = editor.getState().connect(c);
  if (reason) editor.getState().notify('warn', `Connection refused: ${reason}.`);
};

/** Tells why a connection dropped on a handle was refused. */
const onConnectRefused = (state: FinalConnectionState) => {
  if (state.isValid !== false || !state.fromHandle || !state.toHandle) return;
  const [from, to] = state.fromHandle.type === 'source' ? [state.fromHandle, state.toHandle] : [state.toHandle, state.fromHandle];
  const s = editor.getState();
  const v = checkConnection({ source: from.nodeId, sourceHandle: from.id, target: to.nodeId, targetHandle: to.id }, s.nodes, s.edges, s.specs);
  if (!v.ok) s.notify('warn', `Connection refused: ${v.reason}.`);
};

const minimapColor = (n: FlowNode) => {
  if (n.id.startsWith(GROUP_PREFIX)) return 'transparent';
  const st = editor.getState().nodeRuns[n.id]?.status;
  return st === 'error' ? '#e53935' : st === 'running' ? '#fdd835' : st === 'done' || st === 'cached' ? '#43a047' : '#78909c';
};

interface CanvasProps {
  onOpenPalette(at: { x: number; y: number }, flow: { x: number; y: number }, wire?: WireDrop): void;
  onTidy(): void;
}

export function Canvas({ onOpenPalette, onTidy }: CanvasProps) {
  const nodes = useEditor((s) => s.nodes);
  const edges = useEditor((s) => s.edges);
  const groups = useEditor((s) => s.groups);
  const onNodesChange = useEditor((s) => s.onNodesChange);
  const onEdgesChange = useEditor((s) => s.onEdgesChange);
  const overlaps = useEditor((s) => (s.dragging ? 0 : overlappingCards(s, s.specs).length));
  const loaded = useEditor((s) => s.fileName ?? '');
  const [dismissed, setDismissed] = useState<string | null>(null);
  const empty = nodes.length === 0;
  const flow = useReactFlow();
  const wrapper = useRef<HTMLDivElement>(null);
  const [menu, setMenu] = useState<MenuTarget | null>(null);
  const groupDrag = useRef<{ id: string; members: string[] } | null>(null);

  const groupNodes = useMemo(
    () =>
      (groups ?? []).map((g): GroupNode => ({
        id: `${GROUP_PREFIX}${g.id}`,
        type: 'groupbox',
        position: { x: g.bounding[0], y: g.bounding[1] },
        width: g.bounding[2],
        height: g.bounding[3],
        style: { width: g.bounding[2], height: g.bounding[3] },
        data: { group: g },
        zIndex: -1,
        dragHandle: '.group-title',
        selectable: false,
        connectable: false,
        deletable: false,
      })),
    [groups],
  );
  const allNodes = useMemo(() => [...groupNodes, ...nodes] as FlowNode[], [groupNodes, nodes]);

  const handleNodesChange = useCallback(
    (changes: NodeChange<FlowNode>[]) => {
      const cards = changes.filter((c) => !('id' in c) || !c.id.startsWith(GROUP_PREFIX));
      if (cards.length) onNodesChange(cards);
      for (const c of changes) {
        if (!('id' in c) || !c.id.startsWith(GROUP_PREFIX)) continue;
        const s = editor.getState();
        const id = c.id.slice(GROUP_PREFIX.length);
        const g = (s.groups ?? []).find((x) => x.id === id);
        if (!g) continue;
        if (c.type === 'position' && c.position) {
          // The drag's first move is the undo step; the cards inside at that moment move with it.
          if (!groupDrag.current || groupDrag.current.id !== id) {
            s.commit();
            groupDrag.current = { id, members: membersOf(g, s, s.specs) };
          }
          s.moveGroup(id, c.position.x - g.bounding[0], c.position.y - g.bounding[1], groupDrag.current.members);
          if (!c.dragging) groupDrag.current = null;
        } else if (c.type === 'position' && !c.dragging) groupDrag.current = null;
        else if (c.type === 'dimensions' && c.resizing && c.dimensions) {
          s.updateGroup(id, { bounding: [g.bounding[0], g.bounding[1], c.dimensions.width, c.dimensions.height] }, `group-size:${id}`);
        }
      }
    },
    [onNodesChange],
  );

  const onDoubleClick = useCallback(
    (e: ReactMouseEvent) => {
      if (!(e.target as Element).classList.contains('react-flow__pane')) return;
      onOpenPalette({ x: e.clientX, y: e.clientY }, flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    },
    [flow, onOpenPalette],
  );

  // A wire dropped on empty canvas opens the palette filtered to the nodes that can take it.
  const onConnectEnd = useCallback(
    (e: MouseEvent | TouchEvent, state: FinalConnectionState) => {
      onConnectRefused(state);
      if (state.toHandle || !state.fromHandle || state.isValid) return;
      const target = e.target as Element | null;
      if (!target?.classList.contains('react-flow__pane')) return;
      const pt = 'changedTouches' in e ? e.changedTouches[0] : e;
      if (!pt || !state.fromHandle.id) return;
      const at = { x: pt.clientX, y: pt.clientY };
      onOpenPalette(at, flow.screenToFlowPosition(at), { node: state.fromHandle.nodeId, port: state.fromHandle.id, side: state.fromHandle.type });
    },
    [flow, onOpenPalette],
  );

  const menuAt = (e: ReactMouseEvent | MouseEvent) => {
    e.preventDefault();
    return { x: e.clientX, y: e.clientY, flow: flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }) };
  };

  const showTidy = overlaps > 0 && dismissed !== loaded;
  return (
    <div
      className="canvas"
      ref={wrapper}
      onDoubleClick={onDoubleClick}
      onMouseMove={(e) => (pointer.flow = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }))}
      onMouseLeave={() => (pointer.flow = null)}
    >
      <ReactFlow<FlowNode, FlowEdge>
        nodes={allNodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodesChange={handleNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
        onPaneContextMenu={(e) => setMenu({ kind: 'pane', ...menuAt(e) })}
        onNodeContextMenu={(e, n) =>
          setMenu(
            n.id.startsWith(GROUP_PREFIX) ? { kind: 'group', id: n.id.slice(GROUP_PREFIX.length), ...menuAt(e) } : { kind: 'node', id: n.id, ...menuAt(e) },
          )
        }
        onEdgeContextMenu={(e, edge) => setMenu({ kind: 'edge', id: edge.id, ...menuAt(e) })}
        isValidConnection={isValidConnection}
        deleteKeyCode={null}
        selectionKeyCode="Shift"
        multiSelectionKeyCode={['Meta', 'Control']}
        zoomOnDoubleClick={false}
        minZoom={0.15}
        maxZoom={2}
        fitView
        fitViewOptions={FIT_VIEW}
        connectionLineStyle={{ strokeWidth: 2 }}
        defaultEdgeOptions={{ type: 'default' }}
        proOptions={{ hideAttribution: true }}
        aria-label="Workflow canvas"
      >
        <Background gap={24} size={1} color="#3a3f4b" />
        <Controls position="bottom-left" orientation="horizontal" showInteractive={false} fitViewOptions={FIT_VIEW} aria-label="Zoom controls" />
        <MiniMap position="bottom-right" pannable zoomable style={MINIMAP} nodeColor={minimapColor} maskColor="rgba(20,22,28,0.7)" ariaLabel="Minimap" />
      </ReactFlow>
      {empty && <div className="canvas-hint">Double-click the canvas (or press Shift+A) to add a node, or open an example.</div>}
      {showTidy && (
        <div className="overlap-banner" role="status" aria-label="Overlapping cards">
          <span>{overlaps === 1 ? 'Two cards overlap' : `${overlaps} pairs of cards overlap`}: some of them are hidden.</span>
          <button type="button" onClick={onTidy}>
            Tidy
          </button>
          <button type="button" aria-label="Dismiss" onClick={() => setDismissed(loaded)}>
            ×
          </button>
        </div>
      )}
      {menu && (
        <ContextMenu
          target={menu}
          onClose={() => setMenu(null)}
          onAddNode={(at, f) => onOpenPalette(at, f)}
          onTidy={onTidy}
          onRenameGroup={(id) => window.dispatchEvent(new CustomEvent(RENAME_GROUP, { detail: id }))}
        />
      )}
    </div>
  );
}
