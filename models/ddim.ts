/**
 * DDIM scheduler (Song et al. 2020), mirroring diffusers' DDIMScheduler (0.30) bit for bit in float32.
 *
 * Why the care: the reference computes in float32 torch tensors, so every elementwise op here is
 * rounded to float32 (Math.fround) in torch's order. Two torch details matter for exact tables:
 * - `torch.linspace(a, b, n, dtype=float32)` on CPU (AVX2 kernel) fills vectors of 8 from a base
 *   `start + step*idx` (first half) or `end - step*(n-idx-1)` (second half) computed with a fused
 *   multiply-add, then `base + k*step`; the tail that does not fill two vectors is scalar (same FMA).
 * - `torch.cumprod` on CPU accumulates in double (acc_type<float> = double) and rounds each output.
 * Both reproduce the fixture's betas and alphas_cumprod exactly (0 difference).
 *
 * Reference: diffusers/schedulers/scheduling_ddim.py (set_timesteps, step, add_noise, _get_variance)
 * and pipelines/stable_diffusion/pipeline_stable_diffusion_img2img.py (get_timesteps).
 */
import { readJsonFile } from './json-file.js';

/** diffusers scheduler_config.json fields this scheduler understands (snake_case, as in the file). */
export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: 'scaled_linear' | 'linear' | 'squaredcos_cap_v2';
  set_alpha_to_one: boolean;
  steps_offset: number;
  timestep_spacing: 'leading' | 'trailing' | 'linspace';
  prediction_type: 'epsilon' | 'v_prediction';
  clip_sample: boolean;
  clip_sample_range: number;
}

const DEFAULTS: SchedulerConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  set_alpha_to_one: true,
  steps_offset: 0,
  timestep_spacing: 'leading',
  prediction_type: 'epsilon',
  clip_sample: true,
  clip_sample_range: 1.0,
};

/** Stable Diffusion 1.5's scheduler settings (runwayml/stable-diffusion-v1-5 scheduler_config.json). */
export const SD15_SCHEDULER = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
  timestep_spacing: 'leading',
  prediction_type: 'epsilon',
};

/** Parses a diffusers scheduler config object; missing fields take DDIMScheduler's defaults. */
export function parseSchedulerConfig(json: unknown, source = 'scheduler_config.json'): SchedulerConfig {
  if (typeof json !== 'object' || json === null) throw new Error(`${source}: expected a JSON object with the scheduler config`);
  const j = json as Record<string, unknown>;
  const cfg = { ...DEFAULTS } as Record<string, unknown>;
  for (const k of Object.keys(DEFAULTS)) if (j[k] !== undefined && j[k] !== null) cfg[k] = j[k];
  const c = cfg as unknown as SchedulerConfig;
  const oneOf = (k: keyof SchedulerConfig, allowed: string[]) => {
    if (!allowed.includes(String(c[k]))) throw new Error(`${source}: ${k} "${c[k]}" is not supported (expected one of ${allowed.join(', ')})`);
  };
  oneOf('beta_schedule', ['scaled_linear', 'linear', 'squaredcos_cap_v2']);
  oneOf('timestep_spacing', ['leading', 'trailing', 'linspace']);
  oneOf('prediction_type', ['epsilon', 'v_prediction']);
  if (j.trained_betas) throw new Error(`${source}: trained_betas is not supported`);
  if (j.thresholding === true) throw new Error(`${source}: thresholding is not supported`);
  if (j.rescale_betas_zero_snr === true) throw new Error(`${source}: rescale_betas_zero_snr is not supported`);
  if (!Number.isInteger(c.num_train_timesteps) || c.num_train_timesteps < 2) throw new Error(`${source}: num_train_timesteps must be an integer >= 2`);
  return c;
}

/** Reads `scheduler/scheduler_config.json` of a diffusers folder. */
export function loadSchedulerConfig(file: string): SchedulerConfig {
  const json = readJsonFile(file, 'scheduler config');
  return parseSchedulerConfig(json, file);
}

const fr = Math.fround;
const f32bits = new Float32Array(1);
const u32bits = new Uint32Array(f32bits.buffer);

/** The float32 next to `x` (a float32) in the direction of `toward`. */
function nextFloat(x: number, toward: number): number {
  if (x === toward) return x;
  if (x === 0) return toward > 0 ? 2 ** -149 : -(2 ** -149);
  f32bits[0] = x;
  u32bits[0]! += toward > x === x > 0 ? 1 : -1;
  return f32bits[0];
}

