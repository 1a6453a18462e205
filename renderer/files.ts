/**
 * Opening, saving, exporting and running: the effects behind the registered actions.
 * Workflow files are JSON, shared-workflow bundles (engine/bundle-format.ts) or PNGs carrying the
 * workflow chunk (and, when exported so, a bundle chunk); reading migrates old versions. Images a
 * workflow names relative to its file are taken from the files opened with it (picked together in
 * a browser, read from beside it by the desktop host), stored in the inputs folder, and written back
 * relative on Save; any still missing show on their nodes, and the editor asks for them.
 */
import type { Workflow } from '../engine/api.js';
import { BUNDLE_CHUNK_KEY, BUNDLE_FORMAT, bundleFileName, isBundleDoc } from '../engine/bundle-format.js';
import { imageUses, isAbsoluteRef, mapImageRefs, matchRefToFile, refBaseName, type ImageUse } from '../engine/image-refs.js';
import { parseWorkflow, stringifyWorkflow } from '../engine/workflow.js';
import { carriesComfyWorkflow, convertComfyBytes } from './comfyui.js';
import type { Host } from './host.js';
import { isPng, readTextChunk, writeTextChunk } from './png.js';
import type { EditorStore, ImageStatus, OutputImage } from './store/index.js';

export const RECOVERY_KEY = 'ipa-studio:recovery';
/** The MIME type shared-workflow bundles are saved with (not application/json: Save must not write back over one). */
export const BUNDLE_MIME = 'application/vnd.ipadapter-studio.shared+json';

/** An image opened together with a workflow: its path as known (a bare name from a file pick, a relative path from a folder pick). */
export interface CompanionImage {
  path: string;
  bytes: Uint8Array;
}

export interface OpenOptions {
  /** Restores a bundle's images, stores companion images, checks which images are missing. */
  host?: Host;
  /** Images picked or read together with the workflow file. */
  images?: CompanionImage[];
}

/**
 * Opens a workflow from a file's bytes (JSON, a bundle, or a PNG with our chunk). Returns false when it holds none.
 * With a host, the workflow's images are linked: companion images matched to relative refs by
 * path, a bundle's images restored into the inputs folder; missing ones are reported and asked for.
 */
export async function openWorkflowBytes(store: EditorStore, name: string, bytes: Uint8Array, opts: OpenOptions = {}): Promise<boolean> {
  const s = store.getState();
  // A ComfyUI file (its JSON, or a PNG / WebP saved by ComfyUI) is converted first, then opened like ours (renderer/comfyui.ts).
  const comfy = await convertComfyBytes(store, name, bytes);
  if (comfy === false) return false;
  if (comfy) return loadOpened(store, name, comfy.workflow, null, undefined, opts, comfy.notices);
  let text: string | null;
  let bundleText: string | null = null;
  try {
    if (isPng(bytes)) {
      bundleText = await readTextChunk(bytes, BUNDLE_CHUNK_KEY);
      text = bundleText ?? (await readTextChunk(bytes));
    } else text = new TextDecoder().decode(bytes);
  } catch (e) {
    s.notify('error', `${name}: ${(e as Error).message}`);
    return false;
  }
  if (text === null) {
    s.notify('error', `${name} carries no workflow (no ipadapter-studio-workflow chunk).`);
    return false;
  }
  let doc: unknown = text;
  try {
    doc = JSON.parse(text);
  } catch {
    /* parseWorkflow says what is wrong with it */
  }
  let wf: Workflow;
  let migratedFrom: number | undefined;
  let fileName = isPng(bytes) ? null : name;
  if (bundleText !== null || isBundleDoc(doc)) {
    if (!opts.host) {
      s.notify('error', `${name} is a shared workflow (${BUNDLE_FORMAT}); it opens through the app's Open button.`);
      return false;
    }
    try {
      const r = await opts.host.call('importBundle', { text: bundleText ?? text });
      wf = r.workflow;
      migratedFrom = r.migratedFrom;
      s.notify('info', `${name}: a shared workflow with ${r.images} image${r.images === 1 ? '' : 's'} (${r.written} new in the inputs folder).`);
    } catch (e) {
      s.notify('error', `${name}: ${(e as Error).message}`);
      return false;
    }
    // Save keeps a plain workflow; exporting for sharing again makes a new bundle.
    fileName = fileName && fileName.replace(/\.shared\.json$/i, '.json');
  } else {
    const parsed = parseWorkflow(doc);
    if (!parsed.workflow) {
      s.notify('error', `${name}: ${parsed.errors.map((e) => e.message).join('; ')}`);
      return false;
    }
    wf = parsed.workflow;
    migratedFrom = parsed.migratedFrom;
  }
  return loadOpened(store, name, wf, fileName, migratedFrom, opts);
}

