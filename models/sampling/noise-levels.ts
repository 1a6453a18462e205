/**
 * The noise levels of a discrete-time (DDPM-trained) model in sigma space, as k-diffusion and
 * ComfyUI see an epsilon model: sigma_t = sqrt((1 - abar_t) / abar_t) for each training timestep
 * t = 0 .. T-1, the latents x = x0 + sigma * eps, the UNet fed x / sqrt(sigma^2 + 1) at timestep t.
 *
 * Two tables of the same numbers:
 *   - `comfyNoiseLevels`: ComfyUI's ModelSamplingDiscrete (comfy/model_sampling.py _register_schedule,
 *     make_beta_schedule of comfy/ldm/modules/diffusionmodules/util.py): betas, abar and sigma in
 *     float64, stored as float32; log sigma from the float64 sigma. The KSampler nodes use it.
 *   - `diffusersNoiseLevels`: diffusers' schedulers, sigma = ((1 - abar) / abar) ** 0.5 on the
 *     float32 alphas_cumprod of DDIMScheduler (models/ddim.ts, bit-exact with diffusers), each op in
 *     float32. The diffusers_* schedules use it (their fixtures' sigmas then match exactly).
 * They differ by about 1e-7 relative.
 *
 * Lookups, each as its reference computes it:
 *   sigma(t)      ComfyUI ModelSamplingDiscrete.sigma: log-linear interpolation at a fractional t;
 *   timestep(s)   ComfyUI ModelSamplingDiscrete.timestep: the nearest training timestep in log sigma
 *                 (argmin), what ComfyUI feeds the UNet;
 *   sigmaToT(s)   diffusers _sigma_to_t: the fractional t by log-sigma interpolation (DPM++ Karras
 *                 rounds it for the UNet);
 *   interp(t)     diffusers' np.interp(t, arange(T), sigmas): linear in sigma (Euler-family spacing).
 */

const fr = Math.fround;

export interface NoiseLevels {
  /** sigma of each training timestep, ascending (float32 values). */
  readonly sigmas: Float32Array;
  /** log sigma per timestep (float32 values). */
  readonly logSigmas: Float32Array;
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  sigma(t: number): number;
  timestep(sigma: number): number;
  sigmaToT(sigma: number): number;
  interp(t: number): number;
}

function levels(sigmas: Float32Array, logSigmas: Float32Array): NoiseLevels {
  const T = sigmas.length;
  const last = T - 1;
  return {
    sigmas,
    logSigmas,
    sigmaMin: sigmas[0]!,
    sigmaMax: sigmas[last]!,
    sigma(t) {
      const c = Math.min(Math.max(t, 0), last);
      const lo = Math.floor(c);
      const hi = Math.ceil(c);
      const w = c - lo;
      return fr(Math.exp((1 - w) * logSigmas[lo]! + w * logSigmas[hi]!));
    },
    timestep(sigma) {
      const l = Math.log(sigma);
      let best = 0;
      let bestD = Infinity;
      for (let i = 0; i < T; i++) {
        const d = Math.abs(l - logSigmas[i]!);
        if (d < bestD) {
          bestD = d;
          best = i;
        } // first minimum, as torch's argmin
      }
      return best;
    },
    sigmaToT(sigma) {
      const l = Math.log(Math.max(sigma, 1e-10));
      // low = the last index whose log sigma is <= l (clipped to T-2), high = low + 1.
      let count = 0;
      for (let i = 0; i < T; i++) if (l - logSigmas[i]! >= 0) count++;
      const lo = Math.min(Math.max(count - 1, 0), T - 2);
      const a = logSigmas[lo]!;
      const b = logSigmas[lo + 1]!;
      const w = Math.min(Math.max((a - l) / (a - b), 0), 1);
      return (1 - w) * lo + w * (lo + 1);
    },
    interp(t) {
      if (t <= 0) return sigmas[0]!;
      if (t >= last) return sigmas[last]!;
      const lo = Math.floor(t);
      const w = t - lo;
      return fr(sigmas[lo]! + w * (sigmas[lo + 1]! - sigmas[lo]!));
    },
  };
}

/** The beta schedules of a checkpoint's scheduler config (diffusers names), as ComfyUI builds them. */
export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: 'scaled_linear' | 'linear' | 'squaredcos_cap_v2';
}

/**
 * ComfyUI's table: make_beta_schedule in float64 ("linear" there is diffusers' scaled_linear:
 * linspace(sqrt(b0), sqrt(b1), T)^2; "sqrt_linear" is diffusers' linear; cosine = betas_for_alpha_bar),
 * cumulative product in float64, sigma in float64, stored float32.
 */
export function comfyNoiseLevels(c: BetaConfig): NoiseLevels {
  const T = c.num_train_timesteps;
  const lin = (a: number, b: number, i: number) => (T === 1 ? a : a + ((b - a) * i) / (T - 1));
  const betas = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    if (c.beta_schedule === 'scaled_linear') betas[i] = lin(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), i) ** 2;
    else if (c.beta_schedule === 'linear') betas[i] = lin(c.beta_start, c.beta_end, i);
    else {
      const abar = (t: number) => Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2) ** 2;
      betas[i] = Math.min(1 - abar((i + 1) / T) / abar(i / T), 0.999);
    }
  }
  const sigmas = new Float32Array(T);
  const logSigmas = new Float32Array(T);
  let acc = 1;
  for (let i = 0; i < T; i++) {
    acc *= 1 - betas[i]!;
    const s = Math.sqrt((1 - acc) / acc);
    sigmas[i] = s;
    logSigmas[i] = Math.log(s);
  }
  return levels(sigmas, logSigmas);
}

/** diffusers' table from a scheduler's float32 alphas_cumprod: ((1 - a) / a) ** 0.5 in float32, log in float32. */
export function diffusersNoiseLevels(alphasCumprod: Float32Array): NoiseLevels {
  const sigmas = alphasCumprod.map((a) => fr(Math.sqrt(fr(fr(1 - a) / a))));
  return levels(
    sigmas,
    sigmas.map((s) => Math.log(s)),
  );
}
