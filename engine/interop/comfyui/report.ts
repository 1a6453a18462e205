/**
 * The import report: every ComfyUI node, what it became here and what differs, so that nothing
 * is dropped silently. Statuses:
 *   mapped        an equal node (or a few nodes) here; the params are ComfyUI's values
 *   approximated  runs here, but something differs; each note says what
 *   unsupported   no counterpart: the node stays on the canvas as a placeholder that keeps its
 *                 links and values, and validation refuses to run it (naming it and why)
 *   skipped       does not run in ComfyUI either (muted, bypassed, a note); kept in the
 *                 workflow's meta, and a bypassed node's links pass through as ComfyUI's do
 * plus the model substitutions and the images that were not found. Pure.
 */
import type { ModelKind } from '../../../nodes/spec.js';
import type { MatchHow } from './models.js';

export type NodeStatus = 'mapped' | 'approximated' | 'unsupported' | 'skipped';
export type ComfyFormat = 'ui-0.4' | 'ui-1.0' | 'api';

export interface NodeReport {
  /** The ComfyUI node id. */
  id: string;
  classType: string;
  title?: string;
  status: NodeStatus;
  notes: string[];
  /** The ids of the nodes made for it here (a placeholder's id for an unsupported one). */
  nodes: string[];
}

export interface ModelReport {
  /** Our node id and param. */
  node: string;
  param: string;
  kind: ModelKind;
  wanted: string;
  used: string;
  how: MatchHow;
  note: string;
}

export interface ImportReport {
  format: ComfyFormat;
  nodes: NodeReport[];
  models: ModelReport[];
  /** Image params whose file was not found (only when the importer could look). */
  missingImages: { node: string; image: string }[];
  /** Problems of the file itself (links to missing nodes, bad entries), each a sentence. */
  warnings: string[];
}

export function countStatuses(r: ImportReport): Record<NodeStatus, number> {
  const c: Record<NodeStatus, number> = { mapped: 0, approximated: 0, unsupported: 0, skipped: 0 };
  for (const n of r.nodes) c[n.status]++;
  return c;
}

export const hasUnsupported = (r: ImportReport) => r.nodes.some((n) => n.status === 'unsupported');

const FORMAT_NAMES: Record<ComfyFormat, string> = {
  'ui-0.4': 'ComfyUI workflow (UI format 0.4)',
  'ui-1.0': 'ComfyUI workflow (UI format 1.0)',
  api: 'ComfyUI API prompt',
};

/** One line naming a node: `12 KSampler "My sampler"`. */
const nodeName = (n: NodeReport) => `${n.id} ${n.classType}${n.title && n.title !== n.classType ? ` "${n.title}"` : ''}`;

/** The summary line: what the file was and how its nodes came across. */
export function summaryLine(r: ImportReport): string {
  const c = countStatuses(r);
  const parts = [`${c.mapped} mapped`, `${c.approximated} approximated`, `${c.unsupported} unsupported`];
  if (c.skipped) parts.push(`${c.skipped} skipped`);
  const subs = r.models.filter((m) => m.how === 'substituted' || m.how === 'renamed' || m.how === 'missing').length;
  return `${FORMAT_NAMES[r.format]}: ${r.nodes.length} node${r.nodes.length === 1 ? '' : 's'}, ${parts.join(', ')}${subs ? `; ${subs} model substitution${subs === 1 ? '' : 's'}` : ''}`;
}

/** The report as text, one node a line with its notes below (the CLI prints it; the editor shows it). */
export function formatReport(r: ImportReport): string {
  const lines = [summaryLine(r)];
  const order: NodeStatus[] = ['unsupported', 'approximated', 'mapped', 'skipped'];
  for (const status of order) {
    const list = r.nodes.filter((n) => n.status === status);
    if (!list.length) continue;
    lines.push(`${status}:`);
    for (const n of list) {
      lines.push(`  ${nodeName(n)}${n.nodes.length ? ` -> ${n.nodes.join(', ')}` : ''}`);
      for (const note of n.notes) lines.push(`      ${note}`);
    }
  }
  const subs = r.models.filter((m) => m.how !== 'exact' && m.how !== 'unchecked');
  if (subs.length) {
    lines.push('models:');
    for (const m of subs) lines.push(`  ${m.node}.${m.param}: ${m.note}`);
  }
  if (r.missingImages.length) {
    lines.push('images not found:');
    for (const m of r.missingImages) lines.push(`  ${m.node}: "${m.image}"`);
  }
  if (r.warnings.length) {
    lines.push('file problems:');
    for (const w of r.warnings) lines.push(`  ${w}`);
  }
  return lines.join('\n');
}