/** The opened workflow into the editor (one undo step): its images linked, what was found said. */
async function loadOpened(
  store: EditorStore,
  name: string,
  wf: Workflow,
  fileName: string | null,
  migratedFrom: number | undefined,
  opts: OpenOptions,
  notices: { level: 'info' | 'warn' | 'error'; text: string }[] = [],
): Promise<boolean> {
  const s = store.getState();
  let linked: LinkedImages = { workflow: wf, origins: {}, missing: [] };
  if (opts.host) {
    try {
      linked = await linkImages(store, opts.host, wf, opts.images ?? []);
    } catch (e) {
      s.notify('error', `${name}: ${(e as Error).message}`);
    }
  }
  s.commit();
  const problems = s.loadWorkflow(linked.workflow, fileName, { keepHistory: true });
  store.setState({ imageOrigins: linked.origins });
  if (migratedFrom !== undefined) s.notify('info', `${name} was saved as version ${migratedFrom}; migrated.`);
  for (const n of notices) s.notify(n.level, n.text);
  for (const p of problems) s.notify('warn', `${name}: ${p}`);
  if (linked.missing.length) {
    const refs = [...new Set(linked.missing.map((m) => m.ref))];
    store.setState({ missingAsk: { fileName: name } });
    s.notify(
      'warn',
      `${name}: ${refs.length} image${refs.length === 1 ? '' : 's'} not found (${refs.join(', ')}); choose ${refs.length === 1 ? 'it' : 'them'} on the node${refs.length === 1 ? '' : 's'} (Relink…).`,
    );
  }
  return true;
}

/** A file picked or dropped: its name, the path a folder pick gives it, its bytes. */
export interface PickedFile {
  name: string;
  path?: string;
  bytes: Uint8Array;
}

/**
 * Opens files picked or dropped together: the workflow (a .json, else the first PNG that carries
 * a workflow) and the images beside it, which the workflow's relative refs are matched against.
 * Returns false when none of them holds a workflow.
 */
export async function openPickedFiles(store: EditorStore, host: Host, files: PickedFile[]): Promise<boolean> {
  let main = files.find((f) => /\.json$/i.test(f.name));
  if (!main) {
    for (const f of files) {
      if (await carriesComfyWorkflow(f.bytes)) {
        main = f;
        break;
      }
      if (!isPng(f.bytes)) continue;
      const carries = await Promise.all([readTextChunk(f.bytes).catch(() => null), readTextChunk(f.bytes, BUNDLE_CHUNK_KEY).catch(() => null)]);
      if (carries.some((t) => t !== null)) {
        main = f;
        break;
      }
    }
  }
  if (!main) {
    store.getState().notify('error', `${files.map((f) => f.name).join(', ')}: no workflow among the chosen files (a .json, or a PNG exported by the app).`);
    return false;
  }
  const images = files.filter((f) => f !== main).map((f) => ({ path: f.path || f.name, bytes: f.bytes }));
  return openWorkflowBytes(store, main.name, main.bytes, { host, images });
}

export interface LinkedImages {
  workflow: Workflow;
  /** stored ref -> the ref the workflow had (written back by Save). */
  origins: Record<string, string>;
  /** Uses whose image the engine will not find. */
  missing: ImageUse[];
}

/**
 * Links a workflow's images: each relative ref that one of `images` matches (by the longest tail
 * of its path: engine/image-refs.ts matchRefToFile) is stored in the inputs folder and the ref
 * replaced; the others are checked with the host (an older absolute path into the inputs folder
 * comes back as `inputs/<file>`). Records each ref's status for the nodes' widgets.
 */
