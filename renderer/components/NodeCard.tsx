/**
 * A node card, drawn entirely from its NodeSpec: typed, coloured handles, param widgets, and the
 * run state of this node (queued, running with ms, cached, error message, sampler progress).
 */
import { memo, useEffect, useState } from 'react';
import { Handle, Position, useConnection, type NodeProps } from '@xyflow/react';
import { editor, useEditor } from '../editor.js';
import { portsOf, primitiveTarget, rerouteType, wireColor, type CanvasPort, type FlowNode, type WireType } from '../graph.js';
import { shownWarnings } from '../node-warnings.js';
import { CONTROL_PARAM, PRIMITIVE_CONTROL } from '../seed-control.js';
import type { NodeRun } from '../store/index.js';
import { ParamWidget } from './ParamWidget.js';

const CATEGORY_COLORS: Record<string, string> = {
  loaders: '#5c6bc0',
  'ip-adapter': '#d81b60',
  conditioning: '#ef6c00',
  sampling: '#c62828',
  latent: '#ad1457',
  image: '#1e88e5',
  controlnet: '#546e7a',
  output: '#2e7d32',
};
const categoryColor = (c: string) => CATEGORY_COLORS[c.toLowerCase().split('/')[0]] ?? '#616161';

function Elapsed({ since }: { since: number }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 100);
    return () => clearInterval(t);
  }, []);
  return <>{((now - since) / 1000).toFixed(1)} s</>;
}

const fmtMs = (ms: number) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);

function Badge({ run }: { run: NodeRun | undefined }) {
  if (!run) return null;
  const text = {
    queued: 'queued',
    running: run.startedAt ? (
      <>
        running <Elapsed since={run.startedAt} />
      </>
    ) : (
      'running'
    ),
    done: run.ms !== undefined ? fmtMs(run.ms) : 'done',
    cached: 'cached',
    error: 'error',
  }[run.status];
  return (
    <span className={`badge badge-${run.status}`} data-status={run.status}>
      {text}
    </span>
  );
}

/**
 * While a wire is being dragged: the type it carries and the side it can end on, or null. Ports of
 * that type on that side light up (`port-compatible`), the others dim.
 */
function useDragging(): { node: string; side: 'in' | 'out'; type: WireType | '*' } | null {
  const key = useConnection((c) => (c.inProgress && c.fromHandle ? `${c.fromHandle.nodeId}\0${c.fromHandle.id}\0${c.fromHandle.type}` : ''));
  if (!key) return null;
  const [node, port, side] = key.split('\0');
  const s = editor.getState();
  const n = s.nodes.find((x) => x.id === node);
  if (!n) return null;
  const ports = portsOf(n, s.specs, s.nodes, s.edges);
  const p = (side === 'source' ? ports.outputs : ports.inputs).find((x) => x.name === port);
  return p ? { node, side: side === 'source' ? 'in' : 'out', type: p.type } : null;
}

type Drag = ReturnType<typeof useDragging>;
const fits = (drag: Drag, node: string, side: 'in' | 'out', t: WireType | '*') =>
  drag && drag.node !== node && drag.side === side && (t === drag.type || ((t === '*' || drag.type === '*') && t !== 'VALUE' && drag.type !== 'VALUE'));

function PortRow({ port, side, node, drag }: { port: CanvasPort; side: 'in' | 'out'; node: string; drag: Drag }) {
  const color = wireColor(port.type);
  const hl = drag ? (fits(drag, node, side, port.type) ? ' port-compatible' : ' port-incompatible') : '';
  const type = port.type === 'VALUE' ? 'value' : port.type === '*' ? 'any' : port.type;
  return (
    <div className={`port port-${side}${hl}`} title={`${port.label ?? port.name}: ${type}${port.optional ? ' (optional)' : ''}`}>
      <Handle
        type={side === 'in' ? 'target' : 'source'}
        position={side === 'in' ? Position.Left : Position.Right}
        id={port.name}
        className="handle"
        style={{ background: color, borderColor: color }}
        aria-label={`${side === 'in' ? 'input' : 'output'} ${port.label ?? port.name} (${type})`}
      />
      <span className="port-text">
        <span className={`port-name${port.optional ? ' optional' : ''}`}>{port.label ?? port.name}</span>
        <span className="port-type" style={{ color }}>
          {type}
        </span>
      </span>
    </div>
  );
}

