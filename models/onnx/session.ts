/**
 * Turning a BuiltModel into an ONNX Runtime session.
 *
 * ONNX Runtime reads external data relative to the model file and refuses paths that leave
 * the model's directory (after resolving symlinks). So each model gets a cache directory
 * holding `model.onnx` and one entry per weight file: a hard link to the user's file (no
 * copy, works on the same filesystem). When a hard link is impossible (another filesystem),
 * we write the model beside the weights if that directory is writable and the model uses a
 * single weight file, or copy the weights as a last resort; a log line says which.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeFileAtomicSync } from '../fs-atomic.js';
import type { BuiltModel } from './graph.js';
import { withFloat32Copies } from './fp32-weights.js';
import { applyProfile } from './apply-profile.js';
import { type GraphProfile, defaultProfile, fallbackChain, float32Twin } from './profile.js';

export type Provider = 'cpu' | 'webgpu' | 'cuda' | 'dml';

export interface SessionConfig {
  cacheDir: string;
  provider?: Provider;
  log?: (msg: string) => void;
  /** Threads for intra-op parallelism; 0 lets ONNX Runtime decide. */
  threads?: number;
  /** Per-network overrides (e.g. the UNet's optimization level and disabled prepacking). */
  sessionOptions?: ort.InferenceSession.SessionOptions;
  /**
   * What F16 / BF16 weights cost (figures: `npm run bench -- --only unet_fp16 --half-weights MODE`).
   * 'fp32-file' (default): converted once to a float32 copy on disk (onnx/fp32-weights.ts), read in
   * place like float32 weights: an fp16 file costs what its fp32 twin costs, in file-backed pages.
   * 'folded': ONNX Runtime folds the in-graph Casts into float32 copies at every session creation
   * (12 s for the SD1.5 UNet), as anonymous memory of the fp32 size. 'per-run': the Casts stay
   * (constant folding limited to small outputs) and run at every evaluation: less memory, more CPU.
   */
  halfWeights?: HalfWeightsMode;
  /**
   * Called (instead of logging) when `provider` failed to start and the session fell back to CPU:
   * the model store remembers it, so later sessions go to CPU at once and the warning shows once.
   */
  onProviderFailed?: (provider: Provider, error: Error) => void;
  /**
   * The graph profile (precision and fused ops, onnx/profile.ts); default: the provider's fp32 graph (today's).
   * A profile whose session fails to build falls back along `fallbackChain`, with a notice naming the provider and the op.
   */
  profile?: GraphProfile;
  /** Called (instead of logging) when a profile's session failed to build and a simpler one is used. */
  onProfileFallback?: (notice: string) => void;
  /**
   * Fixed input shapes on a GPU provider (default there: `FIXED_DIMS`; `false` keeps every dim free; ignored on the CPU):
   * the session is built for the sizes of its first run's feeds and rebuilt when one of them changes (FixedShapeSession).
   */
  fixedShapes?: boolean | RegExp;
  /**
   * Outputs a WebGPU session leaves on the device (`preferredOutputLocation: 'gpu-buffer'`): they come back as
   * gpu-buffer tensors to feed another WebGPU session (onnx/device-tensors.ts; never `getData()` them). Ignored elsewhere.
   */
  deviceOutputs?: readonly string[];
}

export type HalfWeightsMode = 'fp32-file' | 'per-run' | 'folded';

/** 'per-run': constant folding still folds outputs up to this size (shape arithmetic, biases), not weights. */
const PER_RUN_FOLD_LIMIT = 1 << 16;

export interface MaterializedModel {
  modelPath: string;
  /** How the weights were made reachable: 'hardlink', 'beside', or 'copy'. */
  method: 'hardlink' | 'beside' | 'copy' | 'none';
}

function sameFile(a: string, b: string): boolean {
  try {
    const sa = fs.lstatSync(a); // a stale link to a symlink must not count as the file
    const sb = fs.statSync(b);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return false;
  }
}