export async function linkImages(store: EditorStore, host: Host, wf: Workflow, images: CompanionImage[]): Promise<LinkedImages> {
  const refs = [...new Set(imageUses(wf, store.getState().specs).map((u) => u.ref))];
  const { byRef, origins } = await storeCompanions(
    store,
    host,
    refs.filter((r) => !isAbsoluteRef(r)),
    images,
  );
  const rest = refs.filter((r) => !byRef.has(r));
  const statuses: Record<string, ImageStatus> = {};
  if (rest.length) {
    for (const st of await host.call('resolveImages', { refs: rest })) {
      byRef.set(st.ref, st.value);
      statuses[st.value] = { found: st.found, ...(st.url ? { url: st.url } : {}) };
    }
  }
  store.setState({ imageStatus: { ...store.getState().imageStatus, ...statuses } });
  const workflow = mapImageRefs(wf, store.getState().specs, (u) => byRef.get(u.ref) ?? u.ref);
  const status = store.getState().imageStatus;
  const missing = imageUses(workflow, store.getState().specs).filter((u) => status[u.ref]?.found === false);
  return { workflow, origins, missing };
}

/** Stores the companion image each ref matches (each file once); ref -> stored ref, and stored -> original for relative refs. */
async function storeCompanions(store: EditorStore, host: Host, refs: string[], images: CompanionImage[]) {
  const byRef = new Map<string, string>();
  const origins: Record<string, string> = {};
  const stored = new Map<string, string>();
  for (const ref of refs) {
    const match = images.length
      ? matchRefToFile(
          ref,
          images.map((i) => i.path),
        )
      : null;
    if (!match) continue;
    let value = stored.get(match);
    if (!value) {
      try {
        value = (await uploadImage(store, host, refBaseName(match), images.find((i) => i.path === match)!.bytes)).value;
      } catch (e) {
        store.getState().notify('warn', `${match}: ${(e as Error).message}`);
        continue;
      }
      stored.set(match, value);
    }
    byRef.set(ref, value);
    if (value !== ref && !isAbsoluteRef(ref)) origins[value] = ref;
  }
  return { byRef, origins };
}

/** The refs of the open document that are missing (known so from the host). */
export function missingRefs(store: EditorStore): ImageUse[] {
  const s = store.getState();
  return imageUses(s.workflow(), s.specs).filter((u) => s.imageStatus[u.ref]?.found === false);
}

/**
 * The images the user chose for the missing ones (the "missing images" question): matched to the
 * missing refs by path like images opened with the workflow, stored, and the refs replaced in one
 * undo step. Returns how many refs are still missing.
 */
export async function relinkMissing(store: EditorStore, host: Host, images: CompanionImage[]): Promise<number> {
  const missing = [...new Set(missingRefs(store).map((u) => u.ref))];
  const { byRef, origins } = await storeCompanions(store, host, missing, images);
  if (byRef.size) {
    store.getState().replaceImageRefs(Object.fromEntries(byRef));
    store.setState({ imageOrigins: { ...store.getState().imageOrigins, ...origins } });
  }
  return new Set(missingRefs(store).map((u) => u.ref)).size;
}

/** Asks the host about the document's image refs it has no status for (all of them with `all`). */
export async function refreshImageStatus(store: EditorStore, host: Host, all = false): Promise<void> {
  const s = store.getState();
  const refs = [...new Set(imageUses(s.workflow(), s.specs).map((u) => u.ref))].filter((r) => all || !(r in s.imageStatus));
  if (!refs.length) return;
  const res = await host.call('resolveImages', { refs });
  const statuses: Record<string, ImageStatus> = {};
  for (const st of res) statuses[st.ref] = { found: st.found, ...(st.url ? { url: st.url } : {}) };
  store.setState({ imageStatus: { ...store.getState().imageStatus, ...statuses } });
}

/** Uploads an image into the inputs folder and records it as found; the response's value goes into the param. */
export async function uploadImage(store: EditorStore, host: Host, name: string, bytes: Uint8Array) {
  const res = await host.call('uploadImage', { name, dataBase64: toBase64(bytes) });
  store.setState({ imageStatus: { ...store.getState().imageStatus, [res.value]: { found: true, url: res.url } } });
  return res;
}

/** The document as Save writes it: images opened from beside the workflow go back to their relative refs. */
export function workflowForSave(store: EditorStore): Workflow {
  const s = store.getState();
  return mapImageRefs(s.workflow(), s.specs, (u) => s.imageOrigins[u.ref] ?? u.ref);
}

