/** The loader nodes' warning for a model file whose sampled weights are NaN / Inf or not weights (models/weight-sanity.ts), once per file identity. */
import type { ExecContext } from '../../engine/context.js';
import { weightValueProblem } from '../../models/weight-sanity.js';

export async function warnOnWeightValues(ctx: ExecContext, title: string, file: string): Promise<void> {
  if (!file) return;
  const why = await ctx.models.get(`weight-values|${ctx.models.fileKey(file)}`, () => weightValueProblem(file));
  if (why) ctx.log('warn', `${title} (${ctx.nodeId}): ${why}`);
}
