/**
 * The editor's singletons: the store and the host. Components read the store through narrow
 * selectors (`useEditor(s => s.x)`); module-scope callbacks (isValidConnection) use `editor` directly.
 */
import { useStore } from 'zustand';
import { createHost, type Host } from './host.js';
import { followSeedControls } from './seed-control.js';
import { createEditorStore, type EditorState } from './store/index.js';

export const editor = createEditorStore();
// Seeds change after each run the editor queues, as their control_after_generate says.
followSeedControls(editor);

let hostInstance: Host | null = null;
export function host(): Host {
  hostInstance ??= createHost();
  return hostInstance;
}

export function useEditor<T>(selector: (s: EditorState) => T): T {
  return useStore(editor, selector);
}

/** The pointer's last position on the canvas, in flow coordinates (paste lands there). */
export const pointer: { flow: { x: number; y: number } | null } = { flow: null };
