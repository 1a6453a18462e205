/**
 * Noise schedules: the sigmas a sampler steps through (N + 1 values, the last 0) and the model
 * timestep at each of them.
 *
 * ComfyUI's schedulers (comfy/samplers.py; karras and exponential from k-diffusion's
 * sampling.py), on its noise levels (noise-levels.ts comfyNoiseLevels); the UNet timestep is
 * ComfyUI's nearest-timestep lookup:
 *   normal        sigma(t) at t = linspace(t(sigma_max), t(sigma_min), N), then 0
 *   karras        (s_max^(1/7) + i/(N-1) (s_min^(1/7) - s_max^(1/7)))^7, then 0 (Karras et al. 2022, eq. 5)
 *   exponential   exp(linspace(log s_max, log s_min, N)), then 0
 *   sgm_uniform   sigma(t) at linspace(t(sigma_max), t(sigma_min), N + 1) without the last, then 0
 *   simple        sigmas[T - 1 - floor(i T / N)] for i < N, then 0
 *   ddim_uniform  sigmas[1 + k floor(T / N)] for every k with 1 + k floor(T / N) < T, reversed, then 0
 *                 (N + 1 steps when N floor(T / N) < T - 1, e.g. N = 7: ComfyUI's own count)
 *
 * diffusers' timestep spacings (`diffusersSchedule`), on diffusers' noise levels and with
 * diffusers' timesteps for the UNet, per scheduler family, as each class's set_timesteps:
 *   euler (Euler, Euler a, Heun, LMS):  leading arange(N) * (T // N) reversed + steps_offset;
 *       trailing round(arange(T, 0, -T / N)) - 1; linspace linspace(0, T - 1, N) reversed, NOT
 *       rounded (fractional timesteps); sigma = np.interp(t, arange(T), sigmas)
 *   dpm (DPM++ multistep, UniPC):  leading arange(N + 1) * (T // (N + 1)) reversed, last dropped,
 *       + steps_offset; trailing as euler's; linspace round(linspace(0, T - 1, N + 1)) reversed,
 *       last dropped
 *   ddpm (DDPM, and DDIM's timesteps):  as euler's, rounded half to even
 *   lcm:  the 50-step origin schedule arange(1, 51) * (T // 50) - 1 reversed, taken at
 *       floor(linspace(0, 50, N, endpoint=False)) (its spacing setting is ignored)
 *   then sigma 0 (final_sigmas_type "zero"; DDPM's step past t = 0 ends at abar = 1).
 */
import { torchLinspaceF32 } from '../ddim.js';
import type { NoiseLevels } from './noise-levels.js';

/** A schedule of N steps: sigmas[0 .. N] (the last 0 unless cut short) and the model timestep at each. */
export interface SigmaSchedule {
  sigmas: number[];
  /** The UNet timestep at sigmas[j], j = 0 .. N (timesteps[N] is used only when sigmas[N] > 0). */
  timesteps: number[];
}

export const COMFY_SCHEDULERS = ['normal', 'karras', 'exponential', 'sgm_uniform', 'simple', 'ddim_uniform'] as const;
export type ComfyScheduler = (typeof COMFY_SCHEDULERS)[number];

const fr = Math.fround;

/** Sigmas in ComfyUI's order with its timestep lookup; `sigmas` end with 0. */
function withTimesteps(lv: NoiseLevels, sigmas: number[]): SigmaSchedule {
  return { sigmas, timesteps: sigmas.map((s) => (s > 0 ? lv.timestep(s) : 0)) };
}

/** ComfyUI normal_scheduler (sgm: sgm_uniform). */
function normal(lv: NoiseLevels, n: number, sgm: boolean): number[] {
  const start = lv.timestep(lv.sigmaMax);
  const end = lv.timestep(lv.sigmaMin);
  let appendZero = true;
  let ts: Float32Array;
  if (sgm) {
    ts = torchLinspaceF32(start, end, n + 1).subarray(0, n);
  } else {
    if (Math.abs(lv.sigma(end)) <= 1e-5) {
      n += 1;
      appendZero = false;
    }
    ts = torchLinspaceF32(start, end, n);
  }
  const sigs = Array.from(ts, (t) => lv.sigma(t));
  return appendZero ? [...sigs, 0] : sigs;
}

/** k-diffusion get_sigmas_karras (rho 7), then 0. */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): number[] {
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const ramp = n === 1 ? 0 : i / (n - 1);
    out.push(fr((maxInv + ramp * (minInv - maxInv)) ** rho));
  }
  return [...out, 0];
}

/** k-diffusion get_sigmas_exponential, then 0. */
export function exponentialSigmas(n: number, sigmaMin: number, sigmaMax: number): number[] {
  const a = Math.log(sigmaMax);
  const b = Math.log(sigmaMin);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(fr(Math.exp(n === 1 ? a : a + ((b - a) * i) / (n - 1))));
  return [...out, 0];
}

/** ComfyUI simple_scheduler. */
function simple(lv: NoiseLevels, n: number): number[] {
  const T = lv.sigmas.length;
  const ss = T / n;
  const out: number[] = [];
  for (let x = 0; x < n; x++) out.push(lv.sigmas[T - 1 - Math.trunc(x * ss)]!);
  return [...out, 0];
}

