/**
 * ComfyUI's canvas tools come in as the editor's (import.ts): a chain of Reroutes as reroute nodes, a
 * Reroute carrying ComfyUI_IPAdapter_plus' IPADAPTER pipeline (two sockets of ours) resolved, one
 * PrimitiveNode feeding two samplers' steps as one primitive, a MarkdownNote as a note, a bypassed
 * custom node (a placeholder) and a bypassed / muted node of ours; engine/graph-modes.ts then runs
 * what ComfyUI runs. A hand-written UI workflow in ComfyUI's format (litegraph links
 * [id, from, from slot, to, to slot, type]).
 */
import { describe, expect, it } from 'vitest';
import { nodeSpecs } from '../../../nodes/index.js';
import { resolveGraph } from '../../graph-modes.js';
import { validateWorkflow } from '../../validate.js';
import { DEMO_LIST } from '../../../test/helpers/comfyui.js';
import { importComfyUI } from './import.js';

const specs = nodeSpecs();
const specMap = new Map(specs.map((s) => [s.type, s]));

type In = [name: string, type: string, link: number | null, widget?: string];
let pos = 0;
const node = (id: number, type: string, ins: In[], outs: [string, string][], widgets: unknown[] = [], mode = 0) => ({
  id,
  type,
  pos: [(pos += 40), pos],
  mode,
  inputs: ins.map(([name, t, link, widget]) => ({ name, type: t, link, ...(widget ? { widget: { name: widget } } : {}) })),
  outputs: outs.map(([name, t]) => ({ name, type: t, links: [] })),
  widgets_values: widgets,
});

