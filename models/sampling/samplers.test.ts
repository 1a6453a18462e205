/**
 * The sigma-space schedules and samplers against worked formulas (ComfyUI's where it differs from
 * diffusers': karras, simple, ddim_uniform, normal, sgm_uniform, the denoise and start/end cuts,
 * uni_pc's discarded penultimate sigma and 0.001 end), and the samplers on data whose denoiser is
 * known in closed form. The fixtures' diffusers runs are the conformance groups samplers/sampler_*.
 */
import { describe, expect, it } from 'vitest';
import { DDIMScheduler, parseSchedulerConfig } from '../ddim.js';
import { ddimMethod } from './ddim-method.js';
import type { GuidedModel, SamplingMethod } from './denoise.js';
import { comfyNoiseLevels, diffusersNoiseLevels } from './noise-levels.js';
import { comfySchedule, diffusersInitNoiseScale, diffusersTimesteps, exponentialSigmas, karrasSigmas } from './schedulers.js';
import { SAMPLER_NAMES, SCHEDULER_NAMES, planSampling, type PlanOptions, type SamplerName } from './plan.js';
import { lmsCoefficient } from './lms.js';
import { ancestralStep } from './euler.js';
import { lcmBoundary } from './lcm.js';
import { solveSmall } from './uni-pc.js';

const sd15 = parseSchedulerConfig({
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
  timestep_spacing: 'leading',
  prediction_type: 'epsilon',
});
const ddim = new DDIMScheduler(sd15);
const comfy = comfyNoiseLevels(sd15);
const diff = diffusersNoiseLevels(ddim.alphasCumprod);

