import { describe, expect, expectTypeOf, it } from 'vitest';
import type { FolderPurpose as RendererFolderPurpose } from '../renderer/host.js';
import { createBridge, inputImageUrl, isTextField, type IpcRendererLike } from './bridge.js';
import { FOLDER_PURPOSES, IPC, type FolderPurpose } from './channels.js';

function fakeIpc(reply: (channel: string, ...args: unknown[]) => unknown = () => null) {
  const listeners = new Map<string, Set<(e: unknown, ...a: unknown[]) => void>>();
  const invoked: unknown[][] = [];
  const sent: unknown[][] = [];
  const ipc: IpcRendererLike = {
    invoke: async (channel, ...args) => (invoked.push([channel, ...args]), reply(channel, ...args)),
    send: (channel, ...args) => void sent.push([channel, ...args]),
    on: (channel, l) => (listeners.has(channel) || listeners.set(channel, new Set()), listeners.get(channel)!.add(l)),
    removeListener: (channel, l) => listeners.get(channel)?.delete(l),
  };
  const emit = (channel: string, payload: unknown) => listeners.get(channel)?.forEach((l) => l({ sender: 'ipcRenderer' }, payload));
  return { ipc, invoked, sent, emit, listeners };
}

const el = (tagName: string, extra: Record<string, unknown> = {}) => ({ tagName, ...extra }) as unknown as Element;

describe('preload bridge', () => {
  it('carries calls on the typed channels', async () => {
    const f = fakeIpc((channel) => (channel === IPC.invoke ? { ok: true, result: [] } : null));
    const b = createBridge(f.ipc, () => null);
    expect(await b.invoke('nodeSpecs', {})).toEqual({ ok: true, result: [] });
    await b.openFile('workflow');
    const bytes = new Uint8Array([1, 2]);
    await b.saveFile('a.json', bytes, 'application/json', { saveAs: true });
    await b.pickFolder('models', '/home/u/models');
    await b.pickFolder('output');
    expect(f.invoked).toEqual([
      [IPC.invoke, 'nodeSpecs', {}],
      [IPC.openFile, 'workflow'],
      [IPC.saveFile, { name: 'a.json', bytes, mime: 'application/json', opts: { saveAs: true } }],
      [IPC.pickFolder, { purpose: 'models', current: '/home/u/models' }],
      [IPC.pickFolder, { purpose: 'output' }],
    ]);
    // The renderer's folder purposes are the ones main validates.
    expectTypeOf<RendererFolderPurpose>().toEqualTypeOf<FolderPurpose>();
    expect([...FOLDER_PURPOSES]).toEqual(['models', 'output'] satisfies RendererFolderPurpose[]);
  });

  it('turns a rejected invoke into an error result', async () => {
    const f = fakeIpc(() => {
      throw new Error('no handler');
    });
    expect(await createBridge(f.ipc, () => null).invoke('nodeSpecs', {})).toEqual({ ok: false, error: 'no handler' });
  });

  it('passes event payloads only (never the IPC event), and unsubscribes', () => {
    const f = fakeIpc();
    const b = createBridge(f.ipc, () => null);
    const got: unknown[] = [];
    const off = b.onEvent((e) => got.push(e));
    f.emit(IPC.event, { type: 'run-start', runId: 'r' });
    off();
    f.emit(IPC.event, { type: 'run-start', runId: 'r2' });
    expect(got).toEqual([{ type: 'run-start', runId: 'r' }]);
    expect(f.listeners.get(IPC.event)!.size).toBe(0);
  });

  it('routes menu actions: to the editor, or to native text editing while a text field has focus', () => {
    const f = fakeIpc();
    let focused: Element | null = el('DIV');
    const b = createBridge(f.ipc, () => focused);
    const got: string[] = [];
    b.onMenuAction((a) => got.push(a));
    f.emit(IPC.menu, 'undo');
    f.emit(IPC.menu, 'not-an-action');
    f.emit(IPC.menu, 42);
    focused = el('TEXTAREA');
    f.emit(IPC.menu, 'undo');
    f.emit(IPC.menu, 'run');
    focused = el('INPUT', { type: 'checkbox' });
    f.emit(IPC.menu, 'paste');
    expect(got).toEqual(['undo', 'run', 'paste']);
    expect(f.sent).toEqual([[IPC.nativeEdit, 'undo']]);
  });

  it('knows text fields and input image URLs', () => {
    expect(isTextField(el('INPUT', { type: 'text' }))).toBe(true);
    expect(isTextField(el('INPUT', { type: 'range' }))).toBe(false);
    expect(isTextField(el('DIV', { isContentEditable: true }))).toBe(true);
    expect(isTextField(null)).toBe(false);
    expect(inputImageUrl('/home/u/.ipadapter-studio/inputs/cat-1a2b.png')).toBe('/inputs/cat-1a2b.png');
    expect(inputImageUrl('C:\\Users\\u\\inputs\\a b.jpg')).toBe('/inputs/a%20b.jpg');
    expect(inputImageUrl('/home/u/pictures/cat.png')).toBeNull();
    expect(inputImageUrl('inputs/cat-1a2b.png')).toBe('/inputs/cat-1a2b.png');
    expect(inputImageUrl('images/cat.png')).toBeNull();
  });
});
