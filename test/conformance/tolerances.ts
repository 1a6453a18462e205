/**
 * The tolerance columns of the reduced precisions (`npm run conformance -- --precision P`): per group, the atol / rtol
 * its outputs must meet under profile cpu-P, used when wider than the case's own (fp32) tolerance. The fp16 figures
 * are the measured worst error of the fp16 graph on the CPU (which stores every fp16 value as fp16, so rounding is
 * real, while most kernels compute in float32) with about 2x margin; README "GPU profiles" has the measured errors.
 * A group listed in PRECISION_INSENSITIVE runs no network (or only integer / float64 code) and keeps its tolerance.
 * int8: issue 17 fills its own column.
 */
import type { Precision } from '../../models/onnx/profile.js';

export interface Tolerance {
  atol: number;
  rtol: number;
}

export const PRECISION_INSENSITIVE: ReadonlySet<string> = new Set(['tokenizer', 'clip_preprocess', 'ddim', 'torch_randn_cpu', 'malicious_pickles']);

export const PRECISION_TOLERANCE: Partial<Record<Exclude<Precision, 'fp32'>, Record<string, Tolerance>>> = {
  fp16: {
    text_encoder: { atol: 2e-2, rtol: 0 },
    vision_encoder: { atol: 2e-2, rtol: 0 },
    image_proj: { atol: 2e-2, rtol: 0 },
    unet_step: { atol: 2e-2, rtol: 2e-2 },
    vae: { atol: 2e-2, rtol: 0 },
  },
};
