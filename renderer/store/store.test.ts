import { describe, expect, it } from 'vitest';
import type { NodeSpec } from '../../nodes/types.js';
import { fromWorkflow, toWorkflow } from '../graph.js';
import { createEditorStore } from './index.js';

/** Small specs in the shape the host sends (not the real nodes: the store must not care). */
const SPECS: NodeSpec[] = [
  {
    type: 'load-checkpoint',
    title: 'Load Checkpoint',
    category: 'Loaders',
    description: '',
    inputs: [],
    outputs: [
      { name: 'model', type: 'MODEL' },
      { name: 'clip', type: 'CLIP' },
    ],
    params: [{ name: 'ckpt_name', kind: 'file', modelKind: 'checkpoints', default: 'a.safetensors' }],
  },
  {
    type: 'text-encode',
    title: 'Text Encode',
    category: 'Conditioning',
    description: '',
    inputs: [{ name: 'clip', type: 'CLIP' }],
    outputs: [{ name: 'conditioning', type: 'CONDITIONING' }],
    params: [{ name: 'text', kind: 'string', default: '', multiline: true }],
  },
  {
    type: 'apply-ip-adapter',
    title: 'Apply IP-Adapter',
    category: 'IP-Adapter',
    description: '',
    inputs: [{ name: 'model', type: 'MODEL' }],
    outputs: [{ name: 'model', type: 'MODEL' }],
    params: [{ name: 'weight', kind: 'number', default: 1, min: -1, max: 3, widget: 'slider' }],
  },
];

function setup() {
  const store = createEditorStore();
  store.getState().setSpecs(SPECS);
  const s = () => store.getState();
  const ck = s().addNode('load-checkpoint', 0, 0)!;
  const te = s().addNode('text-encode', 300, 0)!;
  const ap = s().addNode('apply-ip-adapter', 300, 200)!;
  return { store, s, ck, te, ap };
}

