/**
 * KSampler (Advanced): ComfyUI's KSamplerAdvanced (nodes.py): steps start_at_step .. end_at_step
 * of a `steps`-step schedule, add_noise, return_with_leftover_noise (off: the last sigma of a cut
 * run becomes 0, force_full_denoise), so two samplers chain: the first with leftover noise, the
 * second from the same step without adding noise. The run is KSampler's (ksampler.ts runKSampler).
 */
import type { SamplerName, SchedulerName } from '../models/sampling/plan.js';
import { CFG, PORTS, SAMPLER, SCHEDULER, STEPS, runKSampler } from './ksampler.js';
import { CONTROL_AFTER_GENERATE_PARAM, NOISE_PARAM, SEED_PARAM } from './runtime/seed.js';
import type { NodeDef } from './types.js';

const ENABLE = ['enable', 'disable'];

export const kSamplerAdvanced: NodeDef = {
  type: 'ksampler-advanced',
  title: 'KSampler (Advanced)',
  category: 'Sampling',
  description:
    "ComfyUI's KSamplerAdvanced: runs steps start_at_step .. end_at_step of a `steps`-step schedule, so two can chain: " +
    'the first with return_with_leftover_noise enabled, the second with add_noise disabled from the same step.',
  ...PORTS,
  params: [
    { name: 'add_noise', kind: 'enum', options: ENABLE, default: 'enable' },
    { ...SEED_PARAM, name: 'noise_seed' },
    CONTROL_AFTER_GENERATE_PARAM,
    NOISE_PARAM,
    STEPS,
    CFG,
    SAMPLER,
    SCHEDULER,
    { name: 'start_at_step', kind: 'number', default: 0, min: 0, max: 10000, step: 1, integer: true },
    { name: 'end_at_step', kind: 'number', default: 10000, min: 0, max: 10000, step: 1, integer: true },
    { name: 'return_with_leftover_noise', kind: 'enum', options: ['disable', 'enable'], default: 'disable' },
  ],
  execute: (inputs, params, ctx) =>
    runKSampler(
      inputs,
      { ...params, seed: params.noise_seed },
      {
        steps: params.steps as number,
        cfg: params.cfg as number,
        sampler: params.sampler_name as SamplerName,
        scheduler: params.scheduler as SchedulerName,
        denoise: 1,
        addNoise: params.add_noise === 'enable',
        startStep: params.start_at_step as number,
        lastStep: params.end_at_step as number,
        forceFullDenoise: params.return_with_leftover_noise !== 'enable',
      },
      ctx,
    ),
};
