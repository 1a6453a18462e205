/**
 * KSampler and KSampler (Advanced) through the engine (workflow JSON -> validation -> executor),
 * on the demo model set at 64x64: every sampler text-to-image, image-to-image at denoise 0.6,
 * inpainting (outside the mask the result is the input latent), and with an IP-Adapter window and
 * a ControlNet window; a run cancelled mid-way then run again gives the uncancelled latents; two
 * chained Advanced samplers give one run's latents; bad names and ranges are refused at validation.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent, Workflow, WorkflowNode } from '../engine/api.js';
import { DEMO_NAMES } from '../engine/demo/demo.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { SAMPLER_NAMES, type SamplerName } from '../models/sampling/plan.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import type { LatentValue } from './values.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const INIT = path.join(root, 'examples', 'images', 'init.png');
const INPAINT = path.join(root, 'examples', 'images', 'inpaint.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-ksampler-'));
let engine: Engine;
const events: RunEvent[] = [];

beforeAll(() => {
  engine = createEngine({
    modelsDir: path.join(tmp, 'none'),
    outputDir: path.join(tmp, 'out'),
    provider: 'cpu',
    userDataDir: path.join(tmp, 'user'),
    demo: true,
  });
  engine.subscribe((e) => events.push(e));
});
afterAll(async () => {
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The scheduler each sampler is usually run with (ComfyUI's common picks). */
const SCHEDULER: Record<SamplerName, string> = {
  euler: 'normal',
  euler_ancestral: 'normal',
  heun: 'normal',
  lms: 'karras',
  dpmpp_2m: 'karras',
  ddim: 'ddim_uniform',
  ddpm: 'simple',
  uni_pc: 'normal',
  uni_pc_bh2: 'karras',
  lcm: 'sgm_uniform',
};

const ksampler = (sampler_name: string, extra: WorkflowNode['params'] = {}) => ({
  type: 'ksampler',
  params: { seed: 7, steps: 3, cfg: 6, sampler_name, scheduler: SCHEDULER[sampler_name as SamplerName] ?? 'normal', denoise: 1, ...extra },
});

const link = (wf: Workflow, a: string, ap: string, b: string, bp: string) => wf.edges.push({ from: { node: a, port: ap }, to: { node: b, port: bp } });

/** The image-prompt workflow with its Empty Latent replaced by Load Image -> VAE Encode (with the image's mask for inpainting). */
function fromImage(wf: Workflow, image: string, mask: boolean): Workflow {
  wf.nodes = wf.nodes.filter((n) => n.id !== 'latent');
  wf.edges = wf.edges.filter((e) => e.from.node !== 'latent');
  wf.nodes.push({ id: 'init', type: 'load-image', params: { image } }, { id: 'encode', type: 'vae-encode', params: { mode: 'sample', seed: 3 } });
  link(wf, 'init', 'image', 'encode', 'pixels');
  link(wf, 'checkpoint', 'vae', 'encode', 'vae');
  if (mask) link(wf, 'init', 'mask', 'encode', 'mask');
  link(wf, 'encode', 'latent', 'sampler', 'latent');
  return wf;
}

/** Apply ControlNet (demo canny net, `window`) on both prompts. */
function withControl(wf: Workflow, window: { start: number; end: number }): Workflow {
  wf.nodes.push(
    { id: 'cn', type: 'load-controlnet', params: { control_net_name: DEMO_NAMES.controlnetCanny } },
    { id: 'cn_image', type: 'load-image', params: { image: INIT } },
  );
  for (const which of ['positive', 'negative']) {
    wf.edges = wf.edges.filter((e) => !(e.from.node === which && e.to.node === 'sampler'));
    wf.nodes.push({ id: `cn_${which}`, type: 'apply-controlnet', params: { strength: 0.8, ...window } });
    link(wf, which, 'conditioning', `cn_${which}`, 'conditioning');
    link(wf, 'cn', 'control_net', `cn_${which}`, 'control_net');
    link(wf, 'cn_image', 'image', `cn_${which}`, 'image');
    link(wf, `cn_${which}`, 'conditioning', 'sampler', which);
  }
  return wf;
}

