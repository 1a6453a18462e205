/**
 * Registered editor actions (Excalidraw style): name, label, shortcut, perform. Menus, toolbar
 * tooltips and the keyboard handler all come from this one list. Document edits record their undo
 * step inside the store (`commit`), so an action's perform stays one line.
 */
import type { Host } from './host.js';
import type { EditorState, EditorStore } from './store/index.js';
import { exportForComfyUI } from './comfyui.js';
import { cancelRun, exportForSharing, exportOutputs, runWorkflow, saveWorkflow } from './files.js';
import { pointer } from './editor.js';
import type { NodeMode } from './graph.js';

const selectedIds = (s: EditorState) => s.nodes.filter((n) => n.selected).map((n) => n.id);
/** Ctrl+B / Ctrl+M: the selection takes the mode, or runs again when all of it already had it. */
function toggleMode(store: EditorStore, mode: NodeMode): void {
  const s = store.getState();
  const sel = s.nodes.filter((n) => n.selected && !s.specs[n.data.type]?.virtual);
  s.setMode(
    sel.map((n) => n.id),
    sel.every((n) => n.data.mode === mode) ? null : mode,
  );
}

/** What actions may touch besides the store: view and dialogs owned by components. */
export interface ActionContext {
  store: EditorStore;
  host: Host;
  ui: {
    fitView(): void;
    openPalette(): void;
    openFilePicker(): void;
    openSettings(): void;
    askName(suggested: string): Promise<string | null>;
    newWorkflow(): void;
    tidy(): void;
  };
}

export type Menu = 'file' | 'edit' | 'view' | 'run';

export interface Action {
  name: string;
  label: string;
  menu: Menu;
  /** Shown in menus and tooltips. */
  shortcut?: string;
  keyTest?: (e: KeyboardEvent) => boolean;
  /** Fires even while a text field has focus (Ctrl+S, Ctrl+Enter). */
  global?: boolean;
  enabled?: (s: EditorState) => boolean;
  perform(ctx: ActionContext): void | Promise<void>;
}

const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform);
const mod = (e: KeyboardEvent) => (isMac ? e.metaKey : e.ctrlKey);
const MOD = isMac ? '⌘' : 'Ctrl';
const key = (e: KeyboardEvent, k: string) => e.key.toLowerCase() === k;
const plain = (e: KeyboardEvent) => !e.ctrlKey && !e.metaKey && !e.altKey;

