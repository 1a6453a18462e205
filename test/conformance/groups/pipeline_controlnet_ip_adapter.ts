/**
 * Conformance cases of the `pipeline_controlnet_ip_adapter` group.
 *
 * controlnet_step0: the ControlNet alone on the stored step-0 inputs (text embeddings only,
 * control image in [0, 1], conditioning_scale from params), every residual compared, twice
 * through the product's loader: `[diffusers]` from the fixture's controlnet/ folder and `[ldm]`
 * from controlnet-ldm.safetensors with the folder's config.json passed explicitly (heads and
 * group counts are not in the shapes). One row per variant: the max error over the 13 outputs,
 * with the worst outputs named; a failing output gets its own row.
 *
 * txt2img_controlnet: the full pipeline through the executor, from workflow JSON built as a user
 * would wire it (Load Checkpoint, Load Image, CLIP Vision Encode, IP-Adapter Projection, Apply
 * IP-Adapter λ, Text Encode x2, Load ControlNet, Apply ControlNet on positive AND negative,
 * Empty Latent, DDIM Sampler, VAE Decode, Preview Image). The case's initial latents replace the
 * sampler's seeded draw through the executor's noise hook; per-step latents come from its trace.
 * `[diffusers]`: the diffusers folder + controlnet/ folder; `[ldm]`: checkpoint-ldm.safetensors +
 * controlnet-ldm.safetensors, each with its diffusers config named explicitly.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ControlNet, MID_RESIDUAL, downResidualName } from '../../../models/controlnet.js';
import { loadControlNet } from '../../../models/controlnet-load.js';
import type { Workflow } from '../../../engine/api.js';
import { Executor } from '../../../engine/executor.js';
import { ModelStore } from '../../../engine/model-store.js';
import { NODE_DEFS } from '../../../nodes/index.js';
import type { NodeDef } from '../../../nodes/types.js';
import type { CheckpointRef, ModelValue } from '../../../nodes/values.js';
import { scheduleRows, unknownFieldRows } from '../pipeline-runner.js';
import { type CaseHandler, type Ctx, type Row, compare, pending, runControlNetsInUNet, toleranceFor } from '../context.js';

const nets = new Map<string, Promise<ControlNet>>();

function modelRel(ctx: Ctx, name: string): string {
  const m = ctx.cases.models[name] as unknown;
  const rel = typeof m === 'string' ? m : (m as { path?: string } | undefined)?.path;
  if (!rel) throw new Error(`cases.json: models.${name} is missing`);
  return rel;
}

function controlNetFor(ctx: Ctx, variant: 'diffusers' | 'ldm'): Promise<ControlNet> {
  let n = nets.get(variant);
  if (!n) {
    const dir = ctx.modelPath(modelRel(ctx, 'controlnet'));
    const loaded =
      variant === 'diffusers'
        ? loadControlNet(dir)
        : loadControlNet(ctx.modelPath(modelRel(ctx, 'controlnet_ldm')), { configPath: path.join(dir, 'config.json') });
    n = ControlNet.load(loaded, ctx.session);
    nets.set(variant, n);
  }
  return n;
}

async function step0(ctx: Ctx, group: string, c: Parameters<CaseHandler>[2]): Promise<Row[]> {
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const params = (c.params ?? {}) as Record<string, unknown>;
  const scale = params.conditioning_scale;
  if (typeof scale !== 'number') return [{ group, case: c.name, status: 'fail', detail: 'params.conditioning_scale missing' }];
  const sampleDims = ctx.shape(group, inputs.latents);
  const batch = sampleDims[0];
  const ts = inputs.timestep;
  const timestep = typeof ts === 'number' ? new Float32Array(batch).fill(ts) : Float32Array.from(ctx.f32(group, ts));
  const rows: Row[] = [];
  for (const variant of ['diffusers', 'ldm'] as const) {
    const net = await controlNetFor(ctx, variant);
    const r = await net.run({
      sample: { data: ctx.f32(group, inputs.latents), dims: sampleDims },
      timestep,
      encoderHiddenStates: { data: ctx.f32(group, inputs.encoder_hidden_states), dims: ctx.shape(group, inputs.encoder_hidden_states) },
      cond: { data: ctx.f32(group, inputs.controlnet_cond), dims: ctx.shape(group, inputs.controlnet_cond) },
      scale,
    });
    const got = new Map<string, Float32Array>(r.down.map((d, i) => [downResidualName(i), d.data]));
    got.set(MID_RESIDUAL, r.mid.data);
    const per: Row[] = [];
    for (const name of Object.keys(outputs)) {
      const g = got.get(name);
      if (!g) {
        per.push({ group, case: `${c.name} [${variant}] ${name}`, status: 'fail', detail: 'output not produced' });
        continue;
      }
      per.push(compare(group, `${c.name} [${variant}] ${name}`, g, ctx.f32(group, outputs[name]), toleranceFor(c, name)));
    }
    if (got.size !== Object.keys(outputs).length) {
      per.push({ group, case: `${c.name} [${variant}]`, status: 'fail', detail: `${got.size} outputs produced, ${Object.keys(outputs).length} expected` });
    }
    const failed = per.filter((x) => x.status !== 'pass');
    const worst = [...per].sort((a, b) => (b.maxAbsErr ?? 0) - (a.maxAbsErr ?? 0)).slice(0, 2);
    rows.push(
      {
        group,
        case: `${c.name} [${variant}] ${per.length} residuals`,
        status: failed.length ? 'fail' : 'pass',
        maxAbsErr: Math.max(...per.map((x) => x.maxAbsErr ?? Infinity)),
        tolerance: per[0]?.tolerance,
        detail: `worst: ${worst.map((x) => `${x.case.split(' ').pop()} ${x.maxAbsErr?.toExponential(2)}`).join(', ')}`,
      },
      ...failed,
    );
  }
  return rows;
}

/** The workflow a user would build for the case (absolute model paths, one variant). */
export function controlNetWorkflow(ctx: Ctx, c: Parameters<CaseHandler>[2], variant: 'diffusers' | 'ldm'): Workflow {
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const params = (c.params ?? {}) as Record<string, number>;
  const png = (v: unknown) => ctx.casePath((v as { png: string }).png);
  const diffusersDir = ctx.modelPath(modelRel(ctx, 'unet')).replace(/[\\/]unet$/, '');
  const cnDir = ctx.modelPath(modelRel(ctx, 'controlnet'));
  const ckpt =
    variant === 'diffusers'
      ? { ckpt_name: diffusersDir, config: '', tokenizer: '' }
      : { ckpt_name: ctx.modelPath(modelRel(ctx, 'checkpoint_ldm')), config: diffusersDir, tokenizer: path.join(diffusersDir, 'tokenizer') };
  const cn =
    variant === 'diffusers'
      ? { control_net_name: cnDir, config: '' }
      : { control_net_name: ctx.modelPath(modelRel(ctx, 'controlnet_ldm')), config: path.join(cnDir, 'config.json') };
  const n = (id: string, type: string, p: Record<string, number | string | boolean> = {}) => ({ id, type, params: p });
  const e = (from: string, fp: string, to: string, tp: string) => ({ from: { node: from, port: fp }, to: { node: to, port: tp } });
  return {
    format: 'ipadapter-studio/workflow',
    version: 1,
    nodes: [
      n('ckpt', 'load-checkpoint', ckpt),
      n('ip_image', 'load-image', { image: png(inputs.ip_adapter_image) }),
      n('vision', 'load-clip-vision', { clip_name: ctx.modelPath(modelRel(ctx, 'image_encoder')) }),
      n('encode', 'clip-vision-encode', { crop: 'center' }),
      n('adapter', 'load-ip-adapter', { ipadapter_file: ctx.modelPath(modelRel(ctx, 'ip_adapter')) }),
      n('proj', 'ip-adapter-projection', {}),
      n('apply_ip', 'apply-ip-adapter', { weight: params.ip_adapter_scale, start_at: 0, end_at: 1 }),
      n('pos', 'text-encode', { text: String(inputs.prompt ?? '') }),
      n('neg', 'text-encode', { text: String(inputs.negative_prompt ?? '') }),
      n('cn', 'load-controlnet', cn),
      n('control_image', 'load-image', { image: png(inputs.control_image) }),
      n('apply_cn_pos', 'apply-controlnet', {
        strength: params.controlnet_conditioning_scale,
        start: params.control_guidance_start,
        end: params.control_guidance_end,
      }),
      n('apply_cn_neg', 'apply-controlnet', {
        strength: params.controlnet_conditioning_scale,
        start: params.control_guidance_start,
        end: params.control_guidance_end,
      }),
      n('latent', 'empty-latent-image', { width: params.width, height: params.height, batch_size: 1 }),
      n('sampler', 'ddim-sampler', { seed: 0, steps: params.num_inference_steps, cfg: params.guidance_scale, eta: params.eta ?? 0, denoise: 1 }),
      n('decode', 'vae-decode', {}),
      n('preview', 'preview-image', {}),
    ],
    edges: [
      e('vision', 'clip_vision', 'encode', 'clip_vision'),
      e('ip_image', 'image', 'encode', 'image'),
      e('adapter', 'ip_adapter', 'proj', 'ip_adapter'),
      e('encode', 'embeds', 'proj', 'embeds'),
      e('ckpt', 'model', 'apply_ip', 'model'),
      e('adapter', 'ip_adapter', 'apply_ip', 'ip_adapter'),
      e('proj', 'tokens', 'apply_ip', 'tokens'),
      e('ckpt', 'clip', 'pos', 'clip'),
      e('ckpt', 'clip', 'neg', 'clip'),
      e('pos', 'conditioning', 'apply_cn_pos', 'conditioning'),
      e('cn', 'control_net', 'apply_cn_pos', 'control_net'),
      e('control_image', 'image', 'apply_cn_pos', 'image'),
      e('neg', 'conditioning', 'apply_cn_neg', 'conditioning'),
      e('cn', 'control_net', 'apply_cn_neg', 'control_net'),
      e('control_image', 'image', 'apply_cn_neg', 'image'),
      e('apply_ip', 'model', 'sampler', 'model'),
      e('apply_cn_pos', 'conditioning', 'sampler', 'positive'),
      e('apply_cn_neg', 'conditioning', 'sampler', 'negative'),
      e('latent', 'latent', 'sampler', 'latent'),
      e('sampler', 'latent', 'decode', 'samples'),
      e('ckpt', 'vae', 'decode', 'vae'),
      e('decode', 'image', 'preview', 'images'),
    ],
  };
}

