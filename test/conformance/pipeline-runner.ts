/**
 * Pipeline cases run through the engine: each case becomes a workflow JSON built the way a user
 * builds it in the editor (Load Checkpoint, Load Image, CLIP Vision Encode, IP-Adapter
 * Projection, Apply IP-Adapter, Text Encode x2, Empty Latent / VAE Encode, DDIM Sampler, VAE
 * Decode, Preview Image; Load VAE, Load ControlNet + Apply ControlNet where the case has them),
 * run by the engine's executor once per model variant:
 * - a case without its own `models` list (tiny-sd15): once with the diffusers folder and once
 *   with the single-file checkpoint (the fixture's diffusers/ folder as its explicit config);
 * - a case with one (model-files: `{role, path, relative_to}`, case-models.ts): the models it
 *   names, once per standalone VAE it lists (an LDM file with the pipeline folder as its config,
 *   and a diffusers folder), through Load VAE.
 *
 * The explicit tensors of a case replace the engine's seeded noise through the NoiseSource
 * hook (engine/context.ts): `latents` for text-to-image, `posterior_noise` and
 * `add_noise_noise` for image-to-image. Intermediates come from the trace hook; per-step
 * tensors are compared step by step so a divergence names its step.
 *
 * Every field of a case is used or reported: params set the workflow (steps, cfg, eta, λ, size,
 * strength, ControlNet scale), `timesteps` / `latent_timestep` are compared with the schedule the
 * sampler used (scheduleRows), and a key this runner does not know is a failing row naming it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Workflow, WorkflowEdge, WorkflowNode } from '../../engine/api.js';
import type { NoiseRequest, NoiseSource } from '../../engine/context.js';
import { createEngine, type Engine } from '../../engine/engine.js';
import { schedulerFor } from '../../nodes/runtime/networks.js';
import type { ModelStore } from '../../engine/model-store.js';
import type { CheckpointRef, ConditioningValue, ImageEmbedsValue, ImageValue, IpTokensValue, LatentValue, ModelValue } from '../../nodes/values.js';
import { type CaseModels, caseModels } from './case-models.js';
import { compare, runControlNetsInUNet, toleranceFor, type CaseHandler, type CaseSpec, type Ctx, type Row } from './context.js';

let engine: Engine | null = null;
/** The engine the pipeline cases run on (one per process). */
export function getEngine(ctx: Ctx): Engine {
  if (!engine) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-pipeline-'));
    engine = createEngine({
      modelsDir: ctx.modelDir,
      outputDir: path.join(tmp, 'out'),
      provider: ctx.session.provider,
      cacheDir: ctx.cacheDir,
      precision: ctx.profile.precision,
      ...(runControlNetsInUNet.value ? { controlNetsInUNet: true } : {}),
      userDataDir: tmp,
      demo: false,
    });
  }
  return engine;
}

/** What a case's workflow contains. */
export interface PipelineSpec {
  prompt: string;
  negative: string;
  /** Image prompt files (none: no adapter nodes at all). */
  ipImages: string[];
  /** The IP-Adapter's scale λ (the case's ip_adapter_scale; Apply IP-Adapter's weight param). */
  scale?: number;
  steps: number;
  cfg: number;
  /** DDIM eta (0: deterministic; > 0 draws per-step noise the case must supply). */
  eta: number;
  width: number;
  height: number;
  /** img2img: the init image and the strength. */
  init?: { png: string; strength: number };
  /** A ControlNet on both prompts (diffusers' StableDiffusionControlNetPipeline with CFG): the control image and scale. */
  control?: { png: string; strength: number };
  /** Load LoRA nodes chained after the checkpoint (absolute files; strength_model / strength_clip). */
  loras?: { file: string; strengthModel: number; strengthClip: number }[];
  /** Another sampler node in place of the DDIM Sampler (the samplers folder: KSampler), with its params. */
  sampler?: { type: string; params: WorkflowNode['params'] };
}

