/** Preview Image: shows the images without keeping them (written to the engine's temp folder). */
import { saveImages } from './runtime/images.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue } from './values.js';

export const previewImage: NodeDef = {
  type: 'preview-image',
  title: 'Preview Image',
  category: 'Output',
  description: 'Shows the images in the output panel; they go to a temporary folder (Save Image keeps them).',
  inputs: [{ name: 'images', type: 'IMAGE' }],
  outputs: [],
  params: [],
  output: true,
  async execute(inputs, _params, ctx) {
    const img = expectValue<ImageValue>(inputs.images, 'IMAGE', 'images');
    ctx.emitImages(await saveImages(img, ctx, ctx.tempDir, `preview/${ctx.runId}_${ctx.nodeId}`));
    return {};
  },
};