/** sigma_t from the formula in float64: betas = linspace(sqrt(b0), sqrt(b1), 1000)^2. */
function sigmaRef(t: number): number {
  let acc = 1;
  for (let i = 0; i <= t; i++) acc *= 1 - (Math.sqrt(0.00085) + ((Math.sqrt(0.012) - Math.sqrt(0.00085)) * i) / 999) ** 2;
  return Math.sqrt((1 - acc) / acc);
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

describe('noise levels', () => {
  it("ComfyUI table: float64 formula stored as float32; diffusers' float32 table within 1e-4 (its 1 - abar cancels at small t)", () => {
    for (const t of [0, 1, 10, 500, 999]) {
      expect(rel(comfy.sigmas[t]!, sigmaRef(t))).toBeLessThan(1e-7);
      expect(rel(diff.sigmas[t]!, sigmaRef(t))).toBeLessThan(t < 20 ? 1e-4 : 1e-6);
    }
    expect(comfy.sigmaMax).toBeCloseTo(14.6146, 3);
    expect(comfy.sigmaMin).toBeCloseTo(0.029168, 5);
  });

  it('sigma(t) interpolates log sigma; timestep(sigma) is the nearest timestep in log sigma; sigmaToT inverts sigma()', () => {
    const s500 = comfy.sigmas[500]!;
    const s501 = comfy.sigmas[501]!;
    expect(rel(comfy.sigma(500.25), Math.exp(0.75 * Math.log(s500) + 0.25 * Math.log(s501)))).toBeLessThan(1e-6);
    expect(comfy.timestep(comfy.sigma(500.4))).toBe(500);
    expect(comfy.timestep(comfy.sigma(500.6))).toBe(501);
    expect(comfy.sigmaToT(comfy.sigma(123.3))).toBeCloseTo(123.3, 4);
    expect(diff.interp(500.5)).toBeCloseTo((diff.sigmas[500]! + diff.sigmas[501]!) / 2, 5);
  });
});

describe('ComfyUI schedulers (comfy/samplers.py), worked', () => {
  it('karras: (s_max^(1/7) + i/(N-1) (s_min^(1/7) - s_max^(1/7)))^7, then 0', () => {
    const s = karrasSigmas(4, 0.1, 10);
    const want = [0, 1, 2, 3].map((i) => (10 ** (1 / 7) + (i / 3) * (0.1 ** (1 / 7) - 10 ** (1 / 7))) ** 7);
    want.forEach((w, i) => expect(rel(s[i]!, w)).toBeLessThan(1e-7));
    expect(s).toHaveLength(5);
    expect(s[4]).toBe(0);
    expect(s[0]).toBeCloseTo(10, 5);
    expect(s[3]).toBeCloseTo(0.1, 6);
  });

  it('exponential: exp(linspace(log s_max, log s_min, N)), then 0', () => {
    const s = exponentialSigmas(3, 0.1, 10);
    [10, 1, 0.1, 0].forEach((w, i) => expect(s[i]).toBeCloseTo(w, 6));
  });

  it('simple: sigmas[T - 1 - trunc(i T / N)]', () => {
    const s = comfySchedule(comfy, 'simple', 7);
    const idx = [999, 857, 714, 571, 428, 285, 142]; // 999 - trunc(i * 142.857...)
    expect(s.sigmas).toEqual([...idx.map((t) => comfy.sigmas[t]!), 0]);
    expect(s.timesteps.slice(0, 7)).toEqual(idx);
  });

  it('ddim_uniform: sigmas[1 + k * floor(T / N)] reversed; 8 steps -> 876 .. 1 (diffusers leading); 7 steps -> 8 of them', () => {
    const s8 = comfySchedule(comfy, 'ddim_uniform', 8);
    expect(s8.timesteps.slice(0, 8)).toEqual([876, 751, 626, 501, 376, 251, 126, 1]);
    expect(s8.sigmas.at(-1)).toBe(0);
    const s7 = comfySchedule(comfy, 'ddim_uniform', 7);
    expect(s7.sigmas).toHaveLength(9); // ComfyUI's loop gives 1, 143, ..., 995: 8 steps
    expect(s7.timesteps.slice(0, 8)).toEqual([995, 853, 711, 569, 427, 285, 143, 1]);
  });

  it('normal: sigma(t) at linspace(999, 0, N) (fractional t, log-interpolated), then 0; sgm_uniform: N + 1 points without the last', () => {
    const n = comfySchedule(comfy, 'normal', 8);
    expect(n.sigmas).toHaveLength(9);
    expect(rel(n.sigmas[1]!, comfy.sigma(999 - 999 / 7))).toBeLessThan(1e-6);
    expect(n.timesteps[1]).toBe(856); // nearest to 856.29
    expect(rel(n.sigmas[0]!, comfy.sigmaMax)).toBeLessThan(1e-6);
    expect(rel(n.sigmas[7]!, comfy.sigmaMin)).toBeLessThan(1e-6);
    const g = comfySchedule(comfy, 'sgm_uniform', 4);
    [999, 749.25, 499.5, 249.75].forEach((t, i) => expect(rel(g.sigmas[i]!, comfy.sigma(t))).toBeLessThan(1e-6));
    expect(g.sigmas[4]).toBe(0);
  });
});

describe('diffusers timesteps (set_timesteps of each class)', () => {
  it('leading: Euler/DDIM arange(N) * (T // N) + offset, DPM++ arange(N + 1) * (T // (N + 1)) without the last + offset', () => {
    expect(diffusersTimesteps('euler', 'leading', 8, 1000, 1)).toEqual([876, 751, 626, 501, 376, 251, 126, 1]);
    expect(diffusersTimesteps('dpm', 'leading', 8, 1000, 1)).toEqual([889, 778, 667, 556, 445, 334, 223, 112]);
  });
  it('linspace: Euler keeps fractions, DDPM rounds half to even; trailing round(arange(T, 0, -T / N)) - 1', () => {
    expect(diffusersTimesteps('euler', 'linspace', 7, 1000, 1)).toEqual([999, 832.5, 666, 499.5, 333, 166.5, 0]);
    expect(diffusersTimesteps('ddpm', 'linspace', 7, 1000, 1)).toEqual([999, 832, 666, 500, 333, 166, 0]);
    expect(diffusersTimesteps('euler', 'trailing', 8, 1000, 1)).toEqual([999, 874, 749, 624, 499, 374, 249, 124]);
  });
  it('LCM: origin arange(1, 51) * 20 - 1 reversed at floor(linspace(0, 50, N, endpoint=False)), not a fixed stride', () => {
    expect(diffusersTimesteps('lcm', 'leading', 4, 1000, 1)).toEqual([999, 759, 499, 259]);
  });
  it('init_noise_sigma in sigma space: Euler leading sqrt(s^2 + 1), Euler linspace / trailing s, VP 1 = sqrt(s^2 + 1)', () => {
    expect(diffusersInitNoiseScale('euler', 'leading', 7.371845722198486)).toBeCloseTo(7.439362049102783, 6);
    expect(diffusersInitNoiseScale('euler', 'trailing', 14.6)).toBe(14.6);
    expect(diffusersInitNoiseScale('dpm', 'leading', 3)).toBeCloseTo(Math.sqrt(10), 12);
  });
});

const base = (o: Partial<PlanOptions>): PlanOptions => ({
  sampler: 'euler',
  scheduler: 'normal',
  steps: 10,
  denoise: 1,
  addNoise: true,
  ddim,
  noise: () => new Float32Array(4),
  ...o,
});

describe('KSampler plan (ComfyUI KSampler.set_steps / sample)', () => {
  it('denoise d < 1: the schedule of trunc(steps / d) steps, its last steps + 1 sigmas; from sigma_0 the noise scale is sigma_0', () => {
    const full = planSampling(base({ steps: 10 }));
    const part = planSampling(base({ steps: 6, denoise: 0.6 }));
    expect(part.sigmas).toEqual(full.sigmas.slice(4));
    expect(part.offset).toBe(4);
    expect(part.total).toBe(10);
    expect(part.method!.timesteps).toHaveLength(6);
    const half = planSampling(base({ steps: 10, denoise: 0.5 }));
    expect(half.sigmas).toEqual(planSampling(base({ steps: 20 })).sigmas.slice(10));
    const x = part.method!.startLatents(new Float32Array([1, 1, 1, 1]), new Float32Array([2, 2, 2, 2]));
    expect(x[0]).toBeCloseTo(2 + part.sigmas[0]!, 5);
    expect(part.fromPureNoise).toBe(false);
  });

  it("from the model's sigma_max the noise is scaled by sqrt(1 + sigma^2) (max_denoise); ddim_uniform starts below it", () => {
    const k = planSampling(base({ scheduler: 'karras' }));
    expect(k.fromPureNoise).toBe(true);
    const s0 = k.sigmas[0]!;
    expect(k.method!.startLatents(new Float32Array([1, 0, 0, 0]), new Float32Array(4))[0]).toBeCloseTo(Math.sqrt(1 + s0 * s0), 5);
    const u = planSampling(base({ scheduler: 'ddim_uniform' }));
    expect(u.fromPureNoise).toBe(false);
    expect(u.method!.startLatents(new Float32Array([1, 0, 0, 0]), new Float32Array(4))[0]).toBeCloseTo(u.sigmas[0]!, 5);
    // diffusers_leading starts from init_noise_sigma = sqrt(s_0^2 + 1) although s_0 < sigma_max.
    const d = planSampling(base({ scheduler: 'diffusers_leading' }));
    expect(d.method!.startLatents(new Float32Array([1, 0, 0, 0]), new Float32Array(4))[0]).toBeCloseTo(Math.sqrt(1 + d.sigmas[0]! ** 2), 5);
  });

  it('end_at_step cuts (force_full_denoise: last sigma 0), start_at_step drops; at or past the end nothing runs', () => {
    const full = planSampling(base({})).sigmas;
    const first = planSampling(base({ lastStep: 4, forceFullDenoise: false }));
    expect(first.sigmas).toEqual(full.slice(0, 5));
    const forced = planSampling(base({ lastStep: 4, forceFullDenoise: true }));
    expect(forced.sigmas).toEqual([...full.slice(0, 4), 0]);
    const second = planSampling(base({ startStep: 4, addNoise: false }));
    expect(second.sigmas).toEqual(full.slice(4));
    expect(second.offset).toBe(4);
    expect(planSampling(base({ startStep: 10 })).method).toBeNull();
    expect(planSampling(base({ lastStep: 10000 })).sigmas).toEqual(full);
  });

  it('uni_pc: the schedule of steps + 1 with the penultimate sigma dropped (DISCARD_PENULTIMATE_SIGMA_SAMPLERS)', () => {
    const p = planSampling(base({ sampler: 'uni_pc', scheduler: 'karras', steps: 5 }));
    const k6 = karrasSigmas(6, comfy.sigmaMin, comfy.sigmaMax);
    expect(p.sigmas).toEqual([...k6.slice(0, 5), 0]);
    expect(p.method!.timesteps).toHaveLength(5);
  });

  it('refuses unknown names (listing the known ones), steps 0 and denoise outside (0, 1]', () => {
    expect(() => planSampling(base({ sampler: 'dpmpp_3m' as SamplerName }))).toThrow(/unknown sampler "dpmpp_3m".*euler, euler_ancestral/);
    expect(() => planSampling(base({ scheduler: 'beta' as never }))).toThrow(/unknown scheduler "beta".*normal, karras/);
    expect(() => planSampling(base({ steps: 0 }))).toThrow(/steps 0/);
    expect(() => planSampling(base({ denoise: 0 }))).toThrow(/\(0, 1\]/);
  });
});

/** Runs a method to the end with the model's guided prediction `eps(x, t)`. */
async function run(m: SamplingMethod, x: Float32Array, model: GuidedModel): Promise<Float32Array> {
  for (let i = 0; i < m.timesteps.length; i++) x = (await m.step(i, x, model)).x;
  return x;
}

/**
 * Gaussian data N(0, s^2 I) in sigma space: D(x, sigma) = x s^2 / (s^2 + sigma^2), i.e. the epsilon model
 * eps = (x - D) / sigma fed x / sqrt(sigma^2 + 1): eps(u) = u sqrt(sigma^2 + 1) sigma / (s^2 + sigma^2).
 * The probability-flow ODE carries x_T to x_T sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_T^2).
 */
function gaussianModel(s: number, sigmaOfT: (t: number) => number): GuidedModel {
  return async (u, t) => {
    const sg = sigmaOfT(t);
    return u.map((v) => (v * Math.sqrt(sg * sg + 1) * sg) / (s * s + sg * sg));
  };
}

describe('samplers on Gaussian data (closed-form denoiser)', () => {
  const s = 0.5;
  const deterministic: SamplerName[] = ['euler', 'heun', 'lms', 'dpmpp_2m', 'uni_pc', 'uni_pc_bh2', 'ddim'];
  const errors: Record<string, number> = {};
  for (const sampler of deterministic) {
    it(`${sampler} follows the ODE (karras, 24 steps)`, async () => {
      const plan = planSampling(base({ sampler, scheduler: 'karras', steps: 24 }));
      const byT = new Map<number, number>();
      const m = plan.method!;
      // The model sees the schedule's timestep; map it back to the sigma the step used.
      plan.sigmas.forEach((sg, i) => {
        if (i < m.timesteps.length) byT.set(m.timesteps[i]!, sg);
      });
      const sigmaOfT = (t: number) => byT.get(t) ?? comfy.sigmas[Math.round(t)]!;
      const x0 = m.startLatents(new Float32Array([1, -0.5, 0.25, 2]), new Float32Array(4));
      const out = await run(m, x0, gaussianModel(s, sigmaOfT));
      const sigEnd = sampler.startsWith('uni_pc') ? 0.001 : 0;
      const want = Array.from(x0, (v) => (v * Math.sqrt(s * s + sigEnd ** 2)) / Math.sqrt(s * s + plan.sigmas[0]! ** 2));
      const err = Math.max(...Array.from(out, (v, k) => Math.abs(v - want[k]!)));
      errors[sampler] = err;
      expect(err).toBeLessThan(sampler === 'euler' || sampler === 'ddim' ? 0.1 : 0.02); // first order vs second
    });
  }
  it('the higher-order methods beat Euler', () => {
    for (const k of ['heun', 'lms', 'dpmpp_2m', 'uni_pc']) expect(errors[k]).toBeLessThan(errors.euler!);
  });
});

describe('sampler steps, worked', () => {
  it('Euler ancestral: sigma_up = sqrt(s1^2 (s0^2 - s1^2) / s0^2), sigma_down = sqrt(s1^2 - up^2)', () => {
    const { down, up } = ancestralStep(2, 1);
    expect(up).toBeCloseTo(Math.sqrt(3) / 2, 12);
    expect(down).toBeCloseTo(0.5, 12);
    expect(ancestralStep(1, 0)).toEqual({ down: 0, up: 0 });
  });

  it('LMS coefficients: order 1 is the step, order 2 the linear extrapolation integral', () => {
    const sg = [3, 2, 1.5, 1];
    expect(lmsCoefficient(1, sg, 0, 0)).toBeCloseTo(-1, 12);
    // order 2 at i = 1 on [2, 1.5]: c0 = int (tau - 3)/(2 - 3), c1 = int (tau - 2)/(3 - 2)
    const c0 = -(1.5 ** 2 / 2 - 3 * 1.5 - (2 ** 2 / 2 - 3 * 2));
    const c1 = 1.5 ** 2 / 2 - 2 * 1.5 - (2 ** 2 / 2 - 2 * 2);
    expect(lmsCoefficient(2, sg, 1, 0)).toBeCloseTo(c0, 12);
    expect(lmsCoefficient(2, sg, 1, 1)).toBeCloseTo(c1, 12);
    // the order-p coefficients integrate the interpolating polynomial: they sum to the step
    const c4 = [0, 1, 2, 3].map((j) => lmsCoefficient(4, [5, ...sg], 3, j));
    expect(c4.reduce((a, b) => a + b, 0)).toBeCloseTo(sg[3]! - sg[2]!, 12);
  });

  it("DDPM step equals diffusers' posterior mean written with x0 (fixed_small variance, z = 0)", async () => {
    const p = planSampling(base({ sampler: 'ddpm', scheduler: 'ddim_uniform', steps: 4 }));
    const m = p.method!;
    const x = new Float32Array([0.3, -1.2, 2, 0.7]);
    const eps = new Float32Array([0.1, 0.2, -0.3, 0.4]);
    const r = await m.step(0, x, async () => eps);
    const [s, sn] = [p.sigmas[0]!, p.sigmas[1]!];
    const a = 1 / (1 + s * s);
    const ap = 1 / (1 + sn * sn);
    const beta = 1 - a / ap;
    // diffusers: mean = sqrt(a_prev) beta / (1 - a) x0 + sqrt(1 - beta) (1 - a_prev) / (1 - a) x_vp
    x.forEach((xv, k) => {
      const xvp = xv * Math.sqrt(a);
      const x0 = (xvp - Math.sqrt(1 - a) * eps[k]!) / Math.sqrt(a);
      const mean = ((Math.sqrt(ap) * beta) / (1 - a)) * x0 + ((Math.sqrt(1 - beta) * (1 - ap)) / (1 - a)) * xvp;
      expect(r.x[k]! / Math.sqrt(1 + sn * sn)).toBeCloseTo(mean, 5); // z was all zeros
    });
  });

  it('LCM: c_skip, c_out of the boundary condition; the last step returns the denoised latents', async () => {
    const b = lcmBoundary(999);
    expect(b.cSkip).toBeCloseTo(0.25 / (9990 ** 2 + 0.25), 15);
    expect(b.cOut).toBeCloseTo(9990 / Math.sqrt(9990 ** 2 + 0.25), 12);
    expect(lcmBoundary(0)).toEqual({ cSkip: 1, cOut: 0 });
    const p = planSampling(base({ sampler: 'lcm', scheduler: 'sgm_uniform', steps: 1 }));
    const x = new Float32Array([1, 2, 3, 4]);
    const r = await p.method!.step(0, x, async () => new Float32Array(4));
    const c = lcmBoundary(p.method!.timesteps[0]!);
    r.x.forEach((v, k) => expect(v).toBeCloseTo(x[k]! * (c.cOut + c.cSkip), 5));
  });

  it("UniPC on data at one point (D = x*): diffusers' order 2 lands on x*, ComfyUI's ends at sigma 0.001 around it", async () => {
    const star = [0.5, -0.25, 1, 2];
    for (const [scheduler, tol] of [
      ['diffusers_leading', 1e-5],
      ['karras', 0.01],
    ] as const) {
      const p = planSampling(base({ sampler: 'uni_pc', scheduler, steps: 6 }));
      const m = p.method!;
      let i = 0;
      const eps: GuidedModel = async (u) => {
        const sg = p.sigmas[i++]!;
        const c = Math.sqrt(sg * sg + 1);
        return u.map((v, k) => (v * c - star[k]!) / sg); // x = x* + sigma eps
      };
      const z = new Float32Array([1, -1, 0.5, 0]);
      let x = m.startLatents(z, new Float32Array(star));
      for (let j = 0; j < m.timesteps.length; j++) x = (await m.step(j, x, eps)).x;
      x.forEach((v, k) =>
        expect(Math.abs(v - star[k]! - (scheduler === 'karras' ? (0.001 * z[k]! * Math.sqrt(1 + p.sigmas[0]! ** 2)) / p.sigmas[0]! : 0))).toBeLessThan(tol),
      );
    }
  });

  it('solveSmall solves a 3x3 system', () => {
    const x = solveSmall(
      [
        [2, 1, 0],
        [1, 3, 1],
        [0, 1, 4],
      ],
      [3, 5, 5],
    );
    [1, 1, 1].forEach((w, k) => expect(x[k]).toBeCloseTo(w, 12));
  });
});

describe("ddim with a diffusers_* scheduler is diffusers' DDIM (the DDIM Sampler's method) bit for bit", () => {
  it('txt2img and img2img at denoise 0.6 (6 of 10 steps)', async () => {
    const eps: GuidedModel = async (x, t) => x.map((v, k) => Math.sin(v * 3 + t / 100 + k));
    const noise = new Float32Array([0.3, -1.1, 0.8, 2.1]);
    const init = new Float32Array([0.5, 0.1, -0.4, 0.9]);
    const a = ddimMethod(ddim, { steps: 10, strength: 1, full: true, eta: 0, noise: () => new Float32Array(4) });
    const b = planSampling(base({ sampler: 'ddim', scheduler: 'diffusers_leading', steps: 10 })).method!;
    expect(b.timesteps).toEqual(a.timesteps);
    expect(await run(b, b.startLatents(noise, new Float32Array(4)), eps)).toEqual(await run(a, a.startLatents(noise), eps));
    const a2 = ddimMethod(ddim, { steps: 10, strength: 0.6, full: false, eta: 0, noise: () => new Float32Array(4) });
    const b2 = planSampling(base({ sampler: 'ddim', scheduler: 'diffusers_leading', steps: 6, denoise: 0.6 })).method!;
    expect(b2.timesteps).toEqual(a2.timesteps);
    expect(await run(b2, b2.startLatents(noise, init), eps)).toEqual(await run(a2, a2.startLatents(noise, init), eps));
  });
});

describe('chaining (KSampler Advanced)', () => {
  it('steps 0..4 with leftover noise, then 4..10 without adding noise, equal one run of 10 (euler, deterministic)', async () => {
    const eps: GuidedModel = async (x, t) => x.map((v, k) => Math.cos(v + t / 300 + k) * 0.5);
    const noise = new Float32Array([0.3, -1.1, 0.8, 2.1]);
    const zero = new Float32Array(4);
    const full = planSampling(base({ scheduler: 'karras' })).method!;
    const one = await run(full, full.startLatents(noise, zero), eps);
    const p1 = planSampling(base({ scheduler: 'karras', lastStep: 4, forceFullDenoise: false })).method!;
    const mid = await run(p1, p1.startLatents(noise, zero), eps);
    const p2 = planSampling(base({ scheduler: 'karras', startStep: 4, addNoise: false })).method!;
    const two = await run(p2, p2.startLatents(noise, mid), eps);
    expect(two).toEqual(one);
  });
});

it('every sampler runs with every scheduler', async () => {
  const eps: GuidedModel = async (x) => x.map((v) => v * 0.1);
  for (const sampler of SAMPLER_NAMES) {
    for (const scheduler of SCHEDULER_NAMES) {
      let k = 0;
      const p = planSampling(base({ sampler, scheduler, steps: 5, noise: () => new Float32Array(4).fill(0.1 * ++k) }));
      const out = await run(p.method!, p.method!.startLatents(new Float32Array([1, 2, 3, 4]), new Float32Array(4)), eps);
      expect(out.every(Number.isFinite), `${sampler} + ${scheduler}`).toBe(true);
    }
  }
});
