/**
 * Conformance cases of model-files' `ip_full_face_unet_step` group: one UNet evaluation with the
 * full-face IP-Adapter (MLPProjModel over all 257 penultimate vision tokens), with the models each
 * case lists (case-models.ts: the base pipeline folder, its image encoder, the full-face file).
 *
 * - `inputs`: every tensor the UNet cases consume, from its producer through the product's stages:
 *   input_ids = tokenizer([negative_prompt, prompt]), pixel_values = CLIP preprocessing of the
 *   portrait, penultimate_hidden_states = [vision(zero pixels), vision(pixel_values)] (hidden_states[-2]),
 *   ip_tokens = the full-face projection of those, encoder_hidden_states = the pipeline's text encoder.
 * - `image_proj`: penultimate states -> ip_tokens through ImageProjector (the adapter kind detected
 *   from its keys), and the unconditional half through ImageProjector.unconditional (vision(zeros)).
 * - `full_face.t<N>`: the UNet built with the adapter through loadCheckpoint + UNetModel.create and
 *   called through models/unet-call.ts `callUNet`, as the tiny-sd15 `unet_step` group and the
 *   sampler do; its ip_tokens are also checked to be the projection of its penultimate states.
 */
import * as path from 'node:path';
import { loadCheckpoint, type LoadedCheckpoint } from '../../../models/checkpoint.js';
import { ClipTextEncoder, loadClipTextConfig } from '../../../models/clip-text.js';
import { ClipVision } from '../../../models/clip-vision.js';
import { clipPreprocess, loadImageRGBA } from '../../../models/image-preprocess.js';
import { ImageProjector, IpAdapterModel, checkAdapterMatchesVision } from '../../../models/ip-adapter.js';
import { prefixedWeights } from '../../../models/keymaps/clip-text.js';
import { SafetensorsFile } from '../../../models/safetensors.js';
import { ClipTokenizer } from '../../../models/tokenizer.js';
import { UNetModel } from '../../../models/unet.js';
import { callUNet } from '../../../models/unet-call.js';
import { caseModels, type CaseModels } from '../case-models.js';
import { type CaseHandler, type CaseSpec, type Ctx, type Row, compare, toleranceFor } from '../context.js';

/** Loaded once per process, keyed by the resolved paths. */
const loaded = new Map<string, Promise<unknown>>();
function once<T>(key: string, make: () => Promise<T>): Promise<T> {
  let p = loaded.get(key) as Promise<T> | undefined;
  if (!p) loaded.set(key, (p = make()));
  return p;
}

interface FullFaceModels {
  pipeline: string;
  imageEncoder: string;
  ipAdapter: string;
}

function need(m: CaseModels, c: CaseSpec): FullFaceModels {
  if (!m.pipeline || !m.imageEncoder || !m.ipAdapter)
    throw new Error(`case ${c.name}: the case must list a pipeline, an image_encoder and the full-face ip_adapter`);
  return { pipeline: m.pipeline, imageEncoder: m.imageEncoder, ipAdapter: m.ipAdapter };
}

const checkpoint = (dir: string) => once(`ckpt|${dir}`, async () => loadCheckpoint(dir)) as Promise<LoadedCheckpoint>;
const vision = (ctx: Ctx, dir: string) => once(`vision|${dir}`, () => ClipVision.load(dir, ctx.session));

/** The adapter's projection, checked against the image encoder first (as IP-Adapter Projection does). */
const projector = (ctx: Ctx, m: FullFaceModels) =>
  once(`proj|${m.ipAdapter}|${m.imageEncoder}`, async () => {
    const adapter = IpAdapterModel.load(m.ipAdapter);
    if (adapter.kind !== 'full-face') throw new Error(`${m.ipAdapter}: detected as a ${adapter.kind} adapter, expected full-face`);
    const v = await vision(ctx, m.imageEncoder);
    checkAdapterMatchesVision(adapter, v.config, v.weightsFile);
    return ImageProjector.load(adapter, ctx.session);
  });

const unet = (ctx: Ctx, m: FullFaceModels) =>
  once(`unet|${m.pipeline}|${m.ipAdapter}`, async () => {
    const ck = await checkpoint(m.pipeline);
    return UNetModel.create(ck.unet.config, ck.unet.weights, { ...ctx.session, ipAdapter: IpAdapterModel.load(m.ipAdapter), name: 'unet-full-face' });
  });

/**
 * Tolerances of the stages this set has no group of its own for: tiny-sd15's (set A's) for the same
 * stage on the same models (clip_preprocess atol 0.03, text_encoder and vision_encoder atol 1e-4).
 */
