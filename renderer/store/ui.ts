/**
 * The ui/settings slice: what the host reports (engine settings, models folder listing, host info,
 * connection, examples) and the notices shown over the editor. No undo history.
 */
import type { StateCreator } from 'zustand/vanilla';
import type { EngineSettings } from '../../engine/api.js';
import type { HostInfo } from '../../engine/protocol.js';
import type { ModelKind } from '../../nodes/types.js';
import type { EditorState } from './index.js';

export interface Notice {
  id: number;
  level: 'info' | 'warn' | 'error';
  text: string;
}

export interface UiSlice {
  models: Partial<Record<ModelKind, string[]>>;
  notices: Notice[];
  settings: EngineSettings | null;
  hostInfo: HostInfo | null;
  connected: boolean;
  examples: { name: string; title: string }[];

  notify(level: Notice['level'], text: string): void;
  dismiss(id: number): void;
}

const MAX_NOTICES = 4;
let noticeId = 1;

export const createUiSlice: StateCreator<EditorState, [], [], UiSlice> = (set, get) => ({
  models: {},
  notices: [],
  settings: null,
  hostInfo: null,
  connected: false,
  examples: [],

  // The same text again (a warning every run repeats) moves to the newest place instead of
  // stacking a copy; at most four show at once.
  notify: (level, text) => set({ notices: [...get().notices.filter((n) => n.text !== text), { id: noticeId++, level, text }].slice(-MAX_NOTICES) }),
  dismiss: (id) => set({ notices: get().notices.filter((n) => n.id !== id) }),
});
