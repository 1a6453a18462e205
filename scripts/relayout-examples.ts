/**
 * One-off: re-positions the cards of examples/*.json with the editor's own layered layout
 * (renderer/graph.ts `layout()`, what Tidy does) and the real node specs (nodes/index.ts
 * `nodeSpecs()`), so each example opens at a readable zoom instead of a wide strip. For each file
 * it tries `maxColumns` 3..8 and keeps the layout that fits the reference canvas at the largest
 * zoom; a file whose current positions already fit better and overlap nowhere is left alone. The
 * reference canvas is renderer/graph.ts REFERENCE_CANVAS (1600 x 1000 less the side panel, the
 * toolbar and the fit-view padding: about 1250 x 790).
 *
 * Only the numbers inside each node's `ui` object change: they are replaced in the file's text,
 * so params, edges, meta and the file's formatting (e.g. `1.0`) stay byte for byte; the script
 * checks this by parsing the result. Prints each file's extent and fit zoom before and after.
 *
 *   npx tsx scripts/relayout-examples.ts            # rewrites examples/*.json
 *   npx tsx scripts/relayout-examples.ts --check    # only prints the extents
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Workflow } from '../engine/api.js';
import { nodeSpecs } from '../nodes/index.js';
import { boxOf, CARD_WIDTH, type Doc, type SpecMap, fromWorkflow, layout, overlappingCards, REFERENCE_CANVAS } from '../renderer/graph.js';

const DIR = fileURLToPath(new URL('../examples/', import.meta.url));
const check = process.argv.includes('--check');
const specs: SpecMap = Object.fromEntries(nodeSpecs().map((s) => [s.type, s]));

const CANVAS = REFERENCE_CANVAS;

/** The cards' bounding box (estimated card heights) and the zoom that fits it in CANVAS. */
function fit(doc: Doc): { text: string; zoom: number } {
  const xs = doc.nodes.map((n) => n.position.x);
  const ys = doc.nodes.map((n) => n.position.y);
  const bottoms = doc.nodes.map((n) => n.position.y + boxOf(n, specs).h);
  const w = Math.max(...xs) + CARD_WIDTH - Math.min(...xs);
  const h = Math.max(...bottoms) - Math.min(...ys);
  const zoom = Math.min(CANVAS.width / w, CANVAS.height / h);
  return { text: `${w} x ${h} (zoom ${zoom.toFixed(2)})`, zoom };
}

for (const name of fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  const file = path.join(DIR, name);
  const text = fs.readFileSync(file, 'utf8');
  const wf = JSON.parse(text) as Workflow;
  const doc = fromWorkflow(wf, specs);
  if (doc.problems.length) throw new Error(`${file}: ${doc.problems.join('; ')}`);
  const tries = [3, 4, 5, 6, 7, 8].map((maxColumns) => layout({ nodes: doc.nodes, edges: doc.edges }, specs, { maxColumns }));
  const laid = tries.reduce((a, b) => (fit(b).zoom > fit(a).zoom ? b : a));
  const overlaps = overlappingCards(doc, specs).length;
  const keep = !overlaps && fit(doc).zoom >= fit(laid).zoom;
  if (overlappingCards(laid, specs).length) throw new Error(`${file}: the layout overlaps`);
  console.log(`${name}: ${fit(doc).text}${overlaps ? `, ${overlaps} overlaps` : ''} -> ${keep ? 'kept' : fit(laid).text}`);
  if (check || keep) continue;
  const pos = new Map(laid.nodes.map((n) => [n.id, { x: Math.round(n.position.x), y: Math.round(n.position.y) }]));

  // The k-th `"ui": {...}` in the text belongs to the k-th node (ui objects hold only numbers).
  let k = 0;
  const next = text.replace(/"ui": \{[^{}]*\}/g, (ui) => {
    const p = pos.get(wf.nodes[k++]?.id ?? '');
    if (!p) throw new Error(`${file}: more "ui" objects than nodes`);
    return ui.replace(/("x": )-?[\d.]+/, `$1${p.x}`).replace(/("y": )-?[\d.]+/, `$1${p.y}`);
  });
  if (k !== wf.nodes.length) throw new Error(`${file}: ${k} "ui" objects for ${wf.nodes.length} nodes`);
  const want = { ...wf, nodes: wf.nodes.map((n) => ({ ...n, ui: { ...n.ui, ...pos.get(n.id) } })) };
  if (JSON.stringify(JSON.parse(next)) !== JSON.stringify(want)) throw new Error(`${file}: rewriting changed more than ui positions`);
  fs.writeFileSync(file, next);
}
