/**
 * model-files' `pipeline_ip_masks` group: regional image prompts. `txt2img_masked` is one adapter with two image
 * prompts, each with its own attention mask (left / right half) and scale: diffusers attends to each image on its
 * own and adds s_i · mask_i ⊙ attn(Q, K_i, V_i). The workflow a person builds for it: two Apply IP-Adapter nodes of
 * the same Load IP-Adapter, each with one image and its mask (Load Image -> Image To Mask), which is the same sum.
 * `txt2img_unmasked`: the two images through one projection (tokens concatenated, one softmax) at one scale.
 * Compared besides the pipeline tensors: the masks as the sampler got them (the reference's preprocessed masks)
 * and on each query grid (mask_downsample_q<N>, the sampler's traces of IPAdapterMaskProcessor.downsample).
 */
import type { CaseHandler, Row } from '../context.js';
import { compare, toleranceFor } from '../context.js';
import { branchMask, branchTensors, commonRows, numParam, roleModels, runSlots, slotsWorkflow, type SlotsSpec } from './ip_adapter_slots.js';

const KNOWN = {
  inputs: new Set(['prompt', 'negative_prompt', 'ip_adapter_image', 'ip_adapter_masks', 'latents']),
  params: new Set(['num_inference_steps', 'guidance_scale', 'height', 'width', 'eta', 'timesteps', 'ip_adapter_scale']),
  outputs: new Set(['latents', 'image']),
  intermediates: new Set([
    'prompt_embeds',
    'latents_after_step',
    'unet_noise_pred_per_step',
    'image_embeds_0',
    'ip_tokens_0',
    'masks_preprocessed',
    'mask_downsample_q256',
    'mask_downsample_q64',
    'mask_downsample_q16',
    'mask_downsample_q4',
  ]),
};

/** [cfg, image, ...] from one tensor per image of [cfg, ...] (the reference's layout for one adapter's images). */
function byCfgThenImage(perImage: (Float32Array | null)[]): Float32Array | null {
  if (perImage.some((x) => !x)) return null;
  const half = perImage[0]!.length / 2;
  const out = new Float32Array(half * 2 * perImage.length);
  perImage.forEach((x, i) => {
    out.set(x!.subarray(0, half), i * half);
    out.set(x!.subarray(half), (perImage.length + i) * half);
  });
  return out;
}

export const pipelineIpMasks: CaseHandler = async (ctx, group, c) => {
  const inp = c.inputs as Record<string, unknown>;
  const m = roleModels(ctx, c);
  if (m.adapters.length !== 1) throw new Error(`case ${c.name}: one ip_adapter expected, found ${m.adapters.length}`);
  const adapter = m.adapters[0]!;
  const images = (inp.ip_adapter_image as { png: string }[][])[0]!.map((x) => x.png);
  const scaleParam = (c.params as Record<string, unknown>).ip_adapter_scale;
  const masks = inp.ip_adapter_masks as { png: string }[] | undefined;
  const masked = masks !== undefined;
  let branches: SlotsSpec['branches'];
  if (masked) {
    const scales = (scaleParam as number[][])[0]!;
    if (masks.length !== images.length || scales.length !== images.length) throw new Error(`case ${c.name}: one mask and one scale per image expected`);
    branches = images.map((png, i) => ({ adapter, images: [png], scale: scales[i]!, mask: masks[i]!.png }));
  } else {
    if (typeof scaleParam !== 'number') throw new Error(`case ${c.name}: params.ip_adapter_scale must be a number without masks`);
    branches = [{ adapter, images, scale: scaleParam }];
  }
  const spec: SlotsSpec = {
    pipeline: m.pipeline,
    imageEncoder: m.imageEncoder,
    prompt: String(inp.prompt ?? ''),
    negative: String(inp.negative_prompt ?? ''),
    branches,
    steps: numParam(c, 'num_inference_steps'),
    cfg: numParam(c, 'guidance_scale'),
    eta: numParam(c, 'eta', 0),
    width: numParam(c, 'width', 128),
    height: numParam(c, 'height', 128),
  };
  const run = await runSlots(ctx, slotsWorkflow(ctx, spec), ctx.f32(group, inp.latents));
  const rows: Row[] = await commonRows(ctx, group, c, run, spec, KNOWN);
  const inter = c.intermediates as Record<string, unknown>;
  const tol = toleranceFor(c, 'latents');
  // The adapter's images: [cfg, image, ...]; masked, each image is its own branch.
  const t = masked ? branches.map((_, i) => branchTensors(run, i + 1)) : [branchTensors(run, 1)];
  const input = masked ? byCfgThenImage(t.map((x) => x.input)) : t[0]!.input;
  const tokens = masked ? byCfgThenImage(t.map((x) => x.tokens)) : t[0]!.tokens;
  rows.push(compare(group, `${c.name} image_embeds_0`, input ?? [], ctx.f32(group, inter.image_embeds_0), tol));
  rows.push(compare(group, `${c.name} ip_tokens_0`, tokens ?? [], ctx.f32(group, inter.ip_tokens_0), tol));
  if (masked) {
    // (images, 1, 128, 128): the MASK each Apply IP-Adapter got.
    const got = branches.map((_, i) => branchMask(run, i + 1));
    rows.push(
      compare(group, `${c.name} masks_preprocessed`, got.some((x) => !x) ? [] : got.flatMap((x) => Array.from(x!)), ctx.f32(group, inter.masks_preprocessed), {
        atol: 0,
        rtol: 0,
        exact: true,
      }),
    );
    for (const q of [256, 64, 16, 4]) {
      const key = `mask_downsample_q${q}`;
      const ref = ctx.f32(group, inter[key]); // (images, cfg 2, q, C): the same mask on both halves and every channel
      const [I, cfg, , C] = ctx.shape(group, inter[key]) as [number, number, number, number];
      const want = new Float32Array(I * cfg * q);
      for (let i = 0; i < I; i++) for (let b = 0; b < cfg; b++) for (let j = 0; j < q; j++) want[(i * cfg + b) * q + j] = ref[((i * cfg + b) * q + j) * C]!;
      const traced = branches.map((_, i) => run.named.get(`sampler.ip_mask_${i}_q${q}`));
      const gotQ = traced.some((x) => !x) ? [] : traced.flatMap((x) => [...Array.from(x!), ...Array.from(x!)]);
      rows.push(compare(group, `${c.name} ${key}`, gotQ, want, { atol: 1e-6, rtol: 0 }));
    }
  }
  return rows;
};
