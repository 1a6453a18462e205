/** λ per layer: presets land on ComfyUI_IPAdapter_plus' SD1.5 layers; custom lists by index or name. */
import { describe, expect, it } from 'vitest';
import { DEMO_UNET_CONFIG } from '../engine/demo/demo.js';
import {
  layerScales,
  parseLayerWeights,
  SD15_TRANSFORMERS,
  transformerOf,
  transformerOrder,
  unitLayerScales,
  WEIGHT_TYPES,
  weightTypeForBlockPreset,
  weightTypeLayers,
  type WeightType,
} from './ip-adapter-layer-scales.js';
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

/** A weight type's layers at SD1.5 by transformer_index: [scale, flags] with 'c' = composition tokens, 'p' = precise. */
function sd15Type(type: WeightType, w: number, wc?: number): Record<number, number> & { flags: Record<number, string> } {
  const order = transformerOrder(SD15);
  const out = { flags: {} } as Record<number, number> & { flags: Record<number, string> };
  weightTypeLayers(SD15, type, w, { weightComposition: wc }).forEach((s, k) => {
    const t = order.indexOf(transformerOf(crossAttnLayers(SD15)[k]!.name));
    if (s.scale !== 0) out[t] = s.scale;
    const f = `${s.composition ? 'c' : ''}${s.precise ? 'p' : ''}`;
    if (f && s.scale !== 0) out.flags[t] = f;
  });
  return out;
}
const idx = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const all = (v: (t: number) => number, ts = idx(0, 15)) => Object.fromEntries(ts.map((t) => [t, v(t)]));

