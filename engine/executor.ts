/**
 * The executor: runs a validated workflow in topological order. Each node's outputs are cached
 * under its input signature = hash(node type, params, and for file/image params the file's
 * identity (device, inode, size, mtime: model-store.ts pathIdentity), plus the signatures of the outputs feeding it), so a node re-runs only when something
 * upstream of it changed (ComfyUI's rule; the node id is not part of it). An output carries its
 * node's signature, unless the node declares what that output depends on (NodeDef.outputDeps:
 * Load LoRA's MODEL ignores strength_clip), then a signature of those params and inputs only. Output nodes always
 * run. Only nodes that lead to an output node are executed. The cache keeps what the last
 * completed run used (OutputCache), not every run's tensors.
 */
import { createHash } from 'node:crypto';
import type { NodeDef, ParamValue, PortValues } from '../nodes/types.js';
import type { ImageRef, RunEvent, ValidationError, Workflow } from './api.js';
import { CancelledError, type ExecContext, type NoiseSource, type TraceFn } from './context.js';
import { pathIdentity, type ModelStore } from './model-store.js';
import { PathResolver } from './paths.js';
import { seededNoise } from './rng.js';
import { resolveGraph } from './graph-modes.js';
import { paramsWithDefaults, validateWorkflow } from './validate.js';

export interface RunRequest {
  runId: string;
  workflow: Workflow;
  /** Folder of the workflow file, for relative paths (null for unsaved workflows). */
  workflowDir?: string | null;
  /** The user-data inputs folder, for `inputs/<file>` image refs. */
  inputsDir?: string | null;
  modelsDir: string;
  outputDir: string;
  tempDir: string;
  signal: AbortSignal;
  emit: (e: RunEvent) => void;
  /** Replaces the seeded noise (test hook; see engine/context.ts). */
  noise?: NoiseSource;
  trace?: TraceFn;
  /** Called with each executed or cached node's outputs. */
  onNodeOutputs?: (node: string, outputs: PortValues) => void;
}

export interface RunResult {
  ok: boolean;
  cancelled?: boolean;
  error?: string;
  errors?: ValidationError[];
}

/** A node's outputs, and the images it showed on its card (re-shown on a cache hit). */
interface CacheEntry {
  outputs: PortValues;
  previews: ImageRef[];
}

/**
 * Cache entries by signature. Entries hold whole tensors (images, latents, embeddings), so they
 * are bounded two ways: after a run that completed, only the entries that run used (executed or
 * hit) are kept, as in ComfyUI, so old runs' outputs do not pile up; and at most `limit` entries,
 * least recently used evicted first. A failed or cancelled run evicts nothing, so re-running
 * after fixing it still finds the earlier run's nodes downstream of the failure.
 */
class OutputCache {
  private map = new Map<string, CacheEntry & { run: number }>();
  private run = 0;
  constructor(private limit: number) {}
  /** Starts a run: entries touched from now on belong to it. */
  beginRun(): void {
    this.run++;
  }
  /** Ends a completed run: drops the entries it did not use. */
  keepOnlyCurrentRun(): void {
    for (const [k, v] of this.map) if (v.run !== this.run) this.map.delete(k);
  }
  get(sig: string): CacheEntry | undefined {
    const v = this.map.get(sig);
    if (v) {
      this.map.delete(sig);
      v.run = this.run;
      this.map.set(sig, v);
    }
    return v;
  }
  set(sig: string, v: CacheEntry): void {
    this.map.delete(sig);
    this.map.set(sig, { ...v, run: this.run });
    while (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as string);
  }
  clear(): void {
    this.map.clear();
  }
  get size(): number {
    return this.map.size;
  }
}

export class Executor {
  readonly specs: Map<string, NodeDef>;
  private cache: OutputCache;
  /** Times `execute` was called, by node id (tests count re-executions). */
  readonly executions = new Map<string, number>();
  /** Entries in the output cache (tests check the bound). */
  get cachedEntries(): number {
    return this.cache.size;
  }

