/**
 * Group name -> case handler. Each group of cases.json has its own file in this folder, except the
 * pipeline groups run through the engine as they are (their handlers are ../pipeline-runner.ts's).
 * A group missing here is reported as a failure by the runner.
 */
import type { CaseHandler } from '../context.js';
import { tokenizer } from './tokenizer.js';
import { textEncoder } from './text_encoder.js';
import { clipPreprocess } from './clip_preprocess.js';
import { visionEncoder } from './vision_encoder.js';
import { imageProj } from './image_proj.js';
import { unetStep } from './unet_step.js';
import { ddim } from './ddim.js';
import { vae } from './vae.js';
import { pipelineImg2imgCase, pipelineIpAdapterCase, pipelineTextOnlyCase } from '../pipeline-runner.js';
import { pipelineControlnetIpAdapter } from './pipeline_controlnet_ip_adapter.js';
import { multipleImagePrompts } from './multiple_image_prompts.js';
import { standaloneVaeGroup } from './standalone_vae.js';
import { pickleFiles } from './pickle_files.js';
import { maliciousPickles } from './malicious_pickles.js';
import { loraGroup } from './lora.js';
import { ipFullFaceUnetStep } from './ip_full_face_unet_step.js';
import { pipelineIpFullFace } from './pipeline_ip_full_face.js';
import { pipelineIpMasks } from './pipeline_ip_masks.js';
import { pipelineTwoIpAdapters } from './pipeline_two_ip_adapters.js';
import { SAMPLER_CASES, samplerGroup } from './samplers.js';
import { torchRandnCpu } from './torch_randn_cpu.js';

export const handlers: Record<string, CaseHandler> = {
  tokenizer: tokenizer,
  text_encoder: textEncoder,
  clip_preprocess: clipPreprocess,
  vision_encoder: visionEncoder,
  image_proj: imageProj,
  unet_step: unetStep,
  ddim: ddim,
  vae: vae,
  pipeline_ip_adapter: pipelineIpAdapterCase,
  pipeline_text_only: pipelineTextOnlyCase,
  pipeline_controlnet_ip_adapter: pipelineControlnetIpAdapter,
  pipeline_img2img_ip_adapter: pipelineImg2imgCase,
  multiple_image_prompts: multipleImagePrompts,
  // model-files
  standalone_vae: standaloneVaeGroup,
  pickle_files: pickleFiles,
  malicious_pickles: maliciousPickles,
  lora: loraGroup,
  ip_full_face_unet_step: ipFullFaceUnetStep,
  pipeline_ip_full_face: pipelineIpFullFace,
  pipeline_ip_masks: pipelineIpMasks,
  pipeline_two_ip_adapters: pipelineTwoIpAdapters,
  // samplers: torch randn, and every sampler group through a KSampler workflow (groups/samplers.ts)
  torch_randn_cpu: torchRandnCpu,
  ...Object.fromEntries(Object.keys(SAMPLER_CASES).map((g) => [g, samplerGroup])),
};