/** The model files of one run of a case (absolute paths), and the label its rows carry. */
export interface ModelChoice {
  label: string;
  checkpoint: { ckpt_name: string; config?: string };
  clipVision?: string;
  ipAdapter?: string;
  /** A standalone VAE (Load VAE) replacing the checkpoint's for VAE Encode and VAE Decode. */
  vae?: { vae_name: string; config?: string };
  controlnet?: { control_net_name: string; config?: string };
}

/** tiny-sd15: the diffusers folder and the single-file checkpoint (with that folder as its config). */
export function checkpointVariants(ctx: Ctx): ModelChoice[] {
  const has = (k: string) => ctx.cases.models?.[k] !== undefined;
  const diffusers = path.dirname(ctx.topModel('unet')); // the diffusers folder holding unet/
  const common = {
    clipVision: has('image_encoder') ? ctx.topModel('image_encoder') : undefined,
    ipAdapter: has('ip_adapter') ? ctx.topModel('ip_adapter') : undefined,
  };
  const cn = has('controlnet') ? ctx.topModel('controlnet') : undefined;
  return [
    { label: 'diffusers', checkpoint: { ckpt_name: diffusers }, ...common, controlnet: cn ? { control_net_name: cn } : undefined },
    {
      label: 'ldm',
      checkpoint: { ckpt_name: ctx.topModel('checkpoint_ldm'), config: diffusers },
      ...common,
      controlnet: cn && has('controlnet_ldm') ? { control_net_name: ctx.topModel('controlnet_ldm'), config: cn } : undefined,
    },
  ];
}

/** model-files: the case's own models; one run per standalone VAE it lists. */
export function caseVariants(m: CaseModels): ModelChoice[] {
  if (!m.pipeline) throw new Error('the case lists no pipeline folder among its models');
  const base: Omit<ModelChoice, 'label'> = {
    checkpoint: { ckpt_name: m.pipeline },
    clipVision: m.imageEncoder,
    ipAdapter: m.ipAdapter,
    controlnet: m.controlnet ? { control_net_name: m.controlnet, config: m.controlnetConfig ?? '' } : undefined,
  };
  if (!m.vaes.length) return [{ ...base, label: path.basename(m.controlnet ?? m.ipAdapter ?? m.pipeline) }];
  // A single file is described by the pipeline's vae/config.json (diffusers from_single_file(config=<pipeline>, subfolder='vae')).
  return m.vaes.map((v) => ({ ...base, label: `vae ${path.basename(v)}`, vae: { vae_name: v, config: fs.statSync(v).isDirectory() ? '' : m.pipeline } }));
}

