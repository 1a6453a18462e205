/**
 * Loaded models and ONNX Runtime sessions, by key. A key names what was loaded (e.g.
 * `unet|<checkpoint>|ip=<adapter>|cn=0`), so a graph is built and a session created once and
 * reused by every run until `unload` releases it. Concurrent requests for one key share a load.
 * The files in a key are written as `fileKey(path)` = `<path>@<identity>` (device, inode, size,
 * mtime; of every file for a folder): a model file replaced or edited in place gets new keys, so
 * it is loaded again, the entries made from the old file are released, and a log line says so.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BuiltModel } from '../models/onnx/graph.js';
import { fileIdentity } from '../models/onnx/fp32-weights.js';
import { createSession, ort, type Provider, type SessionConfig } from '../models/onnx/session.js';
import { type GraphProfile, type Precision, profileFor } from '../models/onnx/profile.js';

/**
 * The identity of a file (device, inode, size, mtime: models/onnx/fp32-weights.ts fileIdentity), or of
 * every file in a folder (one level of subfolders). An entry that cannot be read (a dangling symlink, a
 * loop, no permission) counts by its error code and never throws: the loader that needs it then fails
 * on its node, naming the file.
 */
export function pathIdentity(p: string): string {
  const id = (q: string) => {
    try {
      return fileIdentity(q).id;
    } catch (e) {
      return `unreadable(${(e as NodeJS.ErrnoException).code ?? 'error'})`;
    }
  };
  const list = (dir: string): fs.Dirent[] => {
    try {
      return fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      return [];
    }
  };
  if (!fs.statSync(p, { throwIfNoEntry: false })?.isDirectory()) return id(p);
  const parts: string[] = [];
  for (const e of list(p)) {
    const q = path.join(p, e.name);
    if (e.isDirectory()) {
      for (const f of list(q)) parts.push(`${e.name}/${f.name}:${id(path.join(q, f.name))}`);
    } else {
      parts.push(`${e.name}:${id(q)}`);
    }
  }
  return `dir(${createHash('sha256').update(parts.join(',')).digest('hex').slice(0, 16)})`;
}

/** Settings' "GPU precision" (EngineSettings.gpuPrecision): fp16 (the default on GPU providers) or fp32. */
export type GpuPrecision = 'fp16' | 'fp32';

/**
 * The graph profile of a store on `provider`: on the CPU its `precision` (fp32 exact, int8 = CPU precision fast);
 * on a GPU provider `gpu` (Settings' GPU precision), else `precision` with int8 (a CPU profile) as fp32.
 */
export function storeProfile(provider: Provider, precision: Precision = 'fp32', gpu?: GpuPrecision): GraphProfile {
  if (provider === 'cpu') return profileFor('cpu', precision);
  return profileFor(provider, gpu ?? (precision === 'int8' ? 'fp32' : precision));
}

interface Entry {
  value: Promise<unknown>;
  dispose?: (v: unknown) => void | Promise<void>;
  lastUsed: number;
}

export interface ModelStoreOptions {
  cacheDir: string;
  provider: Provider;
  log?: (msg: string) => void;
  threads?: number;
  /** The graph precision sessions are built at (models/onnx/profile.ts; default fp32, today's graph). */
  precision?: Precision;
  /**
   * Settings' "GPU precision": the precision on a GPU provider (webgpu, cuda, dml); absent: `precision` there too
   * (int8, a CPU profile, as fp32). The engine passes the setting, fp16 by default.
   */
  gpuPrecision?: GpuPrecision;
  /** Notices a host shows (a graph profile that failed to build and fell back); default: the log. */
  notice?: (msg: string) => void;
  /**
   * Where a sampler's ControlNets run (models/unet-controlnet.ts): true = inside the UNet's session (one merged graph),
   * false = their own sessions, residuals through the CPU (today's path); absent = inside on a GPU provider, their own
   * sessions on the CPU. true on the CPU is for tests (the merged path there gives the same latents).
   */
  controlNetsInUNet?: boolean;
}

