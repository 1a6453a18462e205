/** Canny: edge map of an image for Canny ControlNets (white edges on black), as cv2.Canny computes it. */
import { canny as cannyEdges } from '../models/preprocessors/canny.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue } from './values.js';
import { mapImages, previewOnNode } from './image-resize.js';

export const canny: NodeDef = {
  type: 'canny',
  title: 'Canny',
  category: 'ControlNet preprocessors',
  description:
    'Canny edges (OpenCV\'s algorithm, pixel-identical to cv2.Canny): gradients above "high" start an edge, those above "low" continue it. Lower thresholds give more edges. Optional 5x5 Gaussian blur first; "max" channels detects on the strongest colour channel as the original ControlNet annotator did.',
  inputs: [{ name: 'image', type: 'IMAGE' }],
  outputs: [{ name: 'image', type: 'IMAGE' }],
  params: [
    { name: 'low_threshold', label: 'low', kind: 'number', default: 100, min: 0, max: 1000, step: 1, widget: 'slider' },
    { name: 'high_threshold', label: 'high', kind: 'number', default: 200, min: 0, max: 1000, step: 1, widget: 'slider' },
    { name: 'blur', label: 'blur sigma', kind: 'number', default: 0, min: 0, max: 5, step: 0.1 },
    { name: 'l2_gradient', label: 'L2 gradient', kind: 'boolean', default: false },
    { name: 'channels', kind: 'enum', default: 'gray', options: ['gray', 'max'] },
  ],
  check(params) {
    return (params.low_threshold as number) > (params.high_threshold as number)
      ? [{ param: 'low_threshold', message: `low threshold ${params.low_threshold} is above high ${params.high_threshold}; they would be swapped` }]
      : [];
  },
  async execute(inputs, params, ctx) {
    const img = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const out = mapImages(img, (p) =>
      cannyEdges(p, {
        low: params.low_threshold as number,
        high: params.high_threshold as number,
        blurSigma: params.blur as number,
        l2: params.l2_gradient as boolean,
        channels: params.channels as 'gray' | 'max',
      }),
    );
    await previewOnNode(out, ctx);
    return { image: out };
  },
};
