/**
 * A case's own `models` list (model-files schema: `{role, path, relative_to}` entries) read into
 * what the workflow needs. Every role is one this table knows; any other role is a failing row,
 * so a model the reference used is never silently left out of the run.
 */
import type { CaseSpec, Ctx, Row } from './context.js';

export interface CaseModels {
  /** A diffusers StableDiffusionPipeline folder (UNet, text encoder, tokenizer, scheduler, VAE). */
  pipeline?: string;
  imageEncoder?: string;
  ipAdapter?: string;
  /** A file with the same tensors as ipAdapter (a pickle's safetensors twin). */
  ipAdapterTwin?: string;
  /** Standalone VAEs replacing the pipeline's; several = the same weights in several layouts, each run. */
  vaes: string[];
  controlnet?: string;
  /** The diffusers ControlNet folder whose config.json describes a single-file ControlNet. */
  controlnetConfig?: string;
  controlnetTwin?: string;
  /** LoRA files (role 'lora'), in the order they are applied (groups/lora.ts gives their strengths). */
  loras: string[];
}

type Put = (m: CaseModels, p: string) => void;
const ROLES: Record<string, Put> = {
  pipeline: (m, p) => {
    m.pipeline = p;
  },
  'pipeline (unet, text_encoder, tokenizer, scheduler)': (m, p) => {
    m.pipeline = p;
  },
  image_encoder: (m, p) => {
    m.imageEncoder = p;
  },
  ip_adapter: (m, p) => {
    m.ipAdapter = p;
  },
  'ip_adapter (full face)': (m, p) => {
    m.ipAdapter = p;
  },
  'ip_adapter twin (same tensors)': (m, p) => {
    m.ipAdapterTwin = p;
  },
  vae: (m, p) => {
    m.vaes.push(p);
  },
  'vae (same weights)': (m, p) => {
    m.vaes.push(p);
  },
  controlnet: (m, p) => {
    m.controlnet = p;
  },
  'controlnet config (+ same weights)': (m, p) => {
    m.controlnetConfig = p;
  },
  'controlnet twin (same tensors)': (m, p) => {
    m.controlnetTwin = p;
  },
  lora: (m, p) => {
    m.loras.push(p);
  },
};

/** The case's models by role; `rows` has a failing row per entry this table does not understand. */
export function caseModels(ctx: Ctx, group: string, c: CaseSpec): { models: CaseModels; rows: Row[] } {
  const models: CaseModels = { vaes: [], loras: [] };
  const rows: Row[] = [];
  const list = c.models;
  if (!Array.isArray(list)) return { models, rows: [{ group, case: `${c.name} models`, status: 'fail', detail: 'the case has no models list' }] };
  list.forEach((e: unknown, i: number) => {
    const role = (e as { role?: unknown } | null)?.role;
    const put = typeof role === 'string' ? ROLES[role] : undefined;
    if (!put) {
      rows.push({ group, case: `${c.name} models[${i}]`, status: 'fail', detail: `role ${JSON.stringify(role)} is not understood by the runner` });
      return;
    }
    try {
      put(models, ctx.resolve(e, `case ${c.name} models[${i}]`));
    } catch (err) {
      rows.push({ group, case: `${c.name} models[${i}]`, status: 'fail', detail: (err as Error).message });
    }
  });
  return { models, rows };
}
