/** Empty Latent Image: the starting point of text-to-image, (batch, 4, height/8, width/8). */
import type { NodeDef } from './types.js';
import type { LatentValue } from './values.js';

export const emptyLatentImage: NodeDef = {
  type: 'empty-latent-image',
  title: 'Empty Latent Image',
  category: 'Latent',
  description: 'An empty latent of the output size. The sampler starts text-to-image from pure noise drawn with its seed.',
  inputs: [],
  outputs: [{ name: 'latent', type: 'LATENT' }],
  params: [
    { name: 'width', kind: 'number', default: 512, min: 64, max: 2048, step: 8, integer: true },
    { name: 'height', kind: 'number', default: 512, min: 64, max: 2048, step: 8, integer: true },
    { name: 'batch_size', label: 'batch', kind: 'number', default: 1, min: 1, max: 16, step: 1, integer: true },
  ],
  check(params) {
    return (['width', 'height'] as const)
      .filter((k) => (params[k] as number) % 8 !== 0)
      .map((k) => ({ param: k, message: `${k} ${params[k]} is not a multiple of 8 (the VAE works on 8x8 pixel blocks)` }));
  },
  async execute(_inputs, params) {
    const dims: LatentValue['dims'] = [params.batch_size as number, 4, (params.height as number) / 8, (params.width as number) / 8];
    const v: LatentValue = { kind: 'LATENT', dims, samples: new Float32Array(dims[0] * dims[1] * dims[2] * dims[3]), empty: true };
    return { latent: v };
  },
};
