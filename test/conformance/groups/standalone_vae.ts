/**
 * Conformance cases of model-files' `standalone_vae` group: a VAE file replacing the checkpoint's.
 *
 * decode / encode: through the product's Load VAE path (nodes/load-vae.ts standaloneVae +
 * nodes/runtime/networks.ts vaeRuntime, a fresh model store), once per layout of the same weights:
 * `[vae-ft-mse-tiny.safetensors]` (the case's LDM file, no prefix, described by the base
 * pipeline's vae/config.json as diffusers' from_single_file(config=<base>/diffusers) is) and
 * `[sd-vae-ft-mse-tiny]` (the diffusers folder, models.vae_diffusers, its own config.json).
 * txt2img / img2img: the pipeline runner (workflow JSON through the executor, explicit noise),
 * with a Load VAE node for each VAE the case lists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelStore } from '../../../engine/model-store.js';
import { standaloneVae } from '../../../nodes/load-vae.js';
import { vaeRuntime } from '../../../nodes/runtime/networks.js';
import type { CaseHandler, Ctx } from '../context.js';
import { caseModels } from '../case-models.js';
import { pipelineImg2imgCase, pipelineIpAdapterCase } from '../pipeline-runner.js';
import { type VaeVariant, vaeCaseRows } from './vae.js';

let store: ModelStore | null = null;
/** The model store the decode / encode cases load through (one per process, as the engine has one). */
export function vaeStore(ctx: Ctx): ModelStore {
  store ??= new ModelStore({ cacheDir: ctx.cacheDir, provider: ctx.session.provider, precision: ctx.profile.precision });
  return store;
}

/** The base pipeline folder (its vae/config.json describes single VAE files): models.pipeline. */
export const basePipeline = (ctx: Ctx) => ctx.topModel('pipeline');

/** A VAE file or folder loaded as Load VAE loads it (a single file with the base pipeline's config). */
export function productVae(ctx: Ctx, file: string): VaeVariant {
  const config = fs.statSync(file).isDirectory() ? '' : basePipeline(ctx);
  return { label: path.basename(file), load: () => vaeRuntime(vaeStore(ctx), standaloneVae(file, config)) };
}

export const standaloneVaeGroup: CaseHandler = async (ctx, group, c) => {
  if (c.name === 'txt2img') return pipelineIpAdapterCase(ctx, group, c);
  if (c.name === 'img2img') return pipelineImg2imgCase(ctx, group, c);
  const { models, rows } = caseModels(ctx, group, c);
  if (!models.vaes.length) return [...rows, { group, case: c.name, status: 'fail', detail: 'the case lists no vae model' }];
  const variants = [...new Set([...models.vaes, ctx.topModel('vae_diffusers')])].map((v) => productVae(ctx, v));
  return [...rows, ...(await vaeCaseRows(ctx, group, c, variants))];
};