export const ACTIONS: Action[] = [
  { name: 'new', label: 'New workflow', menu: 'file', perform: ({ ui }) => ui.newWorkflow() },
  {
    name: 'open',
    label: 'Open…',
    menu: 'file',
    shortcut: `${MOD}+O`,
    global: true,
    keyTest: (e) => mod(e) && !e.shiftKey && key(e, 'o'),
    perform: ({ ui }) => ui.openFilePicker(),
  },
  {
    name: 'save',
    label: 'Save',
    menu: 'file',
    shortcut: `${MOD}+S`,
    global: true,
    keyTest: (e) => mod(e) && !e.shiftKey && key(e, 's'),
    perform: ({ store, host, ui }) => saveWorkflow(store, host, false, ui.askName),
  },
  {
    name: 'saveAs',
    label: 'Save As…',
    menu: 'file',
    shortcut: `${MOD}+Shift+S`,
    global: true,
    keyTest: (e) => mod(e) && e.shiftKey && key(e, 's'),
    perform: ({ store, host, ui }) => saveWorkflow(store, host, true, ui.askName),
  },
  {
    name: 'export',
    label: 'Export selected outputs',
    menu: 'file',
    shortcut: `${MOD}+E`,
    global: true,
    keyTest: (e) => mod(e) && key(e, 'e'),
    enabled: (s) => s.outputs.length > 0,
    perform: ({ store, host }) => exportOutputs(store, host),
  },
  {
    name: 'exportShared',
    label: 'Export workflow for sharing…',
    menu: 'file',
    enabled: (s) => s.nodes.length > 0,
    perform: ({ store, host }) => exportForSharing(store, host),
  },
  {
    name: 'exportComfyUI',
    label: 'Export for ComfyUI…',
    menu: 'file',
    enabled: (s) => s.nodes.length > 0,
    perform: ({ store, host }) => exportForComfyUI(store, host),
  },
  {
    name: 'settings',
    label: 'Settings…',
    menu: 'file',
    shortcut: `${MOD}+,`,
    global: true,
    keyTest: (e) => mod(e) && e.key === ',',
    perform: ({ ui }) => ui.openSettings(),
  },

  {
    name: 'undo',
    label: 'Undo',
    menu: 'edit',
    shortcut: `${MOD}+Z`,
    enabled: (s) => s.past.length > 0,
    keyTest: (e) => mod(e) && !e.shiftKey && key(e, 'z'),
    perform: ({ store }) => store.getState().undo(),
  },
  {
    name: 'redo',
    label: 'Redo',
    menu: 'edit',
    shortcut: `${MOD}+Shift+Z`,
    enabled: (s) => s.future.length > 0,
    keyTest: (e) => mod(e) && ((e.shiftKey && key(e, 'z')) || key(e, 'y')),
    perform: ({ store }) => store.getState().redo(),
  },
  {
    name: 'copy',
    label: 'Copy',
    menu: 'edit',
    shortcut: `${MOD}+C`,
    keyTest: (e) => mod(e) && key(e, 'c'),
    perform: ({ store }) => void store.getState().copy(),
  },
  {
    name: 'paste',
    label: 'Paste',
    menu: 'edit',
    shortcut: `${MOD}+V`,
    enabled: (s) => !!s.clipboard,
    keyTest: (e) => mod(e) && key(e, 'v'),
    // At the pointer when it is over the canvas, else beside the original; never on a card.
    perform: ({ store }) => store.getState().paste(pointer.flow ?? undefined),
  },
  {
    name: 'duplicate',
    label: 'Duplicate',
    menu: 'edit',
    shortcut: `${MOD}+D`,
    keyTest: (e) => mod(e) && key(e, 'd'),
    perform: ({ store }) => {
      if (store.getState().copy()) store.getState().paste();
    },
  },
  {
    name: 'delete',
    label: 'Delete',
    menu: 'edit',
    shortcut: 'Delete',
    keyTest: (e) => plain(e) && (e.key === 'Delete' || e.key === 'Backspace'),
    perform: ({ store }) => store.getState().deleteSelected(),
  },
  {
    name: 'selectAll',
    label: 'Select all',
    menu: 'edit',
    shortcut: `${MOD}+A`,
    keyTest: (e) => mod(e) && key(e, 'a'),
    perform: ({ store }) => store.getState().selectAll(),
  },
  {
    name: 'bypass',
    label: 'Bypass selected nodes',
    menu: 'edit',
    shortcut: `${MOD}+B`,
    enabled: (s) => s.nodes.some((n) => n.selected),
    keyTest: (e) => mod(e) && !e.shiftKey && key(e, 'b'),
    perform: ({ store }) => toggleMode(store, 'bypass'),
  },
  {
    name: 'mute',
    label: 'Mute selected nodes',
    menu: 'edit',
    shortcut: `${MOD}+M`,
    enabled: (s) => s.nodes.some((n) => n.selected),
    keyTest: (e) => mod(e) && !e.shiftKey && key(e, 'm'),
    perform: ({ store }) => toggleMode(store, 'mute'),
  },
  {
    name: 'group',
    label: 'Group selected nodes',
    menu: 'edit',
    shortcut: `${MOD}+G`,
    enabled: (s) => s.nodes.some((n) => n.selected),
    keyTest: (e) => mod(e) && !e.shiftKey && key(e, 'g'),
    perform: ({ store }) => void store.getState().addGroup(selectedIds(store.getState())),
  },
  {
    name: 'collapse',
    label: 'Collapse / expand selected nodes',
    menu: 'edit',
    shortcut: 'Alt+C',
    enabled: (s) => s.nodes.some((n) => n.selected),
    keyTest: (e) => e.altKey && !e.ctrlKey && !e.metaKey && (key(e, 'c') || e.code === 'KeyC'),
    perform: ({ store }) => {
      const s = store.getState();
      const sel = s.nodes.filter((n) => n.selected);
      s.setUi(
        sel.map((n) => n.id),
        { collapsed: !sel.every((n) => n.data.ui?.collapsed) },
      );
    },
  },
  {
    name: 'addNode',
    label: 'Add node…',
    menu: 'edit',
    shortcut: 'Shift+A (or double-click)',
    keyTest: (e) => e.shiftKey && !mod(e) && key(e, 'a'),
    perform: ({ ui }) => ui.openPalette(),
  },

  {
    name: 'fitView',
    label: 'Fit view',
    menu: 'view',
    shortcut: 'F',
    keyTest: (e) => plain(e) && !e.shiftKey && key(e, 'f'),
    perform: ({ ui }) => ui.fitView(),
  },
  {
    name: 'tidy',
    label: 'Tidy layout',
    menu: 'view',
    shortcut: 'Shift+T',
    keyTest: (e) => e.shiftKey && !mod(e) && key(e, 't'),
    perform: ({ ui }) => ui.tidy(),
  },

  {
    name: 'run',
    label: 'Run',
    menu: 'run',
    shortcut: `${MOD}+Enter`,
    global: true,
    keyTest: (e) => mod(e) && e.key === 'Enter',
    perform: ({ store, host }) => runWorkflow(store, host),
  },
  {
    name: 'cancel',
    label: 'Cancel',
    menu: 'run',
    shortcut: `${MOD}+Shift+Backspace`,
    global: true,
    enabled: (s) => Object.values(s.runs).some((r) => r.status === 'queued' || r.status === 'running'),
    keyTest: (e) => mod(e) && e.shiftKey && e.key === 'Backspace',
    perform: ({ store, host }) => cancelRun(store, host),
  },
];

export const actionByName = (name: string): Action => {
  const a = ACTIONS.find((x) => x.name === name);
  if (!a) throw new Error(`no action named ${name}`);
  return a;
};

/** A tooltip: label and shortcut. */
export const tooltip = (name: string) => {
  const a = actionByName(name);
  return a.shortcut ? `${a.label} (${a.shortcut})` : a.label;
};

function inTextField(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}

/** The window's keydown handler: the first action whose keyTest matches runs. */
export function handleKey(e: KeyboardEvent, ctx: ActionContext): boolean {
  const typing = inTextField(e.target);
  for (const a of ACTIONS) {
    if (!a.keyTest?.(e)) continue;
    if (typing && !a.global) return false;
    if (a.enabled && !a.enabled(ctx.store.getState())) return false;
    e.preventDefault();
    void a.perform(ctx);
    return true;
  }
  return false;
}
