/**
 * Conformance cases of the samplers folder's `torch_randn_cpu` group: torch.randn on the CPU
 * generator (models/sampling/torch-randn.ts), every value bit-exact.
 *   seed<s>.<shape>: one randn(shape) from manual_seed(seed) (`seed_decimal`: JSON numbers lose
 *     seeds above 2^53); params say which kernel path torch took and the seed's low 32 bits;
 *   sequence<k>: several randn calls in order on one generator;
 *   comfy_batch_inds<k> / comfy_no_inds: ComfyUI's prepare_noise with and without noise_inds.
 */
import { TorchGenerator, comfyPrepareNoise, randnPath, torchSeed } from '../../../models/sampling/torch-randn.js';
import { type CaseHandler, type Row, compare, toleranceFor } from '../context.js';

const shapeOf = (v: unknown, what: string): number[] => {
  if (!Array.isArray(v) || !v.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`${what} must be a list of sizes, found ${JSON.stringify(v)}`);
  return v as number[];
};

export const torchRandnCpu: CaseHandler = async (ctx, group, c) => {
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const params = (c.params ?? {}) as Record<string, unknown>;
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const rows: Row[] = [];
  const tol = (name: string) => {
    const t = toleranceFor(c, name);
    if (!t.exact) throw new Error(`${c.name}: the torch noise cases are exact, found tolerance ${JSON.stringify(c.tolerance)}`);
    return t;
  };
  // The recorded facts about the seed and the kernel path, as one row per case.
  const facts: string[] = [];
  const check = (_label: string, ok: boolean, detail: string) => {
    if (!ok) facts.push(detail);
  };
  const got: Record<string, Float32Array> = {};

  if ('seed_decimal' in inputs || 'shape' in inputs) {
    // seed<s>.<shape>
    const decimal = inputs.seed_decimal;
    if (typeof decimal !== 'string') throw new Error(`${c.name}: inputs.seed_decimal is not a string`);
    const seed = torchSeed(decimal);
    check('inputs.seed', Number(BigInt(decimal)) === inputs.seed, `seed ${String(inputs.seed)} is not ${decimal}`);
    const shape = shapeOf(inputs.shape, 'inputs.shape');
    const numel = shape.reduce((a, d) => a * d, 1);
    if (params.dtype !== 'float32' || params.device !== 'cpu')
      throw new Error(`${c.name}: only float32 on the cpu is implemented (params say ${String(params.dtype)} on ${String(params.device)})`);
    check('params.numel', params.numel === numel, `numel ${String(params.numel)} != ${numel}`);
    const path = randnPath(numel);
    const kernel = String(params.kernel_path);
    check(
      'params.kernel_path',
      path === 'serial' ? kernel.startsWith('serial normal_distribution<double>') : kernel.startsWith('normal_fill'),
      `torch took "${kernel}", we take ${path}`,
    );
    check(
      'params.low_32_bits_of_seed',
      params.low_32_bits_of_seed === Number(seed & 0xffffffffn),
      `low 32 bits ${String(params.low_32_bits_of_seed)} != ${seed & 0xffffffffn}`,
    );
    check('params.seed_mod_2**64', params['seed_mod_2**64'] === seed.toString(), `seed mod 2^64 ${String(params['seed_mod_2**64'])} != ${seed}`);
    rows.push({
      group,
      case: `${c.name} seed and kernel path`,
      status: facts.length ? 'fail' : 'pass',
      tolerance: 'exact',
      ...(facts.length ? { detail: facts.join('; ') } : {}),
    });
    got.noise = new TorchGenerator(seed).randn(shape);
  } else if ('shapes' in inputs) {
    // sequence<k>: one generator, randn called in order.
    if (typeof params.note !== 'string' || !params.note.includes('one generator'))
      throw new Error(`${c.name}: params.note does not describe one generator drawn in order`);
    const gen = new TorchGenerator(inputs.seed as number);
    (inputs.shapes as unknown[]).forEach((s, i) => {
      got[`draw${i}`] = gen.randn(shapeOf(s, `inputs.shapes[${i}]`));
    });
  } else if ('latent_shape' in inputs) {
    // comfy_batch_inds<k> / comfy_no_inds: prepare_noise(latent, seed, noise_inds).
    if (params.algorithm !== undefined && typeof params.algorithm !== 'string') throw new Error(`${c.name}: params.algorithm is not a description`);
    const inds = inputs.noise_inds;
    if (inds !== null && !Array.isArray(inds)) throw new Error(`${c.name}: inputs.noise_inds must be a list or null`);
    got.noise = comfyPrepareNoise(inputs.seed as number, shapeOf(inputs.latent_shape, 'inputs.latent_shape'), inds as number[] | null);
  } else {
    throw new Error(`${c.name}: a case this handler does not understand (inputs ${Object.keys(inputs).join(', ')})`);
  }

  for (const [name, ref] of Object.entries(outputs)) {
    const mine = got[name];
    if (!mine) {
      rows.push({ group, case: `${c.name} ${name}`, status: 'fail', detail: `no output ${name} computed` });
      continue;
    }
    const shape = ctx.shape(group, ref);
    if (shape.reduce((a, d) => a * d, 1) !== mine.length)
      rows.push({ group, case: `${c.name} ${name}`, status: 'fail', detail: `stored shape [${shape}] for ${mine.length} values` });
    else rows.push(compare(group, `${c.name} ${name}`, mine, ctx.f32(group, ref), tol(name)));
  }
  for (const name of Object.keys(got))
    if (!(name in outputs)) rows.push({ group, case: `${c.name} ${name}`, status: 'fail', detail: `the case stores no ${name}` });
  return rows;
};
