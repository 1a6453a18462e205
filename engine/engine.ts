/** engine/: the contract (api, protocol, workflow, validate) and the run core (engine, executor, context, model store, paths, png, rng); hosts/ and demo/ below. */
/**
 * The engine as hosts see it (EngineApi): node specs, model listing, validation, and a queue
 * that runs one workflow at a time through the executor, with events to subscribers.
 *
 *   const engine = createEngine({ modelsDir, outputDir, provider: 'cpu', userDataDir });
 *   const off = engine.subscribe((e) => ...);
 *   const { runId } = engine.enqueue(workflow);   // or: await engine.run(workflow)
 *   engine.cancel(runId);
 *
 * With `demo: true` (the hosts' `--demo`) or the `demoModels` setting (the editor's "Use demo
 * models" choice), the engine uses the demo model set (tiny random weights, generated once into
 * <userDataDir>/demo-models) and says so. The hosts pass `demo` explicitly, so an empty or mistyped
 * models folder is never silently replaced by it; only a caller that leaves `demo` out (tests,
 * scripts) gets the demo set for an empty models folder.
 *
 * The queue keeps a record of each job (`listQueue`: name, state, progress; the editor's queue
 * panel), and with `dedupe` a job whose outputs would be identical to a finished run's (the same
 * validated graph, the same model and input files, those images still on disk) ends at once as a
 * duplicate of it instead of writing the same images again.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import type { NodeSpec, PortValues } from '../nodes/types.js';
import type { ModelKind } from '../nodes/types.js';
import { NODE_DEFS, nodeSpecs } from '../nodes/index.js';
import type { EngineApi, EngineSettings, ImageRef, RunEvent, ValidationError, Workflow } from './api.js';
import type { QueueJob } from './protocol.js';
import type { NoiseSource, TraceFn } from './context.js';
import { cleanStaleTemporaries } from '../models/fs-atomic.js';
import { removeStaleFloat32Copies } from '../models/onnx/fp32-weights.js';
import { removeStaleInt8Copies } from '../models/onnx/quantize.js';
import { DEMO_NOTICE, ensureDemoModels } from './demo/demo.js';
import { Executor, type RunResult } from './executor.js';
import type { Precision } from '../models/onnx/profile.js';
import { clearModelCache, type GpuPrecision, ModelStore, pruneModelCache } from './model-store.js';
import { listModels, modelsFolderEmpty, PathResolver } from './paths.js';
import { parseWorkflow } from './workflow.js';
import { FINISHED_KEYS_KEPT, queueStateSaver, readQueueState } from './queue-state.js';
import { listenerSet } from './listeners.js';

export interface EngineOptions extends EngineSettings {
  /** Generated ONNX models and previews (default <userDataDir>/cache). */
  cacheDir?: string;
  /** Per-user data: the demo model set lives here (default $IPA_STUDIO_USER_DATA or ~/.ipadapter-studio). */
  userDataDir?: string;
  /** Uploaded and imported images, for `inputs/<file>` refs (default <userDataDir>/inputs). */
  inputsDir?: string;
  /**
   * true: the demo model set (`--demo`); false: only the models folder (or the `demoModels`
   * setting), an empty one lists no models; absent: the demo set when the models folder is empty.
   */
  demo?: boolean;
  /** ONNX Runtime intra-op threads (0 = its default). */
  threads?: number;
  /** Graph precision of every network (models/onnx/profile.ts): fp32 (default, today's graph) or fp16 on the provider's profile. */
  precision?: Precision;
  /** Samplers' ControlNets inside the UNet session (models/unet-controlnet.ts): absent = on GPU providers only; true forces it on the CPU (tests). */
  controlNetsInUNet?: boolean;
  /** Where the queue's records and deduplication's finished runs are kept across restarts (engine/queue-state.ts); absent: memory only. */
  queueStateFile?: string;
  /**
   * Another engine's model store, shared (a farm worker's slots: each model is loaded once per process, not once per
   * slot). The engine that made it releases it at close; this one leaves it. Its settings (provider, precision) must match.
   */
  store?: ModelStore;
}