const SET_A_TOL = { clipPreprocess: { atol: 0.03, rtol: 0 }, textEncoder: { atol: 1e-4, rtol: 0 }, vision: { atol: 1e-4, rtol: 0 } };

/** Tolerance of a group's case that has `output` (the producing stage's own tolerance). */
function stageTolerance(ctx: Ctx, group: string, output: string) {
  return toleranceFor(ctx.cases.groups[group]?.cases.find((x) => x.outputs && output in x.outputs && x.tolerance) ?? { name: group }, output);
}

/** (B, I, T, D) penultimate states -> (B, I, T, C) tokens through the projector. */
async function project(ctx: Ctx, group: string, m: FullFaceModels, ref: unknown): Promise<Float32Array> {
  const dims = ctx.shape(group, ref);
  const [B, I, ...rest] = dims;
  return (await (await projector(ctx, m)).project({ data: ctx.f32(group, ref), dims: [B * I, ...rest] })).data;
}

async function sharedInputs(ctx: Ctx, group: string, c: CaseSpec, m: FullFaceModels): Promise<Row[]> {
  const rows: Row[] = [];
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const png = (inputs.ip_adapter_image as { png?: string } | undefined)?.png;
  if (!png) throw new Error(`case ${c.name}: ip_adapter_image.png is missing`);
  const v = await vision(ctx, m.imageEncoder);
  const pixels = clipPreprocess(await loadImageRGBA(ctx.casePath(png)), v.preprocess);
  const prompts = [String(inputs.negative_prompt ?? ''), String(inputs.prompt ?? '')];
  const projTol = stageTolerance(ctx, group, 'ip_tokens');
  for (const [name, ref] of Object.entries(inputs)) {
    if (name === 'input_ids') {
      const tok = ClipTokenizer.fromDir(path.join(m.pipeline, 'tokenizer'));
      rows.push(
        compare(
          group,
          'inputs input_ids = tokenizer([negative_prompt, prompt])',
          prompts.flatMap((t) => tok.encode(t)),
          ctx.i64(group, ref),
          { atol: 0, rtol: 0, exact: true },
        ),
      );
    } else if (name === 'pixel_values') {
      rows.push(compare(group, `inputs pixel_values = preprocess(${png})`, pixels.data, ctx.f32(group, ref), SET_A_TOL.clipPreprocess));
    } else if (!['prompt', 'negative_prompt', 'ip_adapter_image'].includes(name)) {
      rows.push({ group, case: `inputs ${name}`, status: 'fail', detail: `unknown shared input ${name}` });
    }
  }
  for (const [name, ref] of Object.entries(outputs)) {
    if (name === 'encoder_hidden_states') {
      const ids = ctx.i64(group, inputs.input_ids);
      const [B, T] = ctx.shape(group, inputs.input_ids);
      const te = (await checkpoint(m.pipeline)).textEncoder;
      if (!te?.configPath) throw new Error(`${m.pipeline}: the checkpoint loader found no text encoder (or its config)`);
      const enc = await ClipTextEncoder.load(prefixedWeights(SafetensorsFile.open(te.weightsFile), te.prefix), loadClipTextConfig(te.configPath), ctx.session);
      const got = await enc.encode(Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, (b + 1) * T), Number)));
      rows.push(compare(group, 'inputs encoder_hidden_states = text_encoder(input_ids)', got.data, ctx.f32(group, ref), SET_A_TOL.textEncoder));
      await enc.release();
    } else if (name === 'penultimate_hidden_states') {
      const zero = await v.encode(v.zeroPixels(1));
      const img = await v.encode(pixels);
      const got = new Float32Array(zero.penultimate.data.length * 2);
      got.set(zero.penultimate.data);
      got.set(img.penultimate.data, zero.penultimate.data.length);
      rows.push(
        compare(group, `inputs penultimate_hidden_states = [vision(zeros), vision(${png})].hidden_states[-2]`, got, ctx.f32(group, ref), SET_A_TOL.vision),
      );
    } else if (name === 'ip_tokens') {
      rows.push(
        compare(
          group,
          'inputs ip_tokens = full-face projection(penultimate_hidden_states)',
          await project(ctx, group, m, inputs.penultimate_hidden_states ?? 'penultimate_hidden_states'),
          ctx.f32(group, ref),
          projTol,
        ),
      );
    } else if (name === 'latents') {
      const want = ctx.tensorName(group, ref);
      const users = ctx.cases.groups[group].cases.filter((x) => {
        const l = (x.inputs as Record<string, unknown> | undefined)?.latents;
        return x.name !== c.name && l !== undefined && ctx.tensorName(group, l) === want;
      });
      if (!users.length) rows.push({ group, case: 'inputs latents', status: 'fail', detail: 'no UNet case takes these latents' });
    } else {
      rows.push({ group, case: `inputs ${name}`, status: 'fail', detail: `unknown shared tensor ${name}` });
    }
  }
  return rows;
}

