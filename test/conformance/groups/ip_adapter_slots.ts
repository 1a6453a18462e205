/**
 * Pipeline cases with several image branches (model-files `pipeline_two_ip_adapters`, `pipeline_ip_masks`),
 * run through the engine from a workflow JSON wired as a person does it: Load Checkpoint, one Load IP-Adapter
 * per adapter file, per image prompt Load Image -> CLIP Vision Encode -> IP-Adapter Projection -> Apply
 * IP-Adapter (its own λ, optionally a mask from Load Image -> Image To Mask), chained on the MODEL, Text
 * Encode x2, Empty Latent Image, DDIM Sampler, VAE Decode, Preview Image. The case's latents replace the
 * seeded noise; per-step UNet outputs and latents, each branch's embeddings and tokens, the masks on each
 * query grid, the schedule, the final latents and the image are compared.
 */
import type { Workflow, WorkflowEdge, WorkflowNode } from '../../../engine/api.js';
import type { CheckpointRef, ImageValue, IpTokensValue, LatentValue, MaskValue, ModelValue } from '../../../nodes/values.js';
import { compare, toleranceFor, type CaseSpec, type Ctx, type Row } from '../context.js';
import { getEngine, scheduleRows, unknownFieldRows } from '../pipeline-runner.js';

/** One Apply IP-Adapter of the workflow. */
export interface Branch {
  /** Absolute path of the adapter file. */
  adapter: string;
  /** Image prompt PNGs (files of the cases folder), projected together (their tokens concatenated). */
  images: string[];
  scale: number;
  /** Attention mask PNG (white = acts), through Image To Mask (red channel). */
  mask?: string;
}

export interface SlotsSpec {
  pipeline: string;
  imageEncoder: string;
  prompt: string;
  negative: string;
  branches: Branch[];
  steps: number;
  cfg: number;
  eta: number;
  width: number;
  height: number;
}

/** The workflow of a case: one projection and one Apply IP-Adapter per branch, chained in order. */
export function slotsWorkflow(ctx: Ctx, s: SlotsSpec): Workflow {
  const nodes: WorkflowNode[] = [];
  const edges: WorkflowEdge[] = [];
  const node = (id: string, type: string, params: WorkflowNode['params'] = {}) => {
    nodes.push({ id, type, params, ui: { x: nodes.length * 220, y: 0 } });
    return id;
  };
  const link = (from: string, fromPort: string, to: string, toPort: string) =>
    edges.push({ from: { node: from, port: fromPort }, to: { node: to, port: toPort } });
  const ckpt = node('ckpt', 'load-checkpoint', { ckpt_name: s.pipeline });
  const cv = node('clip_vision', 'load-clip-vision', { clip_name: s.imageEncoder });
  const loaders = new Map<string, string>();
  let model = ckpt;
  s.branches.forEach((b, i) => {
    const n = i + 1;
    let ipa = loaders.get(b.adapter);
    if (!ipa) {
      ipa = node(`ip_adapter_${loaders.size + 1}`, 'load-ip-adapter', { ipadapter_file: b.adapter });
      loaders.set(b.adapter, ipa);
    }
    const proj = node(`projection_${n}`, 'ip-adapter-projection', { combine: 'concat' });
    link(ipa, 'ip_adapter', proj, 'ip_adapter');
    b.images.forEach((png, j) => {
      const img = node(`image_prompt_${n}_${j + 1}`, 'load-image', { image: ctx.casePath(png) });
      const enc = node(`vision_encode_${n}_${j + 1}`, 'clip-vision-encode', { crop: 'center' });
      link(cv, 'clip_vision', enc, 'clip_vision');
      link(img, 'image', enc, 'image');
      link(enc, 'embeds', proj, j === 0 ? 'embeds' : `embeds_${j + 1}`);
    });
    const apply = node(`apply_${n}`, 'apply-ip-adapter', { weight: b.scale, start_at: 0, end_at: 1 });
    link(model, 'model', apply, 'model');
    link(ipa, 'ip_adapter', apply, 'ip_adapter');
    link(proj, 'tokens', apply, 'tokens');
    if (b.mask) {
      const mi = node(`mask_image_${n}`, 'load-image', { image: ctx.casePath(b.mask) });
      const m = node(`mask_${n}`, 'image-to-mask', { channel: 'red' });
      link(mi, 'image', m, 'image');
      link(m, 'mask', apply, 'mask');
    }
    model = apply;
  });
  const pos = node('positive', 'text-encode', { text: s.prompt });
  const neg = node('negative', 'text-encode', { text: s.negative });
  link(ckpt, 'clip', pos, 'clip');
  link(ckpt, 'clip', neg, 'clip');
  const latent = node('empty_latent', 'empty-latent-image', { width: s.width, height: s.height, batch_size: 1 });
  const sampler = node('sampler', 'ddim-sampler', { seed: 0, steps: s.steps, cfg: s.cfg, eta: s.eta, denoise: 1 });
  link(model, 'model', sampler, 'model');
  link(pos, 'conditioning', sampler, 'positive');
  link(neg, 'conditioning', sampler, 'negative');
  link(latent, 'latent', sampler, 'latent');
  const dec = node('vae_decode', 'vae-decode');
  link(sampler, 'latent', dec, 'samples');
  link(ckpt, 'vae', dec, 'vae');
  const out = node('preview', 'preview-image');
  link(dec, 'image', out, 'images');
  return { format: 'ipadapter-studio/workflow', version: 4, nodes, edges, meta: { source: 'conformance' } };
}

