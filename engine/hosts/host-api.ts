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
import * as crypto from 'node:crypto';
import type { EngineApi, EngineSettings, ImageRef, RunEvent, Workflow } from '../api.js';
import type { NodeSpec } from '../../nodes/types.js';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import { settingsFolderProblem } from './host-config.js';
import { imageSizeProblem } from '../../models/image-limits.js';
import { isInsideReal } from '../paths.js';
import {
  channels, summarise, WorkflowSchema, type ChannelName, type ChannelRequest, type ChannelResponse, type HostInfo,
} from '../protocol.js';

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
  return {
    hostInfo: () => {
      const s = sampleImage();
      return { host: opts.host, ...opts.info(), ...(s ? { sampleImage: s } : {}) };
    },
    nodeSpecs: () => engine.nodeSpecs(),
    listModels: () => engine.listModels(),
    validate: (r) => engine.validate(r.workflow),
    enqueue: (r) => engine.enqueue(r.workflow),
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
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
    ["connect-src 'self'", ...(opts.connect ?? [])].join(' '), "font-src 'self'", "object-src 'none'",
    "base-uri 'none'", "frame-ancestors 'none'", "form-action 'none'", "frame-src 'none'", "worker-src 'none'",
  ].join('; ');
}

// ---- file routes -------------------------------------------------------------------------------

/**
 * The route of a decoded request path, spelled one way: backslashes as slashes, doubled slashes
 * and `.` segments dropped, no trailing slash, so `/index.html/`, `/index.html%2f`, `//index.html`
 * and `/./index.html` all are `/index.html` and the access check sees what the file lookup will
 * serve. Null (refused) when a `..` segment is left after decoding: browsers never send one.
 */
export function routeOf(decoded: string): string | null {
  const segments = decoded.replace(/\\/g, '/').split('/').filter((s) => s !== '' && s !== '.');
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

// ---- examples and uploads ------------------------------------------------------------------------

/** Workflows in examples/, titled by meta.title when present. */
export function listExamples(dir: string): ChannelResponse<'listExamples'> {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /^[\w.-]+\.json$/.test(f)).sort().map((name) => {
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

/** Image dimensions from the header (PNG, JPEG, WebP), or null when the bytes are not one of those. */
export function imageSize(b: Buffer): { width: number; height: number; ext: string } | null {
  if (b.length > 24 && b.readUInt32BE(0) === 0x89504e47 && b.toString('latin1', 12, 16) === 'IHDR') {
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), ext: '.png' };
  }
  if (b.length > 4 && b[0] === 0xff && b[1] === 0xd8) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const marker = b[i + 1];
      const len = b.readUInt16BE(i + 2);
      // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC) carry the frame size.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7), ext: '.jpg' };
      }
      i += 2 + len;
    }
    return null;
  }
  if (b.length > 30 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') {
    const kind = b.toString('latin1', 12, 16);
    if (kind === 'VP8X') return { width: 1 + b.readUIntLE(24, 3), height: 1 + b.readUIntLE(27, 3), ext: '.webp' };
    if (kind === 'VP8 ') return { width: b.readUInt16LE(26) & 0x3fff, height: b.readUInt16LE(28) & 0x3fff, ext: '.webp' };
    if (kind === 'VP8L') {
      const bits = b.readUInt32LE(21);
      return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >> 14) & 0x3fff), ext: '.webp' };
    }
  }
  return null;
}

/** Stores an uploaded image (base64) under a content-hashed name; the param value is its absolute path. */
export function storeUpload(inputsDir: string, name: string, dataBase64: string): ChannelResponse<'uploadImage'> {
  const bytes = Buffer.from(dataBase64, 'base64');
  // A header-only image (0x0) or one above the pixel limit is refused now, not at the first run.
  const size = imageSize(bytes);
  const bad = size ? imageSizeProblem(size.width, size.height) : null;
  if (bad) throw new Error(`${name}: ${bad}`);
  return storeImageBytes(inputsDir, name, bytes);
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

/**
 * Writes image bytes under `<stem>-<sha256 prefix><ext>`. The name promises the content, so the
 * write is atomic: a cut write never leaves a truncated file that later uploads would trust.
 */
function storeImageBytes(inputsDir: string, name: string, bytes: Buffer): ChannelResponse<'uploadImage'> {
  const size = imageSize(bytes);
  if (!size) throw new Error(`${name} is not a PNG, JPEG or WebP image`);
  const stem = path.basename(name).replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_').slice(0, 60) || 'image';
  const hash = crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  const file = `${stem}-${hash}${size.ext}`;
  const full = path.join(inputsDir, file);
  // Same name, same content: written once (a file of another size is a leftover of an older, non-atomic write).
  if (fs.statSync(full, { throwIfNoEntry: false })?.size !== bytes.length) writeFileAtomicSync(full, bytes);
  return { value: full, url: '/inputs/' + encodeURIComponent(file), width: size.width, height: size.height };
}
