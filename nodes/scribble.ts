/** Scribble: a drawing thresholded to white strokes on black, for scribble ControlNets. */
import { scribble as scribbleMap } from '../models/preprocessors/scribble.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue } from './values.js';
import { mapImages, previewOnNode } from './image-resize.js';

export const scribble: NodeDef = {
  type: 'scribble',
  title: 'Scribble',
  category: 'ControlNet preprocessors',
  description:
    'Thresholds a drawing into white strokes on black. "auto" takes the dark pixels as strokes on a light image (pen on paper) and the light ones on a dark image. "thickness" widens thin strokes.',
  inputs: [{ name: 'image', type: 'IMAGE' }],
  outputs: [{ name: 'image', type: 'IMAGE' }],
  params: [
    { name: 'threshold', kind: 'number', default: 128, min: 0, max: 255, step: 1, widget: 'slider' },
    { name: 'strokes', kind: 'enum', default: 'auto', options: ['auto', 'dark', 'light'] },
    { name: 'thickness', kind: 'number', default: 0, min: 0, max: 16, step: 1, integer: true },
  ],
  async execute(inputs, params, ctx) {
    const img = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const out = mapImages(img, (p) =>
      scribbleMap(p, {
        threshold: params.threshold as number,
        strokes: params.strokes as 'auto' | 'dark' | 'light',
        thickness: params.thickness as number,
      }),
    );
    await previewOnNode(out, ctx);
    return { image: out };
  },
};
