import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Workflow } from '../engine/api.js';
import { Executor } from '../engine/executor.js';
import { ModelStore } from '../engine/model-store.js';
import { Ctx } from '../test/conformance/context.js';
import { controlNetWorkflow } from '../test/conformance/groups/pipeline_controlnet_ip_adapter.js';
import { applyControlNet } from './apply-controlnet.js';
import { controlActive, controlCondTensor, controlsOf } from './runtime/controlnet.js';
import { NODE_DEFS } from './index.js';
import type { ExecContext } from '../engine/context.js';
import type { ConditioningValue, ImageValue } from './values.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

describe('control window', () => {
  it('follows diffusers controlnet_keep: i/n >= start and (i+1)/n <= end', () => {
    const steps = (start: number, end: number) => Array.from({ length: 10 }, (_, i) => i).filter((i) => controlActive({ start, end }, i, 10));
    expect(steps(0, 1)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(steps(0.5, 1)).toEqual([5, 6, 7, 8, 9]);
    expect(steps(0, 0.5)).toEqual([0, 1, 2, 3, 4]);
    expect(steps(0.25, 0.75)).toEqual([3, 4, 5, 6]);
    expect(steps(0.3, 0.3)).toEqual([]);
  });
});

describe('control image tensor', () => {
  const img: ImageValue = { kind: 'IMAGE', batch: 1, width: 2, height: 1, data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) };
  it('is NCHW with the IMAGE values unchanged at the right size, repeated over the batch', () => {
    expect(Array.from(controlCondTensor(img, 2, 1, 2))).toEqual([0.1, 0.4, 0.2, 0.5, 0.3, 0.6, 0.1, 0.4, 0.2, 0.5, 0.3, 0.6].map(Math.fround));
  });
  it('is stretched to another size and refuses a mismatched batch', () => {
    expect(controlCondTensor(img, 1, 8, 16)).toHaveLength(3 * 8 * 16);
    expect(() => controlCondTensor({ ...img, batch: 3, data: new Float32Array(18) }, 2, 1, 2)).toThrow(/3 images for 2 latents/);
  });
});

describe('Apply ControlNet node', () => {
  const cond: ConditioningValue = { kind: 'CONDITIONING', text: 'x', tokens: 1, dim: 1, embeds: Float32Array.of(0) };
  const cn = { kind: 'CONTROL_NET', path: '/m/cn.safetensors', configPath: '' };
  const image: ImageValue = { kind: 'IMAGE', batch: 1, width: 1, height: 1, data: new Float32Array(3) };
  const run = (strength: number, c = cond) =>
    applyControlNet.execute({ conditioning: c, control_net: cn, image }, { strength, start: 0, end: 1 }, {} as ExecContext);
  it('strength 0 attaches nothing (the run is the one without it); chains stack', async () => {
    expect((await run(0)).conditioning).toBe(cond);
    const once = (await run(0.8)).conditioning as ConditioningValue;
    const twice = (await run(0.5, once)).conditioning as ConditioningValue;
    expect(controlsOf(once).map((c) => c.strength)).toEqual([0.8]);
    expect(controlsOf(twice).map((c) => c.strength)).toEqual([0.8, 0.5]);
    expect(cond.controls).toBeUndefined();
  });
  it('flags a window that never acts', () => {
    expect(applyControlNet.check!({ strength: 1, start: 0.8, end: 0.2 })).toHaveLength(1);
  });
});

const fixtures = fixtureFolder('tiny-sd15');
describe.skipIf(!fs.existsSync(path.join(fixtures, 'controlnet')))('ControlNet in the sampler (tiny fixture, executor)', () => {
  it('strength 0 equals no ControlNet exactly; a start/end window changes only the steps it covers', async () => {
    const ctx = new Ctx(fixtures);
    const group = 'pipeline_controlnet_ip_adapter';
    const c = ctx.cases.groups[group].cases.find((x) => x.name === 'txt2img_controlnet')!;
    const latents = ctx.f32(group, (c.inputs as Record<string, unknown>).latents);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cn-window-'));
    const executor = new Executor(NODE_DEFS, new ModelStore({ cacheDir: path.join(tmp, 'cache'), provider: 'cpu' }));
    const run = async (edit: (wf: Workflow) => void) => {
      const wf = controlNetWorkflow(ctx, c, 'diffusers');
      edit(wf);
      const steps: Float32Array[] = [];
      const r = await executor.run({
        runId: 'w',
        workflow: wf,
        modelsDir: tmp,
        outputDir: tmp,
        tempDir: tmp,
        signal: new AbortController().signal,
        emit: () => {},
        noise: () => Float32Array.from(latents),
        trace: (t) => {
          if (t.node === 'sampler' && t.name === 'latents_after_step') steps[t.step!] = Float32Array.from(t.data);
        },
      });
      expect(r.error).toBeUndefined();
      return steps;
    };
    const setCn = (p: Record<string, number>) => (wf: Workflow) => {
      for (const n of wf.nodes) if (n.type === 'apply-controlnet') Object.assign(n.params, p);
    };
    const bypass = (wf: Workflow) => {
      // Wire the prompts straight to the sampler: no ControlNet at all.
      wf.edges = wf.edges.filter((e) => !(e.to.node === 'sampler' && (e.to.port === 'positive' || e.to.port === 'negative')));
      wf.edges.push({ from: { node: 'pos', port: 'conditioning' }, to: { node: 'sampler', port: 'positive' } });
      wf.edges.push({ from: { node: 'neg', port: 'conditioning' }, to: { node: 'sampler', port: 'negative' } });
    };
    const same = (a: Float32Array, b: Float32Array) => a.every((v, i) => v === b[i]);
    try {
      const none = await run(bypass);
      const zero = await run(setCn({ strength: 0 }));
      expect(zero.every((s, i) => same(s, none[i]))).toBe(true);
      const late = await run(setCn({ start: 0.5, end: 1 }));
      for (let i = 0; i < 10; i++) expect(same(late[i], none[i])).toBe(i < 5);
      const early = await run(setCn({ start: 0, end: 0.3 }));
      for (let i = 0; i < 3; i++) expect(same(early[i], none[i])).toBe(false);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);
});