/** Builds the workflow JSON for a case, as a person would wire it. */
export function buildWorkflow(ctx: Ctx, s: PipelineSpec, m: ModelChoice): Workflow {
  const nodes: WorkflowNode[] = [];
  const edges: WorkflowEdge[] = [];
  const node = (id: string, type: string, params: WorkflowNode['params'] = {}) => {
    nodes.push({ id, type, params, ui: { x: nodes.length * 220, y: 0 } });
    return id;
  };
  const link = (from: string, fromPort: string, to: string, toPort: string) =>
    edges.push({ from: { node: from, port: fromPort }, to: { node: to, port: toPort } });
  const ckpt = node('ckpt', 'load-checkpoint', { ckpt_name: m.checkpoint.ckpt_name, ...(m.checkpoint.config ? { config: m.checkpoint.config } : {}) });
  const [vae, vaePort] = m.vae ? [node('vae', 'load-vae', { vae_name: m.vae.vae_name, config: m.vae.config ?? '' }), 'vae'] : [ckpt, 'vae'];
  // MODEL and CLIP come from the last Load LoRA of the chain (the checkpoint without LoRAs).
  let base = ckpt;
  (s.loras ?? []).forEach((l, i) => {
    const id = node(`lora_${i + 1}`, 'load-lora', { lora_name: l.file, strength_model: l.strengthModel, strength_clip: l.strengthClip });
    link(base, 'model', id, 'model');
    link(base, 'clip', id, 'clip');
    base = id;
  });
  let model = base;
  let modelPort = 'model';
  if (s.ipImages.length) {
    if (!m.clipVision || !m.ipAdapter) throw new Error('the case has image prompts but names no image encoder or IP-Adapter');
    const cv = node('clip_vision', 'load-clip-vision', { clip_name: m.clipVision });
    const ipa = node('ip_adapter', 'load-ip-adapter', { ipadapter_file: m.ipAdapter });
    const proj = node('projection', 'ip-adapter-projection', { combine: 'concat' });
    link(ipa, 'ip_adapter', proj, 'ip_adapter');
    s.ipImages.forEach((png, i) => {
      const img = node(`image_prompt_${i + 1}`, 'load-image', { image: ctx.casePath(png) });
      const enc = node(`vision_encode_${i + 1}`, 'clip-vision-encode', { crop: 'center' });
      link(cv, 'clip_vision', enc, 'clip_vision');
      link(img, 'image', enc, 'image');
      link(enc, 'embeds', proj, i === 0 ? 'embeds' : `embeds_${i + 1}`);
    });
    const apply = node('apply', 'apply-ip-adapter', { weight: s.scale ?? 1, start_at: 0, end_at: 1 });
    link(base, 'model', apply, 'model');
    link(ipa, 'ip_adapter', apply, 'ip_adapter');
    link(proj, 'tokens', apply, 'tokens');
    model = apply;
    modelPort = 'model';
  }
  const pos = node('positive', 'text-encode', { text: s.prompt });
  const neg = node('negative', 'text-encode', { text: s.negative });
  link(base, 'clip', pos, 'clip');
  link(base, 'clip', neg, 'clip');
  let [posOut, negOut] = [pos, neg];
  if (s.control) {
    if (!m.controlnet) throw new Error('the case has a control image but names no ControlNet');
    const cn = node('controlnet', 'load-controlnet', { control_net_name: m.controlnet.control_net_name, config: m.controlnet.config ?? '' });
    const img = node('control_image', 'load-image', { image: ctx.casePath(s.control.png) });
    [posOut, negOut] = [pos, neg].map((cond) => {
      const apply = node(`apply_cn_${cond}`, 'apply-controlnet', { strength: s.control!.strength, start: 0, end: 1 });
      link(cond, 'conditioning', apply, 'conditioning');
      link(cn, 'control_net', apply, 'control_net');
      link(img, 'image', apply, 'image');
      return apply;
    });
  }
  let latent: string;
  if (s.init) {
    const img = node('init_image', 'load-image', { image: ctx.casePath(s.init.png) });
    latent = node('vae_encode', 'vae-encode', { mode: 'sample', seed: 0 });
    link(img, 'image', latent, 'pixels');
    link(vae, vaePort, latent, 'vae');
  } else {
    latent = node('empty_latent', 'empty-latent-image', { width: s.width, height: s.height, batch_size: 1 });
  }
  const sampler = s.sampler
    ? node('sampler', s.sampler.type, s.sampler.params)
    : node('sampler', 'ddim-sampler', { seed: 0, steps: s.steps, cfg: s.cfg, eta: s.eta, denoise: s.init?.strength ?? 1 });
  link(model, modelPort, sampler, 'model');
  link(posOut, 'conditioning', sampler, 'positive');
  link(negOut, 'conditioning', sampler, 'negative');
  link(latent, 'latent', sampler, 'latent');
  const dec = node('vae_decode', 'vae-decode');
  link(sampler, 'latent', dec, 'samples');
  link(vae, vaePort, dec, 'vae');
  const out = node('preview', 'preview-image');
  link(dec, 'image', out, 'images');
  return { format: 'ipadapter-studio/workflow', version: 1, nodes, edges, meta: { source: 'conformance' } };
}

export interface Captured {
  /** The checkpoint the Load Checkpoint node resolved (what the sampler's scheduler is read from). */
  checkpoint: CheckpointRef | null;
  latents: Float32Array | null;
  image: Float32Array | null;
  steps: Map<string, Float32Array[]>;
  named: Map<string, Float32Array[]>;
}

