/**
 * Electron IPC: the one map of channel names, shared by main and preload (no raw channel strings
 * elsewhere). The engine calls themselves are the channels of `engine/protocol.ts`, carried through
 * `invoke` as (method, params); the rest are what only a desktop host has (dialogs, menu, native edits).
 * No imports: the sandboxed preload bundles this file.
 */
export const IPC = {
  /** renderer -> main (invoke): (method: ChannelName, params) -> { ok, result } | { ok: false, error } */
  invoke: 'ipa:invoke',
  /** renderer -> main (invoke): (kind: 'workflow' | 'image') -> { name, bytes } | null */
  openFile: 'ipa:open-file',
  /** renderer -> main (invoke): SaveFileRequest -> path written, or null when cancelled */
  saveFile: 'ipa:save-file',
  /** renderer -> main (invoke): PickFolderRequest -> the folder chosen in a native dialog, or null when cancelled */
  pickFolder: 'ipa:pick-folder',
  /** renderer -> main (send): a text-editing command for the focused field (menu clicked while typing) */
  nativeEdit: 'ipa:native-edit',
  /** main -> renderer: one engine RunEvent */
  event: 'ipa:event',
  /** main -> renderer: the name of a registered editor action chosen in the application menu */
  menu: 'ipa:menu',
} as const;

export type IpcChannel = (typeof IPC)[keyof typeof IPC];

/** Which setting a folder is picked for (Settings: the models folder, the output folder). */
export const FOLDER_PURPOSES = ['models', 'output'] as const;
export type FolderPurpose = (typeof FOLDER_PURPOSES)[number];

/** Menu items that name editor actions (renderer/actions.ts; a unit test keeps both lists in step). */
export const MENU_ACTIONS = [
  'new',
  'open',
  'save',
  'saveAs',
  'export',
  'exportShared',
  'settings',
  'undo',
  'redo',
  'copy',
  'paste',
  'duplicate',
  'delete',
  'selectAll',
  'addNode',
  'fitView',
  'tidy',
  'run',
  'cancel',
] as const;
export type MenuAction = (typeof MENU_ACTIONS)[number];

/** webContents editing commands main may run for the focused text field. */
export const NATIVE_EDITS = ['undo', 'redo', 'cut', 'copy', 'paste', 'delete', 'selectAll'] as const;
export type NativeEdit = (typeof NATIVE_EDITS)[number];

/**
 * Menu actions that mean a text edit while a text field has focus: clicking Edit > Undo while typing
 * a prompt undoes typing, not the last graph edit.
 */
export const TEXT_EDIT_OF: Partial<Record<MenuAction, NativeEdit>> = {
  undo: 'undo',
  redo: 'redo',
  copy: 'copy',
  paste: 'paste',
  delete: 'delete',
  selectAll: 'selectAll',
};

/** The custom scheme and host the renderer is loaded from (never file:// or http://). */
export const APP_SCHEME = 'app';
export const APP_HOST = 'studio';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
