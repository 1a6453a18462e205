/**
 * Conformance cases of the `vision_encoder` group: the image encoder folder (cases.json ->
 * models.image_encoder.path) through ClipVision.load, one row per output. A case whose source
 * is "zeros" runs ClipVision.zeroPixels (the Plus unconditional input) after checking the
 * stored input is all zero; a case whose source is a PNG also runs the whole chain
 * PNG -> clipPreprocess -> encoder for image_embeds (`[from png]`).
 */
import type { CaseHandler, Ctx, Row } from '../context.js';
import { compare, toleranceFor } from '../context.js';
import { ClipVision } from '../../../models/clip-vision.js';
import { loadImageRGBA, clipPreprocess } from '../../../models/image-preprocess.js';

const cache = new Map<string, Promise<ClipVision>>();

/** The fixture's image encoder, loaded once per run through the product loader. */
export function fixtureVision(ctx: Ctx): Promise<ClipVision> {
  const spec = ctx.cases.models.image_encoder;
  if (!spec?.path) throw new Error('cases.json: models.image_encoder.path is missing');
  const dir = ctx.modelPath(spec.path);
  let v = cache.get(dir);
  if (!v) cache.set(dir, (v = ClipVision.load(dir, ctx.session)));
  return v;
}

const OUTPUTS = { image_embeds: 'imageEmbeds', penultimate_hidden_states: 'penultimate' } as const;

export const visionEncoder: CaseHandler = async (ctx, group, c) => {
  const vision = await fixtureVision(ctx);
  const ref = c.inputs?.pixel_values;
  const source = c.inputs?.source;
  let pixels = { data: ctx.f32(group, ref), dims: ctx.shape(group, ref) };
  if (source === 'zeros') {
    if (pixels.data.some((x) => x !== 0)) throw new Error(`case ${c.name}: source "zeros" but pixel_values are not all zero`);
    pixels = vision.zeroPixels(pixels.dims[0]);
  }
  const out = await vision.encode(pixels);
  const rows: Row[] = [];
  for (const [output, r] of Object.entries(c.outputs ?? {})) {
    const key = OUTPUTS[output as keyof typeof OUTPUTS];
    const got = key ? out[key] : undefined;
    if (!got) {
      rows.push({ group, case: `${c.name} [${output}]`, status: 'fail', detail: key ? 'model gave no such output' : `unknown output ${output}` });
      continue;
    }
    rows.push(compare(group, `${c.name} [${output}]`, got.data, ctx.f32(group, r), toleranceFor(c, output)));
  }
  if (typeof source === 'string' && source.endsWith('.png') && c.outputs?.image_embeds) {
    const px = clipPreprocess(await loadImageRGBA(ctx.casePath(source)), vision.preprocess);
    const e = await vision.encode(px);
    rows.push(
      compare(group, `${c.name} [from png, image_embeds]`, e.imageEmbeds!.data, ctx.f32(group, c.outputs.image_embeds), toleranceFor(c, 'image_embeds')),
    );
  } else if (source !== undefined && source !== 'zeros' && !(typeof source === 'string' && source.endsWith('.png'))) {
    rows.push({ group, case: c.name, status: 'fail', detail: `unknown source ${JSON.stringify(source)}` });
  }
  return rows;
};
