/**
 * Layout: the default workflow reads on one 1600x1000 screen (cards at >= 0.8 zoom), Tidy folds a
 * long chain into at most five columns, producers stay left of (or above) their consumers, and
 * cards never overlap.
 */
import { describe, expect, it } from 'vitest';
import { nodeSpecs } from '../nodes/index.js';
import type { NodeSpec } from '../nodes/types.js';
import { defaultWorkflow } from './defaults.js';
import { CARD_WIDTH, estimateHeight, fromWorkflow, layout, makeEdge, makeNode, restack, toWorkflow, type Doc, type SpecMap } from './graph.js';

const specs: SpecMap = Object.fromEntries(nodeSpecs().map((s) => [s.type, s]));
const models = { checkpoints: ['sd15'], ipadapter: ['ip'], clip_vision: ['vit'], controlnet: ['canny'] };

interface Box {
  id: string;
  x: number;
  y: number;
  w: number;
  h: number;
}
const boxes = (doc: Doc): Box[] =>
  doc.nodes.map((n) => ({
    id: n.id,
    x: n.position.x,
    y: n.position.y,
    w: CARD_WIDTH,
    h: n.measured?.height ?? estimateHeight(specs[n.data.type]),
  }));

function expectTidy(doc: Doc): void {
  const b = boxes(doc);
  for (const p of b) {
    for (const q of b) {
      if (p === q) continue;
      const apart = p.x + p.w <= q.x || q.x + q.w <= p.x || p.y + p.h <= q.y || q.y + q.h <= p.y;
      expect(apart, `${p.id} overlaps ${q.id}`).toBe(true);
    }
  }
  const at = new Map(b.map((x) => [x.id, x]));
  for (const e of doc.edges) {
    const [s, t] = [at.get(e.source)!, at.get(e.target)!];
    expect(s.x < t.x || (s.x === t.x && s.y < t.y), `${e.source} left of or above ${e.target}`).toBe(true);
  }
}

/** The zoom fit view gives in the 1300x956 canvas of a 1600x1000 window (Canvas.tsx FIT_VIEW margins). */
function fitZoom(doc: Doc): number {
  const b = boxes(doc);
  const w = Math.max(...b.map((x) => x.x + x.w)) - Math.min(...b.map((x) => x.x));
  const h = Math.max(...b.map((x) => x.y + x.h)) - Math.min(...b.map((x) => x.y));
  return Math.min((1300 - 48) / w, (956 - 68) / h);
}

/** A chain of `n` one-in one-out nodes. */
function chain(n: number): Doc {
  const spec: NodeSpec = {
    type: 'step',
    title: 'Step',
    category: 't',
    description: '',
    inputs: [{ name: 'a', type: 'LATENT' }],
    outputs: [{ name: 'a', type: 'LATENT' }],
    params: [],
  };
  const nodes = Array.from({ length: n }, (_, i) => makeNode(`s${i}`, spec, 0, 0));
  const edges = nodes.slice(1).map((nd, i) => makeEdge(`s${i}`, 'a', nd.id, 'a', 'LATENT'));
  return { nodes, edges };
}

describe('layout', () => {
  it('the default workflow (with its ControlNet slot) fits one 1600x1000 screen at >= 0.8 zoom, tidily', () => {
    const doc = defaultWorkflow(specs, models, 'sample.png');
    expect(doc.nodes.some((n) => n.data.type === 'image-resize')).toBe(true);
    expectTidy(doc);
    expect(new Set(doc.nodes.map((n) => n.position.x)).size).toBeLessThanOrEqual(5);
    expect(fitZoom(doc)).toBeGreaterThanOrEqual(0.8);
    // Without ControlNet models the smaller default fits too.
    const plain = defaultWorkflow(specs, { ...models, controlnet: [] }, 'sample.png');
    expectTidy(plain);
    expect(fitZoom(plain)).toBeGreaterThanOrEqual(0.8);
  });

  it('Tidy folds a long chain into at most five columns, producers above consumers in a shared column', () => {
    const doc = layout(chain(8), specs);
    expect(new Set(doc.nodes.map((n) => n.position.x)).size).toBe(5);
    expectTidy(doc);
    // The default workflow tidied stays within five columns too.
    const tidied = layout(defaultWorkflow(specs, models, 'sample.png'), specs);
    expect(new Set(tidied.nodes.map((n) => n.position.x)).size).toBeLessThanOrEqual(5);
    expectTidy(tidied);
  });

  it('restack keeps columns and order and closes the gaps with the measured heights', () => {
    const doc = defaultWorkflow(specs, models, 'sample.png');
    const measured = { ...doc, nodes: doc.nodes.map((n) => ({ ...n, measured: { width: CARD_WIDTH, height: 100 } })) };
    const out = restack(measured, specs);
    const cols = new Map<number, number[]>();
    for (const n of out.nodes) cols.set(n.position.x, [...(cols.get(n.position.x) ?? []), n.position.y]);
    for (const ys of cols.values()) expect([...ys].sort((a, b) => a - b)).toEqual(ys.map((_, i) => i * 120));
    const order = (d: Doc) => d.nodes.map((n) => `${n.position.x}`).join();
    expect(order(out)).toBe(order(doc));
  });

  it('a workflow file without positions gets the layered layout', () => {
    const wf = toWorkflow(defaultWorkflow(specs, models, 'sample.png'));
    for (const n of wf.nodes) delete n.ui;
    const { problems, ...doc } = fromWorkflow(wf, specs);
    expect(problems).toEqual([]);
    expectTidy(doc);
  });
});
