/** Image To Mask: one channel of an IMAGE as a MASK, for masks painted as black/white images (white = repaint). */
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue, type MaskValue } from './values.js';

const CHANNELS = ['red', 'green', 'blue', 'luminance'];

export const imageToMask: NodeDef = {
  type: 'image-to-mask',
  title: 'Image To Mask',
  category: 'Image',
  description:
    'Turns a mask drawn as an image into a MASK: one channel (or the luminance), 1 where it is white. Invert swaps what is kept and what is repainted.',
  inputs: [{ name: 'image', type: 'IMAGE' }],
  outputs: [{ name: 'mask', type: 'MASK' }],
  params: [
    { name: 'channel', kind: 'enum', options: CHANNELS, default: 'red' },
    { name: 'invert', kind: 'boolean', default: false },
  ],
  async execute(inputs, params) {
    const img = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const n = img.batch * img.width * img.height;
    const data = new Float32Array(n);
    const c = CHANNELS.indexOf(params.channel as string);
    for (let i = 0; i < n; i++) {
      // ITU-R BT.601 luma, as PIL's convert('L') weighs RGB.
      const v = c < 3 ? img.data[i * 3 + c] : 0.299 * img.data[i * 3] + 0.587 * img.data[i * 3 + 1] + 0.114 * img.data[i * 3 + 2];
      data[i] = params.invert ? 1 - v : v;
    }
    const mask: MaskValue = { kind: 'MASK', batch: img.batch, width: img.width, height: img.height, data };
    return { mask };
  },
};
