/**
 * model-files' `pipeline_two_ip_adapters` group: two different IP-Adapters at once (base + Plus, diffusers'
 * load_ip_adapter([...]) with set_ip_adapter_scale([s1, s2])), as a workflow of two Load IP-Adapter nodes and two
 * chained Apply IP-Adapter nodes (one image prompt each): attn2 = text + s1 attn(Q, K1, V1) + s2 attn(Q, K2, V2),
 * separate softmaxes, each adapter's own unconditional tokens. Compared: each adapter's projection input and
 * tokens (image_embeds_<i> / ip_tokens_<i>, [uncond, cond]), every step's UNet output and latents, the schedule,
 * the final latents and the image.
 */
import type { CaseHandler } from '../context.js';
import { compare, toleranceFor } from '../context.js';
import { branchTensors, commonRows, numParam, roleModels, runSlots, slotsWorkflow, type SlotsSpec } from './ip_adapter_slots.js';

const KNOWN = {
  inputs: new Set(['prompt', 'negative_prompt', 'ip_adapter_image', 'latents']),
  params: new Set(['num_inference_steps', 'guidance_scale', 'height', 'width', 'eta', 'timesteps', 'ip_adapter_scale']),
  outputs: new Set(['latents', 'image']),
  intermediates: new Set(['prompt_embeds', 'latents_after_step', 'unet_noise_pred_per_step', 'image_embeds_0', 'ip_tokens_0', 'image_embeds_1', 'ip_tokens_1']),
};

export const pipelineTwoIpAdapters: CaseHandler = async (ctx, group, c) => {
  const inp = c.inputs as Record<string, unknown>;
  const m = roleModels(ctx, c);
  const images = inp.ip_adapter_image as { png: string }[];
  const scales = (c.params as Record<string, unknown>).ip_adapter_scale as number[];
  if (!Array.isArray(images) || !Array.isArray(scales) || images.length !== m.adapters.length || scales.length !== m.adapters.length) {
    throw new Error(`case ${c.name}: one image prompt and one scale per adapter expected (${m.adapters.length} adapters)`);
  }
  const spec: SlotsSpec = {
    pipeline: m.pipeline,
    imageEncoder: m.imageEncoder,
    prompt: String(inp.prompt ?? ''),
    negative: String(inp.negative_prompt ?? ''),
    branches: m.adapters.map((adapter, i) => ({ adapter, images: [images[i]!.png], scale: scales[i]! })),
    steps: numParam(c, 'num_inference_steps'),
    cfg: numParam(c, 'guidance_scale'),
    eta: numParam(c, 'eta', 0),
    width: numParam(c, 'width', 128),
    height: numParam(c, 'height', 128),
  };
  const run = await runSlots(ctx, slotsWorkflow(ctx, spec), ctx.f32(group, inp.latents));
  const rows = await commonRows(ctx, group, c, run, spec, KNOWN);
  const inter = c.intermediates as Record<string, unknown>;
  const tol = toleranceFor(c, 'latents');
  spec.branches.forEach((_, i) => {
    const t = branchTensors(run, i + 1);
    rows.push(compare(group, `${c.name} image_embeds_${i}`, t.input ?? [], ctx.f32(group, inter[`image_embeds_${i}`]), tol));
    rows.push(compare(group, `${c.name} ip_tokens_${i}`, t.tokens ?? [], ctx.f32(group, inter[`ip_tokens_${i}`]), tol));
  });
  return rows;
};