export class ModelStore {
  private entries = new Map<string, Entry>();
  /** The chosen provider when it failed to start: sessions go to CPU until the setting changes. */
  private failedProvider: Provider | null = null;
  /** How many times each key was actually loaded (tests read this). */
  readonly loads = new Map<string, number>();
  /** The identity each file named in a key had when last seen (fileKey). */
  private identities = new Map<string, string>();

  constructor(private opts: ModelStoreOptions) {
    fs.mkdirSync(opts.cacheDir, { recursive: true });
  }

  get cacheDir(): string {
    return this.opts.cacheDir;
  }

  /** The provider chosen in the settings. */
  get provider(): Provider {
    return this.opts.provider;
  }

  /** The provider sessions are created with: the chosen one, or CPU once it failed to start. */
  get activeProvider(): Provider {
    return this.failedProvider === this.opts.provider ? 'cpu' : this.opts.provider;
  }

  /** The graph profile sessions are built with: the active provider's at the chosen precision. */
  get profile(): GraphProfile {
    return storeProfile(this.activeProvider, this.opts.precision, this.opts.gpuPrecision);
  }

  /** Whether samplers put their ControlNets inside the UNet session (ModelStoreOptions.controlNetsInUNet). */
  get controlNetsInUNet(): boolean {
    return this.opts.controlNetsInUNet ?? this.activeProvider !== 'cpu';
  }

  /** What model loaders take to create their sessions (models/onnx/session.ts SessionConfig). */
  sessionConfig(): SessionConfig {
    return {
      cacheDir: this.opts.cacheDir,
      provider: this.activeProvider,
      log: this.opts.log,
      threads: this.opts.threads,
      onProviderFailed: this.providerFailed,
      profile: this.profile,
      onProfileFallback: this.opts.notice ?? this.opts.log,
    };
  }

  /** Changes the graph precision; sessions built at the old one are released (a store never mixes profiles). */
  async setPrecision(p: Precision): Promise<void> {
    if (p === (this.opts.precision ?? 'fp32')) return;
    this.opts.precision = p;
    await this.unload();
  }

  /** Changes the GPU precision (undefined: `precision` there too); a change of the active profile releases the sessions. */
  async setGpuPrecision(p: GpuPrecision | undefined): Promise<void> {
    if (p === this.opts.gpuPrecision) return;
    const before = this.profile.id;
    this.opts.gpuPrecision = p;
    if (this.profile.id !== before) await this.unload();
  }

  /** Remembers a provider that failed to start and says so once (sessions loading in parallel may all report it). */
  private providerFailed = (p: Provider, e: Error): void => {
    if (this.failedProvider === p) return;
    this.failedProvider = p;
    this.opts.log?.(`provider ${p} failed to start (${e.message.split('\n')[0]}); falling back to CPU for all models until the provider setting changes`);
  };

  /** Changes the provider (a new choice is tried again even if it failed before); sessions made for the old one are released. */
  async setProvider(p: Provider): Promise<void> {
    if (p === this.opts.provider) return;
    this.opts.provider = p;
    this.failedProvider = null;
    await this.unload();
  }

  /**
   * `<p>@<identity>` for a key naming the file or folder `p` ('' stays ''). When `p` changed on disk
   * since it was last seen, the entries made from the old file are released and the log says so.
   */
  fileKey(p: string): string {
    if (!p) return p;
    const id = pathIdentity(p);
    const was = this.identities.get(p);
    this.identities.set(p, id);
    if (was !== undefined && was !== id) {
      const old = `${p}@${was}`;
      const stale = [...this.entries.keys()].filter((k) => k.includes(old));
      this.opts.log?.(
        `${p} changed on disk since it was loaded (${was} -> ${id}): loading it again${stale.length ? `, releasing ${stale.length} model(s) made from the old file` : ''}`,
      );
      void this.release(stale);
    }
    return `${p}@${id}`;
  }

  /** The value under `key`, loading it once with `load`. `dispose` runs on unload. */
  async get<T>(key: string, load: () => Promise<T> | T, dispose?: (v: T) => void | Promise<void>): Promise<T> {
    let e = this.entries.get(key);
    if (!e) {
      this.loads.set(key, (this.loads.get(key) ?? 0) + 1);
      const value = Promise.resolve().then(load);
      e = { value, dispose: dispose as Entry['dispose'], lastUsed: Date.now() };
      this.entries.set(key, e);
      // A failed load is forgotten, so the next run retries (after the user fixes the file).
      value.catch(() => {
        if (this.entries.get(key) === e) this.entries.delete(key);
      });
    }
    e.lastUsed = Date.now();
    return e.value as Promise<T>;
  }