/** Runs a workflow; returns the sampler's latents (and the encoder's, if any) and the run's progress events. */
async function run(wf: Workflow): Promise<{ out: LatentValue; encoded?: LatentValue; progress: { step: number; total: number; preview?: unknown }[] }> {
  let out: LatentValue | undefined;
  let encoded: LatentValue | undefined;
  const r = await engine.run(wf, {
    onNodeOutputs: (node, o) => {
      if (node === 'sampler' || node === 'second') out = o.latent as LatentValue;
      if (node === 'encode') encoded = o.latent as LatentValue;
    },
  });
  expect(r.errors ?? [], JSON.stringify(r.errors)).toEqual([]);
  expect(r.ok, r.error).toBe(true);
  const progress = events.filter((e) => e.type === 'progress' && e.runId === r.runId) as unknown as { step: number; total: number; preview?: unknown }[];
  return { out: out!, encoded, progress };
}

describe('KSampler: every sampler through the executor', () => {
  for (const sampler of SAMPLER_NAMES) {
    it(`${sampler}: txt2img, img2img at denoise 0.6, inpainting, IP-Adapter and ControlNet windows`, async () => {
      // txt2img: progress per step (Heun: per step, not per evaluation), the last with a preview.
      const t2i = await run(ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: ksampler(sampler) }));
      expect(t2i.out.samples.every(Number.isFinite)).toBe(true);
      expect(t2i.progress.map((p) => p.step)).toEqual([1, 2, 3]);
      expect(t2i.progress.at(-1)!.preview).toBeTruthy();

      // img2img: 3 of trunc(3 / 0.6) = 5 scheduled steps run.
      const i2i = await run(fromImage(ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: ksampler(sampler, { denoise: 0.6 }) }), INIT, false));
      expect(i2i.progress.map((p) => p.total)).toEqual([3, 3, 3]);
      expect(i2i.out.samples.every(Number.isFinite)).toBe(true);

      // Inpainting: outside the mask the latents end as the input latents (blended each step at the step's level, 0 at the end).
      const inp = await run(fromImage(ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: ksampler(sampler) }), INPAINT, true));
      const mask = inp.encoded!.noiseMask!.data;
      const plane = mask.length;
      let kept = 0;
      let changed = 0;
      inp.out.samples.forEach((v, k) => {
        if (mask[k % plane] === 0) {
          expect(v).toBe(inp.encoded!.samples[k]);
          kept++;
        } else if (v !== inp.encoded!.samples[k]) changed++;
      });
      expect(kept).toBeGreaterThan(0);
      expect(changed).toBeGreaterThan(0);
      expect(inp.out.noiseMask).toBeDefined();

      // Windows: the adapter on for the first half only, the ControlNet for the second; differs from the full windows.
      const windowed = ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: ksampler(sampler, { steps: 4 }) });
      windowed.nodes.find((n) => n.id === 'apply')!.params = { weight: 1, start_at: 0, end_at: 0.5 };
      const w = await run(withControl(windowed, { start: 0.5, end: 1 }));
      expect(w.out.samples.every(Number.isFinite)).toBe(true);
      if (sampler === 'euler' || sampler === 'dpmpp_2m') {
        // the windows act (once per kind of sampler: one-step and multistep)
        const full = await run(
          withControl(ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: ksampler(sampler, { steps: 4 }) }), { start: 0, end: 1 }),
        );
        expect(Buffer.from(w.out.samples.buffer).equals(Buffer.from(full.out.samples.buffer))).toBe(false);
      }
    });
  }
});

