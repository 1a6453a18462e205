/**
 * Shared context of the conformance runner: the fixtures folder, its cases.json, tensor
 * access and the comparison rule (|a - b| <= atol + rtol * |b|, as cases.json states).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile, readTensorF32, readTensorI64 } from '../../models/safetensors.js';
import { type GraphProfile, type Precision, profileFor } from '../../models/onnx/profile.js';
import type { Provider } from '../../models/providers.js';
import { PRECISION_INSENSITIVE, PRECISION_TOLERANCE } from './tolerances.js';

/** The precision this process runs the cases at (`--precision`, default fp32): sessions get its profile. */
export const runPrecision: { value: Precision } = { value: 'fp32' };
/** The provider the sessions are made on (`--provider`, default cpu; `npm run gpu-check` runs the others). */
export const runProvider: { value: Provider; failures: string[] } = { value: 'cpu', failures: [] };
/** `--controlnet-in-unet`: the pipeline groups' ControlNets inside the UNet session (models/unet-controlnet.ts); default: the store's choice. */
export const runControlNetsInUNet: { value: boolean } = { value: false };

export interface TensorDesc {
  tensor: string;
  shape: number[];
  dtype: string;
}
export interface CaseSpec {
  name: string;
  inputs?: Record<string, unknown>;
  params?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  intermediates?: Record<string, unknown>;
  tolerance?: Record<string, unknown>;
  [k: string]: unknown;
}
export interface GroupSpec {
  file: string;
  description?: string;
  cases: CaseSpec[];
}
/** A model file of cases.json: `path` relative to `model_dir` or `base_model_dir` (the folder's `relative_to`). */
export interface ModelEntry {
  path: string;
  relative_to?: string;
  role?: string;
  [k: string]: unknown;
}
export interface CasesJson {
  /** The folder's own model files, relative to cases/. */
  model_dir: string;
  /** Another set's folder whose models these cases use (model-files: ../../tiny-sd15), relative to cases/. */
  base_model_dir?: string;
  models: Record<string, ModelEntry & { config?: Record<string, unknown> }>;
  ip_adapter_layers: { ip_adapter_index: number; diffusers: string; ldm: string; hidden_size: number; heads: number }[];
  groups: Record<string, GroupSpec>;
}

/** One printed row: a compared output (or a pending/failed case). */
export interface Row {
  group: string;
  case: string;
  status: 'pass' | 'fail' | 'pending';
  maxAbsErr?: number;
  tolerance?: string;
  detail?: string;
}

export class Ctx {
  readonly cases: CasesJson;
  /** The set's name (its folder name): rows are labelled `<set>/<group>`. */
  readonly set: string;
  readonly modelDir: string;
  /** `base_model_dir` resolved, when cases.json has one. */
  readonly baseModelDir: string | null;
  readonly cacheDir: string;
  private files = new Map<string, SafetensorsFile>();

  /** The graph profile of the run's provider and precision (`--provider`, `--precision`). */
  get profile(): GraphProfile {
    return profileFor(runProvider.value, runPrecision.value);
  }

  /**
   * What the loaders take to create their sessions: the cache folder, the run's provider and profile; a provider that
   * fails to start is recorded (the runner reports it as a failing row instead of passing on the CPU's numbers).
   */
  get session(): { cacheDir: string; profile: GraphProfile; provider: Provider; onProviderFailed: (p: Provider, e: Error) => void } {
    return {
      cacheDir: this.cacheDir,
      profile: this.profile,
      provider: runProvider.value,
      onProviderFailed: (p, e) => runProvider.failures.push(`provider ${p} failed to start: ${e.message.split('\n')[0]}`),
    };
  }

  constructor(readonly fixtures: string) {
    this.cases = JSON.parse(fs.readFileSync(path.join(fixtures, 'cases', 'cases.json'), 'utf8')) as CasesJson;
    this.set = path.basename(fixtures);
    this.modelDir = path.resolve(fixtures, 'cases', this.cases.model_dir ?? '..');
    this.baseModelDir = typeof this.cases.base_model_dir === 'string' ? path.resolve(fixtures, 'cases', this.cases.base_model_dir) : null;
    this.cacheDir = process.env.IPA_CACHE ?? path.join(os.tmpdir(), 'ipa-conformance-cache');
  }

