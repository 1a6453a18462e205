/**
 * Conformance cases of the `multiple_image_prompts` group. `unet_step_two_images`: one adapter,
 * two image prompts; their tokens (B, 2 images, 4, C) are concatenated along the sequence
 * (8 tokens) as IPAdapterAttnProcessor does, run through the unet_step sources ([diffusers], [ldm]).
 * `txt2img_two_images` is a full pipeline run through the executor, from workflow JSON.
 */
import type { CaseHandler } from '../context.js';
import { txt2imgTwoImages } from '../pipeline-runner.js';
import { runUNetCase } from './unet_step.js';

export const multipleImagePrompts: CaseHandler = async (ctx, group, c) => {
  if (c.name === 'txt2img_two_images') return txt2imgTwoImages(ctx, group, c);
  if (c.name === 'unet_step_two_images') return runUNetCase(ctx, group, c);
  return [{ group, case: c.name, status: 'fail', detail: 'unknown case of multiple_image_prompts' }];
};
