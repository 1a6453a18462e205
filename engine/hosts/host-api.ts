/** engine/hosts: the programs that host the engine — CLI, web server (HTTP + WebSocket), what every host answers (host-api), start-up config. */
/**
 * What both hosts (the web server and the Electron main process) answer, written once: the
 * handler of every channel of `protocol.ts`, the URLs given to output images, the folder
 * confinement of file routes, and the uploads / examples folders. The hosts differ only in their
 * transport (WebSocket, IPC) and in what only a desktop has (dialogs, menus).
 *
 * Node built-ins and zod only: no http, ws or Electron, so either host's bundle can import it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EngineApi, EngineSettings, ImageRef, RunEvent, Workflow } from '../api.js';
import type { NodeSpec } from '../../nodes/types.js';
import { modelsFolderReport, settingsFolderProblem } from './host-config.js';
import { listGallery, type GalleryCache } from './gallery.js';
import { imageSizeProblem } from '../../models/image-limits.js';
import { isInsideReal, PathResolver } from '../paths.js';
import { createBundle, openBundle } from './bundle.js';
import { imageRefStatus, imageSize, storeImageBytes } from './inputs-store.js';
import { defaultOutput, isSameConversion, writeSafetensorsAtomic } from '../../models/pickle/convert.js';
import { isPickleFile, openPickleFile } from '../../models/pickle.js';
import type { ModelKind } from '../../nodes/spec.js';
import { channels, summarise, WorkflowSchema, type ChannelName, type ChannelRequest, type ChannelResponse, type HostInfo } from '../protocol.js';
import { hasSweep } from '../sweep.js';
import { enqueueBatch } from '../farm/batch.js';
import { farmEnqueueOf, type FarmEngine } from '../farm/editor-queue.js';

// ---- the handlers ------------------------------------------------------------------------------

export interface ApiHandlerOptions {
  engine: EngineApi;
  host: HostInfo['host'];
  /** Read on each hostInfo call: demo state and notices change with the settings. */
  info: () => Omit<HostInfo, 'host' | 'sampleImage'>;
  examplesDir: string;
  /** Uploaded images (Load Image) and imported example images are stored here, content-hashed. */
  inputsDir: string;
  /** Called after settings change (the host persists them). */
  onSettings?: (s: EngineSettings) => void;
  /** The models folder in use (the demo folder in demo mode), for model names in bundles; default the setting. */
  modelsDir?: () => string;
}

export type ApiHandler<K extends ChannelName> = (req: ChannelRequest<K>) => Promise<ChannelResponse<K>> | ChannelResponse<K>;
export type ApiHandlers = { [K in ChannelName]: ApiHandler<K> };
export type InvokeResult = { ok: true; result: unknown } | { ok: false; error: string };

