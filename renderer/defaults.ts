/**
 * The workflow that opens on first start: image prompt + text prompt (IP-Adapter, the paper's
 * dataflow left to right), and a ControlNet slot when this build has ControlNet nodes. Built from
 * the node specs the host sends (found by title), so it follows the nodes' own ports and defaults.
 */
import type { ModelKind, NodeSpec, ParamValue } from '../nodes/types.js';
import type { PortType } from '../nodes/ports.js';
import { layout, makeEdge, makeNode, placeColumns, type Doc, type FlowEdge, type FlowNode, type SpecMap } from './graph.js';

interface Want {
  key: string;
  title: string;
  params?: Record<string, ParamValue>;
  /** Inputs: port type (or port name) -> producer key. */
  from: Record<string, string>;
}

const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');

function findSpec(specs: NodeSpec[], title: string): NodeSpec | undefined {
  return specs.find((s) => norm(s.title) === norm(title)) ?? specs.find((s) => norm(s.type) === norm(title));
}

const POSITIVE = 'a photo of a cat sitting on a windowsill, best quality';
const NEGATIVE = 'blurry, low quality, watermark';

export function defaultWorkflow(specMap: SpecMap, models: Partial<Record<ModelKind, string[]>>, sampleImage?: string): Doc {
  const specs = Object.values(specMap);
  // The ControlNet slot needs a ControlNet file to run (and its own control image), so it is
  // added when the models folder holds one; otherwise the default would not run as it opens.
  const haveCn = !!findSpec(specs, 'Apply ControlNet') && !!findSpec(specs, 'Load ControlNet') && (models.controlnet?.length ?? 0) > 0;
  const haveCanny = haveCn && !!findSpec(specs, 'Canny');
  const haveResize = haveCanny && !!findSpec(specs, 'Image Resize');
  const wants: Want[] = [
    { key: 'ckpt', title: 'Load Checkpoint', from: {} },
    { key: 'clipv', title: 'Load CLIP Vision', from: {} },
    { key: 'ipa', title: 'Load IP-Adapter', from: {} },
    { key: 'image', title: 'Load Image', params: sampleImage ? { image: sampleImage } : undefined, from: {} },
    { key: 'encode', title: 'CLIP Vision Encode', from: { CLIP_VISION: 'clipv', IMAGE: 'image' } },
    { key: 'proj', title: 'IP-Adapter Projection', from: { IP_ADAPTER: 'ipa', IMAGE_EMBEDS: 'encode' } },
    { key: 'apply', title: 'Apply IP-Adapter', from: { MODEL: 'ckpt', IP_ADAPTER: 'ipa', IP_TOKENS: 'proj' } },
    { key: 'pos', title: 'Text Encode', params: { text: POSITIVE }, from: { CLIP: 'ckpt' } },
    { key: 'neg', title: 'Text Encode', params: { text: NEGATIVE }, from: { CLIP: 'ckpt' } },
    ...(haveCn ? [
      { key: 'cnet', title: 'Load ControlNet', from: {} },
      // The sample picture serves as control image too (its edges), so the default runs as it opens.
      { key: 'cimage', title: 'Load Image', params: sampleImage ? { image: sampleImage } : undefined, from: {} },
      // As the examples do: the control image is cropped to the size the latent decodes to, then
      // its edges are taken (the ControlNet sees the output's geometry, edges at full strength).
      ...(haveResize ? [{ key: 'resize', title: 'Image Resize', params: { mode: 'crop' }, from: { IMAGE: 'cimage', LATENT: 'latent' } }] : []),
      ...(haveCanny ? [{ key: 'edges', title: 'Canny', from: { IMAGE: haveResize ? 'resize' : 'cimage' } }] : []),
      // On both prompts, as the reference pipeline applies it to the whole guidance batch.
      { key: 'control', title: 'Apply ControlNet', from: { CONDITIONING: 'pos', CONTROL_NET: 'cnet', IMAGE: haveCanny ? 'edges' : 'cimage' } },
      { key: 'controlNeg', title: 'Apply ControlNet', from: { CONDITIONING: 'neg', CONTROL_NET: 'cnet', IMAGE: haveCanny ? 'edges' : 'cimage' } },
    ] : []),
    { key: 'latent', title: 'Empty Latent Image', from: {} },
    { key: 'sampler', title: 'DDIM Sampler', from: { MODEL: 'apply', positive: haveCn ? 'control' : 'pos', negative: haveCn ? 'controlNeg' : 'neg', LATENT: 'latent' } },
    { key: 'decode', title: 'VAE Decode', from: { LATENT: 'sampler', VAE: 'ckpt' } },
    { key: 'save', title: 'Save Image', from: { IMAGE: 'decode' } },
  ];

  const nodes: FlowNode[] = [];
  const byKey = new Map<string, { id: string; spec: NodeSpec }>();
  let k = 1;
  for (const w of wants) {
    const spec = findSpec(specs, w.title);
    if (!spec) continue;
    const id = `n${k++}`;
    const params: Record<string, ParamValue> = {};
    for (const p of spec.params) {
      // File params start on the first model of their kind, so the default runs as soon as models exist.
      const have = p.kind === 'file' ? models[p.modelKind] ?? [] : [];
      if (p.kind === 'file' && !p.optional && have.length && !have.includes(p.default)) params[p.name] = have[0];
      if (p.kind === 'string' && p.multiline && w.params?.text !== undefined) params[p.name] = w.params.text;
      if (p.kind === 'image' && !p.optional && w.params?.image !== undefined) params[p.name] = w.params.image;
      const named = w.params?.[p.name];
      if (p.kind === 'enum' && typeof named === 'string' && p.options.includes(named)) params[p.name] = named;
    }
    nodes.push(makeNode(id, spec, 0, 0, params));
    byKey.set(w.key, { id, spec });
  }

  const edges: FlowEdge[] = [];
  for (const w of wants) {
    const dst = byKey.get(w.key);
    if (!dst) continue;
    for (const [want, srcKey] of Object.entries(w.from)) {
      const src = byKey.get(srcKey);
      if (!src) continue;
      // `want` is a port type, or a port name prefix (positive/negative share a type).
      const input = dst.spec.inputs.find((p) => p.type === want) ?? dst.spec.inputs.find((p) => norm(p.name).startsWith(norm(want).slice(0, 3)));
      if (!input) continue;
      const output = src.spec.outputs.find((p) => p.type === input.type);
      if (!output) continue;
      edges.push(makeEdge(src.id, output.name, dst.id, input.name, output.type as PortType));
    }
  }
  // Five columns, so the whole workflow reads on one screen (about 0.8 zoom at 1600x1000): the
  // paper's dataflow left to right, the ControlNet chain under it; a short chain step shares its
  // producer's column (resize above Canny, decode and save under the sampler).
  const plan = haveCn ? [
    ['ckpt', 'clipv', 'image', 'cimage'],
    ['ipa', 'encode', 'pos', 'neg', 'latent'],
    ['proj', 'cnet', 'resize', 'edges'],
    ['apply', 'control', 'controlNeg'],
    ['sampler', 'decode', 'save'],
  ] : [
    ['ckpt', 'clipv', 'image'],
    ['ipa', 'encode', 'latent'],
    ['proj', 'pos', 'neg'],
    ['apply'],
    ['sampler', 'decode', 'save'],
  ];
  const doc = { nodes, edges };
  const planned = new Set(plan.flat());
  // A node this plan does not know (a want added later) gets the generic layout instead.
  if ([...byKey.keys()].some((key) => !planned.has(key))) return layout(doc, specMap);
  return placeColumns(doc, specMap, plan.map((col) => col.flatMap((key) => byKey.get(key)?.id ?? [])));
}