/** Runs a workflow with explicit noise tensors; returns the sampler's latent, the image and the traces. */
export async function runCase(ctx: Ctx, wf: Workflow, noise: Partial<Record<NoiseRequest['purpose'], Float32Array>> | NoiseSource): Promise<Captured> {
  const cap: Captured = { checkpoint: null, latents: null, image: null, steps: new Map(), named: new Map() };
  const source: NoiseSource =
    typeof noise === 'function'
      ? noise
      : (req) => {
          const t = noise[req.purpose];
          if (!t) throw new Error(`the case gives no tensor for the ${req.purpose} noise draw`);
          return t.slice();
        };
  // Each variant is a run of its own: with only the VAE changed, the output cache would otherwise
  // serve the sampler, which then reports no per-step traces. (Model sessions stay loaded.)
  getEngine(ctx).executor.clearCache();
  const res = await getEngine(ctx).run(wf, {
    noise: source,
    trace: (e) => {
      const map = e.step === undefined ? cap.named : cap.steps;
      const key = e.step === undefined ? `${e.node}.${e.name}` : e.name;
      map.set(key, [...(map.get(key) ?? []), e.data.slice()]);
    },
    // Node outputs (also for nodes served from the cache, which emit no traces).
    onNodeOutputs: (node, out) => {
      const put = (k: string, v: Float32Array | null | undefined) => {
        if (v) cap.named.set(k, [v]);
      };
      if (node === 'ckpt') cap.checkpoint = (out.model as ModelValue).checkpoint;
      if (node === 'sampler') cap.latents = (out.latent as LatentValue).samples;
      if (node === 'vae_decode') cap.image = (out.image as ImageValue).data;
      if (node === 'positive' || node === 'negative') put(`${node}.prompt_embeds`, (out.conditioning as ConditioningValue).embeds);
      if (node === 'vision_encode_1') put(`${node}.image_embeds`, (out.embeds as ImageEmbedsValue).imageEmbeds);
      if (node === 'projection') {
        put('projection.ip_tokens', (out.tokens as IpTokensValue).cond);
        put('projection.ip_tokens_uncond', (out.tokens as IpTokensValue).uncond);
      }
    },
  });
  if (!res.ok) throw new Error(res.errors?.map((e) => e.message).join('; ') ?? res.error ?? 'run failed');
  return cap;
}

/** Compares a per-step tensor list with the reference (steps stacked on axis 0); names the first failing step. */
function compareSteps(group: string, name: string, got: Float32Array[] | undefined, expected: Float32Array, tol: { atol: number; rtol: number }): Row {
  if (!got?.length) return { group, case: name, status: 'fail', detail: 'the run reported no such intermediate' };
  const per = expected.length / got.length;
  const all = new Float32Array(got.reduce((a, g) => a + g.length, 0));
  got.forEach((g, i) => all.set(g, i * g.length));
  const row = compare(group, name, all, expected, tol);
  if (row.status === 'fail' && per === got[0].length) {
    for (let i = 0; i < got.length; i++) {
      const r = compare(group, name, got[i], expected.subarray(i * per, (i + 1) * per), tol);
      if (r.status === 'fail') {
        row.detail = `first divergence at step ${i} of ${got.length} (max err there ${r.maxAbsErr?.toExponential(3)})`;
        break;
      }
    }
  }
  return row;
}

/** Stacks the [uncond, cond] pair of a node-level trace, or cond/uncond from two traces. */
const cat = (...xs: (Float32Array | undefined)[]) => {
  if (xs.some((x) => !x)) return undefined;
  const out = new Float32Array(xs.reduce((a, x) => a + x!.length, 0));
  let o = 0;
  for (const x of xs) {
    out.set(x!, o);
    o += x!.length;
  }
  return out;
};

