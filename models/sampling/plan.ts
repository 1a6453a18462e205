/**
 * The KSampler's choices (ComfyUI names) -> a SamplingMethod for the denoising loop, with
 * ComfyUI's rules (comfy/samplers.py KSampler.calculate_sigmas / set_steps / sample and
 * KSAMPLER.sample, nodes.py common_ksampler):
 *   schedule:  the scheduler's sigmas for `steps` (uni_pc, uni_pc_bh2: for steps + 1, the
 *              penultimate sigma dropped: DISCARD_PENULTIMATE_SIGMA_SAMPLERS);
 *   denoise:   d < 1 (> 0.9999 counts as 1): the schedule of trunc(steps / d) steps, its last
 *              steps + 1 sigmas;
 *   advanced:  end_at_step cuts after that step (force_full_denoise: the last sigma becomes 0),
 *              then start_at_step drops the first steps (at or past the end: nothing runs, the
 *              latent is returned as it is);
 *   start:     latent + noise * (sqrt(1 + sigma_0^2) when sigma_0 is the model's sigma_max, else
 *              sigma_0); with add_noise off, the latent as it is.
 * Samplers: euler, euler_ancestral, heun, lms, dpmpp_2m, ddim (ComfyUI: Euler), ddpm, uni_pc
 * (bh1), uni_pc_bh2, lcm. Schedulers: ComfyUI's six (schedulers.ts) on ComfyUI's noise levels,
 * and `diffusers_leading` / `diffusers_trailing` / `diffusers_linspace`: the diffusers scheduler
 * class of the sampler (EulerDiscrete, EulerAncestralDiscrete, HeunDiscrete, LMSDiscrete,
 * DPMSolverMultistep, DDIM, DDPM, UniPCMultistep, LCM) configured from the checkpoint's
 * scheduler config with that timestep_spacing, as `Cls.from_config(pipe.scheduler.config,
 * timestep_spacing=...)` does: its timesteps, diffusers' noise levels, init_noise_sigma from pure
 * noise, DDIM's own VP update (prev_t = t - T // N), UniPC order 2 bh2 with a final sigma 0,
 * LCM's boundary on the VP sample. The same denoise / start / end rules apply to them.
 */
import { DDIMScheduler } from '../ddim.js';
import type { SamplingMethod } from './denoise.js';
import { euler, eulerAncestral } from './euler.js';
import { heun } from './heun.js';
import { lms } from './lms.js';
import { dpmpp2m } from './dpmpp-2m.js';
import { ddpm } from './ddpm.js';
import { lcmSampler } from './lcm.js';
import { uniPcSampler } from './uni-pc.js';
import { kMethod } from './k-method.js';
import type { KSamplerFactory } from './k-sampler.js';
import { comfyNoiseLevels, diffusersNoiseLevels, type NoiseLevels } from './noise-levels.js';
import {
  COMFY_SCHEDULERS,
  type ComfyScheduler,
  type DiffusersFamily,
  type DiffusersSpacing,
  type SigmaSchedule,
  comfySchedule,
  diffusersInitNoiseScale,
  diffusersSchedule,
} from './schedulers.js';

export const SAMPLER_NAMES = ['euler', 'euler_ancestral', 'heun', 'lms', 'dpmpp_2m', 'ddim', 'ddpm', 'uni_pc', 'uni_pc_bh2', 'lcm'] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];
export const DIFFUSERS_SCHEDULERS = ['diffusers_leading', 'diffusers_trailing', 'diffusers_linspace'] as const;
export const SCHEDULER_NAMES = [...COMFY_SCHEDULERS, ...DIFFUSERS_SCHEDULERS] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

/** ComfyUI's KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS among ours. */
const DISCARD_PENULTIMATE: readonly SamplerName[] = ['uni_pc', 'uni_pc_bh2'];

export interface PlanOptions {
  sampler: SamplerName;
  scheduler: SchedulerName;
  steps: number;
  /** KSampler's denoise in (0, 1]. */
  denoise: number;
  /** KSampler (Advanced): start_at_step / end_at_step, and whether a cut end goes to sigma 0. */
  startStep?: number;
  lastStep?: number;
  forceFullDenoise?: boolean;
  /** add_noise: false starts from the latent as it is. */
  addNoise: boolean;
  /** The checkpoint's diffusers scheduler: its config (betas, steps_offset) and float32 table. */
  ddim: DDIMScheduler;
  /** Standard-normal draw k of the run's per-step noise (ancestral, DDPM, LCM). */
  noise(k: number): Float32Array;
}