/** Per-run options for in-process hosts and tests (not part of the transport API). */
export interface RunOptions {
  /** Folder of the workflow file (relative image/model paths resolve against it). */
  workflowDir?: string | null;
  /** Replaces the seeded noise draws (documented test hook: engine/context.ts NoiseSource). */
  noise?: NoiseSource;
  /** Observer of intermediate tensors. */
  trace?: TraceFn;
  onNodeOutputs?: (node: string, outputs: PortValues) => void;
  /** The name the queue shows (default: the workflow's meta.title, else "untitled"). */
  name?: string;
  /** End the job at once as a duplicate when a finished run already wrote these very images. */
  dedupe?: boolean;
}

export interface RunOutcome extends RunResult {
  runId: string;
  images: ImageRef[];
}

export interface Engine extends EngineApi {
  enqueue(wf: Workflow, opts?: RunOptions): { runId: string; duplicateOf?: string };
  /** Enqueues and resolves when the run ends (cancelled and failed runs resolve too). */
  run(wf: Workflow, opts?: RunOptions): Promise<RunOutcome>;
  /** Enqueues; gives the run id at once and a promise of the outcome. */
  start(wf: Workflow, opts?: RunOptions): { runId: string; done: Promise<RunOutcome> };
  /** The models folder in use (the demo folder in demo mode). */
  modelsDir(): string;
  isDemo(): boolean;
  /** Queued and running jobs and the last finished ones, oldest first. */
  listQueue(): QueueJob[];
  /** Releases loaded models and sessions (all, or those whose key starts with `prefix`). */
  unloadModels(prefix?: string): Promise<void>;
  readonly executor: Executor;
  readonly store: ModelStore;
  /** Cancels everything and releases all sessions. */
  close(): Promise<void>;
  /**
   * The start-up sweep of stale temporaries (models/fs-atomic.ts cleanStaleTemporaries): what a
   * killed atomic write left in the output, inputs, settings, cache and models folders.
   */
  readonly startupCleanup: Promise<{ file: string; bytes: number }[]>;
}

interface Job {
  runId: string;
  wf: Workflow;
  opts: RunOptions;
  controller: AbortController;
  done: (o: RunOutcome) => void;
  images: ImageRef[];
  /** Identity of what the run would produce (outputKey), when deduplicating. */
  key?: string;
}

/** How many finished jobs listQueue keeps. */
const FINISHED_KEPT = 20;