/** Places the model and links to its weights in the cache; returns the model path. */
export function materialize(model: BuiltModel, cfg: SessionConfig): MaterializedModel {
  const log = cfg.log ?? (() => {});
  const dir = path.join(cfg.cacheDir, 'onnx', `${model.name}-${model.key}`);
  const modelPath = path.join(dir, 'model.onnx');
  const entries = Object.entries(model.externalFiles);
  fs.mkdirSync(dir, { recursive: true });
  let method: MaterializedModel['method'] = entries.length ? 'hardlink' : 'none';
  for (const [loc, linked] of entries) {
    // link() does not follow symlinks, and ORT refuses a symlink that leads outside the model
    // directory: link the real file (models folders and HF caches are often symlinks).
    const src = fs.realpathSync(linked);
    const dst = path.join(dir, loc);
    if (fs.existsSync(dst) && sameFile(dst, src)) continue;
    fs.rmSync(dst, { force: true });
    try {
      fs.linkSync(src, dst);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (entries.length === 1) {
        // Beside the weights: the model references the file by its own name.
        const besidePath = path.join(path.dirname(src), `.${path.basename(src)}.${model.name}-${model.key}.onnx`);
        try {
          const patched = model.relocate({ [loc]: path.basename(src) });
          writeFileAtomicSync(besidePath, patched);
          log(`weights: hard link into the cache failed (${code}); wrote the model beside ${src}`);
          return { modelPath: besidePath, method: 'beside' };
        } catch {
          /* fall through to copy */
        }
      }
      log(`weights: hard link into the cache failed (${code}); copying ${src} (${fs.statSync(src).size} bytes)`);
      fs.copyFileSync(src, `${dst}.tmp`);
      fs.renameSync(`${dst}.tmp`, dst);
      method = 'copy';
    }
  }
  if (!fs.existsSync(modelPath) || fs.statSync(modelPath).size !== model.bytes.length) writeFileAtomicSync(modelPath, model.bytes);
  if (method === 'hardlink') log(`weights: ${entries.length} file(s) hard-linked into ${dir}`);
  return { modelPath, method };
}

export function executionProviders(p: Provider | undefined): ort.InferenceSession.SessionOptions['executionProviders'] {
  switch (p ?? 'cpu') {
    case 'webgpu':
      return ['webgpu', 'cpu'];
    case 'cuda':
      return ['cuda', 'cpu'];
    case 'dml':
      return ['dml', 'cpu'];
    default:
      return ['cpu'];
  }
}

/**
 * Session options under which the weights stay the user's file bytes: with prepacking disabled,
 * ONNX Runtime memory-maps the external-data initializers and its Gemm / MatMul kernels read
 * them in place (graph.ts `linear` is Gemm(transB=1) on the stored weight, so no transposed copy
 * is folded either). Resident weight memory is then file-backed page cache shared with the file,
 * not an anonymous copy, and session creation does not read the weights at all (the first run
 * faults them in). Measured with `npm run bench` (CLIP text and a ViT-H/14 vision encoder, CPU,
 * 2 cores): session creation 0.5 -> 0.1 s and 7-10 -> 0.3 s, anonymous RSS 0.43 -> 0.1 GB and
 * 2.5 -> 0.1 GB; vision run time the same within 3%, text within noise (up to ~15% slower on
 * loaded cores: MLAS packs each weight per call instead of once).
 * Used by the linear-heavy networks: CLIP text, CLIP vision, the image projection, and (with
 * graph level "extended") the UNet.
 */
export const IN_PLACE_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  extra: { session: { disable_prepacking: '1' } },
};

/** The profile each session was built with (the NaN guard asks whether it is reduced precision). */
const PROFILE_OF = new WeakMap<ort.InferenceSession, GraphProfile>();
/** A reduced-precision session's float32 twin on the same provider, made on first need (the NaN guard). */
const TWIN_OF = new WeakMap<ort.InferenceSession, () => Promise<ort.InferenceSession>>();

/** Whether every value of every float output is finite. */
function allFinite(out: ort.InferenceSession.ReturnType): boolean {
  for (const t of Object.values(out)) {
    if (t.type !== 'float32' || t.location !== 'cpu') continue; // a device output (deviceOutputs) is not read here
    const d = t.data as Float32Array;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return false;
  }
  return true;
}

/**
 * Runs `session`; when an output is not finite and the session is reduced precision (fp16), runs the same feeds
 * once on its float32 twin (the same model and provider, fp32 profile, created on first need and kept) and
 * returns that result with a notice saying so. A float32 session's non-finite output is returned as it is.
 */
export async function runWithNaNGuard(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
): Promise<{ out: ort.InferenceSession.ReturnType; notice?: string }> {
  // A fixed-shape session runs through its own run (which counts runs in flight); the twin is the inner session's.
  const inner = session instanceof FixedShapeSession ? await session.sessionFor(feeds) : session;
  const out = await session.run(feeds);
  const twin = TWIN_OF.get(inner);
  if (!twin || allFinite(out)) return { out };
  const p = PROFILE_OF.get(inner);
  const again = await (await twin()).run(feeds);
  const ok = allFinite(again);
  const notice = ok
    ? `the ${p?.precision ?? 'reduced-precision'} graph (profile ${p?.id}) gave a non-finite output; this step was re-run in fp32 on ${p?.provider}`
    : `the ${p?.precision} graph (profile ${p?.id}) gave a non-finite output, and so did its fp32 re-run on ${p?.provider}: the inputs themselves are not finite or overflow`;
  return { out: again, notice };
}

