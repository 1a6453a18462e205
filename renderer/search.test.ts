import { describe, expect, it } from 'vitest';
import { nodeSpecs } from '../nodes/index.js';
import { NODE_ALIASES, searchNodes } from './search.js';

const specs = nodeSpecs().filter((s) => !s.dynamicPorts);
const titles = (q: string) => searchNodes(specs, q).map((s) => s.title);

describe('node search', () => {
  it('finds ComfyUI class names and common aliases', () => {
    expect(titles('ksampler')[0]).toBe('KSampler');
    expect(titles('CLIPTextEncode')[0]).toBe('Text Encode');
    expect(titles('IPAdapter Advanced')[0]).toBe('Apply IP-Adapter');
    expect(titles('lora')[0]).toBe('Load LoRA');
    expect(titles('upscale')).toContain('Image Resize');
    expect(titles('reroute')[0]).toBe('Reroute');
    expect(titles('note')[0]).toBe('Note');
  });

  it('ranks by relevance: DDIM Sampler is among the samplers for "sampler", IP-Adapter Projection is found by "ipadapter"', () => {
    const s = titles('sampler');
    expect(s.slice(0, 3).sort()).toEqual(['DDIM Sampler', 'KSampler', 'KSampler (Advanced)'].sort());
    const ip = titles('ipadapter');
    expect(ip[0]).toBe('Apply IP-Adapter');
    expect(ip.slice(0, 5)).toContain('IP-Adapter Projection');
    expect(ip).toContain('Load IP-Adapter');
    // Every match has the word in its title, type or aliases before anything that only mentions it in its description.
    expect(ip.indexOf('IP-Adapter Projection')).toBeLessThan(ip.indexOf('CLIP Vision Encode'));
  });

  it('every alias table entry names a node type that exists (or one being added)', () => {
    const types = new Set(nodeSpecs().map((s) => s.type));
    const missing = Object.keys(NODE_ALIASES).filter((t) => !types.has(t));
    expect(missing).toEqual([]);
  });
});