describe('KSampler runs', () => {
  it('cancelled at step 3 of 8, then run again: the latents of the uncancelled run (euler_ancestral: per-step noise)', async () => {
    const wf = ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: ksampler('euler_ancestral', { steps: 8, scheduler: 'karras', seed: 11 }) });
    const uncancelled = (await run(wf)).out.samples.slice();
    engine.executor.clearCache();
    const { runId, done } = engine.start(wf);
    const off = engine.subscribe((e) => {
      if (e.type === 'progress' && e.runId === runId && e.step === 3) engine.cancel(runId);
    });
    expect(await done).toMatchObject({ ok: false, cancelled: true });
    off();
    const again = await run(wf);
    expect(again.progress).toHaveLength(8);
    expect(Array.from(again.out.samples)).toEqual(Array.from(uncancelled));
  });

  it('KSampler (Advanced): steps 0..2 with leftover noise, then 2..5 without adding noise, equal one 0..5 run', async () => {
    const adv = (extra: WorkflowNode['params']) => ({
      type: 'ksampler-advanced',
      params: {
        add_noise: 'enable',
        noise_seed: 5,
        steps: 5,
        cfg: 6,
        sampler_name: 'euler',
        scheduler: 'karras',
        start_at_step: 0,
        end_at_step: 10000,
        return_with_leftover_noise: 'disable',
        ...extra,
      },
    });
    const one = (await run(ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: adv({}) }))).out.samples;
    const wf = ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: adv({ end_at_step: 2, return_with_leftover_noise: 'enable' }) });
    wf.nodes.push({ id: 'second', ...adv({ add_noise: 'disable', start_at_step: 2 }), ui: { x: 0, y: 0 } });
    wf.edges = wf.edges.filter((e) => !(e.from.node === 'sampler' && e.to.node === 'decode'));
    for (const p of ['model', 'positive', 'negative']) {
      const src = wf.edges.find((e) => e.to.node === 'sampler' && e.to.port === p)!.from;
      link(wf, src.node, src.port, 'second', p);
    }
    link(wf, 'sampler', 'latent', 'second', 'latent');
    link(wf, 'second', 'latent', 'decode', 'samples');
    const chained = (await run(wf)).out.samples;
    expect(Array.from(chained)).toEqual(Array.from(one));
  });

  it('a batch of 2: one noise draw for the whole batch, per-step noise too; the two latents differ', async () => {
    const wf = ipAdapterWorkflow({ image: IMAGE, output: 'preview', sampler: ksampler('euler_ancestral', { steps: 3 }) });
    wf.nodes.find((n) => n.id === 'latent')!.params.batch_size = 2;
    const { out } = await run(wf);
    expect(out.dims).toEqual([2, 4, 8, 8]);
    const half = out.samples.length / 2;
    expect(out.samples.every(Number.isFinite)).toBe(true);
    expect(Array.from(out.samples.subarray(0, half))).not.toEqual(Array.from(out.samples.subarray(half)));
  });

  it('start_at_step at or past the end returns the latent unchanged', async () => {
    const wf = fromImage(
      ipAdapterWorkflow({
        image: IMAGE,
        output: 'preview',
        sampler: { type: 'ksampler-advanced', params: { steps: 4, start_at_step: 4, sampler_name: 'euler', scheduler: 'normal' } },
      }),
      INIT,
      false,
    );
    const r = await run(wf);
    expect(Array.from(r.out.samples)).toEqual(Array.from(r.encoded!.samples));
  });

  it('validation refuses unknown sampler / scheduler names (naming the node, listing the known), steps 0, negative cfg, denoise outside (0, 1]', () => {
    const bad = (params: WorkflowNode['params']) => engine.validate(ipAdapterWorkflow({ image: IMAGE, sampler: ksampler('euler', params) }));
    const names = bad({ sampler_name: 'dpmpp_3m_sde', scheduler: 'beta' });
    expect(names.map((e) => e.param).sort()).toEqual(['sampler_name', 'scheduler']);
    expect(names.find((e) => e.param === 'sampler_name')!.message).toMatch(
      /^KSampler \(sampler\): .*"dpmpp_3m_sde" is not one of euler, euler_ancestral, heun, lms, dpmpp_2m, ddim, ddpm, uni_pc, uni_pc_bh2, lcm/,
    );
    expect(names.find((e) => e.param === 'scheduler')!.message).toMatch(
      /"beta" is not one of normal, karras, exponential, sgm_uniform, simple, ddim_uniform, diffusers_leading/,
    );
    expect(bad({ steps: 0 })[0]!.message).toMatch(/steps.*0 is below the minimum 1/);
    expect(bad({ cfg: -1 })[0]!.message).toMatch(/cfg.*-1 is below the minimum 0/);
    expect(bad({ denoise: 0 })[0]!.message).toMatch(/denoise 0 is outside \(0, 1\]/);
    expect(bad({ denoise: 1.5 })[0]!.message).toMatch(/denoise.*1.5 is above the maximum 1/);
    expect(bad({})).toEqual([]);
  });
});
