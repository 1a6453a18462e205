/**
 * DDIM (models/ddim.ts's scheduler, diffusers DDIMScheduler) as a SamplingMethod for
 * models/sampling/denoise.ts: the full schedule of `steps` (text-to-image) or its last
 * int(steps * strength) steps (image-to-image, diffusers' get_timesteps); one model call per step;
 * eta > 0 adds the step's variance noise, drawn through `noise(step)`.
 */
import type { DDIMScheduler } from '../ddim.js';
import type { SamplingMethod } from './denoise.js';

export interface DdimMethodOptions {
  steps: number;
  /** Image-to-image strength in [0, 1] (the sampler's denoise); ignored with `full`. */
  strength: number;
  /** Text-to-image from pure noise: the whole schedule. */
  full: boolean;
  eta: number;
  /** Standard-normal noise for step i's variance (called only when eta > 0). */
  noise(step: number): Float32Array;
}

export function ddimMethod(sched: DDIMScheduler, o: DdimMethodOptions): SamplingMethod {
  const timesteps = o.full ? sched.setTimesteps(o.steps) : sched.timestepsForStrength(o.steps, o.strength);
  const timestep = (i: number): number => {
    const t = timesteps[i];
    if (t === undefined) throw new Error(`DDIM: step ${i} is outside the ${timesteps.length} timesteps`);
    return t;
  };
  return {
    timesteps,
    // Text-to-image: noise * init_noise_sigma, which is 1 for DDIM.
    startLatents: (noise, init) => (init ? sched.addNoise(init, noise, timestep(0)) : noise),
    async step(i, x, model) {
      const t = timestep(i);
      const eps = await model(x, t);
      const noise = o.eta > 0 ? o.noise(i) : undefined;
      const r = sched.step(eps, t, x, { eta: o.eta, noise });
      return { x: r.prevSample, denoised: r.predOriginal };
    },
    noisedAfterStep: (x0, noise, i) => (i < timesteps.length - 1 ? sched.addNoise(x0, noise, timestep(i + 1)) : x0),
  };
}
