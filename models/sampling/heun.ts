/**
 * Heun's method (2nd order) in sigma space: two model evaluations per step, one on the last step
 * to sigma 0 (plain Euler there).
 * Reference: k-diffusion sampling.py sample_heun (Karras et al. 2022, Algorithm 1/2 with
 * s_churn = 0); diffusers' HeunDiscreteScheduler runs the same evaluations as 2N - 1 entries.
 */
import { type KSamplerFactory, toD, zipMap } from './k-sampler.js';

/** x' = x + d dt (predictor); d' = (x' - D(x', sigma_{i+1})) / sigma_{i+1}; x_{i+1} = x + (d + d') / 2 dt. */
export const heun: KSamplerFactory = ({ sigmas }) => ({
  async step(i, x, D) {
    const s = sigmas[i]!;
    const next = sigmas[i + 1]!;
    const denoised = await D(x, i);
    const d = toD(x, s, denoised);
    const dt = next - s;
    const x2 = zipMap(x, d, (xv, dv) => xv + dv * dt);
    if (next === 0) return { x: x2, denoised };
    const denoised2 = await D(x2, i + 1);
    const d2 = toD(x2, next, denoised2);
    const out = zipMap(x, d, (xv, dv, k) => xv + ((dv + d2[k]!) / 2) * dt);
    return { x: out, denoised: denoised2, substeps: [x2] };
  },
});