  constructor(
    defs: NodeDef[],
    private models: ModelStore,
    cacheEntries = 128,
  ) {
    this.specs = new Map(defs.map((d) => [d.type, d]));
    this.cache = new OutputCache(cacheEntries);
  }

  clearCache(): void {
    this.cache.clear();
  }

  validate(wf: Workflow, paths?: PathResolver): ValidationError[] {
    return validateWorkflow(wf, this.specs, { paths, check: (t, p) => this.specs.get(t)?.check?.(p) ?? [] });
  }

  async run(req: RunRequest): Promise<RunResult> {
    const { runId, emit } = req;
    const paths = new PathResolver(req.modelsDir, req.workflowDir ?? null, req.inputsDir ?? null);
    const errors = this.validate(req.workflow, paths);
    if (errors.length) return { ok: false, error: `the workflow has ${errors.length} error(s)`, errors };
    // Bypassed and muted nodes, reroutes, notes and primitives (engine/graph-modes.ts): the graph that runs.
    const resolved = resolveGraph(req.workflow, this.specs);
    const wf = resolved.workflow;
    const names = (ids: string[]) => ids.map((id) => `${this.specs.get(req.workflow.nodes.find((n) => n.id === id)!.type)?.title} (${id})`).join(', ');
    if (resolved.bypassed.length) emit({ type: 'log', runId, level: 'info', message: `bypassed (their inputs pass through): ${names(resolved.bypassed)}` });
    if (resolved.muted.length) emit({ type: 'log', runId, level: 'info', message: `muted (not run): ${names(resolved.muted)}` });

    const byId = new Map(wf.nodes.map((n) => [n.id, n]));
    const inputsOf = new Map<string, { port: string; from: string; fromPort: string }[]>();
    for (const e of wf.edges) inputsOf.set(e.to.node, [...(inputsOf.get(e.to.node) ?? []), { port: e.to.port, from: e.from.node, fromPort: e.from.port }]);

    // Nodes that lead to an output node, in a stable topological order.
    const needed = new Set<string>();
    const mark = (id: string) => {
      if (needed.has(id)) return;
      needed.add(id);
      for (const i of inputsOf.get(id) ?? []) mark(i.from);
    };
    for (const n of wf.nodes) if (this.specs.get(n.type)!.output) mark(n.id);
    const order: string[] = [];
    const done = new Set<string>();
    while (order.length < needed.size) {
      const ready = wf.nodes.find((n) => needed.has(n.id) && !done.has(n.id) && (inputsOf.get(n.id) ?? []).every((i) => done.has(i.from)));
      if (!ready) throw new Error('internal: no ready node (validation should have caught a cycle)');
      done.add(ready.id);
      order.push(ready.id);
    }

    const sigs = new Map<string, string>();
    /** Outputs with a signature of their own (NodeDef.outputDeps), by `node\0port`; the others carry their node's. */
    const portSigs = new Map<string, string>();
    const sigOf = (node: string, port: string) => portSigs.get(`${node}\0${port}`) ?? sigs.get(node);
    const values = new Map<string, PortValues>();
    this.cache.beginRun();
    for (const id of order) {
      const node = byId.get(id)!;
      const def = this.specs.get(node.type)!;
      if (req.signal.aborted) return { ok: false, cancelled: true };
      const params = this.resolveParams(def, paramsWithDefaults(def, node.params), paths);
      const ins = [...(inputsOf.get(id) ?? [])].sort((a, b) => a.port.localeCompare(b.port));
      const insSig = ins.map((i) => [i.port, sigOf(i.from, i.fromPort), i.fromPort]);
      const sig = createHash('sha256')
        .update(JSON.stringify([node.type, params.sigParams, insSig]))
        .digest('hex');
      sigs.set(id, sig);
      for (const [port, deps] of Object.entries(def.outputDeps ?? {})) {
        const picked = Object.fromEntries(deps.params.map((p) => [p, params.sigParams[p]]));
        const used = insSig.filter(([p]) => deps.inputs.includes(p as string));
        portSigs.set(
          `${id}\0${port}`,
          createHash('sha256')
            .update(JSON.stringify([node.type, port, picked, used]))
            .digest('hex'),
        );
      }
      const inputs: PortValues = {};
      for (const i of ins) inputs[i.port] = values.get(i.from)![i.fromPort];

      const hit = def.output ? undefined : this.cache.get(sig);
      if (hit) {
        values.set(id, hit.outputs);
        req.onNodeOutputs?.(id, hit.outputs);
        // A cached preprocessor does not execute, so it would show no preview: re-send the stored one.
        if (hit.previews.length) emit({ type: 'node-preview', runId, node: id, images: hit.previews });
        emit({ type: 'node-done', runId, node: id, ms: 0, cached: true });
        continue;
      }
      emit({ type: 'node-start', runId, node: id });
      const t0 = performance.now();
      const previews: ImageRef[] = [];
      const ctx = this.context(req, id, paths, previews, wf);
      try {
        this.executions.set(id, (this.executions.get(id) ?? 0) + 1);
        const out = await def.execute(inputs, params.values, ctx);
        for (const p of def.outputs) {
          if (!(p.name in out)) throw new Error(`internal: ${def.type} produced no "${p.name}" output`);
        }
        values.set(id, out);
        if (!def.output) this.cache.set(sig, { outputs: out, previews });
        req.onNodeOutputs?.(id, out);
        emit({ type: 'node-done', runId, node: id, ms: Math.round(performance.now() - t0), cached: false });
      } catch (e) {
        if (e instanceof CancelledError || req.signal.aborted) return { ok: false, cancelled: true };
        const message = (e as Error).message ?? String(e);
        emit({ type: 'node-error', runId, node: id, message });
        return { ok: false, error: `${def.title} (${id}): ${message}` };
      }
    }
    this.cache.keepOnlyCurrentRun();
    return { ok: true };
  }