/** C's fmaf: a*b + c rounded once to float32 (a, b, c float32). a*b is exact in double. */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb); // exact: p + c = s + err (TwoSum)
  const r = fr(s);
  if (err === 0 || r === s) return r;
  // Double rounding is wrong only when s sits exactly halfway between two floats.
  const other = nextFloat(r, s);
  if ((r + other) / 2 !== s) return r;
  return err > 0 === other > r ? other : r;
}

/** torch.linspace(start, end, n, dtype=float32) on CPU (AVX2 kernel; see the file comment). */
export function torchLinspaceF32(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (n === 1) {
    out[0] = fr(start);
    return out;
  }
  const s = fr(start);
  const e = fr(end);
  const step = fr(fr(e - s) / (n - 1));
  const half = Math.floor(n / 2);
  const at = (i: number) => (i < half ? fmaf(step, i, s) : fmaf(-step, n - i - 1, e));
  const W = 8;
  let i = 0;
  for (; i + 2 * W <= n; i += W) {
    const base = at(i);
    out[i] = base;
    for (let k = 1; k < W; k++) out[i + k] = fmaf(k, step, base);
  }
  for (; i < n; i++) out[i] = at(i);
  return out;
}

/** numpy's round (half to even). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/** np.arange(start, stop, step) for doubles: length ceil((stop-start)/step), values start + i*delta. */
function npArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  if (len === 0) return [];
  const delta = start + step - start; // numpy's fill recomputes delta from the first two values
  return Array.from({ length: len }, (_, i) => (i === 0 ? start : i === 1 ? start + step : start + i * delta));
}

/** np.linspace(start, stop, n) (endpoint, doubles). */
function npLinspace(start: number, stop: number, n: number): number[] {
  if (n === 1) return [start];
  const step = (stop - start) / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? stop : i * step + start));
}

export interface StepResult {
  /** x_{t-1}, same shape as the sample. */
  prevSample: Float32Array;
  /** The model's estimate of x_0. */
  predOriginal: Float32Array;
}

export class DDIMScheduler {
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;
  /** alpha-bar used after the last step: 1, or alphas_cumprod[0] when set_alpha_to_one is false. */
  readonly finalAlphaCumprod: number;
  /** Timesteps of the current schedule, descending (set by setTimesteps). */
  timesteps: number[] = [];
  numInferenceSteps = 0;