describe('editor store', () => {
  it('connects compatible ports and refuses incompatible ones with canConnect reasons', () => {
    const { s, ck, te, ap } = setup();
    expect(s().connect({ source: ck, sourceHandle: 'clip', target: te, targetHandle: 'clip' })).toBeNull();
    expect(s().connect({ source: ck, sourceHandle: 'model', target: te, targetHandle: 'clip' })).toMatch(/MODEL output cannot feed a CLIP input/);
    expect(s().connect({ source: ap, sourceHandle: 'model', target: ap, targetHandle: 'model' })).toMatch(/itself/);
    expect(s().edges).toHaveLength(1);
    expect(s().edges[0].data?.portType).toBe('CLIP');
  });

  it('a new edge into an input replaces the old one', () => {
    const { s, ck, ap } = setup();
    const ap2 = s().addNode('apply-ip-adapter', 600, 200)!;
    s().connect({ source: ck, sourceHandle: 'model', target: ap, targetHandle: 'model' });
    s().connect({ source: ap2, sourceHandle: 'model', target: ap, targetHandle: 'model' });
    expect(s().edges.map((e) => e.source)).toEqual([ap2]);
    // ap -> ap2 would now close a cycle.
    expect(s().connect({ source: ap, sourceHandle: 'model', target: ap2, targetHandle: 'model' })).toMatch(/cycle/);
  });

  it('undo/redo walk add, connect, param edits and delete; slider drags coalesce', () => {
    const { s, ck, te, ap } = setup();
    s().connect({ source: ck, sourceHandle: 'clip', target: te, targetHandle: 'clip' });
    for (const w of [0.1, 0.2, 0.3, 0.4]) s().setParam(ap, 'weight', w); // one drag = one undo step
    s().setParam(te, 'text', 'a cat');
    const before = toWorkflow(s());
    s().nodes.forEach((n) => (n.selected = n.id === ck));
    s().deleteSelected();
    expect(s().nodes.map((n) => n.id)).toEqual([te, ap]);
    expect(s().edges).toHaveLength(0);

    s().undo();
    expect(toWorkflow(s())).toEqual(before);
    s().undo(); // text
    expect(s().nodes.find((n) => n.id === te)!.data.params.text).toBe('');
    s().undo(); // the whole slider drag
    expect(s().nodes.find((n) => n.id === ap)!.data.params.weight).toBe(1);
    s().undo(); // connect
    expect(s().edges).toHaveLength(0);
    s().redo();
    s().redo();
    s().redo();
    expect(toWorkflow(s())).toEqual(before);
    s().redo();
    expect(s().nodes).toHaveLength(2);
    expect(s().future).toHaveLength(0);
  });

  it('an edit after undo drops the redo branch; dirty tracks the saved revision', () => {
    const { s, te } = setup();
    s().markSaved('a.json');
    expect(s().revision).toBe(s().savedRevision);
    s().setParam(te, 'text', 'x');
    expect(s().revision).not.toBe(s().savedRevision);
    s().undo();
    s().setParam(te, 'text', 'y');
    expect(s().future).toHaveLength(0);
  });

  it('copy/paste duplicates the selection with its inner edges and fresh ids', () => {
    const { s, ck, te } = setup();
    s().connect({ source: ck, sourceHandle: 'clip', target: te, targetHandle: 'clip' });
    s().nodes.forEach((n) => (n.selected = n.id === ck || n.id === te));
    expect(s().copy()).toBe(2);
    s().paste();
    expect(s().nodes).toHaveLength(5);
    expect(s().edges).toHaveLength(2);
    const pasted = s().nodes.filter((n) => n.selected);
    expect(pasted.map((n) => n.data.type).sort()).toEqual(['load-checkpoint', 'text-encode']);
    expect(new Set(s().nodes.map((n) => n.id)).size).toBe(5);
    s().undo();
    expect(s().nodes).toHaveLength(3);
  });

  it('run events drive node states, progress and outputs; validation errors land on nodes', () => {
    const { s, ck, te } = setup();
    s().handleEvent({ type: 'run-start', runId: 'r1' });
    expect(s().nodeRuns[te].status).toBe('queued');
    s().handleEvent({ type: 'node-start', runId: 'r1', node: ck });
    expect(s().nodeRuns[ck].status).toBe('running');
    s().handleEvent({ type: 'node-done', runId: 'r1', node: ck, ms: 12, cached: false });
    s().handleEvent({ type: 'node-done', runId: 'r1', node: te, ms: 0, cached: true });
    s().handleEvent({ type: 'progress', runId: 'r1', node: te, step: 2, total: 4, preview: { width: 8, height: 8, png: 'AAAA' } });
    expect(s().progress).toMatchObject({ step: 2, total: 4, preview: 'data:image/png;base64,AAAA' });
    s().handleEvent({ type: 'output', runId: 'r1', node: te, images: [{ path: '/o/a.png', url: '/outputs/a.png', width: 8, height: 8 }] });
    s().handleEvent({ type: 'run-done', runId: 'r1', ok: true });
    expect(s().nodeRuns[ck]).toMatchObject({ status: 'done', ms: 12 });
    expect(s().nodeRuns[te].status).toBe('cached');
    expect(s().outputs[0].url).toBe('/outputs/a.png');
    expect(s().progress).toBeNull();

    s().showErrors([{ node: te, param: 'text', message: 'empty prompt' }, { message: 'no output node' }]);
    expect(s().nodeRuns[te]).toMatchObject({ status: 'error', message: 'text: empty prompt' });
    expect(s().notices.at(-1)?.text).toBe('no output node');
    s().clearRunState();
    s().showErrors([
      { node: ck, port: 'x', message: `Load Checkpoint (${ck}): "a.safetensors" not found` },
      { node: ck, message: 'second' },
    ]);
    expect(s().nodeRuns[ck].message).toBe('"a.safetensors" not found\nsecond');
  });

  it('notices: the same text does not stack (it moves to the newest place), at most four show; info logs stay quiet', () => {
    const { s } = setup();
    s().notify('warn', 'Demo models: noise.');
    s().notify('warn', 'Connection refused: no.');
    s().handleEvent({ type: 'log', runId: 'r1', level: 'warn', message: 'Demo models: noise.' });
    expect(s().notices.map((n) => n.text)).toEqual(['Connection refused: no.', 'Demo models: noise.']);
    s().handleEvent({ type: 'log', runId: 'r2', level: 'info', message: 'Demo mode: using the demo models.' });
    expect(s().notices).toHaveLength(2);
    for (const k of [1, 2, 3, 4, 5]) s().notify('info', `n${k}`);
    expect(s().notices.map((n) => n.text)).toEqual(['n2', 'n3', 'n4', 'n5']);
  });

  it('node previews go with their nodes: deleting drops one, undo of an add too, New/Open drop all', () => {
    const { s, ck, te, ap } = setup();
    const preview = (node: string, url: string) =>
      s().handleEvent({ type: 'node-preview', runId: 'r1', node, images: [{ path: `/t/${url}`, url, width: 8, height: 8 }] });
    preview(te, 'data:te');
    preview(ap, 'data:ap');
    expect(s().nodePreviews).toEqual({ [te]: 'data:te', [ap]: 'data:ap' });
    s().nodes.forEach((n) => (n.selected = n.id === te));
    s().deleteSelected();
    expect(s().nodePreviews).toEqual({ [ap]: 'data:ap' });
    // The next node reuses the deleted id: it must not inherit the old preview.
    expect(s().addNode('text-encode', 0, 400)).toBe(te);
    expect(s().nodePreviews[te]).toBeUndefined();
    preview(te, 'data:te2');
    // Removed through the canvas (React Flow's remove change).
    s().onNodesChange([{ type: 'remove', id: ap }]);
    expect(s().nodePreviews).toEqual({ [te]: 'data:te2' });
    s().undo(); // the removal
    s().undo(); // the add: its preview goes with it
    expect(s().nodes.map((n) => n.id)).toEqual([ck, ap]);
    expect(s().nodePreviews).toEqual({});
    // A preview for a node no longer in the document (deleted while the run went on) is dropped.
    preview(te, 'data:late');
    expect(s().nodePreviews).toEqual({});
    // New (an empty document) and Open (any document, even one with the same ids) start clean.
    const saved = toWorkflow(s());
    preview(ck, 'data:ck');
    expect(s().nodePreviews).toEqual({ [ck]: 'data:ck' });
    s().loadDoc({ nodes: [], edges: [] }, null, { keepHistory: true });
    expect(s().nodePreviews).toEqual({});
    s().loadWorkflow(saved, 'a.json');
    preview(ck, 'data:ck');
    expect(s().nodePreviews).toEqual({ [ck]: 'data:ck' });
    s().loadWorkflow(saved, 'a.json');
    expect(s().nodePreviews).toEqual({});
  });
});

