import { describe, expect, it } from 'vitest';
import { nodeSpecs } from '../nodes/index.js';
import type { Workflow } from './protocol.js';
import { countJobs, expandSweeps, type SweepExpansion } from './sweep.js';
import { WORKFLOW_FORMAT, WORKFLOW_VERSION } from './workflow.js';

const specs = nodeSpecs();

function wf(sweep: Record<string, string | boolean>, more: Workflow['nodes'] = []): Workflow {
  return {
    format: WORKFLOW_FORMAT,
    version: WORKFLOW_VERSION,
    nodes: [
      { id: 'apply', type: 'apply-ip-adapter', params: { weight: 1 } },
      { id: 'sampler', type: 'ddim-sampler', params: { seed: 1, steps: 20 } },
      { id: 'positive', type: 'text-encode', params: { text: 'a cat' } },
      { id: 'image', type: 'load-image', params: { image: 'a.png' } },
      { id: 'save', type: 'save-image', params: { filename_prefix: 'grid' } },
      { id: 'sw', type: 'sweep', params: sweep },
      ...more,
    ],
    edges: [],
  };
}
const ok = (r: ReturnType<typeof expandSweeps>): SweepExpansion => {
  if ('errors' in r) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r;
};
const param = (w: Workflow, node: string, p: string) => w.nodes.find((n) => n.id === node)!.params[p];

describe('expandSweeps', () => {
  it('product: X varies fastest, every combination once, each job a plain workflow with numbered Save Image prefixes', () => {
    const r = ok(expandSweeps(wf({ x_param: 'apply.weight', x_values: '0, 0.5, 1', y_param: 'sampler.seed', y_values: '1\n2' }), specs));
    expect(r.jobs.map((j) => [param(j.workflow, 'apply', 'weight'), param(j.workflow, 'sampler', 'seed')])).toEqual([
      [0, 1],
      [0.5, 1],
      [1, 1],
      [0, 2],
      [0.5, 2],
      [1, 2],
    ]);
    expect(r.jobs.map((j) => j.cell)).toEqual([
      [0, 0],
      [1, 0],
      [2, 0],
      [0, 1],
      [1, 1],
      [2, 1],
    ]);
    expect(r.groups.map((g) => g.size)).toEqual([3, 2]);
    expect(r.jobs[4].label).toBe('weight=0.5, seed=2');
    for (const j of r.jobs) expect(j.workflow.nodes.some((n) => n.type === 'sweep')).toBe(false);
    expect(r.jobs.map((j) => param(j.workflow, 'save', 'filename_prefix'))).toEqual(['grid-001', 'grid-002', 'grid-003', 'grid-004', 'grid-005', 'grid-006']);
    expect(r.jobs[5].workflow.meta?.sweep).toEqual({ job: 6, of: 6, values: { 'apply.weight': 1, 'sampler.seed': 2 } });
    expect(r.grid).toBe(true);
  });

  it('zip: the lists side by side, one grid axis; unequal lengths are refused naming both', () => {
    const r = ok(expandSweeps(wf({ mode: 'zip', x_param: 'apply.weight', x_values: '0,1', y_param: 'sampler.steps', y_values: '10,30' }), specs));
    expect(r.jobs.map((j) => [param(j.workflow, 'apply', 'weight'), param(j.workflow, 'sampler', 'steps')])).toEqual([
      [0, 10],
      [1, 30],
    ]);
    expect(r.groups).toHaveLength(1);
    expect(r.jobs[1].label).toBe('weight=1, steps=30');
    const bad = expandSweeps(wf({ mode: 'zip', x_param: 'apply.weight', x_values: '0,1,2', y_param: 'sampler.steps', y_values: '10,30' }), specs);
    expect('errors' in bad && bad.errors[0].message).toMatch(/Sweep \(sw\).*equally long.*apply\.weight: 3, sampler\.steps: 2/);
  });

  it('ranges, prompt lines (commas kept), enum names, model names; counts before running', () => {
    const w = wf({ x_param: 'apply.weight', x_values: '0:1:0.25', y_param: 'positive.text', y_values: 'a cat, sitting\na dog' });
    const r = ok(expandSweeps(w, specs));
    expect(r.groups[0].axes[0].values).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(r.groups[1].axes[0].values).toEqual(['a cat, sitting', 'a dog']);
    const two = ok(
      expandSweeps(
        wf({ x_param: 'positive.text', x_values: 'a\nb', y_param: 'negative.text', y_values: 'c' }, [{ id: 'negative', type: 'text-encode', params: {} }]),
        specs,
      ),
    );
    expect(two.jobs[1].label).toBe('positive.text=b, negative.text=c');
    expect(countJobs(w, specs)).toBe(10);
    expect(countJobs(wf({}), specs)).toBe(1);
    const models = ok(
      expandSweeps(wf({ x_param: 'ckpt.ckpt_name', x_values: 'a.safetensors\nsub/b.ckpt' }, [{ id: 'ckpt', type: 'load-checkpoint', params: {} }]), specs),
    );
    expect(models.groups[0].axes[0].labels).toEqual(['a', 'b']);
  });

  it('an image folder takes every image in it, listed by the caller; countJobs cannot say before listing', () => {
    const w = wf({ x_param: 'image.image', x_values: 'refs/' });
    const r = ok(expandSweeps(w, specs, { listFolder: (ref) => (ref === 'refs/' ? ['refs/a.png', 'refs/b.jpg', 'refs/notes.txt'] : null) }));
    expect(r.jobs.map((j) => param(j.workflow, 'image', 'image'))).toEqual(['refs/a.png', 'refs/b.jpg']);
    expect(countJobs(w, specs)).toBeNull();
    const missing = expandSweeps(w, specs, { listFolder: () => null });
    expect('errors' in missing && missing.errors[0].message).toMatch(/folder refs\/ .*cannot be read/);
  });

  it('refuses unknown nodes and params, bad values, and too many jobs, naming the Sweep node', () => {
    const msgs = (s: Record<string, string>) => {
      const r = expandSweeps(wf(s), specs);
      return 'errors' in r ? r.errors.map((e) => e.message).join('\n') : '';
    };
    expect(msgs({ x_param: 'nope.weight', x_values: '1' })).toMatch(/Sweep \(sw\): X param nope\.weight names no node "nope"/);
    expect(msgs({ x_param: 'apply.wieght', x_values: '1' })).toMatch(/Apply IP-Adapter.*\(apply\) has no param "wieght"/);
    expect(msgs({ x_param: 'apply.weight', x_values: '1, big' })).toMatch(/"big" for apply\.weight is not a number/);
    expect(msgs({ x_param: 'sampler.seed', x_values: '0:100000:1' })).toMatch(/more than 4096/);
    expect(msgs({ x_param: 'apply.weight', x_values: '0:1:-1' })).toMatch(/not a range/);
  });

  it('a muted Sweep node does not sweep; a big seed keeps its digits', () => {
    const w = wf({ x_param: 'apply.weight', x_values: '0,1' });
    w.nodes.find((n) => n.id === 'sw')!.mode = 'mute';
    const r = ok(expandSweeps(w, specs));
    expect(r.jobs).toHaveLength(1);
    expect(r.grid).toBe(false);
    const big = ok(expandSweeps(wf({ x_param: 'sampler.seed', x_values: '18446744073709551615' }), specs));
    expect(big.groups[0].axes[0].values).toEqual(['18446744073709551615']);
  });
});
