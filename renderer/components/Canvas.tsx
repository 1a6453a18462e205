/**
 * The graph canvas (React Flow): controlled by the store; connections checked while dragging by
 * the shared canConnect; double-click opens the palette at the pointer.
 */
import { useCallback, useRef, type MouseEvent } from 'react';
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  useReactFlow,
  type Connection,
  type Edge,
  type FinalConnectionState,
  type IsValidConnection,
} from '@xyflow/react';
import { editor, useEditor } from '../editor.js';
import { checkConnection, type FlowEdge, type FlowNode } from '../graph.js';
import { NodeCard } from './NodeCard.js';

const nodeTypes = { card: NodeCard };

/**
 * How "fit view" frames the workflow: a fixed margin (more at the bottom, where the zoom
 * buttons sit); never above 100 % (a single card is not blown up) nor below 50 %, where card
 * text gets too small to read (a larger graph is framed at its centre and panned).
 */
export const FIT_VIEW = { padding: { top: '16px', right: '24px', bottom: '52px', left: '24px' }, minZoom: 0.5, maxZoom: 1 } as const;

const isValidConnection: IsValidConnection<FlowEdge> = (c: Connection | Edge) => {
  const s = editor.getState();
  return checkConnection(c, s.nodes, s.edges, s.specs).ok;
};

const onConnect = (c: Connection) => {
  const reason = editor.getState().connect(c);
  if (reason) editor.getState().notify('warn', `Connection refused: ${reason}.`);
};

/** Tells why a connection dropped on a handle was refused. */
const onConnectEnd = (_e: unknown, state: FinalConnectionState) => {
  if (state.isValid !== false || !state.fromHandle || !state.toHandle) return;
  const [from, to] = state.fromHandle.type === 'source' ? [state.fromHandle, state.toHandle] : [state.toHandle, state.fromHandle];
  const s = editor.getState();
  const v = checkConnection({ source: from.nodeId, sourceHandle: from.id, target: to.nodeId, targetHandle: to.id }, s.nodes, s.edges, s.specs);
  if (!v.ok) s.notify('warn', `Connection refused: ${v.reason}.`);
};

const minimapColor = (n: FlowNode) => {
  const st = editor.getState().nodeRuns[n.id]?.status;
  return st === 'error' ? '#e53935' : st === 'running' ? '#fdd835' : st === 'done' || st === 'cached' ? '#43a047' : '#78909c';
};

export function Canvas({ onOpenPalette }: { onOpenPalette(at: { x: number; y: number }, flow: { x: number; y: number }): void }) {
  const nodes = useEditor((s) => s.nodes);
  const edges = useEditor((s) => s.edges);
  const onNodesChange = useEditor((s) => s.onNodesChange);
  const onEdgesChange = useEditor((s) => s.onEdgesChange);
  const empty = nodes.length === 0;
  const flow = useReactFlow();
  const wrapper = useRef<HTMLDivElement>(null);

  const onDoubleClick = useCallback(
    (e: MouseEvent) => {
      if (!(e.target as Element).classList.contains('react-flow__pane')) return;
      onOpenPalette({ x: e.clientX, y: e.clientY }, flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    },
    [flow, onOpenPalette],
  );

  return (
    <div className="canvas" ref={wrapper} onDoubleClick={onDoubleClick}>
      <ReactFlow<FlowNode, FlowEdge>
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
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
        <MiniMap position="bottom-right" pannable zoomable nodeColor={minimapColor} maskColor="rgba(20,22,28,0.7)" ariaLabel="Minimap" />
      </ReactFlow>
      {empty && <div className="canvas-hint">Double-click the canvas (or press Shift+A) to add a node, or open an example.</div>}
    </div>
  );
}