/** One handler per channel; requests reach them already parsed with the channel's schema. */
export function createApiHandlers(opts: ApiHandlerOptions): ApiHandlers {
  const { engine, examplesDir, inputsDir } = opts;
  // The examples' image prompt, imported into the inputs folder once: the default workflow starts with it.
  let sample: { value: string; url: string } | null | undefined;
  const sampleImage = () => (sample === undefined ? (sample = importSampleImage(examplesDir, inputsDir)) : sample);
  // What the output folder's PNGs carry, read once per file version (the gallery lists again after every run).
  const galleryCache: GalleryCache = new Map();
  // Each job of a local sweep → the sweep's first runId (its batch).
  const localBatchOf = new Map<string, string>();
  return {
    hostInfo: () => {
      const s = sampleImage();
      return { host: opts.host, ...opts.info(), ...(s ? { sampleImage: s } : {}) };
    },
    nodeSpecs: () => engine.nodeSpecs(),
    listModels: () => engine.listModels(),
    validate: (r) => engine.validate(r.workflow),
    // The editor's Run: a job whose images a finished run already wrote ends as its duplicate (unless forced).
    // A workflow with a Sweep node runs as a batch: one queued job per value, then the grid (engine/farm/batch.ts).
    // With Settings' Run on a queue (farmQueue), Run goes to the render farm (engine/farm/editor-queue.ts).
    enqueue: async (r) => {
      const onFarm = await farmEnqueueOf(engine)?.(r.workflow, { name: r.name });
      if (onFarm) return onFarm;
      if (!hasSweep(r.workflow)) return engine.enqueue(r.workflow, { ...(r.name ? { name: r.name } : {}), dedupe: r.force !== true });
      const { runId, runIds } = enqueueBatch(engine, r.workflow, { name: r.name, inputsDir });
      for (const id of runIds) localBatchOf.set(id, runId);
      for (const id of [...localBatchOf.keys()].slice(0, Math.max(0, localBatchOf.size - 8192))) localBatchOf.delete(id); // the oldest go
      return { runId, runIds };
    },
    farmStatus: async () => ((await (engine as Partial<FarmEngine>).farmStatus?.()) ?? null) as ChannelResponse<'farmStatus'>,
    farmRetry: () => ((engine as Partial<FarmEngine>).farmRetry?.(), {}),
    // A local sweep's jobs name their batch (its first runId), so the panel's Cancel batch survives a reload.
    listQueue: () =>
      (engine.listQueue?.() ?? []).map((j) => {
        const batch = j.batch ?? localBatchOf.get(j.runId);
        return batch ? { ...j, batch } : j;
      }),
    cancel: (r) => (engine.cancel(r.runId), {}),
    getSettings: () => engine.settings(),
    updateSettings: (r) => {
      // Only existing folders: the hosts' Open Output / Models Folder then opens a folder, never a program.
      const bad = settingsFolderProblem(r, engine.settings());
      if (bad) throw new Error(bad);
      const s = engine.updateSettings(r);
      opts.onSettings?.(s);
      return s;
    },
    listExamples: () => listExamples(examplesDir),
    readExample: (r) => {
      const file = confinedPath(examplesDir, r.name);
      if (!file || !fs.existsSync(file)) throw new Error(`no example named ${r.name}`);
      const parsed = WorkflowSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
      if (!parsed.success) throw new Error(`${r.name} is not a workflow: ${summarise(parsed.error)}`);
      return importExampleImages(parsed.data, examplesDir, inputsDir, engine.nodeSpecs());
    },
    uploadImage: (r) => storeUpload(inputsDir, r.name, r.dataBase64),
    resolveImages: (r) => r.refs.map((ref) => imageRefStatus(inputsDir, ref)),
    // The editor's document has no folder: its images are inputs/<file> refs (or absolute paths).
    exportBundle: (r) => {
      const { text, images } = createBundle(
        r.workflow,
        engine.nodeSpecs(),
        new PathResolver(opts.modelsDir?.() ?? engine.settings().modelsDir, null, inputsDir),
      );
      return { text, images };
    },
    importBundle: (r) => {
      const b = openBundle(r.text, engine.nodeSpecs(), inputsDir);
      return {
        workflow: b.workflow,
        images: b.images.length,
        written: b.images.filter((i) => i.written).length,
        ...(b.migratedFrom !== undefined ? { migratedFrom: b.migratedFrom } : {}),
      };
    },
    // The editor refreshes its model lists (listModels reads the folder) after a conversion.
    convertModel: (r) => convertModelFile(opts.modelsDir?.() ?? engine.settings().modelsDir, r.kind, r.name),
    listOutputs: (r) => {
      // Bounded: a folder rewritten many times over keeps at most a few thousand entries in memory.
      if (galleryCache.size > 5000) galleryCache.clear();
      return listGallery(engine.settings().outputDir, r.limit, galleryCache);
    },
    checkModelsFolder: (r) => modelsFolderReport(r.dir ?? engine.settings().modelsDir),
    clearModelCache: () => {
      if (!engine.clearModelCache) throw new Error('this engine has no model cache to clear');
      return engine.clearModelCache();
    },
  };
}

/**
 * Runs `method` with `params` checked against its channel schema. Never throws: an unknown
 * method, invalid params or a failing handler come back as { ok: false, error }.
 */
export async function invokeApi(handlers: ApiHandlers, method: unknown, params: unknown): Promise<InvokeResult> {
  try {
    if (typeof method !== 'string' || !Object.hasOwn(channels, method)) {
      return { ok: false, error: `malformed request: unknown method ${JSON.stringify(method)}` };
    }
    const name = method as ChannelName;
    const parsed = channels[name].request.safeParse(params ?? {});
    if (!parsed.success) return { ok: false, error: `invalid params for ${name}: ${summarise(parsed.error)}` };
    const result = await (handlers[name] as ApiHandler<ChannelName>)(parsed.data as never);
    return { ok: true, result };
  } catch (e) {
    return { ok: false, error: (e as Error)?.message ?? String(e) };
  }
}

