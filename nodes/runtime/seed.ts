/**
 * The params of a node that draws noise, declared once: `seed`, `control_after_generate` and
 * `noise` (engine/seed.ts says what each means), and the node's draws through ctx.noise.
 *
 * A sampler node puts `...SEED_PARAMS` into its params and asks `seededDraws(ctx, params)` for
 * its noise: `initial(purpose, shape)` for the starting noise (ComfyUI prepare_noise),
 * `sampler(shape)` for the per-step noise of ancestral / SDE samplers, drawn in order like
 * ComfyUI's noise_sampler calls (with `torch`: randn from manual_seed(seed + 1), call k = draw k),
 * and `eta(shape, step)` for DDIM's variance noise (diffusers: continues the starting generator).
 */
import type { ExecContext, NoiseRequest } from '../../engine/context.js';
import { NOISE_GENERATORS, SEED_CONTROLS, parseSeed, type NoiseGenerator } from '../../engine/seed.js';
import type { ParamSpec, ParamValue } from '../types.js';

export const SEED_PARAM: ParamSpec = { name: 'seed', kind: 'number', default: 0, min: 0, step: 1, integer: true, widget: 'seed' };
/** ComfyUI's widget; the editor applies it after queueing a run (renderer/actions.ts). The engine never reads it. */
export const CONTROL_AFTER_GENERATE_PARAM: ParamSpec = {
  name: 'control_after_generate',
  label: 'control after generate',
  kind: 'enum',
  options: [...SEED_CONTROLS],
  default: 'fixed',
};
/** Which generator turns the seed into noise: torch (ComfyUI / diffusers on the CPU) for new nodes; workflows saved before version 2 migrate to philox. */
export const NOISE_PARAM: ParamSpec = { name: 'noise', kind: 'enum', options: [...NOISE_GENERATORS], default: 'torch' };

/** seed, control after generate (next to each other, as in ComfyUI) and noise. */
export const SEED_PARAMS: ParamSpec[] = [SEED_PARAM, CONTROL_AFTER_GENERATE_PARAM, NOISE_PARAM];

export interface SeededDraws {
  seed: bigint;
  generator: NoiseGenerator;
  /** The starting noise: text-to-image latents, image-to-image add_noise, or the VAE posterior. */
  initial(purpose: 'latents' | 'add_noise' | 'posterior', shape: number[]): Float32Array;
  /** The next per-step draw of the sampler's noise stream (ComfyUI's noise_sampler(sigma, sigma_next)). */
  sampler(shape: number[]): Float32Array;
  /** The variance noise of DDIM step `step` (eta > 0). */
  eta(shape: number[], step: number): Float32Array;
}

/** The node's draws from ctx.noise, each checked against its shape. */
export function seededDraws(ctx: ExecContext, params: Record<string, ParamValue>): SeededDraws {
  const seed = parseSeed(params.seed);
  const generator = (params.noise ?? 'philox') as NoiseGenerator;
  const draw = (purpose: NoiseRequest['purpose'], shape: number[], step?: number) => {
    const noise = ctx.noise({ node: ctx.nodeId, purpose, seed, shape, generator, ...(step === undefined ? {} : { step }) });
    const n = shape.reduce((a, d) => a * d, 1);
    if (noise.length !== n) throw new Error(`noise source gave ${noise.length} values for shape [${shape}]`);
    return noise;
  };
  let samplerDraws = 0;
  return {
    seed,
    generator,
    initial: (purpose, shape) => draw(purpose, shape),
    sampler: (shape) => draw('sampler', shape, samplerDraws++),
    eta: (shape, step) => draw('eta', shape, step),
  };
}
