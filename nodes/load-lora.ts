/**
 * Load LoRA: MODEL + CLIP -> MODEL + CLIP with a LoRA from <models>/loras at strength_model (UNet)
 * and strength_clip (text encoder), as ComfyUI's LoraLoader; chain several to stack them (their
 * deltas add). Cheap: it checks the file against the checkpoint (headers only) and records
 * (file, strength) on the values; the UNet and text encoder graphs are built per set of LoRA files
 * with the strengths as inputs (models/lora-graph.ts), so changing a strength rebuilds nothing and
 * re-runs only what uses that output: strength_model the sampler, strength_clip Text Encode
 * (`outputDeps`: each output's signature ignores the other part's strength and input).
 */
import { describeLoraMatch } from '../models/lora.js';
import { loraMatch } from './runtime/networks.js';
import type { NodeDef } from './types.js';
import { warnOnWeightValues } from './runtime/weight-values.js';
import { expectValue, type ClipValue, type ModelValue } from './values.js';

export const loadLora: NodeDef = {
  type: 'load-lora',
  title: 'Load LoRA',
  category: 'Loaders',
  description:
    'Applies a LoRA from <models>/loras to the model (UNet, strength_model) and to CLIP (text encoder, strength_clip); chain several Load LoRA nodes to stack LoRAs. Reads kohya (lora_unet_ / lora_te_, LoCon conv layers), diffusers / PEFT (unet. / text_encoder. lora_A / lora_B) and older diffusers files; fp16 files are used in fp32. Strengths may be negative; 0 is the model without this LoRA. Keys that match no layer of the checkpoint are listed in the log; a LoRA for SDXL or SD2 is refused.',
  inputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'clip', type: 'CLIP' },
  ],
  outputs: [
    { name: 'model', type: 'MODEL' },
    { name: 'clip', type: 'CLIP' },
  ],
  params: [
    { name: 'lora_name', label: 'LoRA', kind: 'file', modelKind: 'loras', default: '' },
    { name: 'strength_model', kind: 'number', default: 1, min: -100, max: 100, step: 0.01 },
    { name: 'strength_clip', kind: 'number', default: 1, min: -100, max: 100, step: 0.01 },
  ],
  outputDeps: {
    model: { params: ['lora_name', 'strength_model'], inputs: ['model'] },
    clip: { params: ['lora_name', 'strength_clip'], inputs: ['clip'] },
  },
  async execute(inputs, params, ctx) {
    const model = expectValue<ModelValue>(inputs.model, 'MODEL', 'model');
    const clip = expectValue<ClipValue>(inputs.clip, 'CLIP', 'clip');
    const file = params.lora_name as string;
    // Refuses here, on this node, a LoRA for another model family or one that names no layer.
    const m = await loraMatch(ctx.models, file, model.checkpoint, clip.checkpoint);
    await warnOnWeightValues(ctx, loadLora.title, file); // NaN / Inf or mislabelled weights (models/weight-sanity.ts)
    ctx.log(m.unmatched.length ? 'warn' : 'info', `${loadLora.title} (${ctx.nodeId}): ${describeLoraMatch(m)}`);
    const outModel: ModelValue = { ...model, loras: [...(model.loras ?? []), { path: file, strength: params.strength_model as number }] };
    const outClip: ClipValue = { ...clip, loras: [...(clip.loras ?? []), { path: file, strength: params.strength_clip as number }] };
    return { model: outModel, clip: outClip };
  },
};