export interface SamplingPlan {
  /** null: no step runs and the latent is returned unchanged. */
  method: SamplingMethod | null;
  /** The run's first step within the full schedule, and that schedule's steps (IP-Adapter / ControlNet windows). */
  offset: number;
  total: number;
  /** The noise levels of the run's steps and after the last (sigma space; DDIM's VP path: sigma of its abar). */
  sigmas: number[];
  /** Whether the latents the method steps on are VP (diffusers' DDIM) rather than sigma space. */
  space: 'sigma' | 'vp';
  /** The run starts from pure noise at the model's maximum level (ComfyUI's max_denoise). */
  fromPureNoise: boolean;
}

const family = (s: SamplerName): DiffusersFamily =>
  s === 'dpmpp_2m' || s === 'uni_pc' || s === 'uni_pc_bh2' ? 'dpm' : s === 'ddpm' || s === 'ddim' ? 'ddpm' : s === 'lcm' ? 'lcm' : 'euler';

function samplerFor(name: SamplerName, diffusers: boolean): KSamplerFactory {
  switch (name) {
    case 'euler':
    case 'ddim':
      return euler; // ComfyUI's ddim is Euler (diffusers' DDIM: the VP path)
    case 'euler_ancestral':
      return eulerAncestral;
    case 'heun':
      return heun;
    case 'lms':
      return lms;
    case 'dpmpp_2m':
      return dpmpp2m;
    case 'ddpm':
      return ddpm;
    case 'lcm':
      return lcmSampler({ skipOnVp: diffusers });
    case 'uni_pc':
    case 'uni_pc_bh2':
      if (diffusers) return uniPcSampler({ order: 2, variant: 'bh2' });
      // ComfyUI sample_unipc: order min(3, len(sigmas) - 2), final sigma 0.001.
      return (s, ctx) =>
        uniPcSampler({ order: Math.max(1, Math.min(3, s.sigmas.length - 2)), variant: name === 'uni_pc' ? 'bh1' : 'bh2', finalSigma: 0.001 })(s, ctx);
  }
}

/** ComfyUI's set_steps and sample() cuts on a list of N + 1 points: [from, to] and whether the end is forced to 0. */
function cut(len: number, o: PlanOptions): { from: number; to: number; zeroEnd: boolean; empty: boolean } {
  let from = 0;
  let to = len - 1;
  if (o.denoise <= 0.9999) from = Math.max(0, len - 1 - o.steps); // the last steps + 1 points
  let zeroEnd = false;
  if (o.lastStep !== undefined && o.lastStep < to - from) {
    to = from + o.lastStep;
    zeroEnd = !!o.forceFullDenoise;
  }
  if (o.startStep !== undefined && o.startStep > 0) {
    if (o.startStep < to - from) from += o.startStep;
    else return { from, to, zeroEnd, empty: true };
  }
  return { from, to, zeroEnd, empty: false };
}

function fullSteps(o: PlanOptions): number {
  if (o.denoise > 0.9999) return o.steps;
  return Math.trunc(o.steps / o.denoise);
}

