/**
 * What the preload exposes as `window.ipaStudio` (renderer/host.ts `BridgeApi`, used by its
 * `BridgeHost`). Built over an ipcRenderer-like object so tests drive it without Electron.
 * Only payloads cross into the page: never the IpcRendererEvent (its `sender` is ipcRenderer).
 */
import type { BridgeApi, OpenedFile } from '../renderer/host.js';
import { inputsImageUrl } from '../engine/image-refs.js';
import { IPC, MENU_ACTIONS, TEXT_EDIT_OF, type MenuAction } from './channels.js';

export interface IpcRendererLike {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  send(channel: string, ...args: unknown[]): void;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

/** The bridge: BridgeApi plus the application menu's actions. */
export interface DesktopBridge extends BridgeApi {
  onMenuAction(listener: (action: MenuAction) => void): () => void;
}

const TEXT_INPUT_TYPES = new Set(['', 'text', 'search', 'url', 'tel', 'email', 'password', 'number']);

/** True when keyboard editing commands belong to this element (a text field), not to the canvas. */
export function isTextField(el: Element | null): boolean {
  if (!el) return false;
  const tag = el.tagName;
  if (tag === 'TEXTAREA') return true;
  if (tag === 'INPUT') return TEXT_INPUT_TYPES.has(((el as HTMLInputElement).type ?? '').toLowerCase());
  return (el as HTMLElement).isContentEditable === true;
}

/** Same rule as web mode: an uploaded image (`inputs/<file>`, in the inputs folder) is served under /inputs/. */
export const inputImageUrl = inputsImageUrl;

export function createBridge(ipc: IpcRendererLike, focused: () => Element | null): DesktopBridge {
  function subscribe<T>(channel: string, accept: (payload: unknown) => T | null, listener: (v: T) => void): () => void {
    const handler = (_event: unknown, payload: unknown) => {
      const v = accept(payload);
      if (v !== null) listener(v);
    };
    ipc.on(channel, handler);
    return () => void ipc.removeListener(channel, handler);
  }

  return {
    async invoke(method, params) {
      try {
        return (await ipc.invoke(IPC.invoke, method, params)) as Awaited<ReturnType<BridgeApi['invoke']>>;
      } catch (e) {
        return { ok: false, error: (e as Error)?.message ?? String(e) };
      }
    },
    onEvent(listener) {
      return subscribe(IPC.event, (p) => p, listener);
    },
    async openFile(kind) {
      return (await ipc.invoke(IPC.openFile, kind)) as OpenedFile | null;
    },
    async saveFile(name, bytes, mime, opts) {
      return (await ipc.invoke(IPC.saveFile, { name, bytes, mime, opts })) as string | null;
    },
    async pickFolder(purpose, current) {
      return (await ipc.invoke(IPC.pickFolder, current === undefined ? { purpose } : { purpose, current })) as string | null;
    },
    imageUrl: inputImageUrl,
    onMenuAction(listener) {
      // Edit > Undo / Copy / ... while a text field has focus edits the text, as any app's menu would.
      const route = (p: unknown): MenuAction | null => {
        if (typeof p !== 'string' || !(MENU_ACTIONS as readonly string[]).includes(p)) return null;
        const edit = TEXT_EDIT_OF[p as MenuAction];
        if (edit && isTextField(focused())) {
          ipc.send(IPC.nativeEdit, edit);
          return null;
        }
        return p as MenuAction;
      };
      return subscribe(IPC.menu, route, listener);
    },
  };
}