describe("weight types (ComfyUI_IPAdapter_plus' IPAdapterPlus.py / CrossAttentionPatch.py at SD1.5, 16 layers by transformer_index)", () => {
  it('lists the 15 types in ComfyUI order; SD15_TRANSFORMERS is the execution order of the SD1.5 UNet', () => {
    expect(WEIGHT_TYPES).toHaveLength(15);
    expect(WEIGHT_TYPES[0]).toBe('linear');
    expect(WEIGHT_TYPES[14]).toBe('composition precise');
    expect(transformerOrder(SD15)).toEqual([...SD15_TRANSFORMERS]);
  });

  it('linear: w on every layer, exactly', () => {
    const w = 0.7;
    expect(weightTypeLayers(SD15, 'linear', w).map((s) => s.scale)).toEqual(Array(16).fill(0.7));
    expect(sd15Type('linear', w).flags).toEqual({});
  });

  it('ease in = w·(0.05 + 0.95·(1 − t/16)), ease out = w·(0.05 + 0.95·t/16): 1 at t=0 / 0.05 at t=0, 0.525 at t=8 (the middle of the curve)', () => {
    const w = 0.8;
    expect(sd15Type('ease in', w)).toMatchObject(all((t) => w * (0.05 + 0.95 * (1 - t / 16))));
    expect(sd15Type('ease out', w)).toMatchObject(all((t) => w * (0.05 + 0.95 * (t / 16))));
    expect(sd15Type('ease in', 1)[0]).toBe(1);
    expect(sd15Type('ease in', 1)[8]).toBeCloseTo(0.525, 12);
    expect(sd15Type('ease in', 1)[15]).toBeCloseTo(0.05 + 0.95 / 16, 12); // 0.109375
    expect(sd15Type('ease out', 1)[0]).toBeCloseTo(0.05, 12);
    expect(sd15Type('ease out', 1)[15]).toBeCloseTo(0.940625, 12);
  });

  it('ease in-out = w·(0.05 + 0.95·(1 − |t − 8|/8)) peaks at the middle block (t = 8 gives 1, t = 6 gives 0.7625); reverse in-out is its mirror', () => {
    const w = 1.5;
    expect(sd15Type('ease in-out', w)).toMatchObject(all((t) => w * (0.05 + 0.95 * (1 - Math.abs(t - 8) / 8))));
    expect(sd15Type('reverse in-out', w)).toMatchObject(all((t) => w * (0.05 + 0.95 * (Math.abs(t - 8) / 8))));
    expect(sd15Type('ease in-out', 1)[8]).toBe(1);
    expect(sd15Type('ease in-out', 1)[6]).toBeCloseTo(0.7625, 12); // 0.05 + 0.95 * 0.75
    expect(sd15Type('ease in-out', 1)[0]).toBeCloseTo(0.05, 12);
    expect(sd15Type('reverse in-out', 1)[0]).toBe(1);
    expect(sd15Type('reverse in-out', 1)[8]).toBeCloseTo(0.05, 12);
  });

  it('weak input / middle / output: 0.2·w on input (0-5) / middle (6) / output (7-15) blocks, w elsewhere; strong middle: w on the middle, 0.2·w elsewhere', () => {
    const w = 1;
    expect(sd15Type('weak input', w)).toMatchObject(all((t) => (t < 6 ? 0.2 : 1)));
    expect(sd15Type('weak middle', w)).toMatchObject(all((t) => (t === 6 ? 0.2 : 1)));
    expect(sd15Type('weak output', w)).toMatchObject(all((t) => (t > 6 ? 0.2 : 1)));
    expect(sd15Type('strong middle', w)).toMatchObject(all((t) => (t === 6 ? 1 : 0.2)));
  });

  it('style transfer: w on 0-3 and 9-15, nothing on 4-8; composition: w/4 on 4, w on 5, nothing else; strong style transfer: all but 4-5', () => {
    const w = 0.9;
    const { flags: f1, ...style } = sd15Type('style transfer', w);
    expect(style).toEqual(all(() => w, [0, 1, 2, 3, ...idx(9, 15)]));
    expect(f1).toEqual({});
    const { flags: _f2, ...comp } = sd15Type('composition', w);
    expect(comp).toEqual({ 4: w * 0.25, 5: w });
    const { flags: _f3, ...strong } = sd15Type('strong style transfer', w);
    expect(strong).toEqual(all(() => w, [0, 1, 2, 3, ...idx(6, 15)]));
  });

  it('style and composition: w (style) on the style layers with the style tokens, weight_composition/4 on 4 and weight_composition on 5 with the composition tokens', () => {
    const { flags, ...s } = sd15Type('style and composition', 0.8, 1.2);
    expect(s).toEqual({ ...all(() => 0.8, [0, 1, 2, 3, ...idx(9, 15)]), 4: 1.2 * 0.25, 5: 1.2 });
    expect(flags).toEqual({ 4: 'c', 5: 'c' });
    // IPAdapterAdvanced passes weight_composition 1.
    expect(sd15Type('style and composition', 0.8)).toMatchObject({ 4: 0.25, 5: 1 });
  });

  it('style transfer precise: the style layers at w, 4 and 5 at w/4 and w with the image routed to the unconditional branch (precise); 6-8 nothing', () => {
    const { flags, ...s } = sd15Type('style transfer precise', 1.1);
    expect(s).toEqual({ ...all(() => 1.1, [0, 1, 2, 3, ...idx(9, 15)]), 4: 1.1 * 0.25, 5: 1.1 });
    expect(flags).toEqual({ 4: 'p', 5: 'p' });
  });

  it('composition precise: 4 and 5 at w/4 and w as usual; every other layer precise, at w (0-3, 9-15) or w/10 (6-8)', () => {
    const { flags, ...s } = sd15Type('composition precise', 1);
    expect(s).toEqual({ ...all(() => 1, [0, 1, 2, 3, ...idx(9, 15)]), 4: 0.25, 5: 1, 6: 0.1, 7: 0.1, 8: 0.1 });
    expect(flags).toEqual(Object.fromEntries([...idx(0, 3), ...idx(6, 15)].map((t) => [t, 'p'])));
  });

  it('layer weights (IPAdapterMS) replace the factors: w × each listed factor, others 0; a precise type keeps its routing', () => {
    const { flags, ...s } = sd15Type('linear', 2);
    expect(s).toEqual(all(() => 2));
    expect(flags).toEqual({});
    const lw = weightTypeLayers(SD15, 'style transfer precise', 2, { layerWeights: '3:2.5, 4:1' });
    const order = transformerOrder(SD15);
    const at = (t: number) => lw[crossAttnLayers(SD15).findIndex((l) => transformerOf(l.name) === order[t])]!;
    expect(at(3)).toEqual({ scale: 5, composition: false, precise: false });
    expect(at(4)).toEqual({ scale: 2, composition: false, precise: true });
    expect(at(0).scale).toBe(0);
  });

  it('the old blocks presets are the equivalent types, layer for layer', () => {
    for (const b of ['all', 'style only', 'composition only'] as const) {
      const t = weightTypeForBlockPreset(b);
      expect(weightTypeLayers(SD15, t, 0.65).map((s) => s.scale)).toEqual(unitLayerScales(SD15, b).map((u) => 0.65 * u));
    }
    expect(weightTypeForBlockPreset('custom')).toBe('linear');
  });

  it('in the demo UNet (11 layers) the fixed sets land on the same modules by name and the curves use its own count', () => {
    const names = crossAttnLayers(DEMO).map((l) => transformerOf(l.name));
    const on = (t: WeightType) => names.filter((_, i) => weightTypeLayers(DEMO, t, 1)[i]!.scale !== 0);
    expect(on('composition')).toEqual(['down_blocks.2.attentions.0', 'down_blocks.2.attentions.1']);
    expect(on('style transfer')).toEqual([
      'down_blocks.1.attentions.0',
      'down_blocks.1.attentions.1',
      'up_blocks.1.attentions.2',
      'up_blocks.2.attentions.0',
      'up_blocks.2.attentions.1',
      'up_blocks.2.attentions.2',
    ]);
    const order = transformerOrder(DEMO);
    const ease = weightTypeLayers(DEMO, 'ease out', 1);
    names.forEach((n, i) => expect(ease[i]!.scale).toBeCloseTo(0.05 + 0.95 * (order.indexOf(n) / 11), 12));
    expect(() => weightTypeLayers(DEMO, 'nope' as WeightType, 1)).toThrow(/unknown weight type "nope"/);
  });
});