  constructor(readonly config: SchedulerConfig) {
    const n = config.num_train_timesteps;
    if (config.beta_schedule === 'scaled_linear') {
      const lin = torchLinspaceF32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n);
      this.betas = lin.map((b) => fr(b * b)); // torch pow(x, 2) is x*x
    } else if (config.beta_schedule === 'linear') {
      this.betas = torchLinspaceF32(config.beta_start, config.beta_end, n);
    } else {
      // betas_for_alpha_bar (cosine), computed in double then stored as float32.
      const abar = (t: number) => Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2) ** 2;
      this.betas = Float32Array.from({ length: n }, (_, i) => Math.min(1 - abar((i + 1) / n) / abar(i / n), 0.999));
    }
    this.alphas = this.betas.map((b) => fr(1 - b));
    this.alphasCumprod = new Float32Array(n);
    let acc = 1; // double accumulator, as torch's CPU cumprod
    for (let i = 0; i < n; i++) {
      acc *= this.alphas[i]!;
      this.alphasCumprod[i] = acc;
    }
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  /** Sets the inference schedule of `n` steps and returns its timesteps (descending). */
  setTimesteps(n: number): number[] {
    const T = this.config.num_train_timesteps;
    if (!Number.isInteger(n) || n < 1 || n > T) throw new Error(`DDIM: number of steps ${n} must be an integer in 1..${T}`);
    this.numInferenceSteps = n;
    let ts: number[];
    switch (this.config.timestep_spacing) {
      case 'linspace':
        ts = npLinspace(0, T - 1, n)
          .map(roundHalfEven)
          .reverse();
        break;
      case 'leading': {
        const ratio = Math.floor(T / n);
        ts = Array.from({ length: n }, (_, i) => i * ratio)
          .reverse()
          .map((t) => t + this.config.steps_offset);
        break;
      }
      case 'trailing':
        ts = npArange(T, 0, -(T / n)).map((t) => roundHalfEven(t) - 1);
        break;
    }
    this.timesteps = ts;
    return ts;
  }

  /** The timestep the step from `t` lands on (diffusers: t - T // n, also for trailing spacing). */
  prevTimestep(t: number): number {
    this.requireSchedule();
    return t - Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
  }

  private alphaAt(t: number): number {
    return t >= 0 ? this.alphasCumprod[t]! : this.finalAlphaCumprod; // step() checks t < num_train_timesteps; prevT < t
  }

  private requireSchedule(): void {
    if (!this.numInferenceSteps) throw new Error('DDIM: call setTimesteps(n) before step()');
  }

  /**
   * One DDIM step from timestep `t` (eq. 12 of the paper). eta > 0 adds sigma_t * noise, for which
   * `noise` (standard normal, same length as the sample) must be given.
   */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, opts: { eta?: number; noise?: Float32Array } = {}): StepResult {
    this.requireSchedule();
    const n = sample.length;
    if (modelOutput.length !== n) throw new Error(`DDIM step: model output has ${modelOutput.length} values, sample has ${n}`);
    if (!Number.isInteger(t) || t < 0 || t >= this.config.num_train_timesteps)
      throw new Error(`DDIM step: timestep ${t} is outside 0..${this.config.num_train_timesteps - 1}`);
    const eta = fr(opts.eta ?? 0);
    if (eta > 0 && (!opts.noise || opts.noise.length !== n)) throw new Error(`DDIM step: eta ${eta} needs a noise tensor of ${n} values`);
    const prevT = this.prevTimestep(t);
    const aT = this.alphaAt(t); // float32 scalars, as 0-dim torch tensors
    const aPrev = this.alphaAt(prevT);
    const bT = fr(1 - aT);
    const sqrtAT = fr(Math.sqrt(aT));
    const sqrtBT = fr(Math.sqrt(bT));
    // _get_variance: (beta_prev / beta_t) * (1 - a_t / a_prev)
    const variance = fr(fr(fr(1 - aPrev) / bT) * fr(1 - fr(aT / aPrev)));
    const std = fr(eta * fr(Math.sqrt(variance)));
    const dirCoef = fr(Math.sqrt(fr(fr(1 - aPrev) - fr(std * std))));
    const sqrtAPrev = fr(Math.sqrt(aPrev));
    const range = fr(this.config.clip_sample_range);
    const prevSample = new Float32Array(n);
    const predOriginal = new Float32Array(n);
    const v = this.config.prediction_type === 'v_prediction';
    for (let i = 0; i < n; i++) {
      const m = modelOutput[i]!;
      const x = sample[i]!;
      let x0: number;
      let eps: number;
      if (v) {
        x0 = fr(fr(sqrtAT * x) - fr(sqrtBT * m));
        eps = fr(fr(sqrtAT * m) + fr(sqrtBT * x));
      } else {
        x0 = fr(fr(x - fr(sqrtBT * m)) / sqrtAT);
        eps = m;
      }
      // diffusers clamps x0 but keeps eps (use_clipped_model_output defaults to False).
      if (this.config.clip_sample) x0 = Math.min(Math.max(x0, -range), range);
      predOriginal[i] = x0;
      let prev = fr(fr(sqrtAPrev * x0) + fr(dirCoef * eps));
      if (eta > 0) prev = fr(prev + fr(std * opts.noise![i]!));
      prevSample[i] = prev;
    }
    return { prevSample, predOriginal };
  }

  /** Forward diffusion q(x_t | x_0): sqrt(a_t) x0 + sqrt(1 - a_t) noise (diffusers add_noise). */
  addNoise(x0: Float32Array, noise: Float32Array, t: number): Float32Array {
    if (noise.length !== x0.length) throw new Error(`DDIM addNoise: noise has ${noise.length} values, sample has ${x0.length}`);
    const a = this.alphasCumprod[t];
    if (a === undefined) throw new Error(`DDIM addNoise: timestep ${t} is outside 0..${this.config.num_train_timesteps - 1}`);
    const sa = fr(Math.sqrt(a));
    const sb = fr(Math.sqrt(fr(1 - a)));
    return x0.map((x, i) => fr(fr(sa * x) + fr(sb * noise[i]!)));
  }

  /**
   * img2img schedule: sets `n` steps and returns the ones actually run for `strength` in [0, 1]
   * (diffusers: init = min(int(n*strength), n), start = max(n - init, 0), timesteps[start:]).
   */
  timestepsForStrength(n: number, strength: number): number[] {
    if (!(strength >= 0 && strength <= 1)) throw new Error(`img2img strength ${strength} must be in [0, 1]`);
    const all = this.setTimesteps(n);
    const init = Math.min(Math.trunc(n * strength), n);
    return all.slice(Math.max(n - init, 0));
  }
}

/** Classifier-free guidance: uncond + scale * (cond - uncond), in float32 as torch computes it. */
export function classifierFreeGuidance(uncond: Float32Array, cond: Float32Array, scale: number): Float32Array {
  if (uncond.length !== cond.length) throw new Error(`guidance: unconditional (${uncond.length}) and conditional (${cond.length}) predictions differ in size`);
  const s = fr(scale);
  return uncond.map((u, i) => fr(u + fr(s * fr(cond[i]! - u))));
}
