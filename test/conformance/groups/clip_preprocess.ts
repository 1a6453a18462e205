/**
 * Conformance cases of the `clip_preprocess` group: each case's PNG through loadImageRGBA and
 * clipPreprocess with the image encoder's preprocessor_config.json (cases.json ->
 * models.image_encoder.path) overlaid by the case's params. Rows: `pixel_values` and the
 * debugging stage `resized_cropped_uint8` (one uint8 step allowed unless the case says more).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CaseHandler, Row } from '../context.js';
import { compare, toleranceFor } from '../context.js';
import {
  PIL_RESAMPLE,
  loadImageRGBA,
  parsePreprocessorConfig,
  resizeAndCrop,
  rgbToPixelValues,
  type ClipPreprocessConfig,
} from '../../../models/image-preprocess.js';

const KNOWN_PARAMS = new Set(['size', 'crop_size', 'resample', 'rescale_factor', 'image_mean', 'image_std']);

/** "bicubic (PIL)" / 3 -> PIL filter id. */
function resampleId(v: unknown): number {
  if (typeof v === 'number') return v;
  const name = String(v)
    .toLowerCase()
    .replace(/\s*\(pil\)\s*/, '')
    .trim()
    .toUpperCase();
  const id = (PIL_RESAMPLE as Record<string, number>)[name];
  if (id === undefined) throw new Error(`unknown resample ${JSON.stringify(v)}`);
  return id;
}

/** The encoder folder's preprocessor config (CLIP defaults without one) with the case params on top. */
export function caseConfig(modelDir: string | null, params: Record<string, unknown>): ClipPreprocessConfig {
  for (const k of Object.keys(params)) if (!KNOWN_PARAMS.has(k)) throw new Error(`unknown param "${k}"`);
  let base: Record<string, unknown> = {};
  const file = modelDir ? path.join(modelDir, 'preprocessor_config.json') : null;
  if (file && fs.existsSync(file)) base = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const merged = { ...base, ...params };
  if (params.resample !== undefined) merged.resample = resampleId(params.resample);
  return parsePreprocessorConfig(merged);
}

export const clipPreprocess: CaseHandler = async (ctx, group, c) => {
  const enc = ctx.cases.models.image_encoder;
  const cfg = caseConfig(enc?.path ? ctx.modelPath(enc.path) : null, c.params ?? {});
  const image = c.inputs?.image as { png?: string; mode?: string; size_wh?: number[] } | undefined;
  if (!image?.png) throw new Error(`case ${c.name}: inputs.image.png is missing`);
  const img = await loadImageRGBA(ctx.casePath(image.png));
  if (image.size_wh && (image.size_wh[0] !== img.width || image.size_wh[1] !== img.height)) {
    throw new Error(`case ${c.name}: ${image.png} decodes to ${img.width}x${img.height}, cases.json says ${image.size_wh.join('x')}`);
  }
  if (image.mode && !['RGB', 'RGBA', 'L', 'LA', 'P'].includes(image.mode)) throw new Error(`case ${c.name}: unknown image mode ${image.mode}`);
  const rgb = resizeAndCrop(img, cfg);
  const rows: Row[] = [];
  for (const [output, ref] of Object.entries(c.outputs ?? {})) {
    const name = `${c.name} [${output}]`;
    if (output === 'pixel_values') {
      rows.push(compare(group, name, rgbToPixelValues(rgb, cfg).data, ctx.f32(group, ref), toleranceFor(c, output)));
    } else if (output === 'resized_cropped_uint8') {
      const t = (c.tolerance as Record<string, unknown> | undefined)?.[output];
      rows.push(compare(group, name, rgb.data, ctx.f32(group, ref), t ? toleranceFor(c, output) : { atol: 1, rtol: 0 }));
    } else {
      rows.push({ group, case: name, status: 'fail', detail: `unknown output ${output}` });
    }
  }
  return rows;
};
