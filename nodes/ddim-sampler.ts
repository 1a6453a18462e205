/**
 * DDIM Sampler: the denoising loop with classifier-free guidance and the image prompt.
 * Mirrors diffusers' StableDiffusionPipeline / StableDiffusionImg2ImgPipeline __call__:
 *
 *   text-to-image (Empty Latent, denoise 1): x = noise * init_noise_sigma (1 for DDIM),
 *       timesteps = the full schedule of `steps`;
 *   image-to-image (any other latent, or denoise < 1): timesteps = the last int(steps * denoise)
 *       of the schedule (diffusers' strength), x = add_noise(latent, noise, timesteps[0]);
 *   each step: the model call (nodes/runtime/sampler-unet.ts: the UNet on the batch [uncond,
 *       cond] with the image tokens, per-layer IP-Adapter scales and ControlNet residuals),
 *       guidance uncond + cfg * (cond - uncond) (only when cfg > 1), DDIM step with eta: the
 *       loop is models/sampling/denoise.ts with models/sampling/ddim-method.ts;
 *   inpainting (a latent with a noise mask, models/inpaint.ts): a 4-channel UNet blends the
 *       latents with the noised init latents outside the mask after each step (diffusers'
 *       StableDiffusionInpaintPipeline); a 9-channel inpainting UNet gets cat([x, mask,
 *       masked-image latents]) as its input instead.
 *
 * Noise comes from ctx.noise through the node's seed params (nodes/runtime/seed.ts): with `noise` torch
 * the starting noise is torch.randn on the CPU from manual_seed(seed), as ComfyUI and diffusers
 * draw it, and eta's per-step noise continues that generator (diffusers' DDIMScheduler); with
 * philox (workflows saved before version 2) the counter-based noise of engine/rng.ts. The same
 * seed gives the same image. Progress after each step carries a preview of the predicted
 * clean latent (throttled: PreviewThrottle); cancellation is checked before each step.
 */
import { cfgGuidance, denoise } from '../models/sampling/denoise.js';
import { ddimMethod } from '../models/sampling/ddim-method.js';
import { checkpointParts, schedulerFor, unetGraph } from './runtime/networks.js';
import { checkControlsFit, hasControls } from './runtime/controlnet.js';
import { samplerUNet } from './runtime/sampler-unet.js';
import { checkSamplerInputs, sampledLatent, samplerInputs, samplerStepHooks } from './runtime/sampling.js';
import { SEED_PARAMS, seededDraws } from './runtime/seed.js';
import type { NodeDef } from './types.js';

export const ddimSampler: NodeDef = {
  type: 'ddim-sampler',
  title: 'DDIM Sampler',
  category: 'Sampling',
  description:
    'Denoises the latent with DDIM and classifier-free guidance. denoise < 1 (or a latent from VAE Encode) is image-to-image: only the last steps × denoise steps run, starting from the noised input.',
  inputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'positive', type: 'CONDITIONING' },
    { name: 'negative', type: 'CONDITIONING' },
    { name: 'latent', type: 'LATENT' },
  ],
  outputs: [{ name: 'latent', type: 'LATENT' }],
  params: [
    ...SEED_PARAMS,
    { name: 'steps', kind: 'number', default: 30, min: 1, max: 1000, step: 1, integer: true },
    { name: 'cfg', label: 'CFG scale', kind: 'number', default: 7.5, min: 0, max: 30, step: 0.5 },
    { name: 'eta', kind: 'number', default: 0, min: 0, max: 1, step: 0.05 },
    { name: 'denoise', kind: 'number', default: 1, min: 0, max: 1, step: 0.01 },
  ],
  async execute(inputs, params, ctx) {
    const { model, positive, negative, latent } = samplerInputs(inputs);
    const draws = seededDraws(ctx, params);
    const steps = params.steps as number;
    const cfg = params.cfg as number;
    const eta = params.eta as number;
    const strength = params.denoise as number;
    const controlled = hasControls([positive, negative]); // Apply ControlNet on either prompt
    if (controlled) await checkControlsFit(ctx, [positive, negative], (await checkpointParts(ctx.models, model.checkpoint)).unet.config, model.checkpoint.path);
    const unet = await unetGraph(ctx.models, model, controlled); // its session(s): samplerUNet
    const sched = await schedulerFor(ctx.models, model.checkpoint);
    const { inpaintUNet } = checkSamplerInputs(unet.config, model.checkpoint.path, positive, negative, latent);

    const shape = [...latent.dims];
    const full = !!latent.empty && strength >= 1;
    const method = ddimMethod(sched, { steps, strength, full, eta, noise: (step) => draws.eta(shape, step) });
    if (!method.timesteps.length) return { latent };
    // The starting draw; inpainting also noises the init latents with it at every step.
    const noise0 = draws.initial(full ? 'latents' : 'add_noise', shape);
    const x0 = method.startLatents(noise0, full ? undefined : latent.samples);
    ctx.trace?.({ node: ctx.nodeId, name: 'start_latents', data: x0, shape });

    const guidance = cfgGuidance(cfg);
    const unetCall = await samplerUNet(ctx, { unet, model, positive, negative, latent, guidance, inpaintUNet, controlled, steps: method.timesteps.length });
    const x = await denoise(x0, { model: unetCall, guidance, method, hooks: samplerStepHooks(ctx, { method, latent, noise0, inpaintUNet, shape }) });
    return { latent: sampledLatent(latent, x) };
  },
};
