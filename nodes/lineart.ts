/** Lineart: an image's dark strokes and contours as white lines on black, for lineart ControlNets (no model needed). */
import { lineart as lineartMap } from '../models/preprocessors/lineart.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue } from './values.js';
import { mapImages, previewOnNode } from './image-resize.js';

export const lineart: NodeDef = {
  type: 'lineart',
  title: 'Lineart',
  category: 'ControlNet preprocessors',
  description:
    'Inverted line drawing: pixels darker than their surroundings (ink strokes, contours) become white lines on black, the form lineart ControlNets take. A lighter-weight stand-in for the model-based lineart annotators. "black on white" shows the drawing form instead.',
  inputs: [{ name: 'image', type: 'IMAGE' }],
  outputs: [{ name: 'image', type: 'IMAGE' }],
  params: [
    { name: 'sigma', label: 'stroke size', kind: 'number', default: 1.4, min: 0.5, max: 5, step: 0.1 },
    { name: 'threshold', kind: 'number', default: 4, min: 0, max: 64, step: 1 },
    { name: 'gain', label: 'contrast', kind: 'number', default: 6, min: 0.5, max: 32, step: 0.5 },
    { name: 'black_on_white', label: 'black on white', kind: 'boolean', default: false },
  ],
  async execute(inputs, params, ctx) {
    const img = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const out = mapImages(img, (p) =>
      lineartMap(p, {
        sigma: params.sigma as number,
        threshold: params.threshold as number,
        gain: params.gain as number,
        blackOnWhite: params.black_on_white as boolean,
      }),
    );
    await previewOnNode(out, ctx);
    return { image: out };
  },
};
