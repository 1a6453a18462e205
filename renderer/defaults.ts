/**
 * The workflow that opens on first start: the example examples/ip-canny-controlnet.json (image
 * prompt + text prompt, the IP-Adapter paper's dataflow left to right, a Canny ControlNet on both
 * prompts whose control image is cropped to the latent's size first), fitted to this host:
 * - its ControlNet slot only when the models folder holds a ControlNet (else the default would not
 *   run as it opens): without one, the text encodings feed the sampler directly;
 * - every required image param starts on the sample picture (the examples' image prompt imported
 *   by the host), the control image too, so the default runs as it opens;
 * - a file param whose example model is missing starts on the first model of its kind;
 * - nodes this build has no spec for are left out; the rest get their specs' defaults for any param
 *   the example does not set, and five columns that read on one screen.
 */
import type { ModelKind, NodeSpec, ParamValue } from '../nodes/types.js';
import type { Workflow } from '../engine/api.js';
import { parseWorkflow } from '../engine/workflow.js';
import example from '../examples/ip-canny-controlnet.json';
import { layout, makeEdge, makeNode, placeColumns, type Doc, type FlowEdge, type FlowNode, type SpecMap } from './graph.js';

const parsed = parseWorkflow(example);
if (!parsed.workflow) throw new Error(`examples/ip-canny-controlnet.json: ${parsed.errors.map((e) => e.message).join('; ')}`);
const EXAMPLE: Workflow = parsed.workflow;

/** The ControlNet slot: these node types, plus what only feeds them (the control image chain). */
const CONTROLNET_TYPES = new Set(['load-controlnet', 'apply-controlnet']);

/**
 * Five columns, so the whole workflow reads on one screen (about 0.8 zoom at 1600x1000): the
 * paper's dataflow left to right, the ControlNet chain under it; a short chain step shares its
 * producer's column (resize above Canny, decode and save under the sampler). Example node ids.
 */
const COLUMNS_WITH_CONTROLNET = [
  ['checkpoint', 'clip_vision', 'image_prompt', 'canny_image'],
  ['ip_adapter', 'vision_encode', 'positive', 'negative', 'latent'],
  ['projection', 'canny_loader', 'canny_resize', 'canny_pre'],
  ['apply_ip_adapter', 'canny_apply_pos', 'canny_apply_neg'],
  ['sampler', 'vae_decode', 'save'],
];
const COLUMNS = [
  ['checkpoint', 'clip_vision', 'image_prompt'],
  ['ip_adapter', 'vision_encode', 'latent'],
  ['projection', 'positive', 'negative'],
  ['apply_ip_adapter'],
  ['sampler', 'vae_decode', 'save'],
];

export function defaultWorkflow(specMap: SpecMap, models: Partial<Record<ModelKind, string[]>>, sampleImage?: string): Doc {
  const known = EXAMPLE.nodes.filter((n) => specMap[n.type]);
  const haveCn = known.some((n) => n.type === 'apply-controlnet') && known.some((n) => n.type === 'load-controlnet') && (models.controlnet?.length ?? 0) > 0;
  let nodes = haveCn ? known : known.filter((n) => !CONTROLNET_TYPES.has(n.type));
  const ids = new Set(nodes.map((n) => n.id));
  let edges = EXAMPLE.edges.filter((e) => ids.has(e.from.node) && ids.has(e.to.node));
  if (!haveCn) {
    // Apply ControlNet passes its conditioning through: without it, its consumers take its input's.
    for (const apply of EXAMPLE.nodes.filter((n) => n.type === 'apply-controlnet')) {
      const input = EXAMPLE.edges.find((e) => e.to.node === apply.id && e.to.port === 'conditioning');
      if (!input || !ids.has(input.from.node)) continue;
      for (const out of EXAMPLE.edges.filter((e) => e.from.node === apply.id && ids.has(e.to.node))) edges.push({ from: input.from, to: out.to });
    }
    // What fed only the slot (the control image, its resize and Canny) reaches no output now.
    const feedsOutput = new Set(nodes.filter((n) => specMap[n.type].output).map((n) => n.id));
    for (let grew = true; grew;) {
      grew = false;
      for (const e of edges) {
        if (!feedsOutput.has(e.to.node) || feedsOutput.has(e.from.node)) continue;
        feedsOutput.add(e.from.node);
        grew = true;
      }
    }
    nodes = nodes.filter((n) => feedsOutput.has(n.id));
    edges = edges.filter((e) => feedsOutput.has(e.from.node) && feedsOutput.has(e.to.node));
  }

  const flowNodes: FlowNode[] = nodes.map((n) => makeNode(n.id, specMap[n.type], 0, 0, startParams(specMap[n.type], n.params, models, sampleImage)));
  const flowEdges: FlowEdge[] = [];
  for (const e of edges) {
    const from = nodes.find((n) => n.id === e.from.node)!;
    const to = nodes.find((n) => n.id === e.to.node)!;
    const output = specMap[from.type].outputs.find((p) => p.name === e.from.port);
    if (!output || !specMap[to.type].inputs.some((p) => p.name === e.to.port && p.type === output.type)) continue;
    flowEdges.push(makeEdge(e.from.node, e.from.port, e.to.node, e.to.port, output.type));
  }
  const doc = { nodes: flowNodes, edges: flowEdges };
  const plan = haveCn ? COLUMNS_WITH_CONTROLNET : COLUMNS;
  const planned = new Set(plan.flat());
  // A node this plan does not know (one added to the example later) gets the generic layout instead.
  if (flowNodes.some((n) => !planned.has(n.id))) return layout(doc, specMap);
  const present = new Set(flowNodes.map((n) => n.id));
  return placeColumns(
    doc,
    specMap,
    plan.map((col) => col.filter((id) => present.has(id))),
  );
}

/** The example's params, with the sample picture in required image params and file params on models this host has. */
function startParams(
  spec: NodeSpec,
  params: Record<string, ParamValue>,
  models: Partial<Record<ModelKind, string[]>>,
  sampleImage?: string,
): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = { ...params };
  for (const p of spec.params) {
    if (p.kind === 'image' && !p.optional) {
      // The example's images are paths inside examples/: the host's imported sample stands in for them.
      if (sampleImage !== undefined) out[p.name] = sampleImage;
      else delete out[p.name];
    }
    if (p.kind === 'file' && !p.optional) {
      const have = models[p.modelKind] ?? [];
      const current = String(out[p.name] ?? p.default);
      if (have.length && !have.includes(current)) out[p.name] = have[0];
    }
  }
  return out;
}
