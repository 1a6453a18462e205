/**
 * Conformance cases of the `unet_step` group: one UNet evaluation (eps prediction) with and
 * without the IP-Adapter's decoupled cross-attention, each run twice through the product's
 * checkpoint loader: `[diffusers]` from the fixture's diffusers folder and `[ldm]` from the
 * single-file checkpoint with the diffusers folder passed as its explicit config (heads and group
 * counts cannot be read from shapes). ip_tokens are fed as the graph input; the cases' image_embeds /
 * penultimate states are checked to project to those tokens in the `inputs` case (helper B's
 * projector), and encoder_hidden_states to come from input_ids through each source's text encoder.
 * One graph/session per (source, adapter file), reused across cases. Each evaluation goes through
 * models/unet-call.ts `callUNet`, the function the sampler's model call uses, so these cases check
 * the feeds (timestep, tokens, per-layer scales) a user's run builds.
 */
import * as path from 'node:path';
import { type LoadedCheckpoint, loadCheckpoint } from '../../../models/checkpoint.js';
import { ClipTextEncoder, loadClipTextConfig } from '../../../models/clip-text.js';
import { classifierFreeGuidance } from '../../../models/ddim.js';
import { loadImageRGBA, clipPreprocess } from '../../../models/image-preprocess.js';
import { IpAdapterModel } from '../../../models/ip-adapter.js';
import { prefixedWeights } from '../../../models/keymaps/clip-text.js';
import { SafetensorsFile } from '../../../models/safetensors.js';
import { ClipTokenizer } from '../../../models/tokenizer.js';
import { UNetModel } from '../../../models/unet.js';
import { callUNet } from '../../../models/unet-call.js';
import { type CaseHandler, type CaseSpec, type Ctx, type Row, compare, toleranceFor } from '../context.js';
import { fixtureProjector } from './image_proj.js';
import { fixtureVision } from './vision_encoder.js';

export type Source = 'diffusers' | 'ldm';
export const SOURCES: Source[] = ['diffusers', 'ldm'];

function modelRel(ctx: Ctx, name: string): string {
  const m = ctx.cases.models[name] as unknown;
  const rel = typeof m === 'string' ? m : (m as { path?: string } | undefined)?.path;
  if (!rel) throw new Error(`cases.json: models.${name} is missing`);
  return rel;
}

const checkpoints = new Map<Source, LoadedCheckpoint>();

/** The fixture's SD model through loadCheckpoint: the diffusers folder, or the LDM file with that folder as config. */
export function fixtureCheckpoint(ctx: Ctx, source: Source): LoadedCheckpoint {
  let ck = checkpoints.get(source);
  if (!ck) {
    const diffusersDir = path.dirname(ctx.modelPath(modelRel(ctx, 'unet'))); // models.unet.path = <dir>/unet
    ck = source === 'diffusers' ? loadCheckpoint(diffusersDir) : loadCheckpoint(ctx.modelPath(modelRel(ctx, 'checkpoint_ldm')), { configDir: diffusersDir });
    checkpoints.set(source, ck);
  }
  return ck;
}

const unets = new Map<string, Promise<UNetModel>>();

/** A UNet session for (source, adapter file relative to the model folder, or null). */
export function fixtureUNet(ctx: Ctx, source: Source, adapterRel: string | null): Promise<UNetModel> {
  const key = `${source}\0${adapterRel ?? ''}`;
  let u = unets.get(key);
  if (!u) {
    const ck = fixtureCheckpoint(ctx, source);
    const ipAdapter = adapterRel ? IpAdapterModel.load(ctx.modelPath(adapterRel)) : undefined;
    u = UNetModel.create(ck.unet.config, ck.unet.weights, { ...ctx.session, ipAdapter, name: `unet-${source}` });
    unets.set(key, u);
  }
  return u;
}