/** The graph profile `session` was built with (undefined for a session not made by createSession). */
export function sessionProfile(session: ort.InferenceSession): GraphProfile | undefined {
  return PROFILE_OF.get(session);
}

/** The op a session-creation error names (ORT's "Could not find an implementation for X", "kernel for com.microsoft.X", node 'name'). */
export function failedOp(message: string): string {
  const m =
    /Could not find an implementation for (\S+?)\(/.exec(message) ??
    /Failed to find kernel for ([\w.]+)/.exec(message) ??
    /node (?:with name )?'?([^'\s]+)'?/.exec(message) ??
    /\b([A-Z][A-Za-z]+)\(\d+\)/.exec(message);
  return m?.[1] ?? 'unknown op';
}

/** Creates a session for one profile of the model (materializing it first). */
async function createProfileSession(model: BuiltModel, cfg: SessionConfig, profile: GraphProfile, providers: Provider): Promise<ort.InferenceSession> {
  const built = applyProfile(model, profile, { cacheDir: cfg.cacheDir, log: cfg.log });
  const half = built.halfWeights.length ? (cfg.halfWeights ?? 'fp32-file') : 'folded';
  const { modelPath } = materialize(half === 'fp32-file' ? await withFloat32Copies(built, cfg.cacheDir, cfg.log) : built, cfg);
  const opts: ort.InferenceSession.SessionOptions = {
    executionProviders: executionProviders(providers),
    graphOptimizationLevel: 'all',
    enableCpuMemArena: true,
    ...cfg.sessionOptions,
  };
  if (half === 'per-run') {
    const extra = (opts.extra ?? {}) as Record<string, Record<string, string>>;
    opts.extra = { ...extra, optimization: { ...extra.optimization, constant_folding_max_output_size_in_bytes: String(PER_RUN_FOLD_LIMIT) } };
    opts.logSeverityLevel ??= 3; // one warning per unfolded Cast otherwise (hundreds, by design here)
  }
  if (cfg.threads) opts.intraOpNumThreads = cfg.threads;
  const onDevice = cfg.deviceOutputs?.filter((n) => built.outputNames.includes(n)) ?? [];
  if (providers === 'webgpu' && onDevice.length) opts.preferredOutputLocation = Object.fromEntries(onDevice.map((n) => [n, 'gpu-buffer' as const]));
  const session = await ort.InferenceSession.create(modelPath, opts);
  PROFILE_OF.set(session, profile);
  if (profile.precision !== 'fp32') {
    let twin: Promise<ort.InferenceSession> | null = null;
    const getTwin = () => (twin ??= createProfileSession(model, cfg, float32Twin(profile), providers));
    TWIN_OF.set(session, getTwin);
    const release = session.release.bind(session);
    session.release = async () => {
      await release();
      if (twin) await (await twin).release();
    };
    // A WebGPU adapter without shader-f16 builds the fp16 session but refuses to run it ("Program X requires f16 but
    // the device does not support it", at the first run): from then on this session's runs go to its fp32 twin.
    const run = session.run.bind(session) as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>;
    let noF16 = false;
    session.run = (async (...a: unknown[]) => {
      if (!noF16) {
        try {
          return await run(...a);
        } catch (e) {
          if (!NO_F16_DEVICE.test((e as Error).message)) throw e;
          noF16 = true;
          const notice = `provider ${providers}: the device has no fp16 shaders (shader-f16), so graph profile ${profile.id} cannot run; using ${float32Twin(profile).id}`;
          if (cfg.onProfileFallback) cfg.onProfileFallback(notice);
          else cfg.log?.(notice);
        }
      }
      return ((await getTwin()).run as (...b: unknown[]) => Promise<ort.InferenceSession.ReturnType>)(...a);
    }) as typeof session.run;
  }
  return session;
}

/** ONNX Runtime's WebGPU error for an fp16 kernel on an adapter without the shader-f16 feature (webgpu/shader_helper.cc). */
const NO_F16_DEVICE = /requires f16 but the device does not support it/;

