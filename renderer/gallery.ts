/**
 * The gallery's data side: the Automatic1111 parameters text of an output PNG read back into its
 * prompt, negative prompt and fields (what the viewer shows), the prompt search, and refreshing
 * the gallery and queue from the host (after a reload, after each run).
 */
import type { Host } from './host.js';
import type { EditorStore, OutputImage } from './store/index.js';
import { GALLERY_LIMIT } from './store/run.js';

export interface Parameters {
  prompt: string;
  negative: string;
  /** `Steps`, `Sampler`, `CFG scale`, `Seed`, `Size`, `Model`, ... in their order. */
  fields: [string, string][];
}

/**
 * Reads an A1111 parameters text (nodes/runtime/parameters.ts writes it):
 *   <prompt>\nNegative prompt: <negative>\nSteps: 30, Sampler: DDIM, CFG scale: 7.5, Seed: 42, ...
 * The last line that starts with `Steps: ` holds the fields; the lines before it are the prompts.
 */
export function parseParameters(text: string | undefined): Parameters | null {
  if (!text) return null;
  const lines = text.split(/\r?\n/);
  let at = -1;
  for (let i = lines.length - 1; i >= 0; i--)
    if (/^Steps: /.test(lines[i])) {
      at = i;
      break;
    }
  const head = at < 0 ? lines : lines.slice(0, at);
  const negAt = head.findIndex((l) => l.startsWith('Negative prompt: '));
  const prompt = (negAt < 0 ? head : head.slice(0, negAt)).join('\n').trim();
  const negative = negAt < 0 ? '' : [head[negAt].slice('Negative prompt: '.length), ...head.slice(negAt + 1)].join('\n').trim();
  const fields: [string, string][] = [];
  if (at >= 0)
    for (const part of lines[at].split(/,\s+(?=[A-Z][\w -]*: )/)) {
      const c = part.indexOf(': ');
      if (c > 0) fields.push([part.slice(0, c), part.slice(c + 2)]);
    }
  return { prompt, negative, fields };
}

/** The file name of an output (its path's last part). */
export const outputName = (o: Pick<OutputImage, 'path'>) => o.path.split(/[\\/]/).pop() ?? o.path;

/** Whether an output matches a search: every word of the query in its prompts, title or file name (case-insensitive). */
export function matchesQuery(o: OutputImage, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const p = parseParameters(o.parameters);
  const hay = [p?.prompt, p?.negative, o.title, outputName(o)].filter(Boolean).join('\n').toLowerCase();
  return words.every((w) => hay.includes(w));
}

/** Lists the output folder into the gallery (errors: a notice; the gallery keeps what it has). */
export async function refreshGallery(store: EditorStore, host: Host): Promise<void> {
  try {
    store.getState().setGallery(await host.call('listOutputs', { limit: GALLERY_LIMIT }));
  } catch (e) {
    store.getState().notify('warn', `The gallery could not list the output folder: ${(e as Error).message}`);
  }
}

/** The host's queue (jobs still pending after a reload, other windows' jobs) into the store. */
export async function refreshQueue(store: EditorStore, host: Host): Promise<void> {
  try {
    store.getState().mergeQueue(await host.call('listQueue', {}));
  } catch {
    /* an older host without the channel: the queue shows this window's jobs */
  }
}

/** What the models folder in use holds (the banner says when there is nothing to run on). */
export async function refreshModelsReport(store: EditorStore, host: Host): Promise<void> {
  try {
    store.setState({ modelsReport: await host.call('checkModelsFolder', {}) });
  } catch {
    store.setState({ modelsReport: null });
  }
}