const KNOWN_INPUTS = new Set(['latents', 'timestep', 'encoder_hidden_states', 'image_embeds', 'ip_tokens', 'penultimate_hidden_states']);
const KNOWN_PARAMS = new Set(['ip_adapter_scale', 'guidance_scale_for_noise_pred_cfg']);

/** Runs one UNet case (noise_pred, and noise_pred_cfg when asked) for every source. */
export async function runUNetCase(ctx: Ctx, group: string, c: CaseSpec, label = c.name): Promise<Row[]> {
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const params = (c.params ?? {}) as Record<string, unknown>;
  const rows: Row[] = [];
  for (const k of Object.keys(inputs))
    if (!KNOWN_INPUTS.has(k) && k !== 'ip_adapter_images') rows.push({ group, case: `${label} ${k}`, status: 'fail', detail: `unknown input ${k}` });
  for (const k of Object.keys(params)) if (!KNOWN_PARAMS.has(k)) rows.push({ group, case: `${label} ${k}`, status: 'fail', detail: `unknown param ${k}` });
  const adapter = typeof c.adapter === 'string' ? c.adapter : null;
  if (typeof inputs.timestep !== 'number') throw new Error(`case ${c.name}: timestep must be a number`);
  const tensor = (ref: unknown) => ({ data: ctx.f32(group, ref), dims: ctx.shape(group, ref) });
  const scale = typeof params.ip_adapter_scale === 'number' ? params.ip_adapter_scale : 1;
  if (adapter && !inputs.ip_tokens) throw new Error(`case ${c.name}: an adapter case without ip_tokens`);
  // The adapter's image inputs of the case must project to the ip_tokens it feeds; images (PNGs) must encode to them.
  const imageInput = inputs.image_embeds !== undefined ? 'image_embeds' : inputs.penultimate_hidden_states !== undefined ? 'penultimate_hidden_states' : null;
  if (imageInput && adapter)
    rows.push(await projectionRow(ctx, group, `${label} ip_tokens = projection(${imageInput})`, adapter, inputs[imageInput], inputs.ip_tokens));
  if (Array.isArray(inputs.ip_adapter_images)) {
    const pngs = (inputs.ip_adapter_images as { png: string }[]).map((x) => x.png);
    if (imageInput !== 'image_embeds') throw new Error(`case ${c.name}: ip_adapter_images without image_embeds`);
    rows.push(
      compare(
        group,
        `${label} image_embeds = [zeros, vision(${pngs.join(', ')})]`,
        (await embedsOfImages(ctx, pngs)).embeds,
        ctx.f32(group, inputs.image_embeds),
        stageTolerance(ctx, 'vision_encoder', 'image_embeds'),
      ),
    );
  }
  for (const source of SOURCES) {
    const unet = await fixtureUNet(ctx, source, adapter);
    const out = await callUNet(unet, {
      sample: tensor(inputs.latents),
      timestep: inputs.timestep,
      encoderHiddenStates: tensor(inputs.encoder_hidden_states),
      ipAdapter: adapter ? { tokens: tensor(inputs.ip_tokens), scale } : undefined,
    });
    for (const [name, ref] of Object.entries(c.outputs ?? {})) {
      const rowName = `${label} [${source}]${name === 'noise_pred' ? '' : ` ${name}`}`;
      if (name === 'noise_pred') {
        rows.push(compare(group, rowName, out.data, ctx.f32(group, ref), toleranceFor(c, name)));
      } else if (name === 'noise_pred_cfg') {
        const g = params.guidance_scale_for_noise_pred_cfg;
        if (typeof g !== 'number') throw new Error(`case ${c.name}: noise_pred_cfg without guidance_scale_for_noise_pred_cfg`);
        const half = out.data.length / 2; // batch order [uncond, cond]
        const cfg = classifierFreeGuidance(out.data.subarray(0, half), out.data.subarray(half), g);
        rows.push(compare(group, rowName, cfg, ctx.f32(group, ref), toleranceFor(c, name)));
      } else {
        rows.push({ group, case: rowName, status: 'fail', detail: `unknown output ${name}` });
      }
    }
  }
  return rows;
}

