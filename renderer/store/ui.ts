/**
 * The ui/settings slice: what the host reports (engine settings, models folder listing, host info,
 * connection, examples) and the notices shown over the editor. No undo history.
 */
import type { StateCreator } from 'zustand/vanilla';
import type { EditorState, UiSlice } from './state.js';

const MAX_NOTICES = 4;
let noticeId = 1;

export const createUiSlice: StateCreator<EditorState, [], [], UiSlice> = (set, get) => ({
  models: {},
  notices: [],
  settings: null,
  hostInfo: null,
  connected: false,
  examples: [],
  imageStatus: {},
  imageOrigins: {},
  missingAsk: null,
  pngCarriesImages: false,
  modelsReport: null,
  discardAsk: null,

  // The same text again (a warning every run repeats) moves to the newest place instead of
  // stacking a copy; at most four show at once.
  notify: (level, text, cause) =>
    set({ notices: [...get().notices.filter((n) => n.text !== text), { id: noticeId++, level, text, ...(cause ? { cause } : {}) }].slice(-MAX_NOTICES) }),
  dismiss: (id) => set({ notices: get().notices.filter((n) => n.id !== id) }),
  clearNotices: (...causes) => {
    const left = get().notices.filter((n) => !n.cause || !causes.includes(n.cause));
    if (left.length !== get().notices.length) set({ notices: left });
  },
});
