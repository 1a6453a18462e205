/**
 * Seed control after generate (ComfyUI's `control_after_generate`) in the editor. ComfyUI changes
 * a seed widget right after a prompt is queued, so the run uses the seed shown when Run was pressed
 * and the widget then shows the next one. Here: once the engine has accepted a run this editor
 * queued (its entry in `runs` carries the workflow it ran: renderer/files.ts runWorkflow), every
 * node whose `control_after_generate` is not `fixed` gets each of its seed params (widget `seed`)
 * replaced by engine/seed.ts seedAfterGenerate: increment / decrement by one, randomize below 2^50.
 * The new values are a param edit (one undo step per run): shown in the widget, saved with the workflow.
 *
 * A seed turned into an input and fed by a Primitive follows the primitive's own control, as in
 * ComfyUI (its PrimitiveNode carries the seed widget's control_after_generate): the primitive's
 * `value` steps, the node's own control no longer applies to that seed (its card hides it).
 */
import { SEED_CONTROLS, seedAfterGenerate, seedProblem } from '../engine/seed.js';
import type { ParamSpec } from '../nodes/types.js';
import { primitiveTarget } from './graph.js';
import type { EditorState, EditorStore } from './store/index.js';

export const CONTROL_PARAM = 'control_after_generate';
/** The control a primitive feeding a seed shows under its value (nodes/runtime/seed.ts has the nodes' own). */
export const PRIMITIVE_CONTROL: ParamSpec = {
  name: CONTROL_PARAM,
  label: 'control after generate',
  kind: 'enum',
  options: [...SEED_CONTROLS],
  default: 'fixed',
};

const isSeed = (p: ParamSpec | undefined) => p?.kind === 'number' && p.widget === 'seed';

/** The seed edits the controls ask for, as [node, param, value]. */
export function seedsAfterGenerate(s: EditorState, random: () => number = Math.random): [string, string, number | string][] {
  const out: [string, string, number | string][] = [];
  const fed = new Set(s.edges.map((e) => `${e.target}\0${e.targetHandle}`));
  for (const n of s.nodes) {
    const spec = s.specs[n.data.type];
    if (spec?.virtual === 'primitive') {
      const control = n.data.params[CONTROL_PARAM];
      const t = control && control !== 'fixed' ? primitiveTarget(n.id, s.nodes, s.edges, s.specs) : null;
      const v = n.data.params.value ?? (t && (t.node.data.params[t.param.name] ?? t.param.default));
      if (t && isSeed(t.param) && seedProblem(v) === null) out.push([n.id, 'value', seedAfterGenerate(v, control, random)]);
      continue;
    }
    const control = n.data.params[CONTROL_PARAM] ?? spec?.params.find((p) => p.name === CONTROL_PARAM)?.default;
    if (!spec || control === undefined || control === 'fixed') continue;
    for (const p of spec.params) {
      if (!isSeed(p) || fed.has(`${n.id}\0${p.name}`)) continue;
      const v = n.data.params[p.name] ?? p.default;
      if (seedProblem(v) === null) out.push([n.id, p.name, seedAfterGenerate(v, control, random)]);
    }
  }
  return out;
}

/** Applies the controls now, as one undo step. */
export function applySeedControls(store: EditorStore, random: () => number = Math.random): void {
  const edits = seedsAfterGenerate(store.getState(), random);
  if (!edits.length) return;
  store.getState().commit();
  const byNode = new Map<string, Record<string, number | string>>();
  for (const [node, param, value] of edits) byNode.set(node, { ...byNode.get(node), [param]: value });
  store.setState({
    nodes: store.getState().nodes.map((n) => (byNode.has(n.id) ? { ...n, data: { ...n.data, params: { ...n.data.params, ...byNode.get(n.id) } } } : n)),
  });
}

/** Applies the controls after each run this editor queues; returns the unsubscribe function. */
export function followSeedControls(store: EditorStore, random: () => number = Math.random): () => void {
  const seen = new Set(
    Object.entries(store.getState().runs)
      .filter(([, r]) => r.workflow)
      .map(([id]) => id),
  );
  return store.subscribe((s) => {
    const queued = Object.entries(s.runs).filter(([id, r]) => r.workflow && !seen.has(id));
    if (!queued.length) return;
    for (const [id] of queued) seen.add(id);
    applySeedControls(store, random);
  });
}