// ---- output image URLs ---------------------------------------------------------------------------

/**
 * URLs the renderer can load for output images: `/outputs/<relative path>` (served and confined by
 * either host); an image the engine wrote elsewhere (a temporary preview) is inlined as a data URL.
 */
export function withUrls(outputDir: string, images: ImageRef[]): ImageRef[] {
  const outDir = path.resolve(outputDir);
  return images.map((img) => {
    if (img.url) return img;
    const rel = path.relative(outDir, path.resolve(img.path));
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) {
      return { ...img, url: '/outputs/' + rel.split(path.sep).map(encodeURIComponent).join('/') };
    }
    try {
      return { ...img, url: 'data:image/png;base64,' + fs.readFileSync(img.path).toString('base64') };
    } catch {
      return img;
    }
  });
}

/** An engine event as hosts forward it (output images carry URLs). */
export function eventWithUrls(outputDir: string, event: RunEvent): RunEvent {
  return event.type === 'output' || event.type === 'node-preview' ? { ...event, images: withUrls(outputDir, event.images) } : event;
}

// ---- the page's Content-Security-Policy ---------------------------------------------------------

/**
 * The renderer's CSP, the same for both hosts: only our own scripts and styles (no inline script
 * or style element, no eval; React sets style properties through the CSSOM, which CSP allows),
 * images from ourselves or data/blob URLs, no frames, workers, plugins or form posts.
 * connect-src 'self' lets the page fetch its own output images (for export); web mode adds its
 * WebSocket origins through `connect`.
 */
export function contentSecurityPolicy(opts: { connect?: string[] } = {}): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    ["connect-src 'self'", ...(opts.connect ?? [])].join(' '),
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'none'",
    "frame-src 'none'",
    "worker-src 'none'",
  ].join('; ');
}

// ---- file routes -------------------------------------------------------------------------------

/** Content types of the files both hosts serve (web mode's routes and the desktop app's app:// protocol). */
export const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
};
/** The image files a host serves from the output and inputs folders. */
export const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp']);

/**
 * The route of a decoded request path, spelled one way: backslashes as slashes, doubled slashes
 * and `.` segments dropped, no trailing slash, so `/index.html/`, `/index.html%2f`, `//index.html`
 * and `/./index.html` all are `/index.html` and the access check sees what the file lookup will
 * serve. Null (refused) when a `..` segment is left after decoding: browsers never send one.
 */
export function routeOf(decoded: string): string | null {
  const segments = decoded
    .replace(/\\/g, '/')
    .split('/')
    .filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) return null;
  return '/' + segments.join('/');
}

/** Resolves `rel` under `root`, or null when it would escape it (`..`, absolute, NUL, symlink out). */
export function confinedPath(root: string, rel: string): string | null {
  if (rel.includes('\0')) return null;
  const base = path.resolve(root);
  const full = path.resolve(base, '.' + path.sep + rel);
  if (full !== base && !full.startsWith(base + path.sep)) return null;
  // A symlink inside the folder must not lead outside it either.
  return isInsideReal(base, full) ? full : null;
}

// ---- converting a pickle in the models folder -------------------------------------------------

const PICKLE_NAME = /\.(bin|pt|pth|ckpt)$/i;

/**
 * Converts `<models>/<kind>/<name>`, a PyTorch pickle, to `.safetensors` beside it, once and
 * atomically (models/pickle/convert.ts; nothing from the file runs). Only names inside that folder
 * (no `..`, no absolute path, no symlink out); an existing target is kept: when it is already this
 * file's conversion the call answers with it, otherwise it is refused, never overwritten.
 * Throws with a sentence for a person.
 */
