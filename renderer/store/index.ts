/** Editor state (zustand vanilla store, no React): the document, run and ui/settings slices, composed here into one store. */
import { createStore } from 'zustand/vanilla';
import { createDocumentSlice, type DocumentSlice } from './document.js';
import { createRunSlice, type RunSlice } from './run.js';
import { createUiSlice, type UiSlice } from './ui.js';

export { isDirty, type DocumentSlice, type LoadOptions } from './document.js';
export { queueLength, type NodeRun, type OutputImage, type Progress, type RunInfo, type RunSlice } from './run.js';
export type { Notice, UiSlice } from './ui.js';

/**
 * The whole editor state; components read it through narrow selectors. The document (nodes +
 * edges) has undo/redo history; run state, outputs and notices do not.
 */
export type EditorState = DocumentSlice & RunSlice & UiSlice;

export function createEditorStore() {
  return createStore<EditorState>()((...a) => ({
    ...createDocumentSlice(...a),
    ...createRunSlice(...a),
    ...createUiSlice(...a),
  }));
}

export type EditorStore = ReturnType<typeof createEditorStore>;
