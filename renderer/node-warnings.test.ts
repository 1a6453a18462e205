/**
 * Warnings on node cards (renderer/node-warnings.ts) in the store, on the real node specs: a warn log
 * naming its node is kept for that node with the files the run had; another file clears it, the same
 * file again shows it, a second execution starts the list again; New forgets them.
 */
import { describe, expect, it } from 'vitest';
import { nodeSpecs } from '../nodes/index.js';
import { shownWarnings } from './node-warnings.js';
import { createEditorStore } from './store/index.js';

const NAN = 'Load IP-Adapter (n1): nan.safetensors: tensor "image_proj.proj.weight" holds NaN or infinite values (64 of 64 sampled)';

function setup() {
  const store = createEditorStore();
  store.getState().setSpecs(nodeSpecs());
  const s = () => store.getState();
  const id = s().addNode('load-ip-adapter', 0, 0)!;
  s().setParam(id, 'ipadapter_file', 'nan.safetensors');
  const other = s().addNode('load-vae', 400, 0)!;
  const shown = (node = id) => {
    const n = s().nodes.find((x) => x.id === node);
    return shownWarnings(s().nodeWarnings[node], n?.data, n && s().specs[n.data.type]);
  };
  // A run this editor queued: its entry carries the workflow it sent.
  store.setState({ runs: { r1: { runId: 'r1', status: 'queued', workflow: s().workflow() } } });
  return { s, id, other, shown };
}

describe('warnings on node cards', () => {
  it('shows a warn log on the node it names, without the "Title (id): " prefix, while its file is unchanged', () => {
    const { s, id, other, shown } = setup();
    expect(id).toBe('n1');
    s().handleEvent({ type: 'run-start', runId: 'r1' });
    s().handleEvent({ type: 'node-start', runId: 'r1', node: id });
    s().handleEvent({ type: 'log', runId: 'r1', node: id, level: 'warn', message: NAN });
    s().handleEvent({ type: 'log', runId: 'r1', node: id, level: 'warn', message: NAN }); // once only
    s().handleEvent({ type: 'log', runId: 'r1', level: 'warn', message: 'Demo models: noise.' }); // no node: a notice only
    s().handleEvent({ type: 'node-done', runId: 'r1', node: id, ms: 3, cached: false });
    s().handleEvent({ type: 'run-done', runId: 'r1', ok: true });
    expect(shown()).toEqual(['nan.safetensors: tensor "image_proj.proj.weight" holds NaN or infinite values (64 of 64 sampled)']);
    expect(shown(other)).toEqual([]);
    // The toast stays as before.
    expect(s().notices.some((n) => n.text === NAN)).toBe(true);

    // Another file: gone; the same file again: it still holds NaN, so the badge is back.
    s().setParam(id, 'ipadapter_file', 'good.safetensors');
    expect(shown()).toEqual([]);
    s().setParam(id, 'ipadapter_file', 'nan.safetensors');
    expect(shown()).toHaveLength(1);
    // Moving the card leaves it.
    s().onNodesChange([{ type: 'position', id, position: { x: 40, y: 40 } }]);
    expect(shown()).toHaveLength(1);

    // The node runs again (the file was replaced with good weights): nothing logged, nothing shown.
    s().handleEvent({ type: 'node-start', runId: 'r2', node: id });
    s().handleEvent({ type: 'node-done', runId: 'r2', node: id, ms: 3, cached: false });
    expect(shown()).toEqual([]);
  });

  it('a cached node keeps its badge; New forgets every warning', () => {
    const { s, id, shown } = setup();
    s().handleEvent({ type: 'node-start', runId: 'r1', node: id });
    s().handleEvent({ type: 'log', runId: 'r1', node: id, level: 'warn', message: NAN });
    s().handleEvent({ type: 'node-done', runId: 'r2', node: id, ms: 0, cached: true });
    expect(shown()).toHaveLength(1);
    s().loadDoc({ nodes: [], edges: [] }, null);
    expect(s().nodeWarnings).toEqual({});
  });
});