/**
 * "Export workflow for sharing": one file (engine/bundle-format.ts) with the graph and every image
 * and mask it uses, which opens on another machine with the same models.
 */
export async function exportForSharing(store: EditorStore, host: Host): Promise<void> {
  const s = store.getState();
  try {
    const r = await host.call('exportBundle', { workflow: s.workflow() });
    const saved = await host.saveFile(bundleFileName(s.fileName), new TextEncoder().encode(r.text), BUNDLE_MIME, { saveAs: true });
    if (saved) s.notify('info', `Exported for sharing with ${r.images.length} image${r.images.length === 1 ? '' : 's'}: ${saved.split(/[\\/]/).pop()}`);
  } catch (e) {
    s.notify('error', (e as Error).message);
  }
}

/** Save (to the current name) or Save As (asks a name): a download in the browser, a dialog in Electron. */
export async function saveWorkflow(store: EditorStore, host: Host, saveAs: boolean, askName: (suggested: string) => Promise<string | null>): Promise<void> {
  const s = store.getState();
  let name = s.fileName ?? 'workflow.json';
  if (saveAs || !s.fileName) {
    const chosen = host.kind === 'web' ? await askName(name) : name;
    if (!chosen) return;
    name = /\.json$/i.test(chosen) ? chosen : `${chosen}.json`;
  }
  const bytes = new TextEncoder().encode(stringifyWorkflow(workflowForSave(store)));
  const saved = await host.saveFile(name, bytes, 'application/json', { saveAs: saveAs || !s.fileName });
  if (saved) {
    store.getState().markSaved(saved.split(/[\\/]/).pop() ?? saved);
    writeRecovery(store);
  }
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not load ${url}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * The PNG of an output with its run's workflow embedded (so dropping it back restores the graph);
 * with `withImages` (a setting, off by default for size) also the run's input images, as a bundle
 * chunk, so the PNG opens on another machine too.
 */
export async function outputPng(out: OutputImage, withImages?: Host): Promise<Uint8Array> {
  const bytes = await fetchBytes(out.url);
  if (!out.workflow) return bytes;
  const png = writeTextChunk(bytes, JSON.stringify(out.workflow));
  if (!withImages) return png;
  const bundle = await withImages.call('exportBundle', { workflow: out.workflow });
  return writeTextChunk(png, bundle.text, BUNDLE_CHUNK_KEY);
}

/** Exports the selected outputs (or the newest one) as PNGs with the workflow embedded. */
export async function exportOutputs(store: EditorStore, host: Host): Promise<void> {
  const s = store.getState();
  const chosen = s.outputs.filter((o) => s.selectedOutputs.includes(o.id));
  const list = chosen.length ? chosen : s.outputs.slice(0, 1);
  if (!list.length) {
    s.notify('info', 'Nothing to export yet: run the workflow first.');
    return;
  }
  for (const out of list) {
    const base = out.path.split(/[\\/]/).pop() ?? 'output.png';
    const png = await outputPng(out, s.pngCarriesImages ? host : undefined).catch((e: Error) => {
      s.notify('error', e.message);
      return null;
    });
    if (!png) return;
    const saved = await host.saveFile(base, png, 'image/png', { saveAs: true, folder: list.length > 1 });
    if (!saved) return;
  }
  s.notify('info', `Exported ${list.length} image${list.length > 1 ? 's' : ''}.`);
}

/** Copies an output to the clipboard where the platform allows it. */
export async function copyOutput(store: EditorStore, out: OutputImage): Promise<void> {
  try {
    const blob = new Blob([(await outputPng(out)) as BlobPart], { type: 'image/png' });
    await navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })]);
    store.getState().notify('info', 'Image copied to the clipboard.');
  } catch (e) {
    store.getState().notify('warn', `Copying images is not available here: ${(e as Error).message}`);
  }
}

/** The name the queue shows for the open document: its title, else its file name, else "untitled". */
export function documentName(s: ReturnType<EditorStore['getState']>): string {
  const title = s.meta?.title;
  return typeof title === 'string' && title ? title : (s.fileName ?? 'untitled');
}

