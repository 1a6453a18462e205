/**
 * Apply IP-Adapter (embeds): MODEL + IP_ADAPTER + IP_EMBEDS -> MODEL, ComfyUI_IPAdapter_plus' IPAdapterEmbeds.
 * The embeds (from IP-Adapter Encoder, Combine Embeds or Load Embeds) go through the adapter's projection
 * (nodes/runtime/ip-embeds.ts embedsToTokens: the negative embeds, else zeros / the vision states of a zero
 * image, as the unconditional ones), then exactly Apply IP-Adapter's path: its params and execute, so
 * weight types, windows and everything Apply IP-Adapter takes act the same.
 */
import { applyIpAdapter } from './apply-ip-adapter.js';
import { embedsToTokens } from './runtime/ip-embeds.js';
import type { NodeDef } from './types.js';
import { expectValue, type ClipVisionValue, type IpAdapterValue, type IpEmbedsValue } from './values.js';

/** Apply IP-Adapter's inputs this node replaces by embeds. */
const TOKEN_INPUTS = new Set(['model', 'ip_adapter', 'tokens', 'negative', 'composition']);

export const applyIpAdapterEmbeds: NodeDef = {
  type: 'apply-ip-adapter-embeds',
  title: 'Apply IP-Adapter (embeds)',
  category: 'IP-Adapter',
  description:
    'Apply IP-Adapter from precomputed embeds (ComfyUI\'s IPAdapterEmbeds): the embeds are projected by the adapter, "negative" (e.g. the Encoder\'s negative output or the embeds of a noise image) gives the unconditional tokens, else a zero image does (Plus / full-face need the CLIP Vision they were made with: connect it for loaded embeds). "composition" feeds the composition layers of the "style and composition" weight type. Everything else is Apply IP-Adapter\'s.',
  inputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'ip_adapter', type: 'IP_ADAPTER' },
    { name: 'embeds', type: 'IP_EMBEDS' },
    { name: 'negative', label: 'negative embeds', type: 'IP_EMBEDS', optional: true },
    { name: 'composition', label: 'composition embeds', type: 'IP_EMBEDS', optional: true },
    { name: 'clip_vision', type: 'CLIP_VISION', optional: true },
    ...applyIpAdapter.inputs.filter((p) => !TOKEN_INPUTS.has(p.name)),
  ],
  outputs: applyIpAdapter.outputs,
  params: applyIpAdapter.params,
  check: applyIpAdapter.check,
  async execute(inputs, params, ctx) {
    const adapter = expectValue<IpAdapterValue>(inputs.ip_adapter, 'IP_ADAPTER', 'ip_adapter');
    const pos = expectValue<IpEmbedsValue>(inputs.embeds, 'IP_EMBEDS', 'embeds');
    const neg = inputs.negative === undefined ? undefined : expectValue<IpEmbedsValue>(inputs.negative, 'IP_EMBEDS', 'negative');
    const comp = inputs.composition === undefined ? undefined : expectValue<IpEmbedsValue>(inputs.composition, 'IP_EMBEDS', 'composition');
    const cv = inputs.clip_vision === undefined ? undefined : expectValue<ClipVisionValue>(inputs.clip_vision, 'CLIP_VISION', 'clip_vision');
    const tokens = await embedsToTokens(ctx.models, adapter, pos, neg, cv?.path);
    const composition = comp ? await embedsToTokens(ctx.models, adapter, comp, neg, cv?.path) : undefined;
    ctx.trace?.({ node: ctx.nodeId, name: 'ip_tokens', data: tokens.cond, shape: [tokens.tokens, tokens.dim] });
    ctx.trace?.({ node: ctx.nodeId, name: 'ip_tokens_uncond', data: tokens.uncond, shape: [tokens.tokens, tokens.dim] });
    const rest = Object.fromEntries(Object.entries(inputs).filter(([k]) => !['embeds', 'negative', 'composition', 'clip_vision'].includes(k)));
    return applyIpAdapter.execute({ ...rest, tokens, ...(composition ? { composition } : {}) }, params, ctx);
  },
};