  /**
   * The absolute path of a model entry (`{path, relative_to}` or a bare path): `relative_to` is `model_dir` or
   * `base_model_dir`; without it the path is relative to model_dir, except in a folder that has a
   * base_model_dir, where every entry must say which (its README's rule). Anything else throws.
   */
  resolve(entry: unknown, where = 'a models entry'): string {
    // tiny-sd15 also names some models by a bare path string.
    const e = (typeof entry === 'string' ? { path: entry } : entry) as Partial<ModelEntry> | undefined;
    if (!e || typeof e !== 'object' || typeof e.path !== 'string') throw new Error(`${where}: expected {path, relative_to}, found ${JSON.stringify(entry)}`);
    if (e.relative_to === 'base_model_dir') {
      if (!this.baseModelDir) throw new Error(`${where}: relative_to base_model_dir, but cases.json has no base_model_dir`);
      return path.join(this.baseModelDir, e.path);
    }
    if (e.relative_to === 'model_dir' || (e.relative_to === undefined && !this.baseModelDir)) return path.join(this.modelDir, e.path);
    throw new Error(`${where}: relative_to ${JSON.stringify(e.relative_to)} is not understood (expected model_dir or base_model_dir)`);
  }

  /** The absolute path of a top-level cases.json `models.<key>` entry. */
  topModel(key: string): string {
    return this.resolve(this.cases.models?.[key], `cases.json models.${key}`);
  }

  /** Path of a file in the cases folder (png inputs, tensor files). */
  casePath(name: string): string {
    return path.join(this.fixtures, 'cases', name);
  }

  /** Path of a model listed in cases.json -> models, or relative to the model dir. */
  modelPath(rel: string): string {
    return path.join(this.modelDir, rel);
  }

  groupFile(group: string): SafetensorsFile {
    const g = this.cases.groups[group];
    let f = this.files.get(group);
    if (!f) {
      f = SafetensorsFile.open(this.casePath(g.file));
      this.files.set(group, f);
    }
    return f;
  }

  /**
   * Resolves a tensor reference of a case: `{tensor: name}` or a bare string naming a tensor
   * listed in the group's `inputs` case (cases.json convention).
   */
  f32(group: string, ref: unknown): Float32Array {
    return readTensorF32(this.groupFile(group).get(this.tensorName(group, ref)));
  }

  i64(group: string, ref: unknown): BigInt64Array {
    return readTensorI64(this.groupFile(group).get(this.tensorName(group, ref)));
  }

  shape(group: string, ref: unknown): number[] {
    return this.groupFile(group).get(this.tensorName(group, ref)).shape;
  }

  tensorName(group: string, ref: unknown): string {
    if (ref && typeof ref === 'object' && 'tensor' in ref) return (ref as TensorDesc).tensor;
    if (typeof ref === 'string') {
      const file = this.groupFile(group);
      if (file.has(ref)) return ref;
      const inputsCase = this.cases.groups[group].cases.find((c) => c.name === 'inputs');
      const r = inputsCase?.inputs?.[ref] ?? inputsCase?.outputs?.[ref];
      if (r) return this.tensorName(group, r);
    }
    throw new Error(`cannot resolve tensor reference ${JSON.stringify(ref)} in group ${group}`);
  }
}

/** Tolerance of one output: the case's `tolerance` may be flat or keyed by output name. */
export function toleranceFor(c: CaseSpec, output: string): { atol: number; rtol: number; exact: boolean } {
  const t = (c.tolerance ?? {}) as Record<string, unknown>;
  const per = t[output];
  const src = (per && typeof per === 'object' ? per : t) as Record<string, unknown>;
  return {
    atol: typeof src.atol === 'number' ? src.atol : 0,
    rtol: typeof src.rtol === 'number' ? src.rtol : 0,
    exact: src.exact === true,
  };
}

