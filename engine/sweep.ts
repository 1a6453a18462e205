/**
 * Sweeps and batches: a workflow with Sweep nodes (nodes/sweep.ts) expands into jobs, each a plain
 * workflow (no Sweep node, the swept params set, Save Image prefixes numbered per job), that any
 * queue runs: the in-process engine one after another (its output cache then re-runs only what a
 * swept param reaches) or the render farm (engine/farm/). Pure (no Node modules): the editor counts
 * the jobs before a run with `countJobs`; a folder of images is listed by the caller (`listFolder`).
 *
 *   const ex = expandSweeps(wf, specs, { listFolder });   // { jobs, groups } or { errors }
 *   ex.jobs[i].workflow                                    // run it; ex.jobs[i].cell = its grid cell
 *
 * Order: the Sweep nodes in workflow order, each node's axes X, Y, Z; in `product` mode the first
 * axis varies fastest (row-major XY plot: X = columns). Several Sweep nodes combine as a product,
 * the first node fastest. The grid's columns are the first group (a product node's X axis, or a zip
 * node's zipped lists as one axis), its rows every other group combined.
 */
import type { NodeSpec, ParamSpec, ParamValue } from '../nodes/spec.js';
import type { ValidationError, Workflow } from './protocol.js';

export const SWEEP_TYPE = 'sweep';
export const SWEEP_AXES = ['x', 'y', 'z'] as const;
/** More jobs than this are refused (a typo in a range would otherwise queue millions). */
export const MAX_SWEEP_JOBS = 4096;
const IMAGE_FILE = /\.(png|jpe?g|webp)$/i;

/** One swept param. */
export interface SweepAxis {
  node: string;
  param: string;
  values: ParamValue[];
  /** Short text for the grid (a model or image by its base name). */
  labels: string[];
}

/** A grid dimension: one axis, or the axes a zip node runs side by side. */
export interface SweepGroup {
  axes: SweepAxis[];
  size: number;
  /** Label of the i-th entry, e.g. "weight=0.5" or "weight=0.5, seed=2". */
  label(i: number): string;
}

export interface SweepJob {
  /** 0-based, in run order. */
  index: number;
  workflow: Workflow;
  /** The entry of each group this job is (same order as `groups`). */
  cell: number[];
  /** "weight=0.5, seed=2". */
  label: string;
  /** The values it sets, by `node.param`. */
  values: Record<string, ParamValue>;
}

export interface SweepExpansion {
  jobs: SweepJob[];
  groups: SweepGroup[];
  /** Whether the grid image is wanted (every Sweep node's `grid` param). */
  grid: boolean;
}

export interface ExpandOptions {
  /** The image refs of every image in the folder `ref` (ends in `/`), sorted; null when it is not a readable folder. */
  listFolder?: (ref: string) => string[] | null;
}

type SpecLookup = ReadonlyMap<string, NodeSpec> | readonly NodeSpec[];
const specOf = (specs: SpecLookup, type: string): NodeSpec | undefined =>
  Array.isArray(specs) ? (specs as readonly NodeSpec[]).find((s) => s.type === type) : (specs as ReadonlyMap<string, NodeSpec>).get(type);

/** The Sweep nodes that take part (a muted or bypassed one does not). */
export function sweepNodes(wf: Pick<Workflow, 'nodes'>): Workflow['nodes'] {
  return wf.nodes.filter((n) => n.type === SWEEP_TYPE && !n.mode);
}

export const hasSweep = (wf: Pick<Workflow, 'nodes'>): boolean => sweepNodes(wf).length > 0;

/** Splits a values text: by lines when it has several, else by commas (text params: always by lines). */
function splitItems(text: string, byLinesOnly: boolean): string[] {
  const lines = text.split(/\r?\n/);
  const items = byLinesOnly || lines.filter((l) => l.trim()).length > 1 ? lines : text.split(',');
  return items.map((s) => s.trim()).filter((s) => s.length > 0);
}

const baseName = (v: string) =>
  (
    v
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .pop() ?? v
  ).replace(/\.(safetensors|ckpt|pt|pth|bin|png|jpe?g|webp)$/i, '');
