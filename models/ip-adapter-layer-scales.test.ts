/** λ per layer: presets land on ComfyUI_IPAdapter_plus' SD1.5 layers; custom lists by index or name. */
import { describe, expect, it } from 'vitest';
import { DEMO_UNET_CONFIG } from '../engine/demo/demo.js';
import { layerScales, parseLayerWeights, transformerOf, transformerOrder, unitLayerScales } from './ip-adapter-layer-scales.js';
import { crossAttnLayers, parseUNetConfig } from './unet-config.js';

// runwayml/stable-diffusion-v1-5 unet/config.json (the fields that shape the attention layers).
const SD15 = parseUNetConfig(
  {
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    block_out_channels: [320, 640, 1280, 1280],
    layers_per_block: 2,
    attention_head_dim: 8,
    cross_attention_dim: 768,
  },
  'sd15',
);
const DEMO = parseUNetConfig(DEMO_UNET_CONFIG, 'demo');

/** Unit layer scales by ComfyUI transformer_index (execution order), for comparison with its maps. */
function byIndex(cfg: typeof SD15, scales: number[]): Record<number, number> {
  const order = transformerOrder(cfg);
  const out: Record<number, number> = {};
  crossAttnLayers(cfg).forEach((l, i) => {
    if (scales[i]) out[order.indexOf(transformerOf(l.name))] = scales[i];
  });
  return out;
}

describe('λ per block', () => {
  it("numbers SD1.5's 16 cross-attention transformers in execution order (ComfyUI's transformer_index)", () => {
    const order = transformerOrder(SD15);
    expect(order).toHaveLength(16);
    expect(order.slice(0, 7)).toEqual([
      'down_blocks.0.attentions.0',
      'down_blocks.0.attentions.1',
      'down_blocks.1.attentions.0',
      'down_blocks.1.attentions.1',
      'down_blocks.2.attentions.0',
      'down_blocks.2.attentions.1',
      'mid_block.attentions.0',
    ]);
    expect(order[7]).toBe('up_blocks.1.attentions.0');
    expect(order[15]).toBe('up_blocks.3.attentions.2');
    expect(transformerOrder(DEMO)).toHaveLength(11);
  });

  it('SD1.5 presets equal ComfyUI_IPAdapter_plus\' "style transfer" and "composition" maps', () => {
    const style = byIndex(SD15, unitLayerScales(SD15, 'style only'));
    expect(style).toEqual(Object.fromEntries([0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15].map((k) => [k, 1])));
    expect(byIndex(SD15, unitLayerScales(SD15, 'composition only'))).toEqual({ 4: 0.25, 5: 1 });
    expect(unitLayerScales(SD15, 'all')).toEqual(Array(16).fill(1));
  });

  it('presets find their layers by name in a UNet with fewer layers (the demo UNet, 11)', () => {
    const names = crossAttnLayers(DEMO).map((l) => transformerOf(l.name));
    const on = (f: number[]) => names.filter((_, i) => f[i] !== 0);
    expect(on(unitLayerScales(DEMO, 'style only'))).toEqual([
      'down_blocks.1.attentions.0',
      'down_blocks.1.attentions.1',
      'up_blocks.1.attentions.2',
      'up_blocks.2.attentions.0',
      'up_blocks.2.attentions.1',
      'up_blocks.2.attentions.2',
    ]);
    expect(on(unitLayerScales(DEMO, 'composition only'))).toEqual(['down_blocks.2.attentions.0', 'down_blocks.2.attentions.1']);
  });

  it("custom: a list in execution order, index pairs, or name pairs; ip_adapter_scale order is the processors'", () => {
    const order = transformerOrder(DEMO);
    const list = order.map((_, i) => i / 10);
    const f = unitLayerScales(DEMO, 'custom', list.join(', '));
    crossAttnLayers(DEMO).forEach((l, i) => expect(f[i]).toBe(order.indexOf(transformerOf(l.name)) / 10));
    expect(byIndex(DEMO, unitLayerScales(DEMO, 'custom', '3:2.5, 6:1'))).toEqual({ 3: 2.5, 6: 1 });
    const named = unitLayerScales(DEMO, 'custom', 'down_blocks.2:1 up_blocks.1.attentions.1:0.5');
    expect(byIndex(DEMO, named)).toEqual({ 2: 1, 3: 1, 6: 0.5 }); // 4 = mid_block, 5 = up_blocks.1.attentions.0
  });

  it('says what is wrong with a custom list', () => {
    expect(() => unitLayerScales(DEMO, 'custom', '1, 1')).toThrow(/2 numbers, but this UNet has 11 cross-attention layers/);
    expect(() => unitLayerScales(DEMO, 'custom', '11:1')).toThrow(/index 11: this UNet has 11 cross-attention layers \(0 to 10\)/);
    expect(() => unitLayerScales(DEMO, 'custom', 'down_blocks.0:1')).toThrow(/no cross-attention layer of this UNet is named so/);
    expect(() => parseLayerWeights('1, x')).toThrow(/"x" is not a number/);
    expect(() => parseLayerWeights('1, 2:1')).toThrow(/mix plain numbers and key:weight pairs/);
    expect(() => parseLayerWeights('  ')).toThrow(/empty/);
    expect(() => parseLayerWeights('foo:1')).toThrow(/neither a layer index nor a diffusers block name/);
  });

  it('ip_adapter_scale: the scale times each unit layer scale while active, zeros outside the window; all equal unit scales give the scalar scale exactly', () => {
    expect(Array.from(layerScales([1, 0, 0.25], 0.8, true))).toEqual([0.8, 0, 0.25 * 0.8].map(Math.fround));
    expect(Array.from(layerScales([1, 1], 0.8, false))).toEqual([0, 0]);
    const all = layerScales(unitLayerScales(DEMO, 'all'), 0.7, true);
    const custom = layerScales(unitLayerScales(DEMO, 'custom', Array(11).fill(0.7).join(',')), 1, true);
    expect(custom).toEqual(all);
    expect(all).toEqual(new Float32Array(11).fill(0.7));
  });
});