/** Case fields this runner understands; any other key is a failing row naming it. */
const KNOWN: Record<'inputs' | 'params' | 'outputs' | 'intermediates', Set<string>> = {
  inputs: new Set([
    'prompt',
    'negative_prompt',
    'ip_adapter_image',
    'ip_adapter_images',
    'latents',
    'image',
    'posterior_noise',
    'add_noise_noise',
    'control_image',
  ]),
  params: new Set([
    'ip_adapter_scale',
    'num_inference_steps',
    'guidance_scale',
    'height',
    'width',
    'eta',
    'timesteps',
    'strength',
    'latent_timestep',
    'controlnet_conditioning_scale',
    'guess_mode',
  ]),
  outputs: new Set(['latents', 'image']),
  // image_embeds_0 / ip_tokens_0: model-files' per-adapter names (adapter 0, the only one this runner wires).
  intermediates: new Set([
    'latents_after_step',
    'unet_noise_pred_per_step',
    'prompt_embeds',
    'image_embeds',
    'ip_tokens',
    'image_embeds_0',
    'ip_tokens_0',
    'image_tensor',
    'init_latents',
    'noisy_latents',
  ]),
};

/** One failing row per key of the case that `known` does not list. */
export function unknownFieldRows(group: string, c: CaseSpec, known: Partial<Record<keyof typeof KNOWN, Set<string>>>): Row[] {
  const rows: Row[] = [];
  for (const [field, names] of Object.entries(known) as [keyof typeof KNOWN, Set<string>][]) {
    for (const k of Object.keys((c[field] ?? {}) as object)) {
      if (!names.has(k))
        rows.push({ group, case: `${c.name} ${field}.${k}`, status: 'fail', detail: `${field}.${k} is not understood by the pipeline runner` });
    }
  }
  return rows;
}

export function specOf(c: CaseSpec, override: Partial<PipelineSpec> = {}): PipelineSpec {
  const inp = (c.inputs ?? {}) as Record<string, unknown>;
  const p = (c.params ?? {}) as Record<string, unknown>;
  const num = (k: string, d?: number): number => {
    const v = p[k] ?? d;
    if (typeof v !== 'number') throw new Error(`case ${c.name}: params.${k} must be a number, found ${JSON.stringify(p[k])}`);
    return v;
  };
  const imgs: string[] = [];
  const one = inp.ip_adapter_image as { png?: string } | undefined;
  if (one?.png) imgs.push(one.png);
  for (const x of (inp.ip_adapter_images as { png: string }[] | undefined) ?? []) imgs.push(x.png);
  const control = inp.control_image as { png?: string } | undefined;
  if (control && !control.png) throw new Error(`case ${c.name}: inputs.control_image must be {png}`);
  // Guess mode (the ControlNet sees only the conditional half, residuals scaled per block) is not built.
  if (p.guess_mode !== undefined && p.guess_mode !== false)
    throw new Error(`case ${c.name}: params.guess_mode ${JSON.stringify(p.guess_mode)} is not supported by Apply ControlNet`);
  return {
    prompt: String(inp.prompt ?? ''),
    negative: String(inp.negative_prompt ?? ''),
    ipImages: imgs,
    scale: p.ip_adapter_scale === undefined ? undefined : num('ip_adapter_scale'),
    steps: num('num_inference_steps'),
    cfg: num('guidance_scale'),
    eta: num('eta', 0),
    width: num('width', 128),
    height: num('height', 128),
    control: control?.png ? { png: control.png, strength: num('controlnet_conditioning_scale', 1) } : undefined,
    ...override,
  };
}

/**
 * The timestep schedule of a run against the case's `params.timesteps` (and `latent_timestep`, the
 * first of them in img2img). The sampler's trace carries no timesteps, so the schedule is the one
 * the engine's sampler computes: the scheduler nodes/runtime/networks.ts `schedulerFor` gives for the
 * checkpoint the Load Checkpoint node resolved, cut by denoise as diffusers' strength (an empty
 * latent at denoise 1 is the full schedule). A `timesteps` trace, when the sampler emits one, is
 * used instead. The count of steps the sampler actually ran (its per-step trace) must match too.
 */
