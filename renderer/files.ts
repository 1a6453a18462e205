/**
 * Opening, saving, exporting and running: the effects behind the registered actions.
 * Workflow files are JSON or PNGs carrying the workflow chunk; reading migrates old versions.
 */
import { parseWorkflow, stringifyWorkflow } from '../engine/workflow.js';
import type { Host } from './host.js';
import { isPng, readTextChunk, writeTextChunk } from './png.js';
import type { EditorStore, OutputImage } from './store/index.js';

export const RECOVERY_KEY = 'ipa-studio:recovery';

/** Opens a workflow from a file's bytes (JSON or PNG with our chunk). Returns false when it holds none. */
export async function openWorkflowBytes(store: EditorStore, name: string, bytes: Uint8Array): Promise<boolean> {
  const s = store.getState();
  let text: string | null;
  try {
    text = isPng(bytes) ? await readTextChunk(bytes) : new TextDecoder().decode(bytes);
  } catch (e) {
    s.notify('error', `${name}: ${(e as Error).message}`);
    return false;
  }
  if (text === null) {
    s.notify('error', `${name} carries no workflow (no ipadapter-studio-workflow chunk).`);
    return false;
  }
  const parsed = parseWorkflow(text);
  if (!parsed.workflow) {
    s.notify('error', `${name}: ${parsed.errors.map((e) => e.message).join('; ')}`);
    return false;
  }
  s.commit();
  const problems = s.loadWorkflow(parsed.workflow, isPng(bytes) ? null : name, { keepHistory: true });
  if (parsed.migratedFrom !== undefined) s.notify('info', `${name} was saved as version ${parsed.migratedFrom}; migrated.`);
  for (const p of problems) s.notify('warn', `${name}: ${p}`);
  return true;
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
  const bytes = new TextEncoder().encode(stringifyWorkflow(s.workflow()));
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

/** The PNG of an output with its run's workflow embedded (so dropping it back restores the graph). */
export async function outputPng(out: OutputImage): Promise<Uint8Array> {
  const bytes = await fetchBytes(out.url);
  return out.workflow ? writeTextChunk(bytes, JSON.stringify(out.workflow)) : bytes;
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
    const saved = await host.saveFile(base, await outputPng(out), 'image/png', { saveAs: true, folder: list.length > 1 });
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

/** Validates, then queues the current workflow; errors appear on their nodes. */
export async function runWorkflow(store: EditorStore, host: Host): Promise<void> {
  const s = store.getState();
  const wf = s.workflow();
  s.clearRunState();
  try {
    const errors = await host.call('validate', { workflow: wf });
    if (errors.length) {
      store.getState().showErrors(errors);
      store.getState().notify('error', `The workflow has ${errors.length} error${errors.length > 1 ? 's' : ''}; see the marked nodes.`);
      return;
    }
    const { runId } = await host.call('enqueue', { workflow: wf });
    const st = store.getState();
    const prev = st.runs[runId];
    store.setState({ runs: { ...st.runs, [runId]: { runId, status: prev?.status ?? 'queued', position: prev?.position, workflow: wf } } });
  } catch (e) {
    store.getState().notify('error', (e as Error).message);
  }
}

/** Cancels the running run (or the newest queued one). */
export async function cancelRun(store: EditorStore, host: Host): Promise<void> {
  const s = store.getState();
  const target = s.activeRun ?? Object.values(s.runs).reverse().find((r) => r.status === 'queued')?.runId;
  if (target) await host.call('cancel', { runId: target }).catch((e: Error) => s.notify('error', e.message));
}

/** Autosave slot (localStorage here; Electron keeps its renderer storage on disk too). */
export function writeRecovery(store: EditorStore): void {
  const s = store.getState();
  try {
    localStorage.setItem(RECOVERY_KEY, JSON.stringify({ workflow: s.workflow(), fileName: s.fileName, dirty: s.revision !== s.savedRevision, at: Date.now() }));
  } catch {
    /* storage full or disabled: nothing to recover then */
  }
}

export function readRecovery(): { workflow: unknown; fileName: string | null; dirty: boolean } | null {
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
