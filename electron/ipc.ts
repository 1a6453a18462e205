/**
 * The desktop host's IPC handlers as plain functions (no Electron import, so unit tests drive them
 * with a fake engine, fake dialogs and a fake sender). main.ts registers each one on ipcMain.
 *
 * Every message is checked twice before anything runs: the sender must be a frame of our own
 * origin (app://studio), and the body must parse with its schema: engine calls with the channel
 * map of engine/protocol.ts (the same schemas web mode checks), desktop-only calls with the
 * schemas below. A malformed message is answered with an error; main never throws it away.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { EngineApi, EngineSettings, ImageRef, RunEvent } from '../engine/api.js';
import {
  channels, summarise, WorkflowSchema, type ChannelName, type ChannelRequest, type ChannelResponse, type HostInfo,
} from '../engine/protocol.js';
import { confinedPath, importExampleImages, importSampleImage, listExamples, storeUpload } from '../engine/server.js';
import { APP_ORIGIN, NATIVE_EDITS, type NativeEdit } from './channels.js';
import { readFileLimited, safeFileName, uniquePath, writeFileAtomic } from './files.js';

/** Who sent an IPC message: the sending frame's URL and its webContents id. */
export interface Sender {
  url: string;
  id: number;
}

export type OpenKind = 'workflow' | 'image';
export interface FileFilter {
  name: string;
  extensions: string[];
}

/** Native dialogs, parented to the sender's window by main.ts. Each returns null when cancelled. */
export interface Dialogs {
  openFile(sender: Sender, kind: OpenKind, filters: FileFilter[], defaultPath?: string): Promise<string | null>;
  saveFile(sender: Sender, defaultPath: string, filters: FileFilter[]): Promise<string | null>;
  pickFolder(sender: Sender, defaultPath?: string): Promise<string | null>;
}

export interface DesktopHostOptions {
  engine: EngineApi;
  /** Read on each hostInfo call: demo state and notices change with the settings. */
  info: () => Omit<HostInfo, 'host'>;
  examplesDir: string;
  /** Uploaded images (Load Image) are stored here, content-hashed. */
  inputsDir: string;
  /** Where Save dialogs start before the user has chosen a folder. */
  documentsDir: string;
  dialogs: Dialogs;
  /** Called after settings change (main persists them). */
  onSettings?: (s: EngineSettings) => void;
  /** The only origin allowed to call (tests may pass another). */
  origin?: string;
  now?: () => number;
}

export type InvokeResult = { ok: true; result: unknown } | { ok: false; error: string };
export interface OpenedFile {
  name: string;
  bytes: Uint8Array;
}

/** A workflow or an exported PNG can be opened; both stay well below this. */
export const MAX_OPEN_BYTES = 64 * 2 ** 20;
export const MAX_SAVE_BYTES = 256 * 2 ** 20;
/** Exports of several images within this time go to the folder chosen for the first one. */
export const EXPORT_BATCH_MS = 10_000;

export const OpenKindSchema = z.enum(['workflow', 'image']);
export const SaveFileRequestSchema = z.object({
  name: z.string().min(1).max(1024),
  bytes: z.instanceof(Uint8Array).refine((b) => b.byteLength <= MAX_SAVE_BYTES, `at most ${MAX_SAVE_BYTES / 2 ** 20} MiB`),
  mime: z.string().max(128),
  opts: z.object({ saveAs: z.boolean(), folder: z.boolean().optional() }).strict(),
}).strict();
export type SaveFileRequest = z.infer<typeof SaveFileRequestSchema>;
export const NativeEditSchema = z.enum(NATIVE_EDITS);

const OPEN_FILTERS: Record<OpenKind, FileFilter[]> = {
  workflow: [{ name: 'Workflow (JSON, or a PNG exported by the app)', extensions: ['json', 'png'] }],
  image: [{ name: 'Images', extensions: ['png', 'jpg', 'jpeg', 'webp'] }],
};
function saveFilters(mime: string): FileFilter[] {
  if (mime === 'application/json') return [{ name: 'Workflow JSON', extensions: ['json'] }];
  if (mime === 'image/png') return [{ name: 'PNG image', extensions: ['png'] }];
  return [];
}

/** What one window has chosen so far: Save writes back to the file it opened or saved. */
interface WindowState {
  workflowPath: string | null;
  lastDir: string | null;
  exportBatch: { dir: string; at: number } | null;
}

export interface DesktopHost {
  /** An engine call (a channel of engine/protocol.ts). Never throws: errors come back as { ok: false }. */
  invoke(sender: Sender, method: unknown, params: unknown): Promise<InvokeResult>;
  /** Native Open dialog; the chosen file's bytes. Throws on a malformed request. */
  openFile(sender: Sender, kind: unknown): Promise<OpenedFile | null>;
  /** Save (back to the opened file), Save As or export; writes atomically. Returns the path written. */
  saveFile(sender: Sender, request: unknown): Promise<string | null>;
  /** The editing command to run on the sender's webContents. Throws on anything else. */
  nativeEdit(sender: Sender, action: unknown): NativeEdit;
  /** Forwards engine events (output images get URLs the renderer can load); returns the unsubscribe. */
  forwardEvents(send: (e: RunEvent) => void): () => void;
  /** Forgets a closed window's state. */
  release(senderId: number): void;
}