export async function scheduleRows(
  group: string,
  c: CaseSpec,
  label: (what: string) => string,
  store: ModelStore,
  run: { checkpoint: CheckpointRef | null; steps: number; denoise: number; stepsRan: number; traced?: Float32Array },
): Promise<Row[]> {
  const p = (c.params ?? {}) as Record<string, unknown>;
  if (p.timesteps === undefined && p.latent_timestep === undefined) return [];
  let used: number[];
  let source: string;
  if (run.traced) {
    used = Array.from(run.traced);
    source = "the sampler's timesteps trace";
  } else {
    if (!run.checkpoint) return [{ group, case: label('timesteps'), status: 'fail', detail: 'the run reported no checkpoint to read its scheduler from' }];
    used = (await schedulerFor(store, run.checkpoint)).timestepsForStrength(run.steps, run.denoise);
    source = 'nodes/runtime/networks.ts schedulerFor (no timesteps trace)';
  }
  const rows: Row[] = [];
  const exact = { atol: 0, rtol: 0, exact: true };
  const detail = `schedule from ${source}; the sampler ran ${run.stepsRan} steps`;
  if (p.timesteps !== undefined) {
    if (!Array.isArray(p.timesteps)) return [{ group, case: label('timesteps'), status: 'fail', detail: 'params.timesteps is not a list' }];
    const row = compare(group, label('timesteps'), used, p.timesteps as number[], exact);
    if (run.stepsRan !== used.length) Object.assign(row, { status: 'fail', detail: `${detail}, but the schedule has ${used.length}` });
    rows.push({ ...row, detail: row.detail ?? detail });
  }
  if (p.latent_timestep !== undefined) rows.push(compare(group, label('latent_timestep'), used.slice(0, 1), [p.latent_timestep as number], exact));
  return rows;
}

/**
 * Runs one pipeline case in each model variant (checkpointVariants, or caseVariants for a case with
 * its own models list) and compares the outputs and intermediates. `noiseRefs` maps noise purposes
 * to the case's tensor references.
 */
