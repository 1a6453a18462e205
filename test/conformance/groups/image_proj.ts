/**
 * Conformance cases of the `image_proj` group: the case's adapter file (relative to the model
 * folder) through ImageProjector.load, input tensor -> ip_tokens. Unconditional cases are also
 * run through ImageProjector.unconditional (`[unconditional()]`): for a base adapter when the
 * stored image_embeds are all zero, for a Plus adapter when the case is named "uncond"
 * (the vision model's penultimate states for zero pixels, per the fixture README).
 */
import type { CaseHandler, Ctx, Row } from '../context.js';
import { compare, toleranceFor } from '../context.js';
import { ImageProjector, IpAdapterModel, checkAdapterMatchesVision } from '../../../models/ip-adapter.js';
import { fixtureVision } from './vision_encoder.js';

const cache = new Map<string, Promise<ImageProjector>>();

export function fixtureProjector(ctx: Ctx, rel: string): Promise<ImageProjector> {
  const file = ctx.modelPath(rel);
  let p = cache.get(file);
  if (!p) cache.set(file, (p = ImageProjector.load(IpAdapterModel.load(file), ctx.session)));
  return p;
}

export const imageProj: CaseHandler = async (ctx, group, c) => {
  if (typeof c.adapter !== 'string') throw new Error(`case ${c.name}: "adapter" (file name) is missing`);
  const proj = await fixtureProjector(ctx, c.adapter);
  const inputs = Object.entries(c.inputs ?? {});
  if (inputs.length !== 1 || inputs[0][0] !== proj.inputName) {
    throw new Error(`case ${c.name}: expected one input "${proj.inputName}" for a ${proj.adapter.kind} adapter, got ${inputs.map((i) => i[0]).join(', ')}`);
  }
  const ref = inputs[0][1];
  const x = { data: ctx.f32(group, ref), dims: ctx.shape(group, ref) };
  const rows: Row[] = [];
  for (const [output, r] of Object.entries(c.outputs ?? {})) {
    if (output !== 'ip_tokens') {
      rows.push({ group, case: `${c.name} [${output}]`, status: 'fail', detail: `unknown output ${output}` });
      continue;
    }
    const expected = ctx.f32(group, r);
    const tol = toleranceFor(c, output);
    rows.push(compare(group, `${c.name} [${proj.adapter.kind}]`, (await proj.project(x)).data, expected, tol));
    const uncond = proj.adapter.kind === 'base' ? x.data.every((v) => v === 0) : /uncond/.test(c.name);
    if (uncond) {
      const vision = await fixtureVision(ctx);
      checkAdapterMatchesVision(proj.adapter, vision.config, vision.weightsFile);
      rows.push(compare(group, `${c.name} [unconditional()]`, (await proj.unconditional(vision, x.dims[0])).data, expected, tol));
    }
  }
  return rows;
};
