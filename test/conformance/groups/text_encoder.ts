/**
 * Conformance cases of the `text_encoder` group, each run twice through the product's loaders:
 * `[diffusers]` from the diffusers folder's text_encoder/ (weights + config.json), and `[ldm]`
 * from the single-file checkpoint (cond_stage_model.transformer.*) with the config passed
 * explicitly from the same diffusers folder (head counts cannot be read from shapes).
 */
import * as path from 'node:path';
import type { CaseHandler, Ctx, Row } from '../context.js';
import { compare, toleranceFor } from '../context.js';
import { ClipTextEncoder, loadClipTextConfig, type ClipTextConfig } from '../../../models/clip-text.js';
import { clipTextWeights } from '../../../models/keymaps/clip-text.js';
import { SafetensorsFile } from '../../../models/safetensors.js';
import { ClipTokenizer } from '../../../models/tokenizer.js';

const encoders = new Map<string, Promise<ClipTextEncoder>>();

function modelRel(ctx: Ctx, name: string): string {
  const m = ctx.cases.models[name] as unknown;
  const rel = typeof m === 'string' ? m : (m as { path?: string } | undefined)?.path;
  if (!rel) throw new Error(`cases.json: models.${name} is missing`);
  return rel;
}

/** variant -> weight file; both use the diffusers folder's config.json. */
function variants(ctx: Ctx): { dir: string; files: Record<string, string> } {
  const dir = ctx.modelPath(modelRel(ctx, 'text_encoder'));
  return { dir, files: { diffusers: path.join(dir, 'model.safetensors'), ldm: ctx.modelPath(modelRel(ctx, 'checkpoint_ldm')) } };
}

function encoderFor(ctx: Ctx, dir: string, file: string): Promise<ClipTextEncoder> {
  let enc = encoders.get(file);
  if (!enc) {
    const cfg: ClipTextConfig = loadClipTextConfig(dir);
    encoders.set(file, (enc = ClipTextEncoder.load(clipTextWeights(SafetensorsFile.open(file)), cfg, ctx.session)));
  }
  return enc;
}

export const textEncoder: CaseHandler = async (ctx, group, c) => {
  const idsRef = c.inputs?.input_ids;
  const shape = ctx.shape(group, idsRef); // (B, T)
  const flat = ctx.i64(group, idsRef);
  const ids = Array.from({ length: shape[0] }, (_, b) => Array.from(flat.subarray(b * shape[1], (b + 1) * shape[1]), Number));
  const rows: Row[] = [];
  // The stored ids must be what the product's tokenizer makes of the case's prompt (padded to T).
  const prompt = c.inputs?.prompt;
  if (typeof prompt === 'string') {
    const tok = ClipTokenizer.fromDir(ctx.modelPath(modelRel(ctx, 'tokenizer')));
    rows.push(compare(group, `${c.name} input_ids = tokenizer(prompt)`, tok.encode(prompt), flat, { atol: 0, rtol: 0, exact: true }));
  }
  const { dir, files } = variants(ctx);
  for (const [variant, file] of Object.entries(files)) {
    const { data } = await (await encoderFor(ctx, dir, file)).encode(ids);
    for (const [output, ref] of Object.entries(c.outputs ?? {})) {
      if (output !== 'last_hidden_state') {
        rows.push({ group, case: `${c.name} [${variant}] ${output}`, status: 'fail', detail: `unknown output ${output}` });
        continue;
      }
      rows.push(compare(group, `${c.name} [${variant}]`, data, ctx.f32(group, ref), toleranceFor(c, output)));
    }
  }
  return rows;
};
