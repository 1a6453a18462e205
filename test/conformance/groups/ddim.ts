/**
 * Conformance cases of the `ddim` group: the scheduler built from the fixture's own
 * `scheduler/scheduler_config.json` (cases.json -> models.scheduler.path), never from constants.
 */
import * as path from 'node:path';
import { DDIMScheduler, loadSchedulerConfig } from '../../../models/ddim.js';
import { type CaseHandler, type Ctx, type Row, compare, toleranceFor } from '../context.js';

function scheduler(ctx: Ctx): DDIMScheduler {
  const rel = ctx.cases.models.scheduler?.path;
  if (!rel) throw new Error('cases.json: models.scheduler.path is missing');
  return new DDIMScheduler(loadSchedulerConfig(path.join(ctx.modelPath(rel), 'scheduler_config.json')));
}

export const ddim: CaseHandler = async (ctx, group, c) => {
  const s = scheduler(ctx);
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const params = (c.params ?? {}) as Record<string, unknown>;
  const rows: Row[] = [];

  if (c.name === 'alphas_cumprod') {
    for (const [name, ref] of Object.entries(outputs)) {
      const got = name === 'alphas_cumprod' ? s.alphasCumprod : name === 'betas' ? s.betas : null;
      if (!got) throw new Error(`ddim/${c.name}: unknown output ${name}`);
      rows.push(compare(group, `${c.name} ${name}`, got, ctx.f32(group, ref), toleranceFor(c, name)));
    }
    if (typeof params.final_alpha_cumprod === 'number') {
      rows.push(compare(group, `${c.name} final_alpha_cumprod`, [s.finalAlphaCumprod], [params.final_alpha_cumprod], toleranceFor(c, 'final_alpha_cumprod')));
    }
    return rows;
  }

  const n = params.num_inference_steps;
  if (typeof n !== 'number') throw new Error(`ddim/${c.name}: params.num_inference_steps is missing`);
  const timesteps = s.setTimesteps(n);

  if (outputs.timesteps !== undefined) {
    const tol = toleranceFor(c, 'timesteps');
    // The tensor when the group file has it, else the case's own `values` list.
    const ref = outputs.timesteps as { tensor?: string };
    const file = ctx.groupFile(group);
    const expected = ref.tensor && file.has(ref.tensor) ? ctx.i64(group, ref) : (c.values as number[] | undefined);
    if (!expected) throw new Error(`ddim/${c.name}: no expected timesteps (neither tensor ${ref.tensor} nor values)`);
    rows.push(compare(group, c.name, timesteps, expected, tol));
    if (ref.tensor && file.has(ref.tensor) && Array.isArray(c.values)) {
      rows.push(compare(group, `${c.name} values`, timesteps, c.values as number[], tol));
    }
    return rows;
  }

  if (outputs.prev_sample !== undefined) {
    const t = params.timestep as number;
    const inputs = (c.inputs ?? {}) as Record<string, unknown>;
    if (typeof params.prev_timestep === 'number') {
      rows.push(compare(group, `${c.name} prev_timestep`, [s.prevTimestep(t)], [params.prev_timestep], { atol: 0, rtol: 0, exact: true }));
    }
    const { prevSample } = s.step(ctx.f32(group, inputs.model_output), t, ctx.f32(group, inputs.sample), { eta: (params.eta as number | undefined) ?? 0 });
    rows.push(compare(group, `${c.name} prev_sample`, prevSample, ctx.f32(group, outputs.prev_sample), toleranceFor(c, 'prev_sample')));
    return rows;
  }
  throw new Error(`ddim/${c.name}: case has no output this handler understands (${Object.keys(outputs).join(', ')})`);
};
