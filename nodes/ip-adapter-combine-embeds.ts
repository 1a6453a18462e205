/**
 * IP-Adapter Combine Embeds: IP_EMBEDS x (1..5) -> IP_EMBEDS, ComfyUI_IPAdapter_plus' IPAdapterCombineEmbeds.
 * The rows of all connected inputs (each may hold several images) are stacked, then combined
 * (nodes/runtime/ip-embeds.ts combineRows): concat keeps them all; add, subtract (first minus the mean of
 * the others), average, norm average, max and min give one row.
 */
import { COMBINE_METHODS, combineRows, type CombineMethod } from './runtime/ip-embeds.js';
import type { NodeDef } from './types.js';
import { expectValue, type IpEmbedsValue } from './values.js';

const INPUTS = ['embeds_1', 'embeds_2', 'embeds_3', 'embeds_4', 'embeds_5'];

export const ipAdapterCombineEmbeds: NodeDef = {
  type: 'ip-adapter-combine-embeds',
  title: 'IP-Adapter Combine Embeds',
  category: 'IP-Adapter',
  description:
    'Combines image embeds of one adapter, as ComfyUI\'s IPAdapterCombineEmbeds: the rows of every connected input (an input may carry several images) are stacked, then "concat" keeps them all, "add" sums them, "subtract" takes the first minus the mean of the others, "average" averages, "norm average" averages each divided by its norm across the images, "max" / "min" keep the largest / smallest value. Chain nodes for more than five inputs.',
  inputs: INPUTS.map((name, i) => ({ name, type: 'IP_EMBEDS' as const, ...(i ? { optional: true } : {}) })),
  outputs: [{ name: 'embeds', type: 'IP_EMBEDS' }],
  params: [{ name: 'method', kind: 'enum', options: [...COMBINE_METHODS], default: 'concat' }],
  async execute(inputs, params) {
    const all = INPUTS.filter((k) => inputs[k] !== undefined).map((k) => [k, expectValue<IpEmbedsValue>(inputs[k], 'IP_EMBEDS', k)] as const);
    const [, first] = all[0]!;
    for (const [k, e] of all) {
      if (e.adapterPath !== first.adapterPath) {
        throw new Error(`${k} belongs to the adapter ${e.adapterPath}, embeds_1 to ${first.adapterPath}; combine embeds of one adapter`);
      }
      if (e.rowDims.join() !== first.rowDims.join()) throw new Error(`${k} has rows of shape [${e.rowDims}], embeds_1 [${first.rowDims}]`);
    }
    const method = params.method as CombineMethod;
    const n = all.reduce((a, [, e]) => a + e.count, 0);
    if (method === 'subtract' && n < 2) throw new Error('"subtract" takes the first image minus the mean of the others: connect at least two images');
    const rows = new Float32Array(n * (first.data.length / first.count));
    let off = 0;
    for (const [, e] of all) {
      rows.set(e.data, off);
      off += e.data.length;
    }
    const r = combineRows(rows, n, method);
    const vision = all.every(([, e]) => e.visionPath === first.visionPath) ? first.visionPath : '';
    const out: IpEmbedsValue = { ...first, visionPath: vision, count: r.count, data: r.data };
    return { embeds: out };
  },
};