function doc() {
  pos = 0;
  const sampler = (id: number, model: number, latentIn: number, steps: number) =>
    node(
      id,
      'KSampler',
      [
        ['model', 'MODEL', model],
        ['positive', 'CONDITIONING', 4],
        ['negative', 'CONDITIONING', 5],
        ['latent_image', 'LATENT', latentIn],
        ['steps', 'INT', steps, 'steps'],
      ],
      [['LATENT', 'LATENT']],
      [1, 'fixed', 20, 7, 'euler', 'normal', 1],
    );
  const decode = (id: number, samples: number, vae: number, mode = 0) =>
    node(
      id,
      'VAEDecode',
      [
        ['samples', 'LATENT', samples],
        ['vae', 'VAE', vae],
      ],
      [['IMAGE', 'IMAGE']],
      [],
      mode,
    );
  const nodes = [
    node(
      1,
      'CheckpointLoaderSimple',
      [],
      [
        ['MODEL', 'MODEL'],
        ['CLIP', 'CLIP'],
        ['VAE', 'VAE'],
      ],
      ['model.safetensors'],
    ),
    node(
      2,
      'CLIPTextEncode',
      [
        ['clip', 'CLIP', 2],
        ['text', 'STRING', 27, 'text'],
      ],
      [['CONDITIONING', 'CONDITIONING']],
      ['a cat on a sofa'],
    ),
    node(3, 'CLIPTextEncode', [['clip', 'CLIP', 3]], [['CONDITIONING', 'CONDITIONING']], ['blurry']),
    node(4, 'EmptyLatentImage', [], [['LATENT', 'LATENT']], [64, 64, 1]),
    // Two reroutes in a chain on the model wire.
    node(5, 'Reroute', [['', '*', 1]], [['', 'MODEL']]),
    node(6, 'Reroute', [['', '*', 6]], [['', 'MODEL']]),
    sampler(7, 7, 8, 20),
    sampler(8, 9, 10, 21),
    node(9, 'PrimitiveNode', [], [['connect to widget input', 'INT']], [3, 'fixed']),
    decode(10, 11, 12),
    // A custom node ComfyUI bypasses: IMAGE in, IMAGE out.
    node(11, 'MyCustomSharpen', [['image', 'IMAGE', 13]], [['IMAGE', 'IMAGE']], [0.5], 4),
    node(12, 'SaveImage', [['images', 'IMAGE', 14]], [], ['out']),
    // A muted Preview Image and a bypassed VAE Decode feeding it.
    decode(13, 15, 16, 4),
    node(14, 'PreviewImage', [['images', 'IMAGE', 17]], [], [], 2),
    node(15, 'MarkdownNote', [], [], ['# Two samplers\nOne **steps** primitive.']),
    // An IPADAPTER pipeline through a reroute (ours is two sockets: resolved into them).
    node(
      16,
      'IPAdapterUnifiedLoader',
      [['model', 'MODEL', 18]],
      [
        ['model', 'MODEL'],
        ['ipadapter', 'IPADAPTER'],
      ],
      ['STANDARD (medium strength)'],
    ),
    node(17, 'Reroute', [['', '*', 19]], [['', 'IPADAPTER']]),
    node(
      18,
      'LoadImage',
      [],
      [
        ['IMAGE', 'IMAGE'],
        ['MASK', 'MASK'],
      ],
      ['example.png', 'image'],
    ),
    node(
      19,
      'IPAdapter',
      [
        ['model', 'MODEL', 20],
        ['ipadapter', 'IPADAPTER', 21],
        ['image', 'IMAGE', 22],
      ],
      [['MODEL', 'MODEL']],
      [1, 0, 1, 'standard'],
    ),
    // A backend primitive (comfy_extras' PrimitiveStringMultiline) feeding the positive prompt's text, turned into an input.
    node(20, 'PrimitiveStringMultiline', [], [['STRING', 'STRING']], ['a cat on a sofa']),
  ];
  const links = [
    [1, 19, 0, 5, 0, 'MODEL'],
    [2, 1, 1, 2, 0, 'CLIP'],
    [3, 1, 1, 3, 0, 'CLIP'],
    [4, 2, 0, 7, 1, 'CONDITIONING'],
    [5, 3, 0, 7, 2, 'CONDITIONING'],
    [6, 5, 0, 6, 0, 'MODEL'],
    [7, 6, 0, 7, 0, 'MODEL'],
    [8, 4, 0, 7, 3, 'LATENT'],
    [9, 6, 0, 8, 0, 'MODEL'],
    [10, 7, 0, 8, 3, 'LATENT'],
    [11, 8, 0, 10, 0, 'LATENT'],
    [12, 1, 2, 10, 1, 'VAE'],
    [13, 10, 0, 11, 0, 'IMAGE'],
    [14, 11, 0, 12, 0, 'IMAGE'],
    [15, 8, 0, 13, 0, 'LATENT'],
    [16, 1, 2, 13, 1, 'VAE'],
    [17, 13, 0, 14, 0, 'IMAGE'],
    [18, 1, 0, 16, 0, 'MODEL'],
    [19, 16, 1, 17, 0, 'IPADAPTER'],
    [20, 16, 0, 19, 0, 'MODEL'],
    [21, 17, 0, 19, 1, 'IPADAPTER'],
    [22, 18, 0, 19, 2, 'IMAGE'],
    [23, 9, 0, 7, 4, 'INT'],
    [24, 9, 0, 8, 4, 'INT'],
    [27, 20, 0, 2, 1, 'STRING'],
  ];
  // The second sampler's positive / negative come from the same encoders.
  nodes[7]!.inputs[1]!.link = 25;
  nodes[7]!.inputs[2]!.link = 26;
  links.push([25, 2, 0, 8, 1, 'CONDITIONING'], [26, 3, 0, 8, 2, 'CONDITIONING']);
  nodes[7]!.inputs[4]!.link = 24;
  nodes[6]!.inputs[4]!.link = 23;
  for (const l of links) nodes.find((n) => n.id === l[1])!.outputs[l[2] as number]!.links.push(l[0] as never);
  return { last_node_id: 20, last_link_id: 27, nodes, links, groups: [], config: {}, extra: {}, version: 0.4 };
}