  /** Resolves file/image params to absolute paths; the signature uses the files' identity. */
  private resolveParams(def: NodeDef, params: Record<string, ParamValue>, paths: PathResolver) {
    const values = { ...params };
    const sigParams: Record<string, unknown> = { ...params };
    for (const p of def.params) {
      if (p.kind !== 'file' && p.kind !== 'image') continue;
      const v = params[p.name] as string;
      const abs = p.kind === 'file' ? paths.resolveModel(p.modelKind, v) : paths.resolveImage(v);
      if (!abs) continue; // validation already refused this run
      values[p.name] = abs;
      sigParams[p.name] = `${abs}|${pathIdentity(abs)}`;
    }
    return { values, sigParams };
  }

  /** The node's execution context; the images it shows on its card are also collected in `previews`. */
  private context(req: RunRequest, nodeId: string, paths: PathResolver, previews: ImageRef[], ran: Workflow): ExecContext {
    const { runId, emit } = req;
    return {
      nodeId,
      runId,
      signal: req.signal,
      models: this.models,
      paths,
      outputDir: req.outputDir,
      tempDir: req.tempDir,
      workflow: req.workflow,
      ran,
      noise: req.noise ?? seededNoise,
      trace: req.trace,
      progress: (step, total, preview) =>
        emit({
          type: 'progress',
          runId,
          node: nodeId,
          step,
          total,
          ...(preview ? { preview: { width: preview.width, height: preview.height, png: Buffer.from(preview.png).toString('base64') } } : {}),
        }),
      log: (level, message) => emit({ type: 'log', runId, node: nodeId, level, message }),
      emitImages: (images: ImageRef[]) => emit({ type: 'output', runId, node: nodeId, images }),
      previewOnNode: (images: ImageRef[]) => {
        previews.push(...images);
        emit({ type: 'node-preview', runId, node: nodeId, images });
      },
    };
  }
}
