/**
 * Conformance cases of the `unet_step` group: one UNet evaluation (eps prediction) with and
 * without the IP-Adapter's decoupled cross-attention, each run twice through the product's
 * checkpoint loader: `[diffusers]` from the fixture's diffusers folder and `[ldm]` from the
 * single-file checkpoint with the diffusers folder passed as its explicit config (heads and group
 * counts cannot be read from shapes). ip_tokens are fed as the graph input; the cases' image_embeds /
 * penultimate states are checked to project to those tokens in the `inputs` case (helper B's
 * projector), and encoder_hidden_states to come from input_ids through each source's text encoder.
 * One graph/session per (source, adapter file), reused across cases.
 */
import * as path from 'node:path';
import { type LoadedCheckpoint, loadCheckpoint } from '../../../models/checkpoint.js';
import { ClipTextEncoder, loadClipTextConfig } from '../../../models/clip-text.js';
import { classifierFreeGuidance } from '../../../models/ddim.js';
import { IpAdapterModel } from '../../../models/ip-adapter.js';
import { prefixedWeights } from '../../../models/keymaps/clip-text.js';
import { SafetensorsFile } from '../../../models/safetensors.js';
import { UNetModel } from '../../../models/unet.js';
import { type CaseHandler, type CaseSpec, type Ctx, type Row, compare, toleranceFor } from '../context.js';
import { fixtureProjector } from './image_proj.js';

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
    ck = source === 'diffusers'
      ? loadCheckpoint(diffusersDir)
      : loadCheckpoint(ctx.modelPath(modelRel(ctx, 'checkpoint_ldm')), { configDir: diffusersDir });
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
    u = UNetModel.create(ck.unet.config, ck.unet.weights, { cacheDir: ctx.cacheDir, ipAdapter, name: `unet-${source}` });
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
  for (const k of Object.keys(inputs)) if (!KNOWN_INPUTS.has(k) && k !== 'ip_adapter_images') rows.push({ group, case: `${label} ${k}`, status: 'fail', detail: `unknown input ${k}` });
  for (const k of Object.keys(params)) if (!KNOWN_PARAMS.has(k)) rows.push({ group, case: `${label} ${k}`, status: 'fail', detail: `unknown param ${k}` });
  const adapter = typeof c.adapter === 'string' ? c.adapter : null;
  if (typeof inputs.timestep !== 'number') throw new Error(`case ${c.name}: timestep must be a number`);
  const tensor = (ref: unknown) => ({ data: ctx.f32(group, ref), dims: ctx.shape(group, ref) });
  const scale = typeof params.ip_adapter_scale === 'number' ? params.ip_adapter_scale : 1;
  if (adapter && !inputs.ip_tokens) throw new Error(`case ${c.name}: an adapter case without ip_tokens`);
  for (const source of SOURCES) {
    const unet = await fixtureUNet(ctx, source, adapter);
    const out = await unet.run({
      sample: tensor(inputs.latents),
      timestep: inputs.timestep,
      encoderHiddenStates: tensor(inputs.encoder_hidden_states),
      ipTokens: adapter ? tensor(inputs.ip_tokens) : undefined,
      ipScale: scale,
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

/**
 * The shared `inputs` case: the tensors the UNet cases consume are checked against their
 * producers: encoder_hidden_states = text encoder(input_ids) from each source's text-encoder
 * location, ip_tokens / plus.ip_tokens = the adapters' projections of image_embeds / penultimate states.
 */
async function sharedInputs(ctx: Ctx, group: string, c: CaseSpec): Promise<Row[]> {
  const rows: Row[] = [];
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const spec = ctx.cases.groups[group].cases;
  const adapterOf = (plus: boolean) => spec.find((x) => typeof x.adapter === 'string' && ((x.inputs as Record<string, unknown>)?.ip_tokens === (plus ? 'plus.ip_tokens' : 'ip_tokens')))?.adapter as string | undefined;
  const tensor = (ref: unknown) => ({ data: ctx.f32(group, ref), dims: ctx.shape(group, ref) });
  // Tolerances of the producing stages' own groups (text_encoder, image_proj) in cases.json.
  const tolOf = (g: string, out: string) => toleranceFor(ctx.cases.groups[g]?.cases[0] ?? { name: g }, out);
  for (const name of Object.keys(outputs)) {
    if (name === 'encoder_hidden_states') {
      const ids = ctx.i64(group, 'input_ids');
      const [B, T] = ctx.shape(group, 'input_ids');
      const rowsIds = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, (b + 1) * T), Number));
      for (const source of SOURCES) {
        const te = fixtureCheckpoint(ctx, source).textEncoder;
        if (!te?.configPath) throw new Error(`${source}: the checkpoint loader found no text encoder (or its config)`);
        const enc = await ClipTextEncoder.load(prefixedWeights(SafetensorsFile.open(te.weightsFile), te.prefix), loadClipTextConfig(te.configPath), { cacheDir: ctx.cacheDir });
        rows.push(compare(group, `inputs [${source}] encoder_hidden_states`, (await enc.encode(rowsIds)).data, ctx.f32(group, name), tolOf('text_encoder', 'last_hidden_state')));
        await enc.release();
      }
    } else if (name === 'ip_tokens' || name === 'plus.ip_tokens') {
      const plus = name.startsWith('plus.');
      const rel = adapterOf(plus);
      if (!rel) throw new Error(`no unet_step case uses ${name}`);
      const proj = await fixtureProjector(ctx, rel);
      const x = tensor(plus ? 'plus.penultimate_hidden_states' : 'image_embeds');
      const [B, I] = x.dims; // (B, images, ...) -> project each image
      const flat = { data: x.data, dims: [B * I, ...x.dims.slice(2)] };
      rows.push(compare(group, `inputs ${name} = projection(${plus ? 'penultimate' : 'image_embeds'})`, (await proj.project(flat)).data, ctx.f32(group, name), tolOf('image_proj', 'ip_tokens')));
    } else if (!['latents', 'image_embeds', 'plus.penultimate_hidden_states'].includes(name)) {
      rows.push({ group, case: `inputs ${name}`, status: 'fail', detail: `unknown shared tensor ${name}` });
    }
  }
  return rows;
}

export const unetStep: CaseHandler = async (ctx, group, c) => (c.name === 'inputs' ? sharedInputs(ctx, group, c) : runUNetCase(ctx, group, c));