const short = (s: string, n = 28) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** Parses one axis's values for `spec`; problems as sentences naming the Sweep node. */
function parseValues(
  where: string,
  target: string,
  spec: ParamSpec,
  text: string,
  opts: ExpandOptions,
): { values: ParamValue[]; labels: string[] } | { error: string } {
  const items = splitItems(text, spec.kind === 'string');
  const values: ParamValue[] = [];
  const labels: string[] = [];
  for (const item of items) {
    switch (spec.kind) {
      case 'number': {
        const range = /^(-?[\d.e+-]+)\s*:\s*(-?[\d.e+-]+)\s*:\s*(-?[\d.e+-]+)$/i.exec(item);
        if (range) {
          const [a, b, step] = range.slice(1).map(Number);
          if (![a, b, step].every(Number.isFinite) || step === 0 || Math.sign(b - a) * Math.sign(step) < 0) {
            return { error: `${where}: "${item}" for ${target} is not a range start:stop:step that reaches its stop` };
          }
          const digits = Math.max(...[range[1], range[3]].map((s) => (s.split('.')[1] ?? '').length));
          for (let k = 0; ; k++) {
            const v = Number((a + k * step).toFixed(Math.min(digits + 2, 12)));
            if ((step > 0 && v > b + 1e-12) || (step < 0 && v < b - 1e-12)) break;
            values.push(v);
            labels.push(String(v));
            if (values.length > MAX_SWEEP_JOBS) return { error: `${where}: the range "${item}" for ${target} has more than ${MAX_SWEEP_JOBS} values` };
          }
          break;
        }
        const v = Number(item);
        if (!Number.isFinite(v)) return { error: `${where}: "${item}" for ${target} is not a number (or start:stop:step)` };
        // A whole number past 2^53 stays as written (a seed up to 2^64 - 1: engine/seed.ts); validation judges it.
        values.push(/^\d+$/.test(item) && !Number.isSafeInteger(v) ? item : v);
        labels.push(item);
        break;
      }
      case 'enum':
        if (!spec.options.includes(item)) return { error: `${where}: "${item}" for ${target} is not one of ${spec.options.join(', ')}` };
        values.push(item);
        labels.push(item);
        break;
      case 'boolean':
        if (item !== 'true' && item !== 'false') return { error: `${where}: "${item}" for ${target} is not true or false` };
        values.push(item === 'true');
        labels.push(item);
        break;
      case 'image':
        if (/[\\/]$/.test(item)) {
          const refs = opts.listFolder?.(item) ?? null;
          if (refs === null) return { error: `${where}: the folder ${item} for ${target} cannot be read (a folder relative to the workflow file, or inputs/)` };
          const images = refs.filter((r) => IMAGE_FILE.test(r));
          if (!images.length) return { error: `${where}: the folder ${item} for ${target} has no PNG, JPEG or WebP image` };
          for (const r of images) {
            values.push(r);
            labels.push(baseName(r));
          }
        } else {
          values.push(item);
          labels.push(baseName(item));
        }
        break;
      case 'file':
        values.push(item);
        labels.push(baseName(item));
        break;
      default:
        values.push(item);
        labels.push(short(item));
    }
  }
  if (!values.length) return { error: `${where}: ${target} has no values` };
  return { values, labels };
}

/**
 * Expands the workflow's Sweep nodes into jobs. A workflow without one is a single job (itself).
 * Errors name the Sweep node and the axis: an unknown node or param, a bad value, zip lists of
 * different lengths, more than MAX_SWEEP_JOBS jobs.
 */