/** Compares `got` with `expected`; returns a row. */
export function compare(
  group: string,
  name: string,
  got: ArrayLike<number | bigint>,
  expected: ArrayLike<number | bigint>,
  stated: { atol: number; rtol: number; exact?: boolean },
): Row {
  // Under a reduced precision a network's outputs pass within the wider of the case's and the precision's own
  // tolerance (tolerances.ts); a group that is not listed there either way fails rather than borrow the fp32 one.
  let tol = stated;
  let prefix = '';
  const p = runPrecision.value;
  if (p !== 'fp32' && !PRECISION_INSENSITIVE.has(group)) {
    const wide = PRECISION_TOLERANCE[p]?.[group];
    if (!wide) return { group, case: name, status: 'fail', detail: `no ${p} tolerance stated for group ${group} (test/conformance/tolerances.ts)` };
    tol = { atol: Math.max(stated.atol, wide.atol), rtol: Math.max(stated.rtol, wide.rtol), exact: false };
    prefix = `${p} `;
  }
  const tolText = prefix + (tol.exact ? 'exact' : `atol ${tol.atol}${tol.rtol ? ` rtol ${tol.rtol}` : ''}`);
  if (got.length !== expected.length) {
    return { group, case: name, status: 'fail', tolerance: tolText, detail: `length ${got.length} != expected ${expected.length}` };
  }
  let maxAbs = 0;
  let ok = true;
  for (let i = 0; i < got.length; i++) {
    const a = Number(got[i]);
    const b = Number(expected[i]);
    const d = Math.abs(a - b);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    if (tol.exact ? d !== 0 : !(d <= tol.atol + tol.rtol * Math.abs(b))) ok = false;
  }
  return { group, case: name, status: ok ? 'pass' : 'fail', maxAbsErr: maxAbs, tolerance: tolText };
}

/** Case fields whose every key a handler must use. */
export const CHECKED_FIELDS = ['inputs', 'params', 'outputs', 'intermediates'] as const;

/**
 * Wraps a case so the runner sees which keys of its inputs / params / outputs / intermediates the
 * handler reads. A key never read is a field the runner does not understand: a failure, not a skip
 * (a parameter silently ignored would make a passing row mean less than it says).
 * Reading is counted by property access (`c.params.eta`, `Object.entries(c.outputs)`), not by
 * `Object.keys`, so listing the keys to reject unknown ones does not count as using them.
 */
export function trackCase(c: CaseSpec): { tracked: CaseSpec; unread(): string[] } {
  const read = new Set<string>();
  const wrapped = new Map<string, object>();
  const tracked = new Proxy(c, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || !(CHECKED_FIELDS as readonly string[]).includes(prop) || !v || typeof v !== 'object' || Array.isArray(v)) return v;
      let w = wrapped.get(prop);
      if (!w) {
        w = new Proxy(v as object, {
          get(t, k, r) {
            if (typeof k === 'string' && Object.prototype.hasOwnProperty.call(t, k)) read.add(`${prop}.${k}`);
            return Reflect.get(t, k, r);
          },
        });
        wrapped.set(prop, w);
      }
      return w;
    },
  });
  const unread = () =>
    CHECKED_FIELDS.flatMap((f) => {
      const v = c[f];
      return v && typeof v === 'object' && !Array.isArray(v)
        ? Object.keys(v)
            .map((k) => `${f}.${k}`)
            .filter((k) => !read.has(k))
        : [];
    });
  return { tracked, unread };
}

/** A group handler runs one case and returns its rows (one per compared output / variant). */
export type CaseHandler = (ctx: Ctx, group: string, c: CaseSpec) => Promise<Row[]>;

/** A pending row: the case belongs to another issue's work; never counted as passed. */
export function pending(group: string, c: CaseSpec, reason: string): Row[] {
  return [{ group, case: c.name, status: 'pending', detail: reason }];
}
