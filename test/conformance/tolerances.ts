/**
 * The tolerance columns of the reduced precisions (`npm run conformance -- --precision P`): per group, the atol / rtol
 * its outputs must meet under profile cpu-P, used when wider than the case's own (fp32) tolerance. The fp16 figures
 * are the measured worst error of the fp16 graph on the CPU (which stores every fp16 value as fp16, so rounding is
 * real, while most kernels compute in float32) with about 2x margin; README "GPU profiles" has the measured errors.
 * A group listed in PRECISION_INSENSITIVE runs no network (or only integer / float64 code) and keeps its tolerance.
 * int8: INT8_TOLERANCE below (issue 17).
 */
import type { Precision } from '../../models/onnx/profile.js';

export interface Tolerance {
  atol: number;
  rtol: number;
}

export const PRECISION_INSENSITIVE: ReadonlySet<string> = new Set(['tokenizer', 'clip_preprocess', 'ddim', 'torch_randn_cpu', 'malicious_pickles']);

/**
 * int8 (profile cpu-int8, "CPU precision: fast": the UNet's and ControlNet's linears in int8, onnx/quantize.ts): about 2x
 * the worst error measured on the tiny fixtures (`npm run conformance -- --precision int8 --only tiny-sd15`, 2026-12-03):
 * one UNet step 8.8e-3 (noise_pred; 9.5e-2 after CFG 7.5), ControlNet residuals 1.2e-2, the 10-step pipelines' latents
 * 0.24 and images 0.022 (a random tiny UNet amplifies a step's difference over the steps). The networks the pass leaves
 * in float32 (text / vision encoders, projection, VAE) keep their case tolerance (atol 0 here: the case's own applies).
 */
const INT8_TOLERANCE: Record<string, Tolerance> = {
  text_encoder: { atol: 0, rtol: 0 },
  vision_encoder: { atol: 0, rtol: 0 },
  image_proj: { atol: 0, rtol: 0 },
  vae: { atol: 0, rtol: 0 },
  unet_step: { atol: 0.2, rtol: 0 },
  pipeline_ip_adapter: { atol: 0.5, rtol: 0 },
  pipeline_text_only: { atol: 0.5, rtol: 0 },
  pipeline_controlnet_ip_adapter: { atol: 0.5, rtol: 0 },
  pipeline_img2img_ip_adapter: { atol: 0.5, rtol: 0 },
  multiple_image_prompts: { atol: 0.5, rtol: 0 },
};

export const PRECISION_TOLERANCE: Partial<Record<Exclude<Precision, 'fp32'>, Record<string, Tolerance>>> = {
  int8: INT8_TOLERANCE,
  fp16: {
    text_encoder: { atol: 2e-2, rtol: 0 },
    vision_encoder: { atol: 2e-2, rtol: 0 },
    image_proj: { atol: 2e-2, rtol: 0 },
    unet_step: { atol: 2e-2, rtol: 2e-2 },
    vae: { atol: 2e-2, rtol: 0 },
  },
};
