/**
 * Apply ControlNet: attaches a structural control (ControlNet + control image + strength +
 * start/end window) to a CONDITIONING. Wire it on the positive and on the negative prompt (the
 * same ControlNet and image) to get the reference pipeline's behaviour, where the ControlNet sees
 * the whole classifier-free-guidance batch [negative, positive]. Several Apply ControlNet nodes
 * in a chain stack: their residuals are summed.
 *
 * This node only records the control (an AppliedControl, nodes/values.ts) on the conditioning;
 * the sampler runs the ControlNets per step through nodes/runtime/controlnet.ts `SamplerControl`.
 */
import type { NodeDef } from './types.js';
import { expectValue, type AppliedControl, type ConditioningValue, type ControlNetValue, type ImageValue } from './values.js';

export const applyControlNet: NodeDef = {
  type: 'apply-controlnet',
  title: 'Apply ControlNet',
  category: 'Conditioning',
  description:
    "Attaches a ControlNet and its control image (e.g. Canny edges) to a prompt's conditioning. Apply it to both the positive and the negative conditioning, as usual. strength scales its effect (0 = none); start/end limit it to a part of the sampling schedule. Chains stack (residuals are summed).",
  inputs: [
    { name: 'conditioning', type: 'CONDITIONING' },
    { name: 'control_net', type: 'CONTROL_NET' },
    { name: 'image', type: 'IMAGE' },
  ],
  outputs: [{ name: 'conditioning', type: 'CONDITIONING' }],
  params: [
    { name: 'strength', kind: 'number', default: 1, min: 0, max: 10, step: 0.05, widget: 'slider' },
    { name: 'start', kind: 'number', default: 0, min: 0, max: 1, step: 0.01 },
    { name: 'end', kind: 'number', default: 1, min: 0, max: 1, step: 0.01 },
  ],
  check(params) {
    return (params.start as number) > (params.end as number)
      ? [{ param: 'start', message: `start ${params.start} is after end ${params.end}; the ControlNet would never act` }]
      : [];
  },
  async execute(inputs, params) {
    const cond = expectValue<ConditioningValue>(inputs.conditioning, 'CONDITIONING', 'conditioning');
    const controlnet = expectValue<ControlNetValue>(inputs.control_net, 'CONTROL_NET', 'control_net');
    const image = expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const strength = params.strength as number;
    // Strength 0 attaches nothing, so the run is exactly the one without this ControlNet.
    if (strength === 0) return { conditioning: cond };
    const applied: AppliedControl = { kind: 'CONTROL', controlnet, image, strength, start: params.start as number, end: params.end as number };
    const out: ConditioningValue = { ...cond, controls: [...(cond.controls ?? []), applied] };
    return { conditioning: out };
  },
};
