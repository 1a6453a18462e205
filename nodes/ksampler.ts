/**
 * KSampler (and the run KSampler (Advanced), ksampler-advanced.ts, shares): ComfyUI's sampler nodes (nodes.py KSampler / KSamplerAdvanced,
 * common_ksampler) with its sampler and scheduler names, on the models/sampling/ methods
 * (plan.ts: which sigmas, where denoise and start/end steps start and stop, how the noise is
 * scaled; one file per sampler). Everything else is the DDIM Sampler's: the model call
 * (nodes/runtime/sampler-unet.ts: CFG batch, IP-Adapter window, ControlNet residuals, 9-channel
 * inpainting input), the loop (models/sampling/denoise.ts), inpainting's latent blend after each
 * step at the level that step reached, the throttled preview of the step's denoised latents,
 * progress and cancellation before each step.
 *
 *   start:   latent + noise * scale (plan.ts), the noise one draw of the node's seed for the whole
 *            batch (ComfyUI prepare_noise); add_noise off (Advanced): the latent as it is;
 *   windows: the IP-Adapter's and the ControlNets' start/end are fractions of the full schedule
 *            (denoise < 1: the trunc(steps / denoise) steps it is cut from; Advanced: `steps`), so
 *            two chained samplers see the windows of one run;
 *   per-step noise (euler_ancestral, ddpm, lcm): the node's sampler noise stream, draw k at the
 *            k-th call (nodes/runtime/seed.ts).
 * The output latent keeps the noise mask; with return_with_leftover_noise it is in sigma space at
 * the level where the run stopped (ComfyUI's), which a second sampler with add_noise off continues.
 */
import { cfgGuidance, denoise, type ModelCall } from '../models/sampling/denoise.js';
import { SAMPLER_NAMES, SCHEDULER_NAMES, planSampling, type SamplerName, type SchedulerName } from '../models/sampling/plan.js';
import type { ExecContext } from '../engine/context.js';
import { checkpointParts, schedulerFor, unetGraph } from './runtime/networks.js';
import { checkControlsFit, hasControls } from './runtime/controlnet.js';
import { samplerUNet } from './runtime/sampler-unet.js';
import { checkSamplerInputs, sampledLatent, samplerInputs, samplerStepHooks } from './runtime/sampling.js';
import { SEED_PARAMS, seededDraws } from './runtime/seed.js';
import type { NodeDef, ParamSpec, ParamValue, PortValues } from './types.js';

export interface RunOptions {
  steps: number;
  cfg: number;
  sampler: SamplerName;
  scheduler: SchedulerName;
  denoise: number;
  addNoise: boolean;
  startStep?: number;
  lastStep?: number;
  forceFullDenoise?: boolean;
}

/** ComfyUI common_ksampler through the denoising loop. */
export async function runKSampler(inputs: PortValues, seedParams: Record<string, ParamValue>, o: RunOptions, ctx: ExecContext): Promise<PortValues> {
  const { model, positive, negative, latent } = samplerInputs(inputs);
  const controlled = hasControls([positive, negative]);
  if (controlled) await checkControlsFit(ctx, [positive, negative], (await checkpointParts(ctx.models, model.checkpoint)).unet.config, model.checkpoint.path);
  const unet = await unetGraph(ctx.models, model, controlled); // its session(s): samplerUNet
  const ddim = await schedulerFor(ctx.models, model.checkpoint);
  const { inpaintUNet } = checkSamplerInputs(unet.config, model.checkpoint.path, positive, negative, latent);

  const shape = [...latent.dims];
  const draws = seededDraws(ctx, seedParams);
  const plan = planSampling({ ...o, ddim, noise: () => draws.sampler(shape) });
  const method = plan.method;
  if (!method) return { latent };
  const n = shape.reduce((a, d) => a * d, 1);
  // The starting draw (text-to-image from an empty latent: `latents`); inpainting also noises the init latents with it.
  const noise0 = o.addNoise ? draws.initial(latent.empty && plan.fromPureNoise ? 'latents' : 'add_noise', shape) : new Float32Array(n);
  const x0 = method.startLatents(noise0, latent.samples);
  const trace = ctx.trace;
  if (trace) {
    trace({ node: ctx.nodeId, name: 'start_latents', data: x0, shape });
    trace({ node: ctx.nodeId, name: 'sigmas', data: Float32Array.from(plan.sigmas), shape: [plan.sigmas.length] });
    trace({ node: ctx.nodeId, name: 'timesteps', data: Float32Array.from(method.timesteps), shape: [method.timesteps.length] });
  }

  const guidance = cfgGuidance(o.cfg);
  const unetCall = await samplerUNet(ctx, { unet, model, positive, negative, latent, guidance, inpaintUNet, controlled, steps: plan.total });
  const call: ModelCall = (x, t, i) => {
    if (trace) {
      trace({ node: ctx.nodeId, name: 'unet_timestep', step: i, data: Float32Array.of(t), shape: [1] });
      trace({ node: ctx.nodeId, name: 'unet_model_input', step: i, data: x, shape });
    }
    return unetCall(x, t, plan.offset + i); // windows over the full schedule
  };
  const x = await denoise(x0, { model: call, guidance, method, hooks: samplerStepHooks(ctx, { method, latent, noise0, inpaintUNet, shape }) });
  return { latent: sampledLatent(latent, x) };
}

export const PORTS = {
  inputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'positive', type: 'CONDITIONING' },
    { name: 'negative', type: 'CONDITIONING' },
    { name: 'latent', type: 'LATENT' },
  ],
  outputs: [{ name: 'latent', type: 'LATENT' }],
} satisfies Pick<NodeDef, 'inputs' | 'outputs'>;

export const STEPS: ParamSpec = { name: 'steps', kind: 'number', default: 20, min: 1, max: 10000, step: 1, integer: true };
export const CFG: ParamSpec = { name: 'cfg', kind: 'number', default: 8, min: 0, max: 100, step: 0.1 };
export const SAMPLER: ParamSpec = { name: 'sampler_name', kind: 'enum', options: [...SAMPLER_NAMES], default: 'euler' };
export const SCHEDULER: ParamSpec = { name: 'scheduler', kind: 'enum', options: [...SCHEDULER_NAMES], default: 'normal' };

export const kSampler: NodeDef = {
  type: 'ksampler',
  title: 'KSampler',
  category: 'Sampling',
  description:
    "ComfyUI's KSampler: denoises the latent with the chosen sampler and scheduler and classifier-free guidance. " +
    'denoise < 1 is image-to-image: the schedule of steps / denoise steps, its last `steps` run from the noised latent. ' +
    'The diffusers_* schedulers run the diffusers scheduler of that sampler with that timestep spacing.',
  ...PORTS,
  params: [...SEED_PARAMS, STEPS, CFG, SAMPLER, SCHEDULER, { name: 'denoise', kind: 'number', default: 1, min: 0, max: 1, step: 0.01 }],
  check(params) {
    const d = params.denoise as number;
    return d > 0 && d <= 1
      ? []
      : [{ param: 'denoise', message: `denoise ${d} is outside (0, 1]: 1 denoises from pure noise, smaller values keep more of the input latent` }];
  },
  execute: (inputs, params, ctx) =>
    runKSampler(
      inputs,
      params,
      {
        steps: params.steps as number,
        cfg: params.cfg as number,
        sampler: params.sampler_name as SamplerName,
        scheduler: params.scheduler as SchedulerName,
        denoise: params.denoise as number,
        addNoise: true,
      },
      ctx,
    ),
};