/** A reroute: a dot with one input and one output of the type it carries. */
function RerouteDot({ id, selected, drag }: { id: string; selected: boolean; drag: Drag }) {
  const type = useEditor((s) => rerouteType(id, s.nodes, s.edges, s.specs));
  const color = wireColor(type);
  const label = type === '*' ? 'any' : type;
  const hl = (side: 'in' | 'out') => (drag ? (fits(drag, id, side, type) ? ' port-compatible' : ' port-incompatible') : '');
  return (
    <div
      className={`reroute ${selected ? 'selected' : ''}`}
      role="group"
      aria-label="Reroute"
      data-node-id={id}
      data-node-type="reroute"
      title={`Reroute (${label})`}
    >
      <Handle
        type="target"
        position={Position.Left}
        id="in"
        className={`handle${hl('in')}`}
        style={{ background: color, borderColor: color }}
        aria-label={`input in (${label})`}
      />
      <Handle
        type="source"
        position={Position.Right}
        id="out"
        className={`handle${hl('out')}`}
        style={{ background: color, borderColor: color }}
        aria-label={`output out (${label})`}
      />
    </div>
  );
}

/** A note: its text, edited in place. */
function NoteCard({ id, text, selected, color }: { id: string; text: string; selected: boolean; color?: string }) {
  return (
    <div
      className={`card note-card ${selected ? 'selected' : ''}`}
      role="group"
      aria-label="Note"
      data-node-id={id}
      data-node-type="note"
      style={color ? { background: color } : undefined}
    >
      <div className="card-header note-header">
        <span className="title">Note</span>
      </div>
      <textarea
        className="nodrag nowheel note-text"
        aria-label="Note text"
        value={text}
        placeholder="Write a note…"
        onChange={(e) => editor.getState().setParam(id, 'text', e.target.value)}
      />
    </div>
  );
}

/** A primitive: its output and a widget like the first param it feeds (a seed: with its control after generate, as ComfyUI's). */
function PrimitiveBody({ id, value, control }: { id: string; value: unknown; control: unknown }) {
  const key = useEditor((s) => {
    const t = primitiveTarget(id, s.nodes, s.edges, s.specs);
    return t ? `${t.node.id}\0${t.param.name}` : '';
  });
  const s = editor.getState();
  const [node, name] = key.split('\0');
  const target = key ? s.nodes.find((n) => n.id === node) : undefined;
  const tspec = target ? s.specs[target.data.type] : undefined;
  const param = tspec?.params.find((p) => p.name === name);
  return (
    <>
      <div className="params">
        {param && tspec ? (
          <>
            <ParamWidget
              node={id}
              nodeTitle="Primitive"
              spec={{ ...param, name: 'value', label: `${param.label ?? param.name} (${tspec.title})` }}
              value={(value ?? target!.data.params[name]) as never}
            />
            {param.kind === 'number' && param.widget === 'seed' && (
              <ParamWidget node={id} nodeTitle="Primitive" spec={PRIMITIVE_CONTROL} value={(control ?? 'fixed') as never} />
            )}
          </>
        ) : (
          <div className="param-hint">Wire “value” to a param turned into an input (right-click a node: Convert … to input).</div>
        )}
      </div>
    </>
  );
}

/** A node's run warnings (a model file with NaN / Inf weights, renderer/node-warnings.ts): a badge, the sentences on hover. */
function WarningBadge({ messages }: { messages: string[] }) {
  if (!messages.length) return null;
  const text = messages.join('\n');
  return (
    <span className="badge badge-warning" role="img" aria-label={`Warning: ${text}`} title={text} tabIndex={0}>
      ⚠ {messages.length > 1 ? `${messages.length} warnings` : 'warning'}
    </span>
  );
}

function ModeBadge({ mode }: { mode: FlowNode['data']['mode'] }) {
  if (!mode) return null;
  return (
    <span
      className={`badge badge-${mode}`}
      title={mode === 'bypass' ? 'Bypassed: its inputs pass through (Ctrl+B)' : 'Muted: it and what needs it do not run (Ctrl+M)'}
    >
      {mode === 'bypass' ? 'bypassed' : 'muted'}
    </span>
  );
}