/** Tolerance of a producing stage's own group (text_encoder, image_proj, ...) in cases.json. */
function stageTolerance(ctx: Ctx, group: string, output: string) {
  return toleranceFor(ctx.cases.groups[group]?.cases.find((x) => x.outputs && output in x.outputs) ?? { name: group }, output);
}

/** (B, I, ...) image inputs of the adapter -> its tokens, one projection per image, compared with `tokensRef`. */
async function projectionRow(ctx: Ctx, group: string, name: string, adapterRel: string, inputRef: unknown, tokensRef: unknown): Promise<Row> {
  const proj = await fixtureProjector(ctx, adapterRel);
  const dims = ctx.shape(group, inputRef);
  const [B, I] = dims;
  const flat = { data: ctx.f32(group, inputRef), dims: [B * I, ...dims.slice(2)] };
  return compare(group, name, (await proj.project(flat)).data, ctx.f32(group, tokensRef), stageTolerance(ctx, 'image_proj', 'ip_tokens'));
}

/** [zeros, vision(png_1..png_n)] image embeds, as the reference batches them (B = 2, I = n images). */
async function embedsOfImages(ctx: Ctx, pngs: string[]): Promise<{ embeds: Float32Array; penultimate: Float32Array; pixels: Float32Array[] }> {
  const vision = await fixtureVision(ctx);
  const pixels = await Promise.all(pngs.map(async (png) => clipPreprocess(await loadImageRGBA(ctx.casePath(png)), vision.preprocess)));
  const outs = await Promise.all(pixels.map((px) => vision.encode(px)));
  const zero = await vision.encode(vision.zeroPixels(1));
  const cat = (xs: Float32Array[]) => {
    const out = new Float32Array(xs.reduce((a, x) => a + x.length, 0));
    let o = 0;
    for (const x of xs) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  };
  const D = outs[0].imageEmbeds!.data.length;
  return {
    embeds: cat([new Float32Array(D * pngs.length), ...outs.map((o) => o.imageEmbeds!.data)]),
    penultimate: cat([...pngs.map(() => zero.penultimate.data), ...outs.map((o) => o.penultimate.data)]),
    pixels: pixels.map((px) => px.data),
  };
}

/**
 * The shared `inputs` case: every tensor the UNet cases consume is checked against its producer
 * through the product's own stages: input_ids = tokenizer([negative_prompt, prompt]),
 * pixel_values = CLIP preprocessing of ip_adapter_image, image_embeds = [zeros, vision(pixel_values)],
 * plus.penultimate_hidden_states = [vision(zero pixels), vision(pixel_values)], encoder_hidden_states =
 * each source's text encoder(input_ids), ip_tokens / plus.ip_tokens = the adapters' projections;
 * `latents` (random) must be the input of at least one UNet case.
 */