/**
 * Queues a workflow a job ran before (the queue panel's Re-queue / Run anyway), as it was then;
 * `force` runs it even when its images are already on disk.
 */
export async function requeue(store: EditorStore, host: Host, runId: string, force = true): Promise<void> {
  const job = store.getState().runs[runId];
  if (!job?.workflow) return;
  try {
    const name = job.name ?? 'untitled';
    const res = await host.call('enqueue', { workflow: job.workflow, name, force });
    const st = store.getState();
    const prev = st.runs[res.runId];
    store.setState({ runs: { ...st.runs, [res.runId]: { ...prev, runId: res.runId, status: prev?.status ?? 'queued', workflow: job.workflow, name } } });
  } catch (e) {
    store.getState().notify('error', (e as Error).message);
  }
}

/** Validates, then queues the current workflow; errors appear on their nodes. */
export async function runWorkflow(store: EditorStore, host: Host): Promise<void> {
  const s = store.getState();
  const wf = s.workflow();
  const name = documentName(s);
  s.clearRunState();
  try {
    const errors = await host.call('validate', { workflow: wf });
    if (errors.length) {
      // A missing image shows as such on its node (with Relink…), not only in the error text.
      if (errors.some((e) => e.param && /^[^:]*: missing: /.test(e.message))) await refreshImageStatus(store, host, true).catch(() => {});
      store.getState().showErrors(errors);
      store.getState().notify('error', `The workflow has ${errors.length} error${errors.length > 1 ? 's' : ''}; see the marked nodes.`, 'run');
      return;
    }
    const { runId, runIds } = await host.call('enqueue', { workflow: wf, name });
    const st = store.getState();
    const prev = st.runs[runId];
    const runs = { ...st.runs, [runId]: { ...prev, runId, status: prev?.status ?? 'queued', workflow: wf, name } };
    // A sweep's jobs share a batch (the queue panel's Cancel batch) and keep the names their queued events gave ("<name> [seed=2]").
    if (runIds && runIds.length > 1)
      for (const id of runIds) runs[id] = { ...runs[id], runId: id, status: st.runs[id]?.status ?? 'queued', name: st.runs[id]?.name, batch: runId };
    store.setState({ runs });
    // Each job of a sweep as the host queued it (its own values): the panel's summary and Re-queue of that one job.
    if (runIds && runIds.length > 1) await sweepJobWorkflows(store, host, runIds);
  } catch (e) {
    store.getState().notify('error', (e as Error).message);
  }
}

/** Gives a sweep's runs the workflows the host lists for them (engine/protocol.ts QueueJob.workflow); only that field changes. */
async function sweepJobWorkflows(store: EditorStore, host: Host, runIds: string[]): Promise<void> {
  const ids = new Set(runIds);
  const listed = (await host.call('listQueue', {}).catch(() => [])).filter((j) => ids.has(j.runId) && j.workflow);
  if (!listed.length) return;
  const runs = { ...store.getState().runs };
  for (const j of listed) if (runs[j.runId]) runs[j.runId] = { ...runs[j.runId], workflow: j.workflow };
  store.setState({ runs });
}

/** Cancels the running run (or the newest queued one). */
export async function cancelRun(store: EditorStore, host: Host): Promise<void> {
  const s = store.getState();
  const target =
    s.activeRun ??
    Object.values(s.runs)
      .reverse()
      .find((r) => r.status === 'queued')?.runId;
  if (target) await host.call('cancel', { runId: target }).catch((e: Error) => s.notify('error', e.message));
}

/** Autosave slot (localStorage here; Electron keeps its renderer storage on disk too). */
export function writeRecovery(store: EditorStore): void {
  const s = store.getState();
  try {
    localStorage.setItem(
      RECOVERY_KEY,
      JSON.stringify({ workflow: s.workflow(), fileName: s.fileName, dirty: s.revision !== s.savedRevision, imageOrigins: s.imageOrigins, at: Date.now() }),
    );
  } catch {
    /* storage full or disabled: nothing to recover then */
  }
}

export function readRecovery(): { workflow: unknown; fileName: string | null; dirty: boolean; imageOrigins?: Record<string, string> } | null {
  try {
    const raw = localStorage.getItem(RECOVERY_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/** Reads a dropped or chosen file into bytes. */
export async function fileBytes(file: File): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