export function createEngine(options: EngineOptions): Engine {
  const userDataDir = options.userDataDir ?? (process.env.IPA_STUDIO_USER_DATA || path.join(os.homedir(), '.ipadapter-studio'));
  const cacheDir = options.cacheDir ?? path.join(userDataDir, 'cache');
  const inputsDir = options.inputsDir ?? path.join(userDataDir, 'inputs');
  let settings: EngineSettings = {
    modelsDir: options.modelsDir,
    outputDir: options.outputDir,
    provider: options.provider,
    ...(options.demoModels !== undefined ? { demoModels: options.demoModels } : {}),
    ...(options.cpuPrecision ? { cpuPrecision: options.cpuPrecision } : {}),
    ...(options.gpuPrecision ? { gpuPrecision: options.gpuPrecision } : {}),
  };
  /** The graph precision: the `precision` option (tests, CLI), else the "CPU precision" setting (fast = int8 on the CPU). */
  const precisionOf = (s: EngineSettings): Precision => options.precision ?? (s.cpuPrecision === 'fast' ? 'int8' : 'fp32');
  /** The precision on a GPU provider: the "GPU precision" setting (fp16 by default); the `precision` option overrides it (undefined). */
  const gpuPrecisionOf = (s: EngineSettings): GpuPrecision | undefined => (options.precision ? undefined : (s.gpuPrecision ?? 'fp16'));
  const listeners = listenerSet<RunEvent>();
  const emit = listeners.emit;
  const log = (msg: string) => emit({ type: 'log', level: /fall(ing)? back|failed/i.test(msg) ? 'warn' : 'info', message: msg });
  const store =
    options.store ??
    new ModelStore({
      cacheDir,
      provider: settings.provider,
      log,
      threads: options.threads,
      precision: precisionOf(settings),
      gpuPrecision: gpuPrecisionOf(settings),
      controlNetsInUNet: options.controlNetsInUNet,
    });
  const executor = new Executor(NODE_DEFS, store);
  const specs = nodeSpecs();

  let demo = false;
  let active = settings.modelsDir;
  const chooseModels = () => {
    demo =
      options.demo === true ||
      settings.demoModels === true ||
      (options.demo === undefined && settings.demoModels === undefined && modelsFolderEmpty(settings.modelsDir));
    active = demo ? ensureDemoModels(path.join(userDataDir, 'demo-models')) : settings.modelsDir;
    if (demo) log(`${DEMO_NOTICE} (folder: ${active})`);
  };
  chooseModels();

  // Float32 copies of fp16 / bf16 weights (models/onnx/fp32-weights.ts) whose model file is gone or changed.
  const staleCopies = [...removeStaleFloat32Copies(cacheDir), ...removeStaleInt8Copies(cacheDir)]; // and int8 copies (onnx/quantize.ts)
  if (staleCopies.length)
    log(
      `removed ${staleCopies.length} float32 / int8 weight copies (${(staleCopies.reduce((n, r) => n + r.bytes, 0) / 2 ** 30).toFixed(2)} GB) of model files deleted or changed since`,
    );
  // Cached graphs whose weight link is all that is left of a model file deleted from the models folder (model-store.ts).
  const pruned = pruneModelCache(cacheDir, [settings.modelsDir, path.join(userDataDir, 'demo-models')]);
  // Said once the host has subscribed (it does so right after createEngine).
  if (pruned.files)
    setTimeout(() => log(`model cache: removed ${pruned.files} file(s) of models deleted since (${(pruned.freedBytes / 2 ** 30).toFixed(2)} GB freed)`), 0);

  // Temporaries of atomic writes a crash or kill left behind (only our naming, only stale ones),
  // swept in the background; the model cache is wholly ours, so any *.tmp there goes too.
  const startupCleanup = cleanStaleTemporaries([
    { dir: settings.outputDir, depth: 4 },
    { dir: settings.modelsDir, depth: 3 },
    { dir: userDataDir, depth: 1 },
    { dir: path.join(userDataDir, 'demo-models'), depth: 4 },
    { dir: cacheDir, depth: 4, anyTmp: true },
    { dir: path.join(os.tmpdir(), 'ipas-tensor-copies'), depth: 0 },
  ]).then((removed) => {
    const mb = removed.reduce((n, r) => n + r.bytes, 0) / 2 ** 20;
    if (removed.length) log(`removed ${removed.length} stale temporary file(s) (${mb.toFixed(1)} MB) left by interrupted writes`);
    return removed;
  });

  const queue: Job[] = [];
  let running: Job | null = null;
  /** The queue panel's records, in submission order (finished ones trimmed to FINISHED_KEPT). */
  const records = new Map<string, QueueJob>();
  /** Finished runs' output keys -> their run id and images (the newest FINISHED_KEYS_KEPT). */
  const finished = new Map<string, { runId: string; images: string[] }>();
  // Both survive a restart when the host names a file (engine/queue-state.ts); only state changes are written, not progress.
  const saver = options.queueStateFile
    ? queueStateSaver(
        options.queueStateFile,
        () => ({ records: [...records.values()], finished: [...finished] }),
        (m) => log(`saving the queue failed: ${m}`),
      )
    : null;
  if (options.queueStateFile) {
    const saved = readQueueState(options.queueStateFile);
    for (const r of saved.records) records.set(r.runId, r);
    for (const [k, v] of saved.finished) finished.set(k, v);
    if (saved.problem) setTimeout(() => log(saved.problem!), 0);
  }
  const remember = (key: string, run: { runId: string; images: string[] }) => {
    finished.delete(key);
    finished.set(key, run);
    for (const k of [...finished.keys()].slice(0, Math.max(0, finished.size - FINISHED_KEYS_KEPT))) finished.delete(k);
    saver?.touch();
  };
  const record = (runId: string, patch: Partial<QueueJob>) => {
    const r = records.get(runId);
    if (r) records.set(runId, { ...r, ...patch });
    const done = [...records.values()].filter((j) => j.state !== 'queued' && j.state !== 'running');
    for (const j of done.slice(0, Math.max(0, done.length - FINISHED_KEPT))) records.delete(j.runId);
    if (patch.state) saver?.touch();
  };
  const positions = () => {
    queue.forEach((j, i) => record(j.runId, { position: i + (running ? 1 : 0) }));
  };

  /** Set when the models folder or provider changed: loaded sessions are for the old one. */
  let stale = false;
  let releasing: Promise<void> = Promise.resolve();
  const releaseStale = (): Promise<void> => {
    if (stale) {
      stale = false;
      releasing = releasing
        .then(async () => {
          await store.setProvider(settings.provider);
          await store.setPrecision(precisionOf(settings));
          await store.setGpuPrecision(gpuPrecisionOf(settings));
          await store.unload();
        })
        .catch((e) => log(`releasing models failed: ${(e as Error).message}`));
    }
    return releasing;
  };

  const pump = async () => {
    if (running || !queue.length) return;
    const job = queue.shift()!;
    running = job;
    record(job.runId, { state: 'running', position: undefined });
    positions();
    emit({ type: 'run-start', runId: job.runId });
    // 'info': both hosts show their demo notice on start and keep a demo badge, so the editor
    // does not pop the same warning up again on every run; the CLI prints it either way.
    if (demo) emit({ type: 'log', runId: job.runId, level: 'info', message: DEMO_NOTICE });
    let result: RunResult;
    try {
      await releaseStale();
      if (store.provider !== settings.provider) await store.setProvider(settings.provider);
      result = await executor.run({
        runId: job.runId,
        workflow: job.wf,
        workflowDir: job.opts.workflowDir ?? null,
        inputsDir,
        modelsDir: active,
        outputDir: settings.outputDir,
        tempDir: path.join(cacheDir, 'temp'),
        signal: job.controller.signal,
        emit: (e) => {
          if (e.type === 'output') job.images.push(...e.images);
          if (e.type === 'progress') record(job.runId, { progress: { step: e.step, total: e.total, node: e.node } });
          emit(e);
        },
        noise: job.opts.noise,
        trace: job.opts.trace,
        onNodeOutputs: job.opts.onNodeOutputs,
      });
    } catch (e) {
      result = { ok: false, error: (e as Error).message };
    }
    emit({
      type: 'run-done',
      runId: job.runId,
      ok: result.ok,
      ...(result.cancelled ? { cancelled: true } : {}),
      ...(result.error ? { error: result.error } : {}),
      ...(result.errors ? { errors: result.errors } : {}),
    });
    running = null;
    const saved = job.images.map((i) => i.path).filter((p) => isInside(settings.outputDir, p));
    record(job.runId, {
      state: result.cancelled ? 'cancelled' : result.ok ? 'done' : 'failed',
      progress: undefined,
      finishedAt: Date.now(),
      images: saved,
      ...(result.error ? { error: result.error } : {}),
    });
    if (job.key && result.ok && saved.length) remember(job.key, { runId: job.runId, images: saved });
    job.done({ ...result, runId: job.runId, images: job.images });
    void pump();
  };

  const engine: Engine = {
    executor,
    store,
    startupCleanup,
    nodeSpecs: (): NodeSpec[] => specs,
    listModels: async (): Promise<Record<ModelKind, string[]>> => listModels(active),
    validate(wf: Workflow): ValidationError[] {
      const parsed = parseWorkflow(wf);
      if (!parsed.workflow) return parsed.errors;
      return executor.validate(parsed.workflow, new PathResolver(active, null, inputsDir));
    },
    enqueue(wf: Workflow, opts: RunOptions = {}) {
      const { runId, duplicateOf } = start(wf, opts);
      return duplicateOf ? { runId, duplicateOf } : { runId };
    },
    run(wf: Workflow, opts: RunOptions = {}) {
      return start(wf, opts).done;
    },
    start: (wf: Workflow, opts: RunOptions = {}) => start(wf, opts),
    cancel(runId: string) {
      if (running?.runId === runId) {
        running.controller.abort();
        return;
      }
      const i = queue.findIndex((j) => j.runId === runId);
      if (i < 0) return;
      const [job] = queue.splice(i, 1);
      record(runId, { state: 'cancelled', position: undefined, finishedAt: Date.now() });
      positions();
      emit({ type: 'run-done', runId, ok: false, cancelled: true });
      job.done({ ok: false, cancelled: true, runId, images: [] });
    },
    subscribe: (listener) => listeners.add(listener),
    settings: () => ({ ...settings }),
    updateSettings(s: Partial<EngineSettings>) {
      const before = settings;
      settings = { ...settings, ...Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) };
      if (settings.demoModels !== before.demoModels && settings.modelsDir === before.modelsDir) {
        chooseModels();
        stale = true;
        executor.clearCache();
      }
      if (settings.modelsDir !== before.modelsDir) {
        chooseModels();
        // Models of the old folder are no longer reachable: release their sessions, and forget
        // cached node outputs (their signatures name models by relative path, which now means another file).
        stale = true;
        executor.clearCache();
      }
      if (settings.provider !== before.provider) stale = true;
      const gpuChanged = settings.provider !== 'cpu' && (settings.gpuPrecision ?? 'fp16') !== (before.gpuPrecision ?? 'fp16');
      if ((settings.cpuPrecision ?? 'fp32') !== (before.cpuPrecision ?? 'fp32') || gpuChanged) {
        // Other weights compute other images: sessions and cached node outputs of the old precision go.
        stale = true;
        executor.clearCache();
      }
      // Released now when idle; a running job keeps its sessions and the next run releases them.
      if (stale && !running) void releaseStale();
      return { ...settings };
    },
    modelsDir: () => active,
    isDemo: () => demo,
    listQueue: () => [...records.values()],
    unloadModels: (prefix?: string) => store.unload(prefix),
    clearModelCache: async () => {
      if (running || queue.length) throw new Error('a run is in progress or queued: clear the model cache when the queue is empty');
      return clearModelCache(store);
    },
    async close() {
      saver?.stop(); // before the cancels: jobs still pending come back as interrupted, re-queueable
      for (const j of [...queue]) engine.cancel(j.runId);
      running?.controller.abort();
      while (running) await new Promise((r) => setTimeout(r, 10));
      if (!options.store) await store.unload(); // a shared store is its owner's to release
      await startupCleanup;
    },
  };
  /** Parses, queues and starts a run; the promise resolves when it ends. */
  function start(wf: Workflow, opts: RunOptions): { runId: string; done: Promise<RunOutcome>; duplicateOf?: string } {
    const runId = randomUUID();
    let done!: (o: RunOutcome) => void;
    const p = new Promise<RunOutcome>((r) => {
      done = r;
    });
    const parsed = parseWorkflow(wf);
    if (!parsed.workflow) {
      // Shape errors (or a newer version) are reported as a finished run with its errors.
      queueMicrotask(() => {
        emit({ type: 'run-done', runId, ok: false, error: parsed.errors[0]?.message, errors: parsed.errors });
        done({ ok: false, error: parsed.errors[0]?.message, errors: parsed.errors, runId, images: [] });
      });
      return { runId, done: p };
    }
    if (parsed.migratedFrom !== undefined) emit({ type: 'log', runId, level: 'info', message: `workflow migrated from version ${parsed.migratedFrom}` });
    const name = opts.name ?? (typeof parsed.workflow.meta?.title === 'string' && parsed.workflow.meta.title ? parsed.workflow.meta.title : 'untitled');
    const job: Job = { runId, wf: parsed.workflow, opts, controller: new AbortController(), done, images: [] };
    if (opts.dedupe) {
      job.key = outputKey(parsed.workflow, new PathResolver(active, opts.workflowDir ?? null, inputsDir), specs, settings, active);
      const earlier = finished.get(job.key);
      if (earlier && earlier.images.every((p) => fs.existsSync(p))) {
        records.set(runId, {
          runId,
          name,
          state: 'duplicate',
          submittedAt: Date.now(),
          finishedAt: Date.now(),
          duplicateOf: earlier.runId,
          images: earlier.images,
          workflow: parsed.workflow,
        });
        record(runId, { state: 'duplicate' });
        queueMicrotask(() => {
          emit({ type: 'queued', runId, position: 0, name });
          emit({ type: 'run-done', runId, ok: true, duplicateOf: earlier.runId });
          done({ ok: true, runId, images: [] });
        });
        return { runId, done: p, duplicateOf: earlier.runId };
      }
      if (earlier) {
        finished.delete(job.key);
        saver?.touch();
      }
    }
    queue.push(job);
    const position = queue.length - 1 + (running ? 1 : 0);
    records.set(runId, { runId, name, state: 'queued', position, submittedAt: Date.now(), workflow: parsed.workflow });
    saver?.touch();
    emit({ type: 'queued', runId, position, name });
    void pump();
    return { runId, done: p };
  }
  return engine;
}

