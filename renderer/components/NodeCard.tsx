/**
 * A node card, drawn entirely from its NodeSpec: typed, coloured handles, param widgets, and the
 * run state of this node (queued, running with ms, cached, error message, sampler progress).
 */
import { memo, useEffect, useState } from 'react';
import { Handle, Position, type NodeProps } from '@xyflow/react';
import { PORT_COLORS, type PortType } from '../../nodes/ports.js';
import { dynamicPortsOf } from '../../nodes/spec.js';
import type { PortSpec } from '../../nodes/types.js';
import { useEditor } from '../editor.js';
import type { FlowNode } from '../graph.js';
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

function PortRow({ port, side }: { port: PortSpec; side: 'in' | 'out' }) {
  const color = PORT_COLORS[port.type] ?? '#9e9e9e';
  return (
    <div className={`port port-${side}`} title={`${port.label ?? port.name}: ${port.type}${port.optional ? ' (optional)' : ''}`}>
      <Handle
        type={side === 'in' ? 'target' : 'source'}
        position={side === 'in' ? Position.Left : Position.Right}
        id={port.name}
        className="handle"
        style={{ background: color, borderColor: color }}
        aria-label={`${side === 'in' ? 'input' : 'output'} ${port.label ?? port.name} (${port.type})`}
      />
      <span className="port-text">
        <span className={`port-name${port.optional ? ' optional' : ''}`}>{port.label ?? port.name}</span>
        <span className="port-type" style={{ color }}>
          {port.type}
        </span>
      </span>
    </div>
  );
}

export const NodeCard = memo(function NodeCard({ id, data, selected }: NodeProps<FlowNode>) {
  const spec = useEditor((s) => s.specs[data.type]);
  const run = useEditor((s) => s.nodeRuns[id]);
  const preview = useEditor((s) => s.nodePreviews[id]);
  const progress = useEditor((s) => (s.progress?.node === id ? s.progress : null));
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
  // A ComfyUI placeholder draws the sockets of the node it stands for (its params say which).
  const dyn = spec.dynamicPorts ? dynamicPortsOf(data.params) : null;
  const inputs = dyn ? dyn.inputs.map((p) => ({ ...p, type: p.type as PortType })) : spec.inputs;
  const outputs = dyn ? dyn.outputs.map((p) => ({ ...p, type: p.type as PortType })) : spec.outputs;
  const rows = Math.max(inputs.length, outputs.length);
  const title =
    typeof data.ui?.title === 'string' && data.ui.title ? data.ui.title : dyn && data.params.class_type ? `${data.params.class_type} (ComfyUI)` : spec.title;
  return (
    <div
      className={`card status-${run?.status ?? 'idle'} ${selected ? 'selected' : ''}`}
      role="group"
      aria-label={spec.title}
      data-node-id={id}
      data-node-type={spec.type}
    >
      <div className="card-header" style={{ borderTopColor: categoryColor(spec.category) }} title={spec.description}>
        <span className="title">{title}</span>
        <Badge run={run} />
      </div>
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
            <div className="port-cell">{inputs[i] && <PortRow port={inputs[i]} side="in" />}</div>
            <div className="port-cell right">{outputs[i] && <PortRow port={outputs[i]} side="out" />}</div>
          </div>
        ))}
      </div>
      {spec.params.length > 0 && (
        <div className="params">
          {spec.params.map((p) => (
            <ParamWidget key={p.name} node={id} nodeTitle={spec.title} spec={p} value={data.params[p.name]} />
          ))}
        </div>
      )}
      {preview && <img className="node-preview-image" src={preview} alt={`Preview of ${spec.title}`} />}
    </div>
  );
});
