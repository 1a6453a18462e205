/**
 * The canvas tools in the document slice, on the real node specs: placement at a free spot, bypass
 * / mute, params as inputs fed by a primitive, reroutes, groups; each one undo step, saved in the
 * workflow and read back.
 */
import { describe, expect, it } from 'vitest';
import { nodeSpecs } from '../../nodes/index.js';
import { resolveGraph } from '../../engine/graph-modes.js';
import { validateWorkflow } from '../../engine/validate.js';
import { fromWorkflow, overlappingCards } from '../graph.js';
import { createEditorStore } from './index.js';

const specs = nodeSpecs();
const specMap = new Map(specs.map((s) => [s.type, s]));

function store() {
  const s = createEditorStore();
  s.getState().setSpecs(specs);
  return s;
}

describe('canvas tools in the store', () => {
  it('adds nodes at the nearest free spot: three at one point do not overlap', () => {
    const s = store();
    for (let i = 0; i < 3; i++) s.getState().addNode('vae-decode', 100, 100);
    expect(s.getState().nodes).toHaveLength(3);
    expect(overlappingCards(s.getState(), s.getState().specs)).toEqual([]);
    expect(s.getState().nodes[0].position).toEqual({ x: 100, y: 100 });
  });

  it('pastes at the pointer where nothing is, not on the original', () => {
    const s = store();
    const id = s.getState().addNode('empty-latent-image', 0, 0)!;
    s.getState().copy();
    s.getState().paste({ x: 10, y: 10 });
    expect(s.getState().nodes.filter((n) => n.data.type === 'empty-latent-image')).toHaveLength(2);
    expect(overlappingCards(s.getState(), s.getState().specs)).toEqual([]);
    expect(s.getState().nodes.find((n) => n.id !== id)!.selected).toBe(true);
  });

  it('bypass and mute are one undo step each and saved as the node mode', () => {
    const s = store();
    const a = s.getState().addNode('vae-decode', 0, 0)!;
    s.getState().setMode([a], 'bypass');
    expect(s.getState().workflow().nodes[0].mode).toBe('bypass');
    s.getState().setMode([a], 'mute');
    expect(s.getState().workflow().nodes[0].mode).toBe('mute');
    s.getState().undo();
    expect(s.getState().workflow().nodes[0].mode).toBe('bypass');
    s.getState().undo();
    expect(s.getState().workflow().nodes[0].mode).toBeUndefined();
    // Read back from the file.
    s.getState().redo();
    const back = fromWorkflow(s.getState().workflow(), s.getState().specs);
    expect(back.nodes[0].data.mode).toBe('bypass');
  });

  it('a param turned into an input takes a primitive; the primitive starts with the param value; back to a widget drops the wire', () => {
    const s = store();
    const k = s.getState().addNode('ksampler', 0, 0, { seed: 77 })!;
    const k2 = s.getState().addNode('ksampler', 0, 0, { seed: 5 })!;
    const p = s.getState().addNode('primitive', 0, 0)!;
    expect(s.getState().connect({ source: p, sourceHandle: 'value', target: k, targetHandle: 'seed' })).toMatch(/unknown port/);
    s.getState().convertParam(k, 'seed', true);
    s.getState().convertParam(k2, 'seed', true);
    s.getState().convertParam(k2, 'steps', true);
    expect(s.getState().connect({ source: p, sourceHandle: 'value', target: k, targetHandle: 'seed' })).toBeNull();
    expect(s.getState().nodes.find((n) => n.id === p)!.data.params.value).toBe(77);
    expect(s.getState().connect({ source: p, sourceHandle: 'value', target: k2, targetHandle: 'seed' })).toBeNull();
    // A seed primitive cannot also feed steps (another kind of value).
    expect(s.getState().connect({ source: p, sourceHandle: 'value', target: k2, targetHandle: 'steps' })).toMatch(/takes integer/);
    const wf = s.getState().workflow();
    expect(wf.nodes.find((n) => n.id === k)!.ui).toMatchObject({ inputs: ['seed'] });
    const run = resolveGraph(wf, specMap).workflow;
    expect(run.nodes.find((n) => n.id === k2)!.params.seed).toBe(77);
    s.getState().convertParam(k, 'seed', false);
    expect(s.getState().edges.some((e) => e.target === k)).toBe(false);
  });

  it('a reroute splits a wire and takes its type; groups are undoable and saved in meta.groups', () => {
    const s = store();
    const lat = s.getState().addNode('empty-latent-image', 0, 0)!;
    const dec = s.getState().addNode('vae-decode', 400, 0)!;
    expect(s.getState().connect({ source: lat, sourceHandle: 'latent', target: dec, targetHandle: 'samples' })).toBeNull();
    const r = s.getState().addReroute(s.getState().edges[0].id, 300, 50)!;
    expect(s.getState().edges.map((e) => `${e.source}.${e.sourceHandle}->${e.target}.${e.targetHandle}:${e.data?.portType}`)).toEqual([
      `${lat}.latent->${r}.in:LATENT`,
      `${r}.out->${dec}.samples:LATENT`,
    ]);
    const g = s.getState().addGroup([lat, dec], 'Decode')!;
    const wf = s.getState().workflow();
    expect((wf.meta?.groups as { title: string }[])[0].title).toBe('Decode');
    const errs = validateWorkflow({ ...wf, nodes: [...wf.nodes, { id: 'o', type: 'save-image', params: {} }], edges: [...wf.edges] }, specMap);
    expect(errs.filter((e) => e.node === dec).map((e) => e.port)).toEqual(['vae']); // samples arrives through the reroute
    s.getState().moveGroup(g, 10, 20);
    expect(s.getState().nodes.find((n) => n.id === lat)!.position).toEqual({ x: 10, y: 20 });
    s.getState().undo(); // the group (moveGroup itself is not a step: the drag start commits)
    expect(s.getState().groups).toEqual([]);
    const back = fromWorkflow(wf, s.getState().specs);
    expect(back.groups?.[0]).toMatchObject({ title: 'Decode' });
  });
});
