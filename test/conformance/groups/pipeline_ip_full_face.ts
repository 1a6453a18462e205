/**
 * model-files' `pipeline_ip_full_face` group: txt2img with the full-face IP-Adapter, as a workflow
 * JSON through the executor (../pipeline-runner.ts, the same runner as the other pipeline groups):
 * Load IP-Adapter detects the MLP projection from the file's keys, CLIP Vision Encode gives the
 * penultimate states, IP-Adapter Projection makes 257 tokens per image (unconditional: vision of
 * zero pixels). image_embeds_0 is compared with the states the projection took, ip_tokens_0 with
 * its tokens, then every step's noise prediction and latents, the final latents and the image.
 */
import type { CaseHandler } from '../context.js';
import { pipelineIpAdapterCase } from '../pipeline-runner.js';

export const pipelineIpFullFace: CaseHandler = pipelineIpAdapterCase;
