/**
 * The desktop host's IPC handlers as plain functions (no Electron import, so unit tests drive them
 * with a fake engine, fake dialogs and a fake sender). main.ts registers each one on ipcMain.
 *
 * Every message is checked twice before anything runs: the sender must be a frame of our own
 * origin (app://studio), and the body must parse with its schema: engine calls with the channel
 * map of engine/protocol.ts (the same schemas web mode checks), desktop-only calls with the
 * schemas below. A malformed message is answered with an error; main never throws it away.
 */
import * as path from 'node:path';
import { z } from 'zod';
import type { EngineApi, EngineSettings, RunEvent } from '../engine/api.js';
import { writeFileAtomic } from '../models/fs-atomic.js';
import { createApiHandlers, eventWithUrls, invokeApi, type InvokeResult } from '../engine/hosts/host-api.js';
import { imagesBeside } from '../engine/hosts/bundle.js';
import { summarise, type HostInfo } from '../engine/protocol.js';
import { APP_ORIGIN, FOLDER_PURPOSES, NATIVE_EDITS, type FolderPurpose, type NativeEdit } from './channels.js';
import { readFileLimited, safeFileName, uniquePath } from './files.js';

export type { InvokeResult };

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
  pickFolder(sender: Sender, defaultPath?: string, title?: string): Promise<string | null>;
}

export interface DesktopHostOptions {
  engine: EngineApi;
  /** Read on each hostInfo call: demo state and notices change with the settings. */
  info: () => Omit<HostInfo, 'host' | 'sampleImage'>;
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

export interface OpenedFile {
  name: string;
  bytes: Uint8Array;
  /** Images the workflow names relative to its file, read from beside it (engine/hosts/bundle.ts imagesBeside). */
  images?: { ref: string; bytes: Uint8Array }[];
}

/** A workflow or an exported PNG can be opened; both stay well below this. */
export const MAX_OPEN_BYTES = 64 * 2 ** 20;
export const MAX_SAVE_BYTES = 256 * 2 ** 20;
/** Exports of several images within this time go to the folder chosen for the first one. */
export const EXPORT_BATCH_MS = 10_000;

export const OpenKindSchema = z.enum(['workflow', 'image']);
export const SaveFileRequestSchema = z
  .object({
    name: z.string().min(1).max(1024),
    bytes: z.instanceof(Uint8Array).refine((b) => b.byteLength <= MAX_SAVE_BYTES, `at most ${MAX_SAVE_BYTES / 2 ** 20} MiB`),
    mime: z.string().max(128),
    opts: z.object({ saveAs: z.boolean(), folder: z.boolean().optional() }).strict(),
  })
  .strict();
export type SaveFileRequest = z.infer<typeof SaveFileRequestSchema>;
export const NativeEditSchema = z.enum(NATIVE_EDITS);
/** Settings' Browse…: which folder, and the field's current text (where the dialog starts). */
export const PickFolderRequestSchema = z
  .object({
    purpose: z.enum(FOLDER_PURPOSES),
    current: z.string().max(4096).optional(),
  })
  .strict();
export type PickFolderRequest = z.infer<typeof PickFolderRequestSchema>;

const PICK_TITLES: Record<FolderPurpose, string> = { models: 'Choose the Models Folder', output: 'Choose the Output Folder' };

/** renderer/files.ts BUNDLE_MIME: "Export workflow for sharing" (not application/json, so Save never writes back over it). */
const BUNDLE_MIME = 'application/vnd.ipadapter-studio.shared+json';

const OPEN_FILTERS: Record<OpenKind, FileFilter[]> = {
  workflow: [{ name: 'Workflow (JSON, a PNG exported by the app, or a ComfyUI workflow, PNG or WebP)', extensions: ['json', 'png', 'webp'] }],
  image: [{ name: 'Images', extensions: ['png', 'jpg', 'jpeg', 'webp'] }],
};
function saveFilters(mime: string): FileFilter[] {
  if (mime === 'application/json') return [{ name: 'Workflow JSON', extensions: ['json'] }];
  if (mime === 'image/png') return [{ name: 'PNG image', extensions: ['png'] }];
  if (mime === BUNDLE_MIME) return [{ name: 'Shared workflow (with its images)', extensions: ['json'] }];
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
  /**
   * Native folder dialog for a Settings field; the chosen absolute path, or null when cancelled.
   * Only a suggestion for the field: the settings change when the renderer applies them
   * (updateSettings, validated as always). Throws on a malformed request.
   */
  pickFolder(sender: Sender, request: unknown): Promise<string | null>;
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

  const engine = opts.engine;
  const handlers = createApiHandlers({
    engine,
    host: 'electron',
    info: opts.info,
    examplesDir: opts.examplesDir,
    inputsDir: opts.inputsDir,
    onSettings: opts.onSettings,
  });

  return {
    async invoke(sender, method, params) {
      try {
        checkSender(sender);
      } catch (e) {
        return { ok: false, error: (e as Error).message };
      }
      return invokeApi(handlers, method, params);
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
      const opened: OpenedFile = { name: path.basename(file), bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
      // The images it names relative to itself, from beside it (the renderer stores them like picked ones).
      const images = k === 'workflow' && /\.json$/i.test(file) ? imagesBeside(bytes.toString('utf8'), path.dirname(file), engine.nodeSpecs()) : [];
      if (images.length) opened.images = images.map((i) => ({ ref: i.ref, bytes: new Uint8Array(i.bytes.buffer, i.bytes.byteOffset, i.bytes.byteLength) }));
      return opened;
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

    async pickFolder(sender, request) {
      checkSender(sender);
      const req = parseOr(PickFolderRequestSchema, request, 'pickFolder request');
      // Start where the field points when it names an absolute folder, else at the folder in use.
      const inUse = req.purpose === 'models' ? engine.settings().modelsDir : engine.settings().outputDir;
      const start = req.current && path.isAbsolute(req.current) ? req.current : inUse;
      return opts.dialogs.pickFolder(sender, start, PICK_TITLES[req.purpose]);
    },

    nativeEdit(sender, action) {
      checkSender(sender);
      return parseOr(NativeEditSchema, action, 'native edit');
    },

    forwardEvents(send) {
      return engine.subscribe((event) => {
        send(eventWithUrls(engine.settings().outputDir, event));
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
