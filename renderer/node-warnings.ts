/**
 * Warnings on node cards: a `log` event of level warn that names its node (a loader whose model file
 * holds NaN / Inf or mislabelled weights, models/weight-sanity.ts; Load LoRA's unmatched keys) is kept
 * per node with the node's type and model-file params as they were in the run, and shown as a badge
 * on the card while those files are unchanged. Choosing another file clears it; the node's next
 * execution starts its list again (a cached node keeps the badge, its files have not changed).
 */
import type { NodeSpec } from '../nodes/types.js';
import type { NodeData } from './graph.js';
import type { NodeWarning } from './store/state.js';

/** The node's model-file params (the files a warning can be about). */
function filesOf(params: Record<string, unknown>, spec: NodeSpec | undefined): Record<string, unknown> {
  return Object.fromEntries((spec?.params ?? []).filter((p) => p.kind === 'file').map((p) => [p.name, params[p.name] ?? p.default]));
}

/** The message without the engine's "Title (id): " prefix (the card says which node it is). */
function onCard(message: string, node: string): string {
  const esc = node.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return message.replace(new RegExp(`^[^:\\n]*\\(${esc}\\):\\s*`), '');
}

/**
 * The node's warnings after `message`: added to those of this execution. `ran` is the node as the run
 * had it (the workflow the editor queued), else the node on the canvas.
 */
export function addWarning(
  prev: NodeWarning | undefined,
  node: string,
  message: string,
  ran: { type: string; params: Record<string, unknown> } | undefined,
  specs: Record<string, NodeSpec>,
): NodeWarning | undefined {
  if (!ran) return prev;
  const text = onCard(message, node);
  const files = filesOf(ran.params, specs[ran.type]);
  const same = prev && prev.type === ran.type && JSON.stringify(prev.files) === JSON.stringify(files);
  const messages = same ? prev.messages : [];
  return { type: ran.type, files, messages: messages.includes(text) ? messages : [...messages, text] };
}

/** The warnings to show on `node`'s card: none once its type or one of its files differs from the run's. */
export function shownWarnings(warning: NodeWarning | undefined, node: NodeData | undefined, spec: NodeSpec | undefined): string[] {
  if (!warning || !node || node.type !== warning.type) return [];
  return JSON.stringify(filesOf(node.params, spec)) === JSON.stringify(warning.files) ? warning.messages : [];
}