export function convertModelFile(modelsDir: string, kind: ModelKind, name: string): ChannelResponse<'convertModel'> {
  const where = `models/${kind}`;
  if (kind === 'tokenizers') throw new Error('tokenizers are folders, not weight files: there is nothing to convert');
  if (name.includes('\0') || path.isAbsolute(name) || path.win32.isAbsolute(name)) {
    throw new Error(`"${name}" is not a file name inside ${where}: only models in that folder can be converted`);
  }
  if (name.split(/[\\/]/).includes('..')) throw new Error(`"${name}" contains "..": only models inside ${where} can be converted`);
  if (!PICKLE_NAME.test(name)) throw new Error(`${name} is not a PyTorch pickle (.bin, .pt, .pth or .ckpt): nothing to convert`);
  const root = path.join(modelsDir, kind);
  const src = confinedPath(root, name);
  if (!src) throw new Error(`"${name}" leads outside ${where} (a symbolic link): only models inside it can be converted`);
  if (!fs.statSync(src, { throwIfNoEntry: false })?.isFile()) throw new Error(`no file ${name} in ${where}`);
  if (!isPickleFile(src))
    throw new Error(`${name} is not a PyTorch pickle by its content (torch.save zip or legacy file); if it is already safetensors, use it as it is`);
  const written = path.relative(root, defaultOutput(src)).split(path.sep).join('/');
  const target = confinedPath(root, written);
  if (!target) throw new Error(`${written} would be written outside ${where} (a symbolic link)`);
  // Read (and refused, for a pickle that would run code) before anything is written.
  const table = openPickleFile(src);
  const metadata = { format: 'pt', converted_from: path.basename(src) };
  const tensors = table.keys().length;
  if (fs.lstatSync(target, { throwIfNoEntry: false })) {
    if (isSameConversion(table, target, metadata, src)) return { written, tensors, bytes: fs.statSync(target).size };
    throw new Error(`${where}/${written} already exists and is not this file's conversion; it is left as it is (rename or remove it to convert ${name})`);
  }
  const bytes = writeSafetensorsAtomic(table, target, metadata, { replace: false });
  return { written, tensors, bytes };
}

// ---- examples and uploads ------------------------------------------------------------------------

/** Workflows in examples/, titled by meta.title when present. */
export function listExamples(dir: string): ChannelResponse<'listExamples'> {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => /^[\w.-]+\.json$/.test(f))
    .sort()
    .map((name) => {
      let title = name.replace(/\.json$/, '').replace(/[-_]/g, ' ');
      try {
        const meta = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'))?.meta;
        if (typeof meta?.title === 'string') title = meta.title;
      } catch {
        /* listed by name; opening it reports the problem */
      }
      return { name, title };
    });
}

export { imageSize } from './inputs-store.js';

/** Stores an uploaded image (base64) under a content-hashed name; the param value is `inputs/<file>`. */
export function storeUpload(inputsDir: string, name: string, dataBase64: string): ChannelResponse<'uploadImage'> {
  const bytes = Buffer.from(dataBase64, 'base64');
  // A header-only image (0x0) or one above the pixel limit is refused now, not at the first run.
  const size = imageSize(bytes);
  const bad = size ? imageSizeProblem(size.width, size.height) : null;
  if (bad) throw new Error(`${name}: ${bad}`);
  const { value, url, width, height } = storeImageBytes(inputsDir, name, bytes);
  return { value, url, width, height };
}

/**
 * Image params of an example name files beside it (`images/x.png`). The editor runs workflows
 * without a folder of their own, so those images are imported like uploads and the params point
 * at the copies (which also gives them thumbnails).
 */
export function importExampleImages(wf: Workflow, examplesDir: string, inputsDir: string, specs: NodeSpec[]): Workflow {
  const imageParams = new Map(specs.map((s) => [s.type, new Set(s.params.filter((p) => p.kind === 'image').map((p) => p.name))]));
  for (const node of wf.nodes) {
    for (const [k, v] of Object.entries(node.params)) {
      if (typeof v !== 'string' || !v || path.isAbsolute(v) || !imageParams.get(node.type)?.has(k)) continue;
      const src = confinedPath(examplesDir, v);
      if (!src || !fs.existsSync(src)) continue;
      node.params[k] = storeImageBytes(inputsDir, path.basename(v), fs.readFileSync(src)).value;
    }
  }
  return wf;
}

/** The examples' image prompt imported into the inputs folder (the default workflow starts with it), or null. */
export function importSampleImage(examplesDir: string, inputsDir: string): { value: string; url: string } | null {
  const file = path.join(examplesDir, 'images', 'image-prompt.png');
  try {
    if (!fs.existsSync(file)) return null;
    const up = storeImageBytes(inputsDir, 'image-prompt.png', fs.readFileSync(file));
    return { value: up.value, url: up.url };
  } catch {
    return null;
  }
}
