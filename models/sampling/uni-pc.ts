/**
 * UniPC multistep (Zhao et al. 2023, "UniPC": UniP predictor + UniC corrector, data prediction,
 * B(h) = h (bh1) or e^h - 1 (bh2)), in VP form on the schedule's noise levels:
 * alpha_j = 1 / sqrt(sigma_j^2 + 1), s_j = sigma_j alpha_j, lambda_j = log alpha_j - log s_j, m_j = D(x_j).
 * Reference: diffusers UniPCMultistepScheduler (step, multistep_uni_p_bh_update,
 * multistep_uni_c_bh_update) and the original UniPC code as ComfyUI carries it
 * (comfy/extra_samplers/uni_pc.py multistep_uni_pc_bh_update): the same update, per step i
 *   1. m_i from the sample the model saw (not yet corrected);
 *   2. i > 0: UniC rewrites x_i from x_{i-1} (corrected), m_{i-1}, ... with the order of step i-1;
 *   3. order p_i = min(order, N - i, i + 1) (warm-up and lower_order_final);
 *   4. UniP predicts x_{i+1} from the corrected x_i with order p_i.
 * With hh = -h, phi_1 = expm1(hh), the rows R_k = r^(k-1) and b_k = phi_k k! / B(h) give the
 * coefficients rho (order 2 predictor: rho = 1/2; order 1 corrector: rho = 1/2):
 *   x_t = (s_t / s_0) x - alpha_t phi_1 m_0 - alpha_t B(h) sum_k rho_k (m_k - m_0) / r_k  [+ rho_last (m_t - m_0) in UniC].
 * The diffusers configuration is order 2, bh2, final sigma 0 (the last step returns m_{N-1});
 * ComfyUI's uni_pc is order min(3, N - 1), bh1 (uni_pc_bh2: bh2), with the final sigma 0 replaced
 * by 0.001 (its last step lands there; the result is divided by alpha(0.001)).
 */
import { type KSamplerFactory, zipMap } from './k-sampler.js';

export interface UniPcOptions {
  order: number;
  variant: 'bh1' | 'bh2';
  /** Replaces a final sigma of 0 (ComfyUI: 0.001); undefined keeps 0. */
  finalSigma?: number;
}

/** Solves A x = b for a small dense system (Gaussian elimination with partial pivoting). */
export function solveSmall(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row.slice(0, n), b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= M[r]![k]! * x[k]!;
    x[r] = s / M[r]![r]!;
  }
  return x;
}

/** hh, phi_1, B(h), and the rows R and b of order p for the ratios rks (the last one 1). */
function coefficients(h: number, rks: number[], p: number, variant: 'bh1' | 'bh2') {
  const hh = -h;
  const phi1 = Math.expm1(hh);
  let phiK = phi1 / hh - 1;
  let fact = 1;
  const B = variant === 'bh1' ? hh : Math.expm1(hh);
  const R: number[][] = [];
  const b: number[] = [];
  for (let k = 1; k <= p; k++) {
    R.push(rks.map((r) => r ** (k - 1)));
    b.push((phiK * fact) / B);
    fact *= k + 1;
    phiK = phiK / hh - 1 / fact;
  }
  return { phi1, B, R, b };
}

export function uniPcSampler(o: UniPcOptions): KSamplerFactory {
  return ({ sigmas }) => {
    const N = sigmas.length - 1;
    const sig = (j: number) => (j === N && sigmas[j] === 0 && o.finalSigma !== undefined ? o.finalSigma : sigmas[j]!);
    const alpha = (j: number) => 1 / Math.sqrt(sig(j) ** 2 + 1);
    const std = (j: number) => sig(j) * alpha(j);
    const lambda = (j: number) => Math.log(alpha(j)) - Math.log(std(j));
    const hist: { j: number; m: Float32Array }[] = []; // newest last, at most `order`
    let last: Float32Array | null = null; // corrected VP sample of the previous step
    let lastOrder = 0;
    let lowerOrderNums = 0;
    const diffTerms = (p: number, h: number, l0: number, back: (k: number) => { j: number; m: Float32Array }, m0: Float32Array) => {
      const rks: number[] = [];
      const D1s: Float32Array[] = [];
      for (let k = 1; k < p; k++) {
        const e = back(k);
        const rk = (lambda(e.j) - l0) / h;
        rks.push(rk);
        D1s.push(zipMap(e.m, m0, (a, c) => (a - c) / rk));
      }
      rks.push(1);
      return { rks, D1s };
    };
    return {
      async step(i, x, D) {
        const m = await D(x, i);
        let xi: Float32Array = x.map((v) => v * alpha(i)); // VP
        if (i > 0 && last) {
          // UniC (multistep_uni_c_bh_update) with the previous step's order.
          const p = lastOrder;
          const prev = hist[hist.length - 1]!;
          const l0 = lambda(prev.j);
          const h = lambda(i) - l0;
          const { rks, D1s } = diffTerms(p, h, l0, (k) => hist[hist.length - 1 - k]!, prev.m);
          const { phi1, B, R, b } = coefficients(h, rks, p, o.variant);
          const rhos = p === 1 ? [0.5] : solveSmall(R, b);
          const ratio = std(i) / std(prev.j);
          const a = alpha(i);
          const lastS = last;
          xi = zipMap(lastS, m, (xl, mt, k) => {
            let corr = 0;
            for (let q = 0; q < D1s.length; q++) corr += rhos[q]! * D1s[q]![k]!;
            return ratio * xl - a * phi1 * prev.m[k]! - a * B * (corr + rhos[p - 1]! * (mt - prev.m[k]!));
          });
        }
        hist.push({ j: i, m });
        if (hist.length > o.order) hist.shift();
        const p = Math.min(o.order, N - i, lowerOrderNums + 1);
        last = xi;
        lastOrder = p;
        // UniP (multistep_uni_p_bh_update) from the corrected x_i to sigma_{i+1}.
        const l0 = lambda(i);
        const h = lambda(i + 1) - l0;
        const { rks, D1s } = diffTerms(p, h, l0, (k) => hist[hist.length - 1 - k]!, m);
        const { phi1, B, R, b } = coefficients(h, rks, p, o.variant);
        const rhos =
          D1s.length === 0
            ? []
            : p === 2
              ? [0.5]
              : solveSmall(
                  R.slice(0, -1).map((r) => r.slice(0, -1)),
                  b.slice(0, -1),
                );
        const ratio = std(i + 1) / std(i);
        const a = alpha(i + 1);
        const next = zipMap(xi, m, (xv, mv, k) => {
          let v = ratio * xv - a * phi1 * mv;
          if (D1s.length) {
            let pred = 0;
            for (let q = 0; q < D1s.length; q++) pred += rhos[q]! * D1s[q]![k]!;
            v -= a * B * pred;
          }
          return v / a; // back to sigma space at sigma_{i+1}
        });
        if (lowerOrderNums < o.order) lowerOrderNums++;
        return { x: next, denoised: m };
      },
    };
  };
}
