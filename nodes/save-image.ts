/** Save Image: writes PNGs into the output folder, with the workflow embedded (reopen by dropping the PNG). */
import { saveImages } from './runtime/images.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue } from './values.js';

export const saveImage: NodeDef = {
  type: 'save-image',
  title: 'Save Image',
  category: 'Output',
  description:
    'Saves the images as PNG in the output folder as <prefix>_00001_.png (a prefix may name a subfolder, never one outside the output folder). Each PNG carries this workflow and Automatic1111-style parameters.',
  inputs: [{ name: 'images', type: 'IMAGE' }],
  outputs: [],
  params: [{ name: 'filename_prefix', kind: 'string', default: 'ipadapter', outputPrefix: true }],
  output: true,
  async execute(inputs, params, ctx) {
    const img = expectValue<ImageValue>(inputs.images, 'IMAGE', 'images');
    ctx.emitImages(await saveImages(img, ctx, ctx.outputDir, params.filename_prefix as string));
    return {};
  },
};