/** ComfyUI ddim_scheduler. */
function ddimUniform(lv: NoiseLevels, n: number): number[] {
  const T = lv.sigmas.length;
  let x = 1;
  let sigs: number[];
  if (Math.abs(lv.sigmas[x]!) <= 1e-5) {
    n += 1;
    sigs = [];
  } else sigs = [0];
  const ss = Math.max(Math.floor(T / n), 1);
  while (x < T) {
    sigs.push(lv.sigmas[x]!);
    x += ss;
  }
  return sigs.reverse();
}

/** ComfyUI's scheduler `name` for N steps (calculate_sigmas), with ComfyUI's UNet timesteps. */
export function comfySchedule(lv: NoiseLevels, name: ComfyScheduler, n: number): SigmaSchedule {
  switch (name) {
    case 'normal':
      return withTimesteps(lv, normal(lv, n, false));
    case 'sgm_uniform':
      return withTimesteps(lv, normal(lv, n, true));
    case 'karras':
      return withTimesteps(lv, karrasSigmas(n, lv.sigmaMin, lv.sigmaMax));
    case 'exponential':
      return withTimesteps(lv, exponentialSigmas(n, lv.sigmaMin, lv.sigmaMax));
    case 'simple':
      return withTimesteps(lv, simple(lv, n));
    case 'ddim_uniform':
      return withTimesteps(lv, ddimUniform(lv, n));
  }
}

// ---------------------------------------------------------------------------------------------
// diffusers
// ---------------------------------------------------------------------------------------------

export type DiffusersSpacing = 'leading' | 'trailing' | 'linspace';
/** Which scheduler class's set_timesteps: see the file comment. */
export type DiffusersFamily = 'euler' | 'dpm' | 'ddpm' | 'lcm';

/** numpy's round (half to even). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/** np.arange(start, stop, step) for doubles (numpy fills start + i * (start + step - start)). */
function npArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  return Array.from({ length: len }, (_, i) => (i === 0 ? start : start + i * delta));
}

/** np.linspace(start, stop, n) (endpoint, doubles). */
function npLinspace(start: number, stop: number, n: number, endpoint = true): number[] {
  const div = endpoint ? n - 1 : n;
  if (n === 1) return [start];
  const step = (stop - start) / div;
  return Array.from({ length: n }, (_, i) => (endpoint && i === n - 1 ? stop : i * step + start));
}

/** The timesteps diffusers' `family` scheduler sets for N steps with `spacing` (descending). */
export function diffusersTimesteps(family: DiffusersFamily, spacing: DiffusersSpacing, n: number, T: number, stepsOffset: number): number[] {
  if (family === 'lcm') {
    const k = Math.floor(T / 50);
    const origin = Array.from({ length: 50 }, (_, i) => (i + 1) * k - 1).reverse();
    return npLinspace(0, origin.length, n, false).map((i) => origin[Math.floor(i)]!);
  }
  if (family === 'dpm') {
    if (spacing === 'leading') {
      const ratio = Math.floor(T / (n + 1));
      return Array.from({ length: n + 1 }, (_, i) => i * ratio)
        .reverse()
        .slice(0, n)
        .map((t) => t + stepsOffset);
    }
    if (spacing === 'linspace')
      return npLinspace(0, T - 1, n + 1)
        .map(roundHalfEven)
        .reverse()
        .slice(0, n);
    return npArange(T, 0, -(T / n)).map((t) => roundHalfEven(t) - 1);
  }
  if (spacing === 'leading') {
    const ratio = Math.floor(T / n);
    return Array.from({ length: n }, (_, i) => i * ratio)
      .reverse()
      .map((t) => t + stepsOffset);
  }
  if (spacing === 'trailing') return npArange(T, 0, -(T / n)).map((t) => roundHalfEven(t) - 1);
  const ts = npLinspace(0, T - 1, n).reverse();
  return family === 'ddpm' ? ts.map(roundHalfEven) : ts.map(fr); // Euler keeps float32 fractions
}

/**
 * diffusers' schedule for N steps: the family's timesteps, sigma = np.interp(t) on diffusers'
 * table (the table value at an integer t), then 0; the UNet gets the listed timesteps.
 */
export function diffusersSchedule(lv: NoiseLevels, family: DiffusersFamily, spacing: DiffusersSpacing, n: number, stepsOffset: number): SigmaSchedule {
  const ts = diffusersTimesteps(family, spacing, n, lv.sigmas.length, stepsOffset);
  return { sigmas: [...ts.map((t) => lv.interp(t)), 0], timesteps: [...ts, 0] };
}

/**
 * diffusers' init_noise_sigma in sigma space, for text-to-image from pure noise: the Euler family
 * multiplies the latents by sqrt(sigma_max^2 + 1) with leading spacing but by sigma_max with
 * trailing / linspace; the VP schedulers (DPM++, UniPC, DDIM, DDPM, LCM) by 1, which is
 * sqrt(sigma_0^2 + 1) in sigma space.
 */
export function diffusersInitNoiseScale(family: DiffusersFamily, spacing: DiffusersSpacing, sigma0: number): number {
  if (family === 'euler' && spacing !== 'leading') return sigma0;
  return Math.sqrt(sigma0 * sigma0 + 1);
}