/**
 * Creates an ONNX Runtime session for a built model under `cfg.profile` (default: the provider's fp32 graph).
 * A profile that fails to build falls back to the next simpler one (onnx/profile.ts fallbackChain) with a notice
 * naming the provider and the op; when every profile fails on a provider other than the CPU, the CPU's fp32 graph
 * is used (the provider failed to start).
 */
export async function createSession(model: BuiltModel, cfg: SessionConfig): Promise<ort.InferenceSession> {
  const provider = cfg.provider ?? 'cpu';
  const chain = fallbackChain(cfg.profile ?? defaultProfile(provider));
  let first: Error | null = null;
  for (const [i, p] of chain.entries()) {
    try {
      const session = await createProfileSession(model, cfg, p, provider);
      const fixed = cfg.fixedShapes === false ? null : cfg.fixedShapes instanceof RegExp ? cfg.fixedShapes : FIXED_DIMS;
      const symbolic = fixed && model.spec.inputs.some((x) => x.dims.some((d) => typeof d === 'string' && fixed.test(d)));
      return provider !== 'cpu' && symbolic ? new FixedShapeSession(session, model, cfg, p, provider, fixed) : session;
    } catch (e) {
      first ??= e as Error;
      const next = chain[i + 1];
      // An error naming no op is the provider failing to start (no device, missing libraries): no simpler graph helps.
      if (!next || failedOp((e as Error).message) === 'unknown op') break;
      const notice = `provider ${provider}: graph profile ${p.id} failed to build (op ${failedOp((e as Error).message)}: ${(e as Error).message.split('\n')[0]}); using ${next.id}`;
      if (cfg.onProfileFallback) cfg.onProfileFallback(notice);
      else cfg.log?.(notice);
    }
  }
  const e = first!;
  if (provider !== 'cpu') {
    const session = await createProfileSession(model, cfg, defaultProfile('cpu'), 'cpu');
    if (cfg.onProviderFailed) cfg.onProviderFailed(provider, e);
    else cfg.log?.(`provider ${provider} failed to start (${e.message}); falling back to CPU`);
    return session;
  }
  throw e;
}

/**
 * The symbolic input dims a GPU session fixes by default: the batch (2 with CFG), the latent / image size and the
 * number of text tokens (models/unet.ts, vae.ts, clip-text.ts input names). ControlNet residual dims follow from them.
 */
export const FIXED_DIMS = /^(batch|height|width|text_tokens)$/;

/**
 * `model` with the symbolic dims `values` of its graph inputs written as numbers: what ONNX Runtime's
 * freeDimensionOverrides does (FreeDimensionOverrideTransformer sets the inputs' dim_value), done in the graph because
 * onnxruntime-node 1.30 ignores that session option (js/node/src/session_options_helper.cc never reads it). Its own key.
 */
export function withFixedDims(model: BuiltModel, values: Readonly<Record<string, number>>): BuiltModel {
  const names = Object.keys(values).sort();
  if (!names.length) return model;
  const inputs = model.spec.inputs.map((x) => ({ ...x, dims: x.dims.map((d) => (typeof d === 'string' && d in values ? values[d]! : d)) }));
  return model.withSpec({ ...model.spec, inputs }, { salt: `|dims:${names.map((n) => `${n}=${values[n]}`).join(',')}` });
}

/** The values `feeds` give the symbolic dims matching `pattern` of `model`'s inputs (a dim given two values is left free). */
export function feedDims(model: BuiltModel, feeds: Readonly<Record<string, ort.Tensor>>, pattern: RegExp): Record<string, number> {
  const seen = new Map<string, number | null>();
  for (const x of model.spec.inputs) {
    const t = feeds[x.name];
    if (!t || t.dims.length !== x.dims.length) continue;
    x.dims.forEach((d, i) => {
      if (typeof d !== 'string' || !pattern.test(d)) return;
      const v = t.dims[i]!;
      const was = seen.get(d);
      seen.set(d, was === undefined || was === v ? v : null);
    });
  }
  return Object.fromEntries([...seen].filter((e): e is [string, number] => e[1] !== null));
}

/** How many fixed-size sessions a FixedShapeSession holds (two sizes in turn, e.g. farm slots sharing one store). */
const FIXED_SIZES_HELD = 2;

/**
 * A GPU session with fixed input shapes (SessionConfig.fixedShapes): each run goes to the session built for its feeds'
 * sizes (`withFixedDims`), made on first need; a run at the same sizes reuses it. At most FIXED_SIZES_HELD sizes are
 * held: a new size beyond them releases the least recently used one (once no run is using it). Until the first fixed
 * session is built, and if one fails to build (logged), the free-shape session runs; it is released once a fixed one
 * runs. Names and metadata are the model's.
 */
