/**
 * ComfyUI files in the editor: opening one (Open, drop: UI workflow or API prompt JSON, a PNG
 * with ComfyUI's workflow / prompt chunks, a WebP with them in EXIF) converts it with the same
 * importer the CLI uses (engine/interop/comfyui/import.ts), against the node specs and the models
 * listing the editor already has, and says what the import report says; "Export for ComfyUI"
 * writes the graph as a ComfyUI UI workflow (or API prompt).
 */
import {
  comfyDocFromTexts,
  comfyFormatOf,
  countStatuses,
  exportComfyUI,
  importComfyUI,
  isWebp,
  MAX_COMFY_BYTES,
  parseJsonExact,
  summaryLine,
  webpExifStrings,
  type ImportReport,
} from '../engine/comfyui.js';
import type { Workflow } from '../engine/api.js';
import type { Host } from './host.js';
import { isPng, readTextChunk } from './png.js';
import type { EditorStore } from './store/index.js';

/** The ComfyUI document in a file's bytes, or null when it is not a ComfyUI file. Throws a sentence for a ComfyUI file it cannot read. */
export async function comfyDocOf(bytes: Uint8Array): Promise<unknown | null> {
  if (bytes.length > MAX_COMFY_BYTES) return null;
  if (isPng(bytes)) {
    const workflow = await readTextChunk(bytes, 'workflow');
    const prompt = await readTextChunk(bytes, 'prompt');
    return comfyDocFromTexts({ ...(workflow !== null ? { workflow } : {}), ...(prompt !== null ? { prompt } : {}) })?.doc ?? null;
  }
  if (isWebp(bytes)) return comfyDocFromTexts(webpExifStrings(bytes))?.doc ?? null;
  let text = new TextDecoder().decode(bytes);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    const doc = parseJsonExact(text);
    return comfyFormatOf(doc) ? doc : null;
  } catch {
    return null;
  }
}

/** The report as the editor's notices (at most four show at once): the summary, the unsupported nodes, the approximated ones, missing images. */
export function reportNotices(name: string, r: ImportReport): { level: 'info' | 'warn' | 'error'; text: string }[] {
  const c = countStatuses(r);
  const out: { level: 'info' | 'warn' | 'error'; text: string }[] = [{ level: c.unsupported ? 'warn' : 'info', text: `${name}: ${summaryLine(r)}` }];
  const title = (n: ImportReport['nodes'][number]) => `${n.classType}${n.title ? ` "${n.title}"` : ''}`;
  const unsupported = r.nodes.filter((x) => x.status === 'unsupported');
  if (unsupported.length) {
    out.push({
      level: 'warn',
      text: `Not supported, kept as placeholders to replace before running: ${unsupported.map((n) => `${title(n)} (${n.notes[0] ?? 'no equivalent'})`).join('; ')}`,
    });
  }
  const approx = r.nodes.filter((x) => x.status === 'approximated');
  if (approx.length)
    out.push({
      level: 'info',
      text: `Approximated: ${approx
        .map((n) => `${title(n)}: ${n.notes[0] ?? ''}`)
        .join('; ')
        .slice(0, 600)} (npm run convert prints the whole report)`,
    });
  if (r.missingImages.length)
    out.push({ level: 'warn', text: `Images not found, choose them on their nodes: ${r.missingImages.map((m) => `${m.image} (${m.node})`).join(', ')}` });
  return out;
}

/**
 * Converts a ComfyUI file's bytes into our workflow, with the report as notices to show once it
 * is loaded. Null when the bytes are not a ComfyUI file (they are read as ours); false when they
 * are one that cannot be read (said in a notice).
 */
export async function convertComfyBytes(
  store: EditorStore,
  name: string,
  bytes: Uint8Array,
): Promise<{ workflow: Workflow; notices: ReturnType<typeof reportNotices> } | null | false> {
  const s = store.getState();
  try {
    const doc = await comfyDocOf(bytes);
    if (doc === null) return null;
    if (!Object.keys(s.specs).length) throw new Error('the editor has not got its node list from the engine yet; open the file again in a moment');
    const r = importComfyUI(doc, { specs: Object.values(s.specs), models: s.models });
    return { workflow: r.workflow, notices: reportNotices(name, r.report) };
  } catch (e) {
    s.notify('error', `${name}: ${(e as Error).message}`);
    return false;
  }
}

/** Whether an image carries a ComfyUI workflow or prompt (a PNG's text chunks, a WebP's EXIF), so that dropping it opens the graph. */
export async function carriesComfyWorkflow(bytes: Uint8Array): Promise<boolean> {
  try {
    return (isPng(bytes) || isWebp(bytes)) && (await comfyDocOf(bytes)) !== null;
  } catch {
    return true; // ComfyUI metadata that cannot be read: opening says why
  }
}

/** Opens a ComfyUI file's bytes by themselves (no companion images): converts, loads (one undo step), shows the report. Null when not a ComfyUI file. */
export async function openComfyBytes(store: EditorStore, name: string, bytes: Uint8Array): Promise<boolean | null> {
  const c = await convertComfyBytes(store, name, bytes);
  if (c === null || c === false) return c === null ? null : false;
  const s = store.getState();
  s.commit();
  const problems = s.loadWorkflow(c.workflow, null, { keepHistory: true });
  for (const n of c.notices) s.notify(n.level, n.text);
  for (const p of problems) s.notify('warn', `${name}: ${p}`);
  return true;
}

/** Writes the graph as a ComfyUI UI workflow (or API prompt), saying what ComfyUI will do differently. */
export async function exportForComfyUI(store: EditorStore, host: Host, format: 'ui' | 'api' = 'ui'): Promise<void> {
  const s = store.getState();
  const ex = exportComfyUI(s.workflow(), Object.values(s.specs));
  const base = (s.fileName ?? 'workflow.json').replace(/\.json$/i, '');
  const bytes = new TextEncoder().encode(`${JSON.stringify(format === 'api' ? ex.api : ex.ui, null, 2)}\n`);
  const saved = await host.saveFile(`${base}.comfyui${format === 'api' ? '-api' : ''}.json`, bytes, 'application/json', { saveAs: true });
  if (!saved) return;
  const unsupported = ex.report.filter((r) => r.status === 'unsupported');
  const approx = ex.report.filter((r) => r.status === 'approximated');
  s.notify(
    unsupported.length ? 'warn' : 'info',
    `Exported for ComfyUI: ${ex.report.length - unsupported.length - approx.length} nodes mapped, ${approx.length} approximated, ${unsupported.length} without a ComfyUI node${unsupported.length ? ` (${unsupported.map((r) => r.id).join(', ')})` : ''}.`,
  );
}
