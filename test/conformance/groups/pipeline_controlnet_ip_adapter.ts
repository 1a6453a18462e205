/**
 * Conformance cases of the `pipeline_controlnet_ip_adapter` group.
 *
 * controlnet_step0: the ControlNet alone on the stored step-0 inputs (text embeddings only,
 * control image in [0, 1], conditioning_scale from params), every residual compared, twice
 * through the product's loader: `[diffusers]` from the fixture's controlnet/ folder and `[ldm]`
 * from controlnet-ldm.safetensors with the folder's config.json passed explicitly (heads and
 * group counts are not in the shapes). One row per variant: the max error over the 13 outputs,
 * with the worst outputs named; a failing output gets its own row.
 *
 * txt2img_controlnet: the full pipeline through the executor (pending until the executor and
 * the ControlNet nodes exist).
 */
import * as path from 'node:path';
import { ControlNet, MID_RESIDUAL, downResidualName, loadControlNet } from '../../../models/controlnet.js';
import { type CaseHandler, type Ctx, type Row, compare, pending, toleranceFor } from '../context.js';

const nets = new Map<string, Promise<ControlNet>>();

function modelRel(ctx: Ctx, name: string): string {
  const m = ctx.cases.models[name] as unknown;
  const rel = typeof m === 'string' ? m : (m as { path?: string } | undefined)?.path;
  if (!rel) throw new Error(`cases.json: models.${name} is missing`);
  return rel;
}

function controlNetFor(ctx: Ctx, variant: 'diffusers' | 'ldm'): Promise<ControlNet> {
  let n = nets.get(variant);
  if (!n) {
    const dir = ctx.modelPath(modelRel(ctx, 'controlnet'));
    const loaded = variant === 'diffusers'
      ? loadControlNet(dir)
      : loadControlNet(ctx.modelPath(modelRel(ctx, 'controlnet_ldm')), { configPath: path.join(dir, 'config.json') });
    n = ControlNet.load(loaded, { cacheDir: ctx.cacheDir });
    nets.set(variant, n);
  }
  return n;
}

async function step0(ctx: Ctx, group: string, c: Parameters<CaseHandler>[2]): Promise<Row[]> {
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const params = (c.params ?? {}) as Record<string, unknown>;
  const scale = params.conditioning_scale;
  if (typeof scale !== 'number') return [{ group, case: c.name, status: 'fail', detail: 'params.conditioning_scale missing' }];
  const sampleDims = ctx.shape(group, inputs.latents);
  const batch = sampleDims[0];
  const ts = inputs.timestep;
  const timestep = typeof ts === 'number' ? new Float32Array(batch).fill(ts) : Float32Array.from(ctx.f32(group, ts));
  const rows: Row[] = [];
  for (const variant of ['diffusers', 'ldm'] as const) {
    const net = await controlNetFor(ctx, variant);
    const r = await net.run({
      sample: { data: ctx.f32(group, inputs.latents), dims: sampleDims },
      timestep,
      encoderHiddenStates: { data: ctx.f32(group, inputs.encoder_hidden_states), dims: ctx.shape(group, inputs.encoder_hidden_states) },
      cond: { data: ctx.f32(group, inputs.controlnet_cond), dims: ctx.shape(group, inputs.controlnet_cond) },
      scale,
    });
    const got = new Map<string, Float32Array>(r.down.map((d, i) => [downResidualName(i), d.data]));
    got.set(MID_RESIDUAL, r.mid.data);
    const per: Row[] = [];
    for (const name of Object.keys(outputs)) {
      const g = got.get(name);
      if (!g) { per.push({ group, case: `${c.name} [${variant}] ${name}`, status: 'fail', detail: 'output not produced' }); continue; }
      per.push(compare(group, `${c.name} [${variant}] ${name}`, g, ctx.f32(group, outputs[name]), toleranceFor(c, name)));
    }
    if (got.size !== Object.keys(outputs).length) {
      per.push({ group, case: `${c.name} [${variant}]`, status: 'fail', detail: `${got.size} outputs produced, ${Object.keys(outputs).length} expected` });
    }
    const failed = per.filter((x) => x.status !== 'pass');
    const worst = [...per].sort((a, b) => (b.maxAbsErr ?? 0) - (a.maxAbsErr ?? 0)).slice(0, 2);
    rows.push({
      group, case: `${c.name} [${variant}] ${per.length} residuals`,
      status: failed.length ? 'fail' : 'pass',
      maxAbsErr: Math.max(...per.map((x) => x.maxAbsErr ?? Infinity)),
      tolerance: per[0]?.tolerance,
      detail: `worst: ${worst.map((x) => `${x.case.split(' ').pop()} ${x.maxAbsErr?.toExponential(2)}`).join(', ')}`,
    }, ...failed);
  }
  return rows;
}

export const pipelineControlnetIpAdapter: CaseHandler = async (ctx, group, c) => {
  if (c.name === 'controlnet_step0') return step0(ctx, group, c);
  if (c.name === 'txt2img_controlnet') return pending(group, c, 'pending (executor: structural control nodes)');
  return [{ group, case: c.name, status: 'fail', detail: `unknown case ${c.name}` }];
};