async function sharedInputs(ctx: Ctx, group: string, c: CaseSpec): Promise<Row[]> {
  const rows: Row[] = [];
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const spec = ctx.cases.groups[group].cases;
  const adapterOf = (tokens: string) =>
    spec.find((x) => typeof x.adapter === 'string' && (x.inputs as Record<string, unknown>)?.ip_tokens === tokens)?.adapter as string | undefined;
  for (const [name, ref] of Object.entries(inputs)) {
    if (name === 'input_ids') {
      const tok = ClipTokenizer.fromDir(ctx.modelPath(modelRel(ctx, 'tokenizer')));
      const ids = [String(inputs.negative_prompt ?? ''), String(inputs.prompt ?? '')].flatMap((t) => tok.encode(t));
      rows.push(compare(group, 'inputs input_ids = tokenizer([negative_prompt, prompt])', ids, ctx.i64(group, ref), { atol: 0, rtol: 0, exact: true }));
    } else if (name === 'pixel_values') {
      const png = (inputs.ip_adapter_image as { png?: string } | undefined)?.png;
      if (!png) throw new Error('unet_step/inputs: pixel_values without ip_adapter_image.png');
      const { pixels } = await embedsOfImages(ctx, [png]);
      rows.push(
        compare(group, `inputs pixel_values = preprocess(${png})`, pixels[0], ctx.f32(group, ref), stageTolerance(ctx, 'clip_preprocess', 'pixel_values')),
      );
    } else if (!['prompt', 'negative_prompt', 'ip_adapter_image'].includes(name)) {
      rows.push({ group, case: `inputs ${name}`, status: 'fail', detail: `unknown shared input ${name}` });
    }
  }
  for (const [name, ref] of Object.entries(outputs)) {
    if (name === 'encoder_hidden_states') {
      const ids = ctx.i64(group, inputs.input_ids);
      const [B, T] = ctx.shape(group, inputs.input_ids);
      const rowsIds = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, (b + 1) * T), Number));
      for (const source of SOURCES) {
        const te = fixtureCheckpoint(ctx, source).textEncoder;
        if (!te?.configPath) throw new Error(`${source}: the checkpoint loader found no text encoder (or its config)`);
        const enc = await ClipTextEncoder.load(
          prefixedWeights(SafetensorsFile.open(te.weightsFile), te.prefix),
          loadClipTextConfig(te.configPath),
          ctx.session,
        );
        rows.push(
          compare(
            group,
            `inputs [${source}] encoder_hidden_states`,
            (await enc.encode(rowsIds)).data,
            ctx.f32(group, ref),
            stageTolerance(ctx, 'text_encoder', 'last_hidden_state'),
          ),
        );
        await enc.release();
      }
    } else if (name === 'image_embeds' || name === 'plus.penultimate_hidden_states') {
      const png = (inputs.ip_adapter_image as { png?: string } | undefined)?.png;
      if (!png) throw new Error(`unet_step/inputs: ${name} without ip_adapter_image.png`);
      const got = await embedsOfImages(ctx, [png]);
      const plus = name.startsWith('plus.');
      rows.push(
        compare(
          group,
          `inputs ${name} = [${plus ? 'vision(zeros)' : 'zeros'}, vision(${png})]`,
          plus ? got.penultimate : got.embeds,
          ctx.f32(group, ref),
          stageTolerance(ctx, 'vision_encoder', plus ? 'penultimate_hidden_states' : 'image_embeds'),
        ),
      );
    } else if (name === 'ip_tokens' || name === 'plus.ip_tokens') {
      const plus = name.startsWith('plus.');
      const rel = adapterOf(name);
      if (!rel) throw new Error(`no unet_step case uses ${name}`);
      rows.push(
        await projectionRow(
          ctx,
          group,
          `inputs ${name} = projection(${plus ? 'penultimate' : 'image_embeds'})`,
          rel,
          plus ? 'plus.penultimate_hidden_states' : 'image_embeds',
          ref,
        ),
      );
    } else if (name === 'latents') {
      const want = ctx.tensorName(group, ref);
      const users = spec.filter(
        (x) =>
          x !== c &&
          x.name !== c.name &&
          (x.inputs as Record<string, unknown> | undefined)?.latents !== undefined &&
          ctx.tensorName(group, (x.inputs as Record<string, unknown>).latents) === want,
      ).length;
      if (!users) rows.push({ group, case: 'inputs latents', status: 'fail', detail: 'no UNet case takes these latents' });
    } else {
      rows.push({ group, case: `inputs ${name}`, status: 'fail', detail: `unknown shared tensor ${name}` });
    }
  }
  return rows;
}

export const unetStep: CaseHandler = async (ctx, group, c) => (c.name === 'inputs' ? sharedInputs(ctx, group, c) : runUNetCase(ctx, group, c));
