/** Text Encode: CLIP + prompt -> CONDITIONING (the text encoder's last hidden state, 77 tokens). */
import { textRuntime } from './runtime/networks.js';
import type { TextCleaning } from '../models/tokenizer.js';
import type { NodeDef } from './types.js';
import { expectValue, type ClipValue, type ConditioningValue } from './values.js';

export const textEncode: NodeDef = {
  type: 'text-encode',
  title: 'Text Encode',
  category: 'Conditioning',
  description:
    "Encodes a text prompt with the checkpoint's CLIP text encoder (77 tokens; longer prompts are truncated). Use one for the positive and one for the negative prompt.",
  inputs: [{ name: 'clip', type: 'CLIP' }],
  outputs: [{ name: 'conditioning', type: 'CONDITIONING' }],
  params: [
    { name: 'text', kind: 'string', default: '', multiline: true },
    // 'transformers' = what diffusers/ComfyUI do without ftfy (the reference); 'ftfy' = openai/CLIP's cleaning.
    { name: 'cleaning', label: 'text cleaning', kind: 'enum', default: 'transformers', options: ['transformers', 'ftfy'] },
  ],
  async execute(inputs, params, ctx) {
    const clip = expectValue<ClipValue>(inputs.clip, 'CLIP', 'clip');
    const { encoder, tokenizer, loraScale } = await textRuntime(ctx.models, clip, params.cleaning as TextCleaning);
    const text = params.text as string;
    const ids = tokenizer.encode(text);
    if (tokenizer.tokenize(text).length > tokenizer.maxLength - 2) {
      ctx.log('warn', `Text Encode (${ctx.nodeId}): the prompt is longer than ${tokenizer.maxLength - 2} tokens; the rest is ignored`);
    }
    const out = await encoder.encode([ids], { loraScale }); // Load LoRA's strength_clip per LoRA file
    const [, T, C] = out.dims;
    ctx.trace?.({ node: ctx.nodeId, name: 'prompt_embeds', data: out.data, shape: [1, T, C] });
    const v: ConditioningValue = { kind: 'CONDITIONING', text, tokens: T, dim: C, embeds: out.data };
    return { conditioning: v };
  },
};
