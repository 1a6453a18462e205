/**
 * The application menu. Items that are editor actions (renderer/actions.ts, by name) send the
 * action's name to the renderer, which performs it exactly as its keyboard shortcut would.
 *
 * Shortcuts: the renderer's keydown handler owns them (it knows whether a text field has focus),
 * so accelerators are only displayed here (`registerAccelerator: false`, honoured on Windows and
 * Linux). On macOS key equivalents always register, but the page sees the key first and a handled
 * shortcut never reaches the menu; keys without a modifier (F, Delete) are not shown there, so
 * typing in a field can never trigger them.
 */
import type { MenuItemConstructorOptions } from 'electron';
import type { MenuAction } from './channels.js';

export interface MenuDeps {
  platform: NodeJS.Platform;
  /** Development build: adds Reload and Developer Tools. */
  dev: boolean;
  appName: string;
  /** Sends an editor action to the focused window's renderer. */
  send(action: MenuAction): void;
  openOutputFolder(): void;
  openModelsFolder(): void;
}

/** Label and shortcut of each action (labels as in renderer/actions.ts). */
const ACTION_ITEMS: Record<MenuAction, { label: string; accelerator?: string }> = {
  new: { label: 'New Workflow' },
  open: { label: 'Open…', accelerator: 'CmdOrCtrl+O' },
  save: { label: 'Save', accelerator: 'CmdOrCtrl+S' },
  saveAs: { label: 'Save As…', accelerator: 'CmdOrCtrl+Shift+S' },
  export: { label: 'Export Selected Outputs…', accelerator: 'CmdOrCtrl+E' },
  exportShared: { label: 'Export Workflow for Sharing…' },
  settings: { label: 'Settings…', accelerator: 'CmdOrCtrl+,' },
  undo: { label: 'Undo', accelerator: 'CmdOrCtrl+Z' },
  redo: { label: 'Redo', accelerator: 'CmdOrCtrl+Shift+Z' },
  copy: { label: 'Copy', accelerator: 'CmdOrCtrl+C' },
  paste: { label: 'Paste', accelerator: 'CmdOrCtrl+V' },
  duplicate: { label: 'Duplicate', accelerator: 'CmdOrCtrl+D' },
  delete: { label: 'Delete', accelerator: 'Delete' },
  selectAll: { label: 'Select All', accelerator: 'CmdOrCtrl+A' },
  addNode: { label: 'Add Node…', accelerator: 'Shift+A' },
  fitView: { label: 'Fit View', accelerator: 'F' },
  tidy: { label: 'Tidy Layout', accelerator: 'Shift+T' },
  run: { label: 'Run', accelerator: 'CmdOrCtrl+Enter' },
  cancel: { label: 'Cancel', accelerator: 'CmdOrCtrl+Shift+Backspace' },
};

const hasModifier = (accel: string) => /(Cmd|Ctrl|Command|Control|Alt|Option|Super|Meta)/.test(accel);

export function menuTemplate(d: MenuDeps): MenuItemConstructorOptions[] {
  const mac = d.platform === 'darwin';
  const sep: MenuItemConstructorOptions = { type: 'separator' };
  const action = (name: MenuAction): MenuItemConstructorOptions => {
    const { label, accelerator } = ACTION_ITEMS[name];
    const shown = accelerator && (!mac || hasModifier(accelerator)) ? { accelerator, registerAccelerator: false } : {};
    return { id: name, label, click: () => d.send(name), ...shown };
  };

  const appMenu: MenuItemConstructorOptions[] = mac
    ? [
        {
          label: d.appName,
          submenu: [
            { role: 'about' },
            sep,
            action('settings'),
            sep,
            { role: 'services' },
            sep,
            { role: 'hide' },
            { role: 'hideOthers' },
            { role: 'unhide' },
            sep,
            { role: 'quit' },
          ],
        },
      ]
    : [];

  const file: MenuItemConstructorOptions = {
    label: '&File',
    submenu: [
      action('new'),
      action('open'),
      sep,
      action('save'),
      action('saveAs'),
      sep,
      action('export'),
      action('exportShared'),
      ...(mac ? [sep, { role: 'close' } as const] : [sep, action('settings'), sep, { role: 'quit' } as const]),
    ],
  };
  const edit: MenuItemConstructorOptions = {
    label: '&Edit',
    submenu: [
      action('undo'),
      action('redo'),
      sep,
      // Cut has no graph meaning: the native role cuts text in the focused field.
      { role: 'cut' },
      action('copy'),
      action('paste'),
      action('duplicate'),
      action('delete'),
      action('selectAll'),
      sep,
      action('addNode'),
    ],
  };
  const view: MenuItemConstructorOptions = {
    label: '&View',
    submenu: [
      action('fitView'),
      action('tidy'),
      sep,
      { role: 'resetZoom' },
      { role: 'zoomIn' },
      { role: 'zoomOut' },
      sep,
      { role: 'togglefullscreen' },
      ...(d.dev ? [sep, { role: 'reload' } as const, { role: 'toggleDevTools' } as const] : []),
    ],
  };
  const run: MenuItemConstructorOptions = { label: '&Run', submenu: [action('run'), action('cancel')] };
  const windowMenu: MenuItemConstructorOptions[] = mac ? [{ role: 'windowMenu' }] : [];
  const help: MenuItemConstructorOptions = {
    role: 'help',
    submenu: [
      { label: 'Open Output Folder', click: () => d.openOutputFolder() },
      { label: 'Open Models Folder', click: () => d.openModelsFolder() },
      ...(mac ? [] : [sep, { role: 'about' } as const]),
    ],
  };
  return [...appMenu, file, edit, view, run, ...windowMenu, help];
}