export class FixedShapeSession implements ort.InferenceSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  /** The sizes of the fixed session used last ('' = none) and how many were built (gpu-check reports it). */
  key = '';
  builds = 0;
  /** Fixed-size sessions by their sizes, least recently used first. */
  private sized = new Map<string, Promise<ort.InferenceSession>>();
  private free: Promise<ort.InferenceSession> | null;
  private inFlight = new Map<ort.InferenceSession, number>();
  private retired = new Set<ort.InferenceSession>();

  constructor(
    free: ort.InferenceSession,
    private readonly model: BuiltModel,
    private readonly cfg: SessionConfig,
    private readonly profile: GraphProfile,
    private readonly provider: Provider,
    private readonly pattern: RegExp,
  ) {
    this.free = Promise.resolve(free);
    this.inputNames = free.inputNames;
    this.outputNames = free.outputNames;
    this.inputMetadata = free.inputMetadata;
    this.outputMetadata = free.outputMetadata;
    PROFILE_OF.set(this, profile);
  }

  /** The session that runs `feeds` (building it when their sizes are new). */
  async sessionFor(feeds: Readonly<Record<string, ort.Tensor>>): Promise<ort.InferenceSession> {
    const values = feedDims(this.model, feeds, this.pattern);
    const key = JSON.stringify(Object.entries(values).sort());
    if (key === '[]') return this.freeSession();
    this.key = key;
    const held = this.sized.get(key);
    if (held) {
      this.sized.delete(key); // most recently used last
      this.sized.set(key, held);
      return held;
    }
    this.builds++;
    const log = this.cfg.log ?? (() => {});
    const p = createProfileSession(withFixedDims(this.model, values), this.cfg, this.profile, this.provider).catch(async (e: Error) => {
      log(`provider ${this.provider}: the session with fixed input sizes ${key} failed to build (${e.message.split('\n')[0]}); using free sizes`);
      return this.freeSession();
    });
    this.sized.set(key, p);
    const s = await p;
    const free = await this.free;
    for (const [k, old] of [...this.sized].slice(0, Math.max(0, this.sized.size - FIXED_SIZES_HELD))) {
      this.sized.delete(k);
      const o = await old;
      if (o !== free) this.retire(o);
    }
    if (free && s !== free) {
      // A fixed session runs now: the free-shape one goes, with any size that fell back to it.
      this.free = null;
      for (const [k, other] of [...this.sized]) if ((await other) === free) this.sized.delete(k);
      this.retire(free);
    }
    return s;
  }

  private freeSession(): Promise<ort.InferenceSession> {
    return (this.free ??= createProfileSession(this.model, this.cfg, this.profile, this.provider));
  }

  /** Releases `s` once no run is using it. */
  private retire(s: ort.InferenceSession): void {
    if (this.inFlight.get(s)) this.retired.add(s);
    else s.release().catch(() => {});
  }

  run(feeds: ort.InferenceSession.FeedsType, options?: ort.InferenceSession.RunOptions): Promise<ort.InferenceSession.ReturnType>;
  run(
    feeds: ort.InferenceSession.FeedsType,
    fetches: ort.InferenceSession.FetchesType,
    options?: ort.InferenceSession.RunOptions,
  ): Promise<ort.InferenceSession.ReturnType>;
  async run(feeds: ort.InferenceSession.FeedsType, a?: object, b?: ort.InferenceSession.RunOptions): Promise<ort.InferenceSession.ReturnType> {
    const s = await this.sessionFor(feeds as Record<string, ort.Tensor>);
    this.inFlight.set(s, (this.inFlight.get(s) ?? 0) + 1);
    try {
      return await (b === undefined ? s.run(feeds, a as ort.InferenceSession.RunOptions) : s.run(feeds, a as ort.InferenceSession.FetchesType, b));
    } finally {
      const n = this.inFlight.get(s)! - 1;
      if (n) this.inFlight.set(s, n);
      else {
        this.inFlight.delete(s);
        if (this.retired.delete(s)) s.release().catch(() => {});
      }
    }
  }

  async release(): Promise<void> {
    const all = await Promise.all([...this.sized.values(), this.free].map((p) => p?.catch(() => null)));
    this.sized.clear();
    this.free = null;
    for (const s of new Set(all)) if (s) await s.release();
  }

  startProfiling(): void {}
  endProfiling(): void {}
}

export { ort };