const isInside = (dir: string, file: string) => {
  const rel = path.relative(path.resolve(dir), path.resolve(file));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
};

/** JSON with sorted object keys (the same value always gives the same text). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/**
 * The identity of what a run of `wf` writes: its graph as the engine runs it (types, params, modes
 * and edges; not the layout or meta), the identity (device, inode, size, mtime) of every model and
 * image file it names, and the models folder, output folder and provider. Two jobs with one key
 * write the same images (seeds are params; the editor's "control after generate" changes them).
 */
export function outputKey(wf: Workflow, paths: PathResolver, specs: NodeSpec[], settings: EngineSettings, modelsDir: string): string {
  const byType = new Map(specs.map((s) => [s.type, s]));
  const files: string[] = [];
  const nodes = [...wf.nodes]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((n) => {
      for (const p of byType.get(n.type)?.params ?? []) {
        const v = n.params[p.name];
        if ((p.kind !== 'file' && p.kind !== 'image') || typeof v !== 'string' || !v) continue;
        const found = p.kind === 'file' ? paths.resolveModel(p.modelKind, v) : paths.resolveImage(v);
        const st = found ? fs.statSync(found, { throwIfNoEntry: false }) : undefined;
        files.push(`${n.id}.${p.name}=${st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : 'missing'}`);
      }
      return { id: n.id, type: n.type, params: n.params, mode: n.mode ?? null };
    });
  const edges = wf.edges.map((e) => canonical(e)).sort();
  const text = canonical({
    nodes,
    edges,
    files,
    modelsDir,
    outputDir: path.resolve(settings.outputDir),
    provider: settings.provider,
    ...(settings.cpuPrecision === 'fast' ? { cpuPrecision: 'fast' } : {}),
    ...(settings.provider !== 'cpu' ? { gpuPrecision: settings.gpuPrecision ?? 'fp16' } : {}),
  });
  return createHash('sha256').update(text).digest('hex');
}

/** Makes sure a folder exists (hosts call this for the output folder). */
export function ensureDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}
