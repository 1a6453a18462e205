import { describe, expect, it } from 'vitest';
import { ipAdapterWorkflow } from '../../test/helpers/workflows.js';
import { a1111Parameters } from './parameters.js';

describe('A1111 parameters text', () => {
  it('DDIM Sampler: Sampler DDIM', () => {
    const wf = ipAdapterWorkflow({ image: 'x.png', prompt: 'a cat', steps: 30, seed: 42 });
    expect(a1111Parameters(wf, 'out', 512, 512)).toMatch(
      /^a cat\nNegative prompt: low quality\nSteps: 30, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512, /,
    );
  });
  it("KSampler: A1111's sampler name and schedule type; KSampler (Advanced): its noise_seed", () => {
    const k = ipAdapterWorkflow({
      image: 'x.png',
      prompt: 'a cat',
      sampler: { type: 'ksampler', params: { seed: 7, steps: 20, cfg: 6, sampler_name: 'dpmpp_2m', scheduler: 'karras', denoise: 0.6 } },
    });
    expect(a1111Parameters(k, 'out', 512, 512)).toMatch(
      /\nSteps: 20, Sampler: DPM\+\+ 2M, Schedule type: Karras, CFG scale: 6, Seed: 7, Size: 512x512, .*Denoising strength: 0.6/,
    );
    const a = ipAdapterWorkflow({
      image: 'x.png',
      sampler: {
        type: 'ksampler-advanced',
        params: { noise_seed: '18446744073709551615', steps: 10, cfg: 5, sampler_name: 'euler_ancestral', scheduler: 'normal' },
      },
    });
    expect(a1111Parameters(a, 'out', 64, 64)).toMatch(/Steps: 10, Sampler: Euler a, CFG scale: 5, Seed: 18446744073709551615, Size: 64x64/);
  });
});
