/**
 * The tolerance columns of the reduced precisions (`npm run conformance -- --precision P`): per group, the atol / rtol
 * its outputs must meet under profile cpu-P, used when wider than the case's own (fp32) tolerance. The fp16 figures
 * are 2x the worst error measured for the group with `npm run conformance -- --precision fp16` (every folder, CPU,
 * 2026-12-03; the figure is beside each entry), rounded up. On the x86 CPU most fp16 ops compute in float32 and ONNX
 * Runtime drops the Casts between them, so these errors are what the fp16 values that stay stored as fp16 cost
 * (weights, graph-input casts, data-movement ops): a GPU, which computes in fp16, may need the column widened.
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
 * int8 (profile cpu-int8, "CPU precision: fast": the UNet's and ControlNet's linears and resnet conv1 / conv2 in int8,
 * onnx/quantize.ts): about 2x the worst error measured on the tiny fixtures (`npm run conformance -- --precision int8
 * --only tiny-sd15`, 2026-12-03, beside each entry): one UNet step 3.3e-2 (noise_pred; 0.32 after CFG 7.5), ControlNet
 * residuals 5.0e-2, the 10-step pipelines' images 0.026-0.055 and latents up to 0.92 (a random tiny UNet amplifies a
 * step's difference over the steps; its 32-64-channel convs get coarser 8-bit outputs than SD1.5's 320-1280). The
 * networks the pass leaves in float32 (text / vision encoders, projection, VAE) keep their case tolerance (atol 0 here:
 * the case's own applies).
 */
const INT8_TOLERANCE: Record<string, Tolerance> = {
  text_encoder: { atol: 0, rtol: 0 },
  vision_encoder: { atol: 0, rtol: 0 },
  image_proj: { atol: 0, rtol: 0 },
  vae: { atol: 0, rtol: 0 },
  unet_step: { atol: 0.65, rtol: 0 }, // measured 0.325 (noise_pred_cfg)
  pipeline_ip_adapter: { atol: 1.7, rtol: 0 }, // measured 0.819 (latents)
  pipeline_text_only: { atol: 1.9, rtol: 0 }, // measured 0.922
  pipeline_controlnet_ip_adapter: { atol: 1.9, rtol: 0 }, // measured 0.925 (residuals 5.0e-2)
  pipeline_img2img_ip_adapter: { atol: 0.31, rtol: 0 }, // measured 0.151
  multiple_image_prompts: { atol: 1.7, rtol: 0 }, // measured 0.817
};

export const PRECISION_TOLERANCE: Partial<Record<Exclude<Precision, 'fp32'>, Record<string, Tolerance>>> = {
  int8: INT8_TOLERANCE,
  fp16: {
    image_proj: { atol: 1.1e-2, rtol: 0 }, // measured 5.18e-03
    ip_full_face_unet_step: { atol: 8e-3, rtol: 0 }, // measured 4.00e-03
    lora: { atol: 6.3e-2, rtol: 0 }, // measured 3.11e-02
    multiple_image_prompts: { atol: 6.8e-2, rtol: 0 }, // measured 3.37e-02
    pickle_files: { atol: 5.9e-2, rtol: 0 }, // measured 2.92e-02
    pipeline_controlnet_ip_adapter: { atol: 7.7e-2, rtol: 0 }, // measured 3.84e-02
    pipeline_img2img_ip_adapter: { atol: 1.3e-2, rtol: 0 }, // measured 6.19e-03
    pipeline_ip_adapter: { atol: 8.8e-2, rtol: 0 }, // measured 4.39e-02
    pipeline_ip_full_face: { atol: 7e-2, rtol: 0 }, // measured 3.49e-02
    pipeline_ip_masks: { atol: 5.7e-2, rtol: 0 }, // measured 2.81e-02
    pipeline_text_only: { atol: 7.2e-2, rtol: 0 }, // measured 3.57e-02
    pipeline_two_ip_adapters: { atol: 5.7e-2, rtol: 0 }, // measured 2.84e-02
    sampler_ddim_linspace: { atol: 1.2e-1, rtol: 0 }, // measured 5.78e-02
    sampler_ddim_trailing: { atol: 1.3e-1, rtol: 0 }, // measured 6.20e-02
    sampler_ddpm: { atol: 8.7e-2, rtol: 0 }, // measured 4.32e-02
    sampler_dpmpp_2m: { atol: 6.7e-2, rtol: 0 }, // measured 3.33e-02
    sampler_dpmpp_2m_karras: { atol: 1.2e-1, rtol: 0 }, // measured 5.81e-02
    sampler_euler: { atol: 7.1e-2, rtol: 0 }, // measured 3.51e-02
    sampler_euler_ancestral: { atol: 1.2e-1, rtol: 0 }, // measured 5.92e-02
    sampler_heun: { atol: 4.9e-2, rtol: 0 }, // measured 2.45e-02
    sampler_img2img_dpmpp_2m_karras: { atol: 2e-2, rtol: 0 }, // measured 9.77e-03
    sampler_img2img_euler: { atol: 1.6e-2, rtol: 0 }, // measured 7.68e-03
    sampler_lcm: { atol: 5.5e-2, rtol: 0 }, // measured 2.71e-02
    sampler_lms: { atol: 6.9e-2, rtol: 0 }, // measured 3.44e-02
    sampler_unipc: { atol: 7.6e-2, rtol: 0 }, // measured 3.79e-02
    standalone_vae: { atol: 5.5e-2, rtol: 0 }, // measured 2.74e-02
    text_encoder: { atol: 6.5e-3, rtol: 0 }, // measured 3.22e-03
    unet_step: { atol: 3.2e-2, rtol: 0 }, // measured 1.58e-02
    vae: { atol: 10e-3, rtol: 0 }, // measured 4.96e-03
    vision_encoder: { atol: 9.1e-3, rtol: 0 }, // measured 4.51e-03
  },
};
