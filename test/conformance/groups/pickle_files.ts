/**
 * Conformance cases of model-files' `pickle_files` group: torch.save pickles read by the product's
 * own reader (models/pickle.ts, nothing unpickled by Python) through the same loaders as their
 * safetensors twins, whose expected outputs they must reproduce.
 *
 * Each case first compares the pickle's tensor table with its twin's (names, dtypes, shapes and
 * bytes: exact). Then:
 * - ip_adapter_bin: the IP-Adapter pipeline with Load IP-Adapter on the .bin (pipeline runner);
 * - controlnet_pth: the ControlNet + IP-Adapter pipeline with Load ControlNet on the .pth and the
 *   base controlnet/ folder as its config (pipeline runner);
 * - the VAE pickles (`expected`: the standalone_vae group's cases apply unchanged): that group's
 *   decode and encode cases with Load VAE on the pickle, against its expected tensors.
 */
import { openTensorFile } from '../../../models/pickle.js';
import { readTensorBytes, readTensorF32 } from '../../../models/safetensors.js';
import type { CaseHandler, CaseSpec, Ctx, Row } from '../context.js';
import { caseModels } from '../case-models.js';
import { pipelineIpAdapterCase } from '../pipeline-runner.js';
import { productVae } from './standalone_vae.js';
import { vaeCaseRows } from './vae.js';

/** The pickle's tensors against its twin's: same names, dtypes and shapes, identical bytes. */
export function twinRow(group: string, name: string, pickle: string, twin: string): Row {
  const a = openTensorFile(pickle);
  const b = openTensorFile(twin);
  const ka = a.keys().sort();
  const kb = b.keys().sort();
  const row = (status: Row['status'], detail: string, maxAbsErr?: number): Row => ({
    group,
    case: `${name} tensors == twin`,
    status,
    tolerance: 'exact',
    detail,
    maxAbsErr,
  });
  if (JSON.stringify(ka) !== JSON.stringify(kb)) {
    const only = (x: string[], y: string[]) =>
      x
        .filter((k) => !y.includes(k))
        .slice(0, 3)
        .join(', ');
    return row('fail', `keys differ: only in the pickle: ${only(ka, kb) || '-'}; only in the twin: ${only(kb, ka) || '-'}`);
  }
  let bytes = 0;
  let maxAbs = 0;
  const bad: string[] = [];
  for (const k of kb) {
    const x = a.get(k);
    const y = b.get(k);
    if (x.dtype !== y.dtype || JSON.stringify(x.shape) !== JSON.stringify(y.shape)) {
      bad.push(`${k} (${x.dtype}${JSON.stringify(x.shape)} vs ${y.dtype}${JSON.stringify(y.shape)})`);
      continue;
    }
    bytes += x.length;
    if (readTensorBytes(x).equals(readTensorBytes(y))) continue;
    bad.push(k);
    const [fx, fy] = [readTensorF32(x), readTensorF32(y)];
    for (let i = 0; i < fx.length; i++) maxAbs = Math.max(maxAbs, Math.abs(fx[i] - fy[i]));
  }
  if (bad.length) return row('fail', `${bad.length} of ${kb.length} tensors differ: ${bad.slice(0, 3).join(', ')}`, maxAbs);
  return row('pass', `${kb.length} tensors, ${bytes} bytes identical`, 0);
}

/** The group's cases that a VAE pickle must reproduce (the `standalone_vae` group's decode and encode). */
function vaeReferenceCases(ctx: Ctx): CaseSpec[] {
  const g = ctx.cases.groups.standalone_vae;
  if (!g) throw new Error('cases.json has no standalone_vae group, whose cases the VAE pickles must reproduce');
  return g.cases.filter((c) => c.name === 'decode' || c.name === 'encode');
}

export const pickleFiles: CaseHandler = async (ctx, group, c) => {
  const { models, rows } = caseModels(ctx, group, c);
  if (c.name === 'ip_adapter_bin' || c.name === 'controlnet_pth') {
    const [pickle, twin] = c.name === 'ip_adapter_bin' ? [models.ipAdapter, models.ipAdapterTwin] : [models.controlnet, models.controlnetTwin];
    if (!pickle || !twin) return [...rows, { group, case: c.name, status: 'fail', detail: 'the case lists no pickle and twin for its kind' }];
    // The pipeline runner reads the case's models itself (and reports roles it does not know).
    return [twinRow(group, c.name, pickle, twin), ...(await pipelineIpAdapterCase(ctx, group, c))];
  }
  // A VAE pickle: `twin` names the safetensors file; the standalone_vae cases apply unchanged.
  if (models.vaes.length !== 1 || typeof c.twin !== 'object' || c.expected === undefined) {
    return [...rows, { group, case: c.name, status: 'fail', detail: 'not understood: expected one vae model, a twin and "expected" (a VAE pickle case)' }];
  }
  const [pickle] = models.vaes;
  const out: Row[] = [...rows, twinRow(group, c.name, pickle, ctx.resolve(c.twin, `case ${c.name} twin`))];
  for (const ref of vaeReferenceCases(ctx)) {
    out.push(...(await vaeCaseRows(ctx, group, ref, [productVae(ctx, pickle)], { refGroup: 'standalone_vae', prefix: `${c.name} ` })));
  }
  return out;
};