  /** An ONNX Runtime session for a graph built by `build`, cached under `key` (options: e.g. UNET_SESSION_OPTIONS). */
  session(key: string, build: () => BuiltModel | Promise<BuiltModel>, sessionOptions?: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
    return this.get(
      key,
      async () => {
        const t0 = Date.now();
        const built = await build();
        const s = await createSession(built, { ...this.sessionConfig(), sessionOptions });
        this.opts.log?.(`loaded ${key} (${((Date.now() - t0) / 1000).toFixed(2)} s)`);
        return s;
      },
      (s) => s.release(),
    );
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Releases every entry whose key starts with `prefix` (all when omitted). */
  unload(prefix = ''): Promise<void> {
    return this.release([...this.entries.keys()].filter((k) => k.startsWith(prefix)));
  }

  private async release(keys: string[]): Promise<void> {
    const gone = keys.flatMap((k) => {
      const e = this.entries.get(k);
      return e ? [[k, e] as const] : [];
    });
    for (const [k] of gone) this.entries.delete(k);
    for (const [, e] of gone) {
      try {
        const v = await e.value;
        await e.dispose?.(v);
      } catch {
        /* a failed load has nothing to release */
      }
    }
  }
}

/** What clearing or pruning the model cache removed: files, and the bytes that freed (a hard link to a model file frees none). */
export interface CacheRemoval {
  files: number;
  freedBytes: number;
}

/** Removes `p` (file or folder), counting its files and the bytes that go with them (files with no other link). */
function removeCounted(p: string, into: CacheRemoval): void {
  const walk = (q: string) => {
    const st = fs.lstatSync(q, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(q)) walk(path.join(q, n));
      return;
    }
    into.files++;
    if (st.nlink <= 1) into.freedBytes += st.size;
  };
  walk(p);
  fs.rmSync(p, { recursive: true, force: true });
}

/** The model cache's folders of our own: built graphs with links to their weights, float32 copies of fp16 / bf16 weights, int8 copies (CPU precision: fast). */
const CACHE_PARTS = ['onnx', 'fp32-weights', 'int8-weights'];

/**
 * "Clear model cache" (settings): releases every loaded model, then removes the cache's built graphs,
 * weight links and float32 copies; they are made again on next use.
 */
export async function clearModelCache(store: ModelStore): Promise<CacheRemoval> {
  await store.unload();
  const out: CacheRemoval = { files: 0, freedBytes: 0 };
  for (const part of CACHE_PARTS) removeCounted(path.join(store.cacheDir, part), out);
  return out;
}

/**
 * At start-up: the cached graphs whose weight link is the last link of its file (the model file was deleted
 * from the models folder, so the link alone keeps its disk space). Only when the cache and a models folder share
 * a device: on another device the weights were copied, not linked (a copy's link count says nothing; Clear
 * model cache removes those).
 */
export function pruneModelCache(cacheDir: string, modelsDirs: string[]): CacheRemoval {
  const out: CacheRemoval = { files: 0, freedBytes: 0 };
  const onnx = path.join(cacheDir, 'onnx');
  const dev = fs.statSync(onnx, { throwIfNoEntry: false })?.dev;
  if (dev === undefined || !modelsDirs.some((d) => fs.statSync(d, { throwIfNoEntry: false })?.dev === dev)) return out;
  for (const name of fs.readdirSync(onnx)) {
    const dir = path.join(onnx, name);
    let orphaned: boolean;
    try {
      orphaned = fs.readdirSync(dir).some((n) => {
        if (n === 'model.onnx' || !n.endsWith('.safetensors')) return false;
        const st = fs.lstatSync(path.join(dir, n));
        return st.isFile() && st.nlink === 1;
      });
    } catch {
      continue; // not a folder of ours
    }
    if (orphaned) removeCounted(dir, out);
  }
  return out;
}