export async function pipelineRows(
  ctx: Ctx,
  group: string,
  c: CaseSpec,
  spec: PipelineSpec,
  noiseRefs: Partial<Record<NoiseRequest['purpose'], unknown>>,
): Promise<Row[]> {
  const rows: Row[] = unknownFieldRows(group, c, KNOWN);
  let variants: ModelChoice[];
  if (c.models === undefined) {
    variants = checkpointVariants(ctx);
  } else {
    const listed = caseModels(ctx, group, c);
    rows.push(...listed.rows);
    variants = caseVariants(listed.models);
  }
  const noise: Partial<Record<NoiseRequest['purpose'], Float32Array>> = {};
  for (const [k, ref] of Object.entries(noiseRefs)) noise[k as NoiseRequest['purpose']] = ctx.f32(group, ref);
  const outs = (c.outputs ?? {}) as Record<string, unknown>;
  const inter = (c.intermediates ?? {}) as Record<string, unknown>;
  const tolL = toleranceFor(c, 'latents');
  for (const variant of variants) {
    const label = (what: string) => `${c.name} [${variant.label}] ${what}`;
    let cap: Captured;
    try {
      cap = await runCase(ctx, buildWorkflow(ctx, spec, variant), noise);
    } catch (e) {
      rows.push({ group, case: label('run'), status: 'fail', detail: `error: ${(e as Error).message}` });
      continue;
    }
    if (outs.latents) rows.push(compare(group, label('latents'), cap.latents ?? [], ctx.f32(group, outs.latents), tolL));
    if (outs.image) rows.push(compare(group, label('image'), cap.image ?? [], ctx.f32(group, outs.image), toleranceFor(c, 'image')));
    if (inter.latents_after_step)
      rows.push(compareSteps(group, label('latents_after_step'), cap.steps.get('latents_after_step'), ctx.f32(group, inter.latents_after_step), tolL));
    if (inter.unet_noise_pred_per_step)
      rows.push(compareSteps(group, label('unet_noise_pred_per_step'), cap.steps.get('noise_pred'), ctx.f32(group, inter.unet_noise_pred_per_step), tolL));
    const named = (k: string) => cap.named.get(k)?.[0];
    if (inter.prompt_embeds)
      rows.push(
        compare(
          group,
          label('prompt_embeds'),
          cat(named('negative.prompt_embeds'), named('positive.prompt_embeds')) ?? [],
          ctx.f32(group, inter.prompt_embeds),
          tolL,
        ),
      );
    for (const k of ['image_embeds', 'image_embeds_0'] as const) {
      if (!inter[k]) continue;
      const dims = ctx.shape(group, inter[k]);
      // [uncond, cond]: zeros and image_embeds (B, D); for Plus / full-face the penultimate states the projection took (B, I, T, D).
      const got =
        dims.length > 2
          ? cat(named('projection.input_uncond'), named('projection.input'))
          : cat(new Float32Array(dims.at(-1)!), named('vision_encode_1.image_embeds'));
      rows.push(compare(group, label(k), got ?? [], ctx.f32(group, inter[k]), tolL));
    }
    for (const k of ['ip_tokens', 'ip_tokens_0'] as const) {
      if (inter[k])
        rows.push(compare(group, label(k), cat(named('projection.ip_tokens_uncond'), named('projection.ip_tokens')) ?? [], ctx.f32(group, inter[k]), tolL));
    }
    if (inter.image_tensor) rows.push(compare(group, label('image_tensor'), named('vae_encode.image_tensor') ?? [], ctx.f32(group, inter.image_tensor), tolL));
    if (inter.init_latents) rows.push(compare(group, label('init_latents'), named('vae_encode.init_latents') ?? [], ctx.f32(group, inter.init_latents), tolL));
    if (inter.noisy_latents) rows.push(compare(group, label('noisy_latents'), named('sampler.start_latents') ?? [], ctx.f32(group, inter.noisy_latents), tolL));
    rows.push(
      ...(await scheduleRows(group, c, label, getEngine(ctx).store, {
        checkpoint: cap.checkpoint,
        steps: spec.steps,
        denoise: spec.init?.strength ?? 1,
        stepsRan: cap.steps.get('latents_after_step')?.length ?? 0,
        traced: named('sampler.timesteps'),
      })),
    );
  }
  return rows;
}

/** pipeline_ip_adapter / txt2img. */
export const pipelineIpAdapterCase: CaseHandler = (ctx, group, c) =>
  pipelineRows(ctx, group, c, specOf(c), { latents: (c.inputs as Record<string, unknown>).latents });

/** pipeline_text_only: ip_scale0 (adapter at the case's λ = 0) and no_adapter (no image prompt: no adapter nodes). */
export const pipelineTextOnlyCase: CaseHandler = (ctx, group, c) =>
  pipelineRows(ctx, group, c, specOf(c), { latents: (c.inputs as Record<string, unknown>).latents });

/** pipeline_img2img_ip_adapter / img2img: VAE Encode (sampled) -> DDIM with denoise = strength. */
export const pipelineImg2imgCase: CaseHandler = (ctx, group, c) => {
  const inp = c.inputs as Record<string, { png?: string }>;
  const p = c.params as Record<string, number>;
  if (!inp.image?.png || typeof p.strength !== 'number') throw new Error(`case ${c.name}: img2img needs inputs.image.png and params.strength`);
  const spec = specOf(c, { init: { png: inp.image.png, strength: p.strength } });
  return pipelineRows(ctx, group, c, spec, { posterior: inp.posterior_noise, add_noise: inp.add_noise_noise });
};

/** multiple_image_prompts / txt2img_two_images: two Load Image -> two encodes -> one projection (concat). */
export const txt2imgTwoImages: CaseHandler = (ctx, group, c) =>
  pipelineRows(ctx, group, c, specOf(c), { latents: (c.inputs as Record<string, unknown>).latents });