const edges = (w: { edges: { from: { node: string; port: string }; to: { node: string; port: string } }[] }) =>
  w.edges.map((e) => `${e.from.node}.${e.from.port} -> ${e.to.node}.${e.to.port}`);

describe("ComfyUI's canvas tools as the editor's", () => {
  const r = importComfyUI(doc(), { specs, models: DEMO_LIST });
  const wf = r.workflow;
  const byId = (id: string) => wf.nodes.find((n) => n.id === id)!;

  it('reroutes as reroute nodes (a chain stays a chain); one carrying an IPADAPTER pipeline is resolved', () => {
    expect([byId('c5').type, byId('c6').type]).toEqual(['reroute', 'reroute']);
    expect(edges(wf)).toEqual(expect.arrayContaining(['c19.model -> c5.in', 'c5.out -> c6.in', 'c6.out -> c7.model', 'c6.out -> c8.model']));
    expect(wf.nodes.some((n) => n.id === 'c17')).toBe(false);
    expect(r.report.nodes.find((n) => n.id === '17')!.notes[0]).toMatch(/resolved into the links it carries \(it carries no single socket of ours\)/);
    expect(edges(wf)).toEqual(expect.arrayContaining(['c16.ip_adapter -> c19.ip_adapter']));
  });

  it('one PrimitiveNode feeding two widgets is one primitive wired to both params, turned into inputs', () => {
    expect(byId('c9')).toMatchObject({ type: 'primitive', params: { value: 3 } });
    expect(byId('c9').params).not.toHaveProperty('control_after_generate'); // steps is no seed
    expect(edges(wf)).toEqual(expect.arrayContaining(['c9.value -> c7.steps', 'c9.value -> c8.steps']));
    expect([byId('c7').ui?.inputs, byId('c8').ui?.inputs]).toEqual([['steps'], ['steps']]);
    // A backend primitive too: PrimitiveStringMultiline on the prompt's text.
    expect(byId('c20')).toMatchObject({ type: 'primitive', params: { value: 'a cat on a sofa' } });
    expect(edges(wf)).toContain('c20.value -> c2.text');
    expect(byId('c2').ui?.inputs).toEqual(['text']);
  });

  it('a MarkdownNote is a note; bypassed and muted nodes keep their modes, a bypassed custom node its placeholder', () => {
    expect(byId('c15')).toMatchObject({ type: 'note', params: { text: '# Two samplers\nOne **steps** primitive.' } });
    expect(byId('c11')).toMatchObject({ type: 'comfyui-node', mode: 'bypass' });
    expect(byId('c13')).toMatchObject({ type: 'vae-decode', mode: 'bypass' });
    expect(byId('c14')).toMatchObject({ type: 'preview-image', mode: 'mute' });
  });

  it('what runs is what ComfyUI runs: reroutes joined, the primitive in both samplers, the bypassed sharpen passed through, the muted preview left out', () => {
    const ran = resolveGraph(wf, specMap);
    expect(ran.errors).toEqual([]);
    const run = ran.workflow;
    expect(run.nodes.map((n) => n.type)).not.toEqual(expect.arrayContaining(['reroute']));
    for (const id of ['c5', 'c6', 'c9', 'c11', 'c13', 'c14', 'c15', 'c20']) expect(run.nodes.map((n) => n.id)).not.toContain(id);
    expect(edges(run)).toEqual(expect.arrayContaining(['c19.model -> c7.model', 'c19.model -> c8.model', 'c10.image -> c12.images']));
    expect(run.nodes.filter((n) => n.type === 'ksampler').map((n) => n.params.steps)).toEqual([3, 3]);
    expect(run.nodes.find((n) => n.id === 'c2')!.params.text).toBe('a cat on a sofa');
    expect(ran.bypassed.sort()).toEqual(['c11', 'c13']);
    expect(ran.muted).toEqual(['c14']);
    // The bypassed placeholder no longer refuses the run.
    expect(validateWorkflow(wf, specMap).filter((e) => e.node === 'c11')).toEqual([]);
  });
});