/** Fields of txt2img_controlnet this handler understands; any other key is a failing row. */
const TXT2IMG_KNOWN = {
  inputs: new Set(['prompt', 'negative_prompt', 'ip_adapter_image', 'control_image', 'latents']),
  params: new Set([
    'ip_adapter_scale',
    'num_inference_steps',
    'guidance_scale',
    'controlnet_conditioning_scale',
    'height',
    'width',
    'guess_mode',
    'control_guidance_start',
    'control_guidance_end',
    'timesteps',
    'eta',
  ]),
  outputs: new Set(['latents', 'image']),
  intermediates: new Set(['latents_after_step']),
};

/** Runs txt2img_controlnet through the executor with `defs` (the product's node list). */
export async function txt2imgControlnet(ctx: Ctx, group: string, c: Parameters<CaseHandler>[2], defs: NodeDef[]): Promise<Row[]> {
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const inter = (c.intermediates ?? {}) as Record<string, unknown>;
  const params = (c.params ?? {}) as Record<string, unknown>;
  const rows: Row[] = unknownFieldRows(group, c, TXT2IMG_KNOWN);
  // Guess mode (the ControlNet sees only the conditional half, residuals scaled per block) is not built.
  if (params.guess_mode !== undefined && params.guess_mode !== false)
    rows.push({
      group,
      case: `${c.name} params.guess_mode`,
      status: 'fail',
      detail: `guess_mode ${JSON.stringify(params.guess_mode)} is not supported by Apply ControlNet`,
    });
  const latents = ctx.f32(group, inputs.latents);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-cn-run-'));
  const store = new ModelStore({
    cacheDir: ctx.cacheDir,
    provider: ctx.session.provider,
    precision: ctx.profile.precision,
    ...(runControlNetsInUNet.value ? { controlNetsInUNet: true } : {}),
  });
  const executor = new Executor(defs, store);
  try {
    for (const variant of ['diffusers', 'ldm'] as const) {
      const steps: Float32Array[] = [];
      let final: Float32Array | null = null;
      let image: Float32Array | null = null;
      let checkpoint: CheckpointRef | null = null;
      let traced: Float32Array | undefined;
      const res = await executor.run({
        runId: `cn-${variant}`,
        workflow: controlNetWorkflow(ctx, c, variant),
        modelsDir: tmp,
        outputDir: tmp,
        tempDir: tmp,
        signal: new AbortController().signal,
        emit: () => {},
        noise: (req) => {
          if (req.purpose !== 'latents') throw new Error(`the case has no ${req.purpose} noise`);
          return Float32Array.from(latents);
        },
        trace: (t) => {
          if (t.node === 'sampler' && t.name === 'latents_after_step' && t.step !== undefined) steps[t.step] = Float32Array.from(t.data);
          if (t.node === 'sampler' && t.name === 'timesteps' && t.step === undefined) traced = Float32Array.from(t.data);
        },
        onNodeOutputs: (node, out) => {
          if (node === 'ckpt') checkpoint = (out.model as ModelValue).checkpoint;
          if (node === 'sampler') final = (out.latent as { samples: Float32Array }).samples;
          if (node === 'decode') image = (out.image as { data: Float32Array }).data;
        },
      });
      if (!res.ok) {
        rows.push({
          group,
          case: `${c.name} [${variant}]`,
          status: 'fail',
          detail: res.error + (res.errors ? `: ${res.errors.map((x) => `${x.node}: ${x.message}`).join('; ')}` : ''),
        });
        continue;
      }
      if (inter.latents_after_step) {
        const want = ctx.f32(group, inter.latents_after_step);
        const per = want.length / Math.max(1, steps.length);
        const stepRows = steps.map((s, i) =>
          compare(group, `${c.name} [${variant}] latents step ${i}`, s, want.subarray(i * per, (i + 1) * per), toleranceFor(c, 'latents')),
        );
        const bad = stepRows.find((r) => r.status !== 'pass');
        rows.push(bad ?? { ...stepRows[stepRows.length - 1], case: `${c.name} [${variant}] latents after each of ${steps.length} steps` });
      }
      rows.push(compare(group, `${c.name} [${variant}] latents`, final ?? new Float32Array(), ctx.f32(group, outputs.latents), toleranceFor(c, 'latents')));
      rows.push(compare(group, `${c.name} [${variant}] image`, image ?? new Float32Array(), ctx.f32(group, outputs.image), toleranceFor(c, 'image')));
      rows.push(
        ...(await scheduleRows(group, c, (what) => `${c.name} [${variant}] ${what}`, store, {
          checkpoint,
          steps: params.num_inference_steps as number,
          denoise: 1,
          stepsRan: steps.length,
          traced,
        })),
      );
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

/** The sampler applies structural control once the ControlNet nodes are in the node list. */
function controlReady(defs: NodeDef[]): boolean {
  return defs.some((d) => d.type === 'apply-controlnet') && defs.some((d) => d.type === 'load-controlnet');
}

export const pipelineControlnetIpAdapter: CaseHandler = async (ctx, group, c) => {
  if (c.name === 'controlnet_step0') return step0(ctx, group, c);
  if (c.name === 'txt2img_controlnet') {
    if (!controlReady(NODE_DEFS)) return pending(group, c, 'pending (executor: structural control nodes)');
    return txt2imgControlnet(ctx, group, c, NODE_DEFS);
  }
  return [{ group, case: c.name, status: 'fail', detail: `unknown case ${c.name}` }];
};