export const NodeCard = memo(function NodeCard({ id, data, selected }: NodeProps<FlowNode>) {
  const spec = useEditor((s) => s.specs[data.type]);
  const run = useEditor((s) => s.nodeRuns[id]);
  const preview = useEditor((s) => s.nodePreviews[id]);
  const progress = useEditor((s) => (s.progress?.node === id ? s.progress : null));
  const warnings = shownWarnings(
    useEditor((s) => s.nodeWarnings[id]),
    data,
    spec,
  );
  const drag = useDragging();
  if (spec?.virtual === 'reroute') return <RerouteDot id={id} selected={!!selected} drag={drag} />;
  if (spec?.virtual === 'note') return <NoteCard id={id} text={String(data.params.text ?? '')} selected={!!selected} color={data.ui?.color} />;
  if (!spec) {
    return (
      <div className="card card-unknown" role="group" aria-label={data.type}>
        <div className="card-header">
          <span className="title">{data.type}</span>
        </div>
        <div className="node-error" role="alert">
          Unknown node type “{data.type}”: this build has no such node.
        </div>
      </div>
    );
  }
  // A ComfyUI placeholder draws the sockets of the node it stands for (its params say which); params turned into inputs are inputs.
  const dyn = spec.dynamicPorts;
  const { inputs, outputs } = portsOf({ id, data, position: { x: 0, y: 0 } } as FlowNode, { [spec.type]: spec });
  const rows = Math.max(inputs.length, outputs.length);
  const asInputs = new Set(data.ui?.inputs ?? []);
  // A seed turned into an input takes its control after generate along (a primitive feeding it has its own), as in ComfyUI.
  const seeds = spec.params.filter((p) => p.kind === 'number' && p.widget === 'seed');
  const controlGone = seeds.length > 0 && seeds.every((p) => asInputs.has(p.name));
  const widgets = spec.params.filter((p) => !asInputs.has(p.name) && !(controlGone && p.name === CONTROL_PARAM));
  const title =
    typeof data.ui?.title === 'string' && data.ui.title ? data.ui.title : dyn && data.params.class_type ? `${data.params.class_type} (ComfyUI)` : spec.title;
  const collapsed = !!data.ui?.collapsed;
  const mode = data.mode ? ` mode-${data.mode}` : '';
  const header = (
    <div
      className="card-header"
      style={{ borderTopColor: categoryColor(spec.category), ...(data.ui?.color ? { background: data.ui.color } : {}) }}
      title={spec.description}
    >
      <span className="title">{title}</span>
      <span className="badges">
        <WarningBadge messages={warnings} />
        <ModeBadge mode={data.mode} />
        <Badge run={run} />
      </span>
    </div>
  );
  if (collapsed) {
    // Header only; the handles stay (stacked on the header's edges) so the wires keep their ends.
    return (
      <div
        className={`card collapsed status-${run?.status ?? 'idle'}${mode} ${selected ? 'selected' : ''}`}
        role="group"
        aria-label={spec.title}
        data-node-id={id}
        data-node-type={spec.type}
        data-collapsed="true"
      >
        {header}
        {inputs.map((p) => (
          <Handle
            key={`i${p.name}`}
            type="target"
            position={Position.Left}
            id={p.name}
            className="handle collapsed-handle"
            style={{ background: wireColor(p.type) }}
          />
        ))}
        {outputs.map((p) => (
          <Handle
            key={`o${p.name}`}
            type="source"
            position={Position.Right}
            id={p.name}
            className="handle collapsed-handle"
            style={{ background: wireColor(p.type) }}
          />
        ))}
      </div>
    );
  }
  return (
    <div
      className={`card status-${run?.status ?? 'idle'}${mode} ${selected ? 'selected' : ''}`}
      role="group"
      aria-label={spec.title}
      data-node-id={id}
      data-node-type={spec.type}
      data-mode={data.mode}
    >
      {header}
      {progress && (
        <div
          className="node-progress"
          role="progressbar"
          aria-label={`${spec.title} progress`}
          aria-valuemin={0}
          aria-valuemax={progress.total}
          aria-valuenow={progress.step}
        >
          <div className="bar" style={{ width: `${(100 * progress.step) / Math.max(1, progress.total)}%` }} />
          <span>
            {progress.step}/{progress.total}
          </span>
        </div>
      )}
      {run?.status === 'error' && run.message && (
        <div className="node-error" role="alert">
          {run.message}
        </div>
      )}
      {dyn && (
        <div className="node-error" role="note">
          Not supported here: {String(data.params.reason || 'no equivalent node')}. Replace it to run the workflow.
        </div>
      )}
      <div className="ports">
        {Array.from({ length: rows }, (_, i) => (
          <div className="port-line" key={i}>
            <div className="port-cell">{inputs[i] && <PortRow port={inputs[i]} side="in" node={id} drag={drag} />}</div>
            <div className="port-cell right">{outputs[i] && <PortRow port={outputs[i]} side="out" node={id} drag={drag} />}</div>
          </div>
        ))}
      </div>
      {spec.virtual === 'primitive' && <PrimitiveBody id={id} value={data.params.value} control={data.params[CONTROL_PARAM]} />}
      {widgets.length > 0 && (
        <div className="params">
          {widgets.map((p) => (
            <ParamWidget key={p.name} node={id} nodeTitle={spec.title} spec={p} value={data.params[p.name]} />
          ))}
        </div>
      )}
      {preview && <img className="node-preview-image" src={preview} alt={`Preview of ${spec.title}`} />}
    </div>
  );
});
