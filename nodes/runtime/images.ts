/**
 * Writing images: IMAGE values to PNG bytes (sharp), our text chunks added on top (the
 * workflow JSON and the Automatic1111 parameters), files written atomically with ComfyUI-style
 * numbering (`<prefix>_00001_.png`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import type { ImageValue } from '../values.js';
import type { ImageRef } from '../../engine/api.js';
import type { ExecContext } from '../../engine/context.js';
import { a1111Parameters } from './parameters.js';
import { outputPath } from '../../engine/paths.js';
import { addTextChunks, PARAMETERS_CHUNK_KEY, WORKFLOW_CHUNK_KEY } from '../../engine/png.js';
import { stringifyWorkflow } from '../../engine/workflow.js';

/** Image `index` of a batch as 8-bit RGB PNG bytes (round(clamp(x) * 255)). */
export async function imageToPng(img: ImageValue, index: number): Promise<Buffer> {
  const n = img.width * img.height * 3;
  const px = Buffer.alloc(n);
  const off = index * n;
  for (let i = 0; i < n; i++) px[i] = Math.round(Math.min(1, Math.max(0, img.data[off + i])) * 255);
  return sharp(px, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png()
    .toBuffer();
}

/** The next free `<base>_NNNNN_.png` in `dir`. */
export function nextNumberedFile(dir: string, base: string): (i: number) => string {
  let max = 0;
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_(\\d{5,})_\\.png$`);
  if (fs.existsSync(dir))
    for (const f of fs.readdirSync(dir)) {
      const m = re.exec(f);
      if (m) max = Math.max(max, Number(m[1]));
    }
  return (i) => path.join(dir, `${base}_${String(max + 1 + i).padStart(5, '0')}_.png`);
}

/**
 * Writes every image of `img` under `dir`/`prefix` (prefix checked: inside `root` only) with the
 * workflow and parameters chunks. Returns the ImageRefs for the `output` event.
 */
export async function saveImages(img: ImageValue, ctx: ExecContext, root: string, prefix: string): Promise<ImageRef[]> {
  const target = outputPath(root, prefix); // throws on ../ or absolute prefixes
  const dir = path.dirname(target);
  const name = nextNumberedFile(dir, path.basename(target));
  const chunks: Record<string, string> = { [WORKFLOW_CHUNK_KEY]: stringifyWorkflow(ctx.workflow).trimEnd() };
  const profile = ctx.models.profile; // the graph precision the networks ran at (Settings: CPU precision)
  const params = a1111Parameters(
    ctx.ran ?? ctx.workflow, // the seed a primitive gave, not the sampler's hidden param
    ctx.nodeId,
    img.width,
    img.height,
    profile.precision === 'fp32' ? [] : [['Precision', `${profile.precision} (${profile.id})`]],
  );
  if (params) chunks[PARAMETERS_CHUNK_KEY] = params;
  const refs: ImageRef[] = [];
  for (let b = 0; b < img.batch; b++) {
    const file = name(b);
    writeFileAtomicSync(file, addTextChunks(await imageToPng(img, b), chunks));
    refs.push({ path: file, width: img.width, height: img.height });
  }
  return refs;
}