export function createDesktopHost(opts: DesktopHostOptions): DesktopHost {
  const origin = opts.origin ?? APP_ORIGIN;
  const now = opts.now ?? Date.now;
  const windows = new Map<number, WindowState>();
  const stateOf = (id: number) => {
    let s = windows.get(id);
    if (!s) windows.set(id, (s = { workflowPath: null, lastDir: null, exportBatch: null }));
    return s;
  };

  /** Only our own pages may talk to main: not a navigated-away frame, not an injected iframe. */
  function checkSender(sender: Sender): void {
    if (typeof sender?.url !== 'string' || !sender.url.startsWith(origin + '/')) {
      throw new Error(`IPC refused: the sender ${JSON.stringify(sender?.url)} is not a page of ${origin}`);
    }
  }

  // The examples' image prompt, imported into the inputs folder once: the default workflow starts with it.
  let sample: { value: string; url: string } | null | undefined;
  const sampleImage = () => (sample === undefined ? (sample = importSampleImage(opts.examplesDir, opts.inputsDir)) : sample);

  type Handler<K extends ChannelName> = (req: ChannelRequest<K>) => Promise<ChannelResponse<K>> | ChannelResponse<K>;
  const engine = opts.engine;
  const handlers: { [K in ChannelName]: Handler<K> } = {
    hostInfo: () => {
      const sample = sampleImage();
      return { host: 'electron', ...opts.info(), ...(sample ? { sampleImage: sample } : {}) };
    },
    nodeSpecs: () => engine.nodeSpecs(),
    listModels: () => engine.listModels(),
    validate: (r) => engine.validate(r.workflow),
    enqueue: (r) => engine.enqueue(r.workflow),
    cancel: (r) => (engine.cancel(r.runId), {}),
    getSettings: () => engine.settings(),
    updateSettings: (r) => {
      const s = engine.updateSettings(r);
      opts.onSettings?.(s);
      return s;
    },
    listExamples: () => listExamples(opts.examplesDir),
    readExample: (r) => {
      const file = confinedPath(opts.examplesDir, r.name);
      if (!file || !fs.existsSync(file)) throw new Error(`no example named ${r.name}`);
      const parsed = WorkflowSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
      if (!parsed.success) throw new Error(`${r.name} is not a workflow: ${summarise(parsed.error)}`);
      return importExampleImages(parsed.data, opts.examplesDir, opts.inputsDir, engine.nodeSpecs());
    },
    uploadImage: (r) => storeUpload(opts.inputsDir, r.name, r.dataBase64),
  };

  return {
    async invoke(sender, method, params) {
      try {
        checkSender(sender);
        if (typeof method !== 'string' || !Object.hasOwn(channels, method)) {
          return { ok: false, error: `malformed request: unknown method ${JSON.stringify(method)}` };
        }
        const name = method as ChannelName;
        const parsed = channels[name].request.safeParse(params ?? {});
        if (!parsed.success) return { ok: false, error: `invalid params for ${name}: ${summarise(parsed.error)}` };
        const result = await (handlers[name] as Handler<ChannelName>)(parsed.data as never);
        return { ok: true, result };
      } catch (e) {
        return { ok: false, error: (e as Error)?.message ?? String(e) };
      }
    },

    async openFile(sender, kind) {
      checkSender(sender);
      const k = parseOr(OpenKindSchema, kind, 'openFile kind');
      const st = stateOf(sender.id);
      const file = await opts.dialogs.openFile(sender, k, OPEN_FILTERS[k], st.lastDir ?? undefined);
      if (!file) return null;
      const bytes = await readFileLimited(file, MAX_OPEN_BYTES);
      st.lastDir = path.dirname(file);
      // Save writes back only to a JSON the user opened; a workflow taken from a PNG is saved anew.
      if (k === 'workflow' && /\.json$/i.test(file)) st.workflowPath = file;
      return { name: path.basename(file), bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
    },

    async saveFile(sender, request) {
      checkSender(sender);
      const req = parseOr(SaveFileRequestSchema, request, 'saveFile request');
      const st = stateOf(sender.id);
      const isWorkflow = req.mime === 'application/json';
      let name = safeFileName(req.name, isWorkflow ? 'workflow.json' : 'image.png');
      if (isWorkflow && !path.extname(name)) name += '.json';
      let target: string | null;
      if (req.opts.folder) {
        // Several outputs at once: one folder for the whole batch, file names never overwrite.
        const batch = st.exportBatch && now() - st.exportBatch.at < EXPORT_BATCH_MS ? st.exportBatch.dir : null;
        const dir = batch ?? (await opts.dialogs.pickFolder(sender, st.exportBatch?.dir ?? st.lastDir ?? undefined));
        if (!dir) return null;
        target = uniquePath(dir, name);
      } else if (!req.opts.saveAs && st.workflowPath && path.basename(st.workflowPath) === name) {
        target = st.workflowPath;
      } else {
        const dir = st.lastDir ?? (isWorkflow ? opts.documentsDir : engine.settings().outputDir);
        target = await opts.dialogs.saveFile(sender, path.join(dir, name), saveFilters(req.mime));
        if (!target) return null;
        if (isWorkflow && !path.extname(target)) target += '.json';
      }
      await writeFileAtomic(target, req.bytes);
      if (req.opts.folder) st.exportBatch = { dir: path.dirname(target), at: now() };
      else st.lastDir = path.dirname(target);
      if (isWorkflow) st.workflowPath = target;
      return target;
    },

    nativeEdit(sender, action) {
      checkSender(sender);
      return parseOr(NativeEditSchema, action, 'native edit');
    },

    forwardEvents(send) {
      return engine.subscribe((event) => {
        send(event.type === 'output' ? { ...event, images: withUrls(engine.settings().outputDir, event.images) } : event);
      });
    },

    release(senderId) {
      windows.delete(senderId);
    },
  };
}

function parseOr<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`malformed ${what}: ${summarise(r.error)}`);
  return r.data;
}

/**
 * URLs for output images, as web mode gives them: `/outputs/<relative path>` served (and confined)
 * by the app protocol; an image the engine wrote elsewhere (a temporary preview) is inlined.
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
