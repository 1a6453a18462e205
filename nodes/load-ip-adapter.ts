/** Load IP-Adapter: an adapter file in the h94 layout (base, Plus or full-face, told apart by its keys). */
import { IpAdapterModel } from '../models/ip-adapter.js';
import { namingFile } from '../models/shape-check.js';
import type { NodeDef } from './types.js';
import { warnOnWeightValues } from './runtime/weight-values.js';
import type { IpAdapterValue } from './values.js';

export const loadIpAdapter: NodeDef = {
  type: 'load-ip-adapter',
  title: 'Load IP-Adapter',
  category: 'Loaders',
  description: 'Opens an IP-Adapter .safetensors file from <models>/ipadapter (ip-adapter_sd15, ip-adapter-plus_sd15, ip-adapter-full-face_sd15, ...).',
  inputs: [],
  outputs: [{ name: 'ip_adapter', type: 'IP_ADAPTER' }],
  params: [{ name: 'ipadapter_file', label: 'adapter', kind: 'file', modelKind: 'ipadapter', default: 'ip-adapter_sd15.safetensors' }],
  async execute(_inputs, params, ctx) {
    const ad = namingFile(params.ipadapter_file as string, () => IpAdapterModel.load(params.ipadapter_file as string)); // a reader's message names the file
    await warnOnWeightValues(ctx, loadIpAdapter.title, ad.file); // NaN / Inf or mislabelled weights (models/weight-sanity.ts)
    const v: IpAdapterValue = {
      kind: 'IP_ADAPTER',
      path: ad.file,
      adapterKind: ad.kind,
      tokensPerImage: ad.numTokens,
      crossDim: ad.crossAttentionDim,
    };
    return { ip_adapter: v };
  },
};