/** What a run gives back: every node's outputs, the traces (per step and named), the sampler's checkpoint. */
export interface SlotsRun {
  outputs: Map<string, Record<string, unknown>>;
  steps: Map<string, Float32Array[]>;
  named: Map<string, Float32Array>;
  checkpoint: CheckpointRef | null;
}

export async function runSlots(ctx: Ctx, wf: Workflow, latents: Float32Array): Promise<SlotsRun> {
  const run: SlotsRun = { outputs: new Map(), steps: new Map(), named: new Map(), checkpoint: null };
  const engine = getEngine(ctx);
  engine.executor.clearCache();
  const res = await engine.run(wf, {
    noise: (req) => {
      if (req.purpose !== 'latents') throw new Error(`the case gives no tensor for the ${req.purpose} noise draw`);
      return latents.slice();
    },
    trace: (e) => {
      if (e.step === undefined) run.named.set(`${e.node}.${e.name}`, e.data.slice());
      else run.steps.set(e.name, [...(run.steps.get(e.name) ?? []), e.data.slice()]);
    },
    onNodeOutputs: (id, out) => {
      run.outputs.set(id, out);
      if (id === 'ckpt') run.checkpoint = (out.model as ModelValue).checkpoint;
    },
  });
  if (!res.ok) throw new Error(res.errors?.map((e) => e.message).join('; ') ?? res.error ?? 'run failed');
  return run;
}

const stack = (xs: (Float32Array | null | undefined)[]): Float32Array | null => {
  if (xs.some((x) => !x)) return null;
  const out = new Float32Array(xs.reduce((a, x) => a + x!.length, 0));
  let o = 0;
  for (const x of xs) {
    out.set(x!, o);
    o += x!.length;
  }
  return out;
};

/** Per-step tensors against the reference (steps stacked); a failure names its first diverging step. */
function stepsRow(group: string, name: string, got: Float32Array[] | undefined, expected: Float32Array, tol: { atol: number; rtol: number }): Row {
  if (!got?.length) return { group, case: name, status: 'fail', detail: 'the run reported no such intermediate' };
  const row = compare(group, name, stack(got)!, expected, tol);
  if (row.status === 'fail' && got.length * got[0]!.length === expected.length) {
    const per = got[0]!.length;
    const i = got.findIndex((g, k) => compare(group, name, g, expected.subarray(k * per, (k + 1) * per), tol).status === 'fail');
    if (i >= 0) row.detail = `first divergence at step ${i} of ${got.length}`;
  }
  return row;
}

