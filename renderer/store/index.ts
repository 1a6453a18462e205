/** Editor state (zustand vanilla store, no React): the document, run and ui/settings slices, composed here into one store. */
import { createStore } from 'zustand/vanilla';
import { createDocumentSlice } from './document.js';
import { createRunSlice } from './run.js';
import type { EditorState } from './state.js';
import { createUiSlice } from './ui.js';

export { isDirty } from './document.js';
export { queueLength } from './run.js';
export type { DocumentSlice, EditorState, ImageStatus, LoadOptions, NodeRun, Notice, OutputImage, Progress, RunInfo, RunSlice, UiSlice } from './state.js';

export function createEditorStore() {
  return createStore<EditorState>()((...a) => ({
    ...createDocumentSlice(...a),
    ...createRunSlice(...a),
    ...createUiSlice(...a),
  }));
}

export type EditorStore = ReturnType<typeof createEditorStore>;
