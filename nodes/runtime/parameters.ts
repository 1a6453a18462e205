/**
 * The Automatic1111 "parameters" text that image hosts and viewers display:
 *
 *   <prompt>
 *   Negative prompt: <negative prompt>
 *   Steps: 30, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: v1-5-pruned-emaonly, ...
 *
 * Read from the workflow by walking upstream from the output node to its sampler, and from
 * the sampler to its prompts, checkpoint and IP-Adapter.
 */
import * as path from 'node:path';
import type { Workflow, WorkflowNode } from '../../engine/api.js';

function upstream(wf: Workflow, start: string, port?: string): WorkflowNode[] {
  const byId = new Map(wf.nodes.map((n) => [n.id, n]));
  const seen = new Set<string>();
  const out: WorkflowNode[] = [];
  let frontier = wf.edges.filter((e) => e.to.node === start && (!port || e.to.port === port)).map((e) => e.from.node);
  while (frontier.length) {
    const next: string[] = [];
    for (const id of frontier) {
      if (seen.has(id)) continue;
      seen.add(id);
      const n = byId.get(id);
      if (!n) continue;
      out.push(n);
      for (const e of wf.edges) if (e.to.node === id) next.push(e.from.node);
    }
    frontier = next;
  }
  return out;
}

const stem = (p: unknown) => path.basename(String(p ?? '')).replace(/\.safetensors$/, '');
const clean = (s: string) => s.replace(/\r?\n/g, ' ').trim();
const num = (v: unknown, d: number) => (typeof v === 'number' ? v : d);

const SAMPLER_NODES = new Set(['ddim-sampler', 'ksampler', 'ksampler-advanced']);
/** KSampler's sampler_name as A1111 names it (its `Sampler` field; the scheduler goes to `Schedule type`). */
const A1111_SAMPLERS: Record<string, string> = {
  euler: 'Euler',
  euler_ancestral: 'Euler a',
  heun: 'Heun',
  lms: 'LMS',
  dpmpp_2m: 'DPM++ 2M',
  ddim: 'DDIM',
  ddpm: 'DDPM',
  uni_pc: 'UniPC',
  uni_pc_bh2: 'UniPC',
  lcm: 'LCM',
};
const A1111_SCHEDULES: Record<string, string> = {
  karras: 'Karras',
  exponential: 'Exponential',
  sgm_uniform: 'SGM Uniform',
  simple: 'Simple',
  ddim_uniform: 'DDIM',
};

/**
 * The parameters text for images written by output node `nodeId`, or null without a sampler upstream. `extra`: fields
 * the run adds (the reduced precision it computed at: `Precision: int8 (cpu-int8)`).
 */
export function a1111Parameters(wf: Workflow, nodeId: string, width: number, height: number, extra: [string, string | number][] = []): string | null {
  const sampler = upstream(wf, nodeId).find((n) => SAMPLER_NODES.has(n.type));
  if (!sampler) return null;
  const prompt = (port: string) => upstream(wf, sampler.id, port).find((n) => n.type === 'text-encode')?.params.text;
  const pos = clean(String(prompt('positive') ?? ''));
  const neg = clean(String(prompt('negative') ?? ''));
  const modelChain = upstream(wf, sampler.id, 'model');
  const ckpt = modelChain.find((n) => n.type === 'load-checkpoint');
  const apply = modelChain.find((n) => n.type === 'apply-ip-adapter');
  const adapter = apply ? upstream(wf, apply.id, 'ip_adapter').find((n) => n.type === 'load-ip-adapter') : undefined;
  const p = sampler.params;
  const k = sampler.type !== 'ddim-sampler';
  const seed = k && sampler.type === 'ksampler-advanced' ? p.noise_seed : p.seed;
  const fields: [string, string | number][] = [
    ['Steps', num(p.steps, k ? 20 : 30)],
    ['Sampler', k ? (A1111_SAMPLERS[String(p.sampler_name ?? 'euler')] ?? String(p.sampler_name)) : 'DDIM'],
    ...(k && A1111_SCHEDULES[String(p.scheduler)] ? [['Schedule type', A1111_SCHEDULES[String(p.scheduler)]!] as [string, string]] : []),
    ['CFG scale', num(p.cfg, k ? 8 : 7.5)],
    ['Seed', typeof seed === 'string' ? seed : num(seed, 0)],
    ['Size', `${width}x${height}`],
  ];
  if (ckpt) fields.push(['Model', stem(ckpt.params.ckpt_name)]);
  if (num(p.denoise, 1) < 1) fields.push(['Denoising strength', num(p.denoise, 1)]);
  if (num(p.eta, 0) > 0) fields.push(['Eta', num(p.eta, 0)]);
  if (apply) {
    if (adapter) fields.push(['IP-Adapter', stem(adapter.params.ipadapter_file)]);
    fields.push(['IP-Adapter weight', num(apply.params.weight, 1)]);
  }
  fields.push(...extra);
  const lines = [pos];
  if (neg) lines.push(`Negative prompt: ${neg}`);
  lines.push(fields.map(([k, v]) => `${k}: ${v}`).join(', '));
  return lines.join('\n');
}
