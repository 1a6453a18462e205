/**
 * The canvas tools in a ComfyUI export: a bypassed / muted node keeps its place with ComfyUI's mode
 * 4 / 2 in the UI workflow and is absent from the API prompt (what runs); a reroute becomes a
 * Reroute, a note a Note, a primitive a PrimitiveNode linked to the widget it feeds (its value also
 * written there); the UI workflow imports back to the same canvas tools, running as ours does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeSpecs } from '../../../nodes/index.js';
import { resolveGraph } from '../../graph-modes.js';
import type { Workflow } from '../../protocol.js';
import { validateWorkflow } from '../../validate.js';
import { parseWorkflow } from '../../workflow.js';
import { exportComfyUI } from './export.js';
import { importComfyUI } from './import.js';

const specs = nodeSpecs();
const specMap = new Map(specs.map((s) => [s.type, s]));
const example = parseWorkflow(fs.readFileSync(path.resolve(__dirname, '../../../examples/image-prompt.json'), 'utf8')).workflow!;

type CNode = { id: number; type: string; mode: number; widgets_values: unknown; properties: { 'ipadapter-studio'?: { ids?: Record<string, string> } } };
const byOurId = (ui: { nodes: CNode[] }, id: string) => ui.nodes.find((n) => Object.values(n.properties['ipadapter-studio']?.ids ?? {}).includes(id));

function withTools(): Workflow {
  const wf: Workflow = JSON.parse(JSON.stringify(example));
  const decode = wf.nodes.find((n) => n.type === 'vae-decode')!;
  const save = wf.nodes.find((n) => n.type === 'save-image')!;
  const sampler = wf.nodes.find((n) => n.type === 'ddim-sampler')!;
  const latent = wf.nodes.find((n) => n.type === 'empty-latent-image')!;
  // A muted Preview Image beside the Save Image, a reroute on the latent wire, a note, a primitive on the seed.
  wf.nodes.push(
    { id: 'preview', type: 'preview-image', params: {}, mode: 'mute', ui: { x: 0, y: 0 } },
    { id: 'r', type: 'reroute', params: {}, ui: { x: 10, y: 10 } },
    { id: 'txt', type: 'note', params: { text: 'λ 0.8 reads best' }, ui: { x: 20, y: 20 } },
    { id: 'seed', type: 'primitive', params: { value: 1234 }, ui: { x: 30, y: 30 } },
  );
  wf.edges.push({ from: { node: decode.id, port: 'image' }, to: { node: 'preview', port: 'images' } });
  const latEdge = wf.edges.find((e) => e.from.node === latent.id && e.to.node === sampler.id)!;
  wf.edges = wf.edges.filter((e) => e !== latEdge);
  wf.edges.push({ from: latEdge.from, to: { node: 'r', port: 'in' } }, { from: { node: 'r', port: 'out' }, to: latEdge.to });
  wf.edges.push({ from: { node: 'seed', port: 'value' }, to: { node: sampler.id, port: 'seed' } });
  sampler.ui = { ...sampler.ui!, inputs: ['seed'] };
  // The IP-Adapter bypassed: the sampler then takes the checkpoint's model.
  wf.nodes.find((n) => n.type === 'apply-ip-adapter')!.mode = 'bypass';
  void save;
  return wf;
}

describe('ComfyUI export of bypass, mute, reroute, note and primitive', () => {
  it('keeps modes, reroutes and notes in the UI workflow; the API prompt is the graph that runs', () => {
    const wf = withTools();
    expect(validateWorkflow(wf, specMap)).toEqual([]);
    const { ui, api, report } = exportComfyUI(wf, specs);
    const nodes = (ui as { nodes: CNode[] }).nodes;
    const apply = wf.nodes.find((n) => n.type === 'apply-ip-adapter')!;
    expect(byOurId(ui as { nodes: CNode[] }, apply.id)?.mode).toBe(4);
    expect(byOurId(ui as { nodes: CNode[] }, 'preview')?.mode).toBe(2);
    expect(nodes.filter((n) => n.type === 'Reroute')).toHaveLength(1);
    expect(nodes.find((n) => n.type === 'Note')?.widgets_values).toEqual(['λ 0.8 reads best']);
    const sampler = wf.nodes.find((n) => n.type === 'ddim-sampler')!;
    const ks = byOurId(ui as { nodes: CNode[] }, sampler.id)!;
    expect(JSON.stringify(ks.widgets_values)).toContain('1234');
    expect(report.find((r) => r.id === 'seed')?.status).toBe('mapped');
    // The primitive: a PrimitiveNode ([value, control] as the frontend writes them) linked to the sampler's seed, turned into an input.
    type Ui = { nodes: (CNode & { inputs: { name: string; link: number | null; widget?: { name: string } }[] })[]; links: number[][] };
    const prim = (ui as Ui).nodes.find((n) => n.type === 'PrimitiveNode')!;
    expect(prim.widgets_values).toEqual([1234, 'fixed']);
    const seedIn = (ui as Ui).nodes.find((n) => n.id === ks.id)!.inputs.find((i) => i.widget?.name === 'seed')!;
    expect((ui as Ui).links.find((l) => l[0] === seedIn.link)?.slice(1, 4)).toEqual([prim.id, 0, ks.id]);

    // The API prompt: no IPAdapter, no PreviewImage, no Reroute / Note; the sampler's seed is the primitive's.
    type ApiNode = { class_type: string; inputs: Record<string, unknown>; _meta: { ipadapter_studio: { ids: Record<string, string> } } };
    const apiNodes = Object.values(api as Record<string, ApiNode>);
    const classes = apiNodes.map((n) => n.class_type);
    expect(apiNodes.some((n) => Object.values(n._meta.ipadapter_studio.ids).includes(apply.id))).toBe(false);
    expect(classes).not.toContain('PreviewImage');
    expect(classes).not.toContain('Reroute');
    expect(classes).not.toContain('Note');
    const apiSampler = Object.values(api as Record<string, { class_type: string; inputs: Record<string, unknown> }>).find((n) => n.class_type === 'KSampler')!;
    expect(apiSampler.inputs.seed).toBe(1234);
  });

  it('the exported UI workflow imports back to a graph that runs what ours runs', () => {
    const wf = withTools();
    const { ui } = exportComfyUI(wf, specs);
    const back = importComfyUI(ui, { specs }).workflow;
    expect(validateWorkflow(back, specMap)).toEqual([]);
    const ran = resolveGraph(wf, specMap).workflow;
    // The nodes that lead to an output, by type (an import leaves out the encoders only the bypassed IPAdapter read).
    const types = (w: Workflow) => {
      const needed = new Set<string>();
      const mark = (id: string) => {
        if (needed.has(id)) return;
        needed.add(id);
        for (const e of w.edges) if (e.to.node === id) mark(e.from.node);
      };
      for (const n of w.nodes) if (specMap.get(n.type)?.output) mark(n.id);
      return w.nodes
        .filter((n) => needed.has(n.id))
        .map((n) => n.type)
        .sort();
    };
    expect(types(resolveGraph(back, specMap).workflow)).toEqual(types(ran));
    expect(resolveGraph(back, specMap).workflow.nodes.find((n) => n.type === 'ddim-sampler')!.params.seed).toBe(1234);
    // The canvas tools come back as ours: the primitive on the seed, the reroute on the latent wire, the note, the modes.
    const sampler = back.nodes.find((n) => n.type === 'ddim-sampler')!;
    expect(back.nodes.find((n) => n.id === 'seed')).toMatchObject({ type: 'primitive', params: { value: 1234 }, ui: { x: 30, y: 30 } });
    expect(back.edges).toContainEqual({ from: { node: 'seed', port: 'value' }, to: { node: sampler.id, port: 'seed' } });
    expect(sampler.ui?.inputs).toEqual(['seed']);
    expect(back.nodes.find((n) => n.id === 'r')?.type).toBe('reroute');
    expect(back.edges.filter((e) => e.from.node === 'r' || e.to.node === 'r')).toHaveLength(2);
    expect(back.nodes.find((n) => n.id === 'txt')).toMatchObject({ type: 'note', params: { text: 'λ 0.8 reads best' } });
    expect(back.nodes.find((n) => n.id === 'preview')?.mode).toBe('mute');
    expect(back.nodes.find((n) => n.type === 'apply-ip-adapter')?.mode).toBe('bypass');
  });
});
