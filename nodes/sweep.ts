/**
 * Sweep (XY Plot): declares that params of other nodes take lists of values, so the workflow runs as
 * a batch of jobs, one plain workflow each (engine/sweep.ts expands it). Up to three axes, each a
 * `node.param` target and its values; `product` runs every combination (X varies fastest), `zip`
 * runs the i-th value of each axis together (the lists must be equally long). An image param's value
 * ending in `/` takes every PNG / JPEG / WebP of that folder. The node itself has no ports and never
 * executes: a run of the workflow without the batch runner ignores it.
 */
import type { NodeDef } from './types.js';

const AXES = ['x', 'y', 'z'] as const;

export const sweep: NodeDef = {
  type: 'sweep',
  title: 'Sweep (XY Plot)',
  category: 'Batch',
  description:
    'Runs the workflow once per value: each axis names a param as node.param (apply.weight, sampler.seed, positive.text, checkpoint.ckpt_name, image.image) and its values, separated by commas or lines (text: one per line; numbers also start:stop:step; an image folder: images/refs/). product = every combination, zip = the lists side by side. The results come as the individual PNGs and a labelled grid image.',
  inputs: [],
  outputs: [],
  params: [
    { name: 'mode', kind: 'enum', default: 'product', options: ['product', 'zip'] },
    ...AXES.flatMap((a) => [
      { name: `${a}_param`, label: `${a.toUpperCase()} param`, kind: 'string' as const, default: '' },
      { name: `${a}_values`, label: `${a.toUpperCase()} values`, kind: 'string' as const, default: '', multiline: true },
    ]),
    { name: 'grid', label: 'grid image', kind: 'boolean', default: true },
  ],
  check(params) {
    const problems: { param?: string; message: string }[] = [];
    for (const a of AXES) {
      const target = String(params[`${a}_param`] ?? '').trim();
      const values = String(params[`${a}_values`] ?? '').trim();
      if (target && !/^[^.\s]+\.[^.\s]+$/.test(target)) {
        problems.push({ param: `${a}_param`, message: `${a.toUpperCase()} param "${target}" is not node.param (a node id, a dot, a param name)` });
      }
      if (target && !values) problems.push({ param: `${a}_values`, message: `${a.toUpperCase()} param ${target} has no values` });
      if (!target && values) problems.push({ param: `${a}_param`, message: `${a.toUpperCase()} values are given but no param to sweep (node.param)` });
    }
    return problems;
  },
  async execute() {
    return {};
  },
};