describe('graph <-> workflow JSON', () => {
  it('round-trips nodes, params, positions and edges', () => {
    const { s, ck, te } = setup();
    s().connect({ source: ck, sourceHandle: 'clip', target: te, targetHandle: 'clip' });
    s().setParam(te, 'text', 'ünïcode ✓');
    const wf = toWorkflow(s());
    expect(wf.format).toBe('ipadapter-studio/workflow');
    expect(wf.edges).toEqual([{ from: { node: ck, port: 'clip' }, to: { node: te, port: 'clip' } }]);
    const specs = s().specs;
    const back = fromWorkflow(JSON.parse(JSON.stringify(wf)), specs);
    expect(back.problems).toEqual([]);
    expect(toWorkflow(back)).toEqual(wf);
  });

  it('keeps unknown types (reported) and fills missing params with defaults', () => {
    const specs = Object.fromEntries(SPECS.map((x) => [x.type, x]));
    const back = fromWorkflow(
      {
        format: 'ipadapter-studio/workflow',
        version: 1,
        nodes: [
          { id: 'a', type: 'text-encode', params: {} },
          { id: 'b', type: 'mystery', params: { q: 1 } },
        ],
        edges: [],
      },
      specs,
    );
    expect(back.nodes[0].data.params).toEqual({ text: '' });
    expect(back.nodes[1].data.type).toBe('mystery');
    expect(back.problems).toEqual(['node b: unknown node type mystery']);
  });
});