/** The rows every case of these groups has: outputs, per-step tensors, prompt embeds, schedule, unknown fields. */
export async function commonRows(
  ctx: Ctx,
  group: string,
  c: CaseSpec,
  run: SlotsRun,
  spec: SlotsSpec,
  known: Parameters<typeof unknownFieldRows>[2],
): Promise<Row[]> {
  const rows = unknownFieldRows(group, c, known);
  const outs = c.outputs as Record<string, unknown>;
  const inter = c.intermediates as Record<string, unknown>;
  const tol = toleranceFor(c, 'latents');
  rows.push(
    compare(group, `${c.name} latents`, (run.outputs.get('sampler')?.latent as LatentValue | undefined)?.samples ?? [], ctx.f32(group, outs.latents), tol),
  );
  rows.push(
    compare(
      group,
      `${c.name} image`,
      (run.outputs.get('vae_decode')?.image as ImageValue | undefined)?.data ?? [],
      ctx.f32(group, outs.image),
      toleranceFor(c, 'image'),
    ),
  );
  rows.push(stepsRow(group, `${c.name} latents_after_step`, run.steps.get('latents_after_step'), ctx.f32(group, inter.latents_after_step), tol));
  rows.push(stepsRow(group, `${c.name} unet_noise_pred_per_step`, run.steps.get('noise_pred'), ctx.f32(group, inter.unet_noise_pred_per_step), tol));
  const embeds = (id: string) => (run.outputs.get(id)?.conditioning as { embeds?: Float32Array } | undefined)?.embeds;
  rows.push(compare(group, `${c.name} prompt_embeds`, stack([embeds('negative'), embeds('positive')]) ?? [], ctx.f32(group, inter.prompt_embeds), tol));
  rows.push(
    ...(await scheduleRows(group, c, (what) => `${c.name} ${what}`, getEngine(ctx).store, {
      checkpoint: run.checkpoint,
      steps: spec.steps,
      denoise: 1,
      stepsRan: run.steps.get('latents_after_step')?.length ?? 0,
      traced: run.named.get('sampler.timesteps'),
    })),
  );
  return rows;
}

/**
 * One branch's projection input and tokens as the reference stores them, [uncond, cond] (the projection's
 * traces): base adapters take image_embeds (zeros uncond), Plus / full-face the penultimate states (vision of
 * zero pixels uncond).
 */
export function branchTensors(run: SlotsRun, n: number): { input: Float32Array | null; tokens: Float32Array | null } {
  const tokens = run.outputs.get(`projection_${n}`)?.tokens as IpTokensValue | undefined;
  const input = stack([run.named.get(`projection_${n}.input_uncond`), run.named.get(`projection_${n}.input`)]);
  return { input, tokens: tokens ? stack([tokens.uncond, tokens.cond]) : null };
}

/** The mask a branch's Apply IP-Adapter was given (Image To Mask output). */
export const branchMask = (run: SlotsRun, n: number) => (run.outputs.get(`mask_${n}`)?.mask as MaskValue | undefined)?.data ?? null;

/** The case's params as numbers, with defaults. */
export function numParam(c: CaseSpec, k: string, d?: number): number {
  const v = (c.params as Record<string, unknown>)[k] ?? d;
  if (typeof v !== 'number') throw new Error(`case ${c.name}: params.${k} must be a number, found ${JSON.stringify(v)}`);
  return v;
}

/** The case's models by role, in order (ip_adapter may appear several times). */
export function roleModels(ctx: Ctx, c: CaseSpec): { pipeline: string; imageEncoder: string; adapters: string[] } {
  const list = (c.models ?? []) as { role?: string }[];
  const of = (role: string) => list.filter((e) => e.role === role).map((e, i) => ctx.resolve(e, `case ${c.name} models ${role}[${i}]`));
  const unknown = list.filter((e) => !['pipeline', 'image_encoder', 'ip_adapter'].includes(e.role ?? ''));
  if (unknown.length) throw new Error(`case ${c.name}: model roles ${unknown.map((e) => JSON.stringify(e.role)).join(', ')} are not understood`);
  const [pipeline] = of('pipeline');
  const [imageEncoder] = of('image_encoder');
  if (!pipeline || !imageEncoder) throw new Error(`case ${c.name}: the models list needs a pipeline and an image_encoder`);
  return { pipeline, imageEncoder, adapters: of('ip_adapter') };
}