/** Plans the run of one KSampler node. */
export function planSampling(o: PlanOptions): SamplingPlan {
  if (!(SAMPLER_NAMES as readonly string[]).includes(o.sampler)) throw new Error(`unknown sampler "${o.sampler}" (known: ${SAMPLER_NAMES.join(', ')})`);
  if (!(SCHEDULER_NAMES as readonly string[]).includes(o.scheduler))
    throw new Error(`unknown scheduler "${o.scheduler}" (known: ${SCHEDULER_NAMES.join(', ')})`);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`steps ${o.steps} must be a whole number >= 1`);
  if (!(o.denoise > 0 && o.denoise <= 1)) throw new Error(`denoise ${o.denoise} must be in (0, 1]`);
  const diffusers = (DIFFUSERS_SCHEDULERS as readonly string[]).includes(o.scheduler);
  const n = fullSteps(o);
  if (diffusers && o.sampler === 'ddim') return planDiffusersDdim(o, n);

  let full: SigmaSchedule;
  let lv: NoiseLevels;
  const spacing = o.scheduler.replace('diffusers_', '') as DiffusersSpacing;
  if (diffusers) {
    lv = diffusersNoiseLevels(o.ddim.alphasCumprod);
    full = diffusersSchedule(lv, family(o.sampler), spacing, n, o.ddim.config.steps_offset);
  } else {
    lv = comfyNoiseLevels(o.ddim.config);
    const discard = DISCARD_PENULTIMATE.includes(o.sampler);
    full = comfySchedule(lv, o.scheduler as ComfyScheduler, discard ? n + 1 : n);
    if (discard) {
      full = { sigmas: [...full.sigmas.slice(0, -2), full.sigmas.at(-1)!], timesteps: [...full.timesteps.slice(0, -2), full.timesteps.at(-1)!] };
    }
  }
  const len = full.sigmas.length;
  const c = cut(len, o);
  const total = len - 1;
  if (c.empty) return { method: null, offset: c.from, total, sigmas: [], space: 'sigma', fromPureNoise: false };
  const sigmas = full.sigmas.slice(c.from, c.to + 1);
  const timesteps = full.timesteps.slice(c.from, c.to + 1);
  if (c.zeroEnd) {
    sigmas[sigmas.length - 1] = 0;
    timesteps[timesteps.length - 1] = 0;
  }
  const s0 = sigmas[0]!;
  const maxDenoise = Math.abs(lv.sigmaMax - s0) <= 1e-5 * Math.max(Math.abs(lv.sigmaMax), Math.abs(s0)) || s0 > lv.sigmaMax;
  let scale: number;
  if (!o.addNoise) scale = 0;
  else if (diffusers) scale = c.from === 0 ? diffusersInitNoiseScale(family(o.sampler), spacing, s0) : s0;
  else scale = maxDenoise ? Math.sqrt(1 + s0 * s0) : s0;
  const method = kMethod({ schedule: { sigmas, timesteps }, sampler: samplerFor(o.sampler, diffusers), noiseScale: scale, noise: o.noise });
  return { method, offset: c.from, total, sigmas, space: 'sigma', fromPureNoise: o.addNoise && (diffusers ? c.from === 0 : maxDenoise) };
}

/**
 * diffusers' DDIMScheduler (eta 0) on its own timesteps: VP latents, prev_t = t - T // N for every
 * spacing (models/ddim.ts). From pure noise x = noise + sqrt(abar_0) latent (ComfyUI's start in
 * VP form; the empty latent gives diffusers' noise * init_noise_sigma = noise), otherwise
 * add_noise at the first timestep; a cut end with force_full_denoise returns the x0 estimate.
 */
function planDiffusersDdim(o: PlanOptions, n: number): SamplingPlan {
  const spacing = o.scheduler.replace('diffusers_', '') as DiffusersSpacing;
  const sched = new DDIMScheduler({ ...o.ddim.config, timestep_spacing: spacing });
  const all = sched.setTimesteps(n);
  const c = cut(all.length + 1, o);
  const total = all.length;
  const sig = (abar: number) => Math.sqrt((1 - abar) / abar);
  const abarAt = (t: number) => (t >= 0 ? sched.alphasCumprod[t]! : sched.finalAlphaCumprod);
  if (c.empty) return { method: null, offset: c.from, total, sigmas: [], space: 'vp', fromPureNoise: false };
  const ts = all.slice(c.from, c.to);
  const sigmas = [...ts.map((t) => sig(abarAt(t))), c.zeroEnd ? 0 : sig(abarAt(sched.prevTimestep(ts.at(-1)!)))];
  const pure = o.addNoise && c.from === 0;
  const fr = Math.fround;
  const method: SamplingMethod = {
    timesteps: ts,
    startLatents(noise, init) {
      const x = init ?? new Float32Array(noise.length);
      if (!o.addNoise) return x.slice();
      if (pure) {
        const a = fr(Math.sqrt(abarAt(ts[0]!)));
        return x.map((v, k) => fr(noise[k]! + fr(a * v)));
      }
      return sched.addNoise(x, noise, ts[0]!);
    },
    async step(i, x, model) {
      const t = ts[i]!;
      const eps = await model(x, t);
      const r = sched.step(eps, t, x, { eta: 0 });
      const last = i === ts.length - 1;
      return { x: last && c.zeroEnd ? r.predOriginal : r.prevSample, denoised: r.predOriginal };
    },
    noisedAfterStep: (x0, noise, i) => (i < ts.length - 1 ? sched.addNoise(x0, noise, ts[i + 1]!) : x0),
  };
  return { method, offset: c.from, total, sigmas, space: 'vp', fromPureNoise: pure };
}