export function expandSweeps(wf: Workflow, specs: SpecLookup, opts: ExpandOptions = {}): SweepExpansion | { errors: ValidationError[] } {
  const errors: ValidationError[] = [];
  const groups: SweepGroup[] = [];
  /** An axis's name in labels: its param, or node.param when two axes share a param name (positive.text, negative.text); set below, read lazily. */
  let pname = (a: SweepAxis) => a.param;
  let grid = false;
  const swept = new Set<string>();
  for (const s of sweepNodes(wf)) {
    const where = `Sweep (${s.id})`;
    const p = s.params ?? {};
    grid ||= p.grid !== false;
    const axes: SweepAxis[] = [];
    for (const a of SWEEP_AXES) {
      const target = String(p[`${a}_param`] ?? '').trim();
      const text = String(p[`${a}_values`] ?? '');
      if (!target) continue;
      const [nodeId, param] = target.split('.');
      const node = wf.nodes.find((n) => n.id === nodeId);
      const spec = node && specOf(specs, node.type);
      const pspec = spec?.params.find((x) => x.name === param);
      if (!node || node.type === SWEEP_TYPE) {
        errors.push({ node: s.id, param: `${a}_param`, message: `${where}: ${a.toUpperCase()} param ${target} names no node "${nodeId}" to sweep` });
        continue;
      }
      if (!pspec) {
        const names = spec?.params.map((x) => x.name).join(', ') || 'none';
        errors.push({
          node: s.id,
          param: `${a}_param`,
          message: `${where}: ${spec?.title ?? node.type} (${nodeId}) has no param "${param}" (its params: ${names})`,
        });
        continue;
      }
      if (swept.has(target)) {
        errors.push({ node: s.id, param: `${a}_param`, message: `${where}: ${target} is swept twice` });
        continue;
      }
      swept.add(target);
      const parsed = parseValues(`${where} ${a.toUpperCase()}`, target, pspec, text, opts);
      if ('error' in parsed) errors.push({ node: s.id, param: `${a}_values`, message: parsed.error });
      else axes.push({ node: nodeId, param, ...parsed });
    }
    if (!axes.length) continue;
    if (p.mode === 'zip') {
      const sizes = axes.map((a) => a.values.length);
      if (new Set(sizes).size > 1) {
        errors.push({
          node: s.id,
          param: 'mode',
          message: `${where}: zip runs the lists side by side, so they must be equally long; they have ${axes.map((a) => `${a.node}.${a.param}: ${a.values.length}`).join(', ')} values`,
        });
        continue;
      }
      groups.push({ axes, size: sizes[0], label: (i) => axes.map((a) => `${pname(a)}=${a.labels[i]}`).join(', ') });
    } else {
      for (const a of axes) groups.push({ axes: [a], size: a.values.length, label: (i) => `${pname(a)}=${a.labels[i]}` });
    }
  }
  if (errors.length) return { errors };
  const names = groups.flatMap((g) => g.axes.map((a) => a.param));
  pname = (a) => (names.filter((n) => n === a.param).length > 1 ? `${a.node}.${a.param}` : a.param);
  const total = groups.reduce((n, g) => n * g.size, 1);
  if (total > MAX_SWEEP_JOBS) {
    return { errors: [{ message: `the sweep makes ${total} jobs, more than ${MAX_SWEEP_JOBS}; sweep fewer values` }] };
  }
  const base = { ...wf, nodes: wf.nodes.filter((n) => n.type !== SWEEP_TYPE) };
  const width = String(total).length < 3 ? 3 : String(total).length;
  const jobs: SweepJob[] = [];
  for (let index = 0; index < total; index++) {
    const cell: number[] = [];
    let rest = index;
    for (const g of groups) {
      cell.push(rest % g.size);
      rest = Math.floor(rest / g.size);
    }
    const values: Record<string, ParamValue> = {};
    groups.forEach((g, gi) => {
      for (const a of g.axes) values[`${a.node}.${a.param}`] = a.values[cell[gi]];
    });
    const numbered = groups.length > 0;
    const nodes = base.nodes.map((n) => {
      const spec = specOf(specs, n.type);
      let params = n.params;
      for (const [k, v] of Object.entries(values)) {
        const [id, param] = k.split('.');
        if (id === n.id) params = { ...params, [param]: v };
      }
      // Each job's images get their own names: <prefix>-001_00001_.png, ...
      if (numbered && spec?.output) {
        for (const ps of spec.params) {
          if (ps.kind === 'string' && ps.outputPrefix)
            params = { ...params, [ps.name]: `${String(params[ps.name] ?? ps.default)}-${String(index + 1).padStart(width, '0')}` };
        }
      }
      return params === n.params ? n : { ...n, params };
    });
    const label = groups.map((g, gi) => g.label(cell[gi])).join(', ');
    const workflow: Workflow = numbered ? { ...base, nodes, meta: { ...(base.meta ?? {}), sweep: { job: index + 1, of: total, values } } } : { ...base, nodes };
    jobs.push({ index, workflow, cell, label, values });
  }
  return { jobs, groups, grid: grid && groups.length > 0 };
}

/**
 * How many jobs the workflow makes (1 without a Sweep node), for the editor before a run; null
 * when it cannot say: an axis has a problem, or takes a folder (counted when the run lists it).
 */
export function countJobs(wf: Workflow, specs: SpecLookup): number | null {
  let folder = false;
  const r = expandSweeps({ ...wf, nodes: wf.nodes }, specs, {
    listFolder: () => {
      folder = true;
      return ['x.png'];
    },
  });
  if ('errors' in r || folder) return null;
  return r.jobs.length;
}