async function imageProjCase(ctx: Ctx, group: string, c: CaseSpec, m: FullFaceModels): Promise<Row[]> {
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const rows: Row[] = [];
  const proj = await projector(ctx, m);
  for (const k of Object.keys(inputs))
    if (k !== proj.inputName) rows.push({ group, case: `${c.name} ${k}`, status: 'fail', detail: `a full-face adapter takes ${proj.inputName}, not ${k}` });
  const ref = inputs[proj.inputName];
  for (const [output, r] of Object.entries(c.outputs ?? {})) {
    if (output !== 'ip_tokens') {
      rows.push({ group, case: `${c.name} ${output}`, status: 'fail', detail: `unknown output ${output}` });
      continue;
    }
    const expected = ctx.f32(group, r);
    const tol = toleranceFor(c, output);
    rows.push(compare(group, `${c.name} [${proj.adapter.kind}]`, await project(ctx, group, m, ref), expected, tol));
    // Batch [uncond, cond]: the first half is ImageProjector.unconditional (vision of zero pixels).
    const uncond = await proj.unconditional(await vision(ctx, m.imageEncoder));
    rows.push(compare(group, `${c.name} [unconditional()]`, uncond.data, expected.subarray(0, expected.length / 2), tol));
  }
  return rows;
}

const KNOWN_INPUTS = new Set(['latents', 'timestep', 'encoder_hidden_states', 'penultimate_hidden_states', 'ip_tokens']);

async function unetCase(ctx: Ctx, group: string, c: CaseSpec, m: FullFaceModels): Promise<Row[]> {
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const params = (c.params ?? {}) as Record<string, unknown>;
  const rows: Row[] = [];
  for (const k of Object.keys(inputs)) if (!KNOWN_INPUTS.has(k)) rows.push({ group, case: `${c.name} ${k}`, status: 'fail', detail: `unknown input ${k}` });
  for (const k of Object.keys(params)) if (k !== 'ip_adapter_scale') rows.push({ group, case: `${c.name} ${k}`, status: 'fail', detail: `unknown param ${k}` });
  if (typeof inputs.timestep !== 'number') throw new Error(`case ${c.name}: timestep must be a number`);
  if (typeof params.ip_adapter_scale !== 'number') throw new Error(`case ${c.name}: params.ip_adapter_scale must be a number`);
  if (inputs.penultimate_hidden_states !== undefined) {
    rows.push(
      compare(
        group,
        `${c.name} ip_tokens = projection(penultimate_hidden_states)`,
        await project(ctx, group, m, inputs.penultimate_hidden_states),
        ctx.f32(group, inputs.ip_tokens),
        stageTolerance(ctx, group, 'ip_tokens'),
      ),
    );
  }
  const tensor = (ref: unknown) => ({ data: ctx.f32(group, ref), dims: ctx.shape(group, ref) });
  const out = await callUNet(await unet(ctx, m), {
    sample: tensor(inputs.latents),
    timestep: inputs.timestep,
    encoderHiddenStates: tensor(inputs.encoder_hidden_states),
    ipAdapter: { tokens: tensor(inputs.ip_tokens), scale: params.ip_adapter_scale },
  });
  for (const [name, ref] of Object.entries(c.outputs ?? {})) {
    if (name === 'noise_pred') rows.push(compare(group, `${c.name} [${path.basename(m.pipeline)}]`, out.data, ctx.f32(group, ref), toleranceFor(c, name)));
    else rows.push({ group, case: `${c.name} ${name}`, status: 'fail', detail: `unknown output ${name}` });
  }
  return rows;
}

export const ipFullFaceUnetStep: CaseHandler = async (ctx, group, c) => {
  const listed = caseModels(ctx, group, c);
  const m = need(listed.models, c);
  const rows =
    c.name === 'inputs'
      ? await sharedInputs(ctx, group, c, m)
      : c.name === 'image_proj'
        ? await imageProjCase(ctx, group, c, m)
        : await unetCase(ctx, group, c, m);
  return [...listed.rows, ...rows];
};
