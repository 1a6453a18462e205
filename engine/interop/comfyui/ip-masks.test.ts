/** ComfyUI import of IPAdapterAdvanced's attn_mask and embeds_scaling onto Apply IP-Adapter's attention mask and embeds_scaling (issue 12). */
import { describe, expect, it } from 'vitest';
import { DEMO_NAMES } from '../../demo/demo.js';
import { DEMO_LIST } from '../../../test/helpers/comfyui.js';
import { nodeSpecs } from '../../../nodes/index.js';
import { importComfyUI } from './import.js';

const specs = nodeSpecs();

describe('IPAdapterAdvanced with an attention mask', () => {
  it("links attn_mask to Apply IP-Adapter's mask and keeps embeds_scaling, with nothing approximated about either", () => {
    const prompt = {
      '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: DEMO_NAMES.checkpoint } },
      '2': { class_type: 'LoadImage', inputs: { image: 'ref.png' } },
      '3': { class_type: 'LoadImage', inputs: { image: 'mask.png' } },
      '4': { class_type: 'IPAdapterModelLoader', inputs: { ipadapter_file: DEMO_NAMES.ipAdapter } },
      '5': { class_type: 'CLIPVisionLoader', inputs: { clip_name: DEMO_NAMES.clipVision } },
      '6': {
        class_type: 'IPAdapterAdvanced',
        inputs: {
          model: ['1', 0],
          ipadapter: ['4', 0],
          image: ['2', 0],
          weight: 0.7,
          weight_type: 'linear',
          combine_embeds: 'concat',
          start_at: 0,
          end_at: 1,
          embeds_scaling: 'K+mean(V) w/ C penalty',
          attn_mask: ['3', 1],
          clip_vision: ['5', 0],
        },
      },
    };
    const r = importComfyUI(prompt, { specs, models: DEMO_LIST });
    const apply = r.workflow.nodes.find((n) => n.type === 'apply-ip-adapter')!;
    expect(apply.params.embeds_scaling).toBe('K+mean(V) w/ C penalty');
    const mask = r.workflow.edges.find((e) => e.to.node === apply.id && e.to.port === 'mask');
    expect(mask?.from).toEqual({ node: 'c3', port: 'mask' });
    const notes = r.report.nodes.find((n) => n.id === '6')!.notes.join(' ');
    expect(notes).not.toMatch(/mask|embeds_scaling/);
  });
});
