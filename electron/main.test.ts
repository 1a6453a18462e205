/**
 * main.ts wired against a fake `electron` module (the binary cannot run here): it must register
 * the privileged scheme and the sandbox before ready, then serve the renderer with its CSP, open
 * one hardened window, answer IPC through the validating handlers with the real engine, build
 * the menu, forward engine events, and close the engine on quit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { APP_ORIGIN, IPC } from './channels.js';

type Listener = (...args: any[]) => any;

const fake = vi.hoisted(() => {
  const calls: { schemes?: unknown; sandbox?: boolean; menu?: any[]; quit: number; errors: string[]; opened: string[] } = { quit: 0, errors: [], opened: [] };
  const appListeners = new Map<string, Listener[]>();
  const handles = new Map<string, Listener>();
  const ons = new Map<string, Listener>();
  let protocolHandler: Listener | null = null;
  let ready!: () => void;
  const whenReady = new Promise<void>((r) => (ready = r));
  const windows: any[] = [];
  const state = { appPath: '' };
  class BrowserWindow {
    static getAllWindows = () => windows;
    static getFocusedWindow = () => windows[0] ?? null;
    options: any;
    url = '';
    listeners = new Map<string, Listener>();
    webContents = {
      id: 7,
      sent: [] as unknown[][],
      on: () => {},
      isDestroyed: () => false,
      send: (c: string, p: unknown) => this.webContents.sent.push([c, p]),
    };
    constructor(options: any) {
      this.options = options;
      windows.push(this);
    }
    once(ev: string, l: Listener) {
      this.listeners.set(ev, l);
    }
    on(ev: string, l: Listener) {
      this.listeners.set(ev, l);
    }
    show() {}
    loadURL(url: string) {
      this.url = url;
      return Promise.resolve();
    }
    isMinimized() {
      return false;
    }
    focus() {}
    restore() {}
  }
  const electron = {
    app: {
      isPackaged: false,
      enableSandbox: () => void (calls.sandbox = true),
      on: (ev: string, l: Listener) => void appListeners.set(ev, [...(appListeners.get(ev) ?? []), l]),
      whenReady: () => whenReady,
      getAppPath: () => state.appPath,
      getVersion: () => '9.9.9',
      getName: () => 'IP-Adapter Studio',
      setName: () => {},
      getPath: () => os.tmpdir(),
      requestSingleInstanceLock: () => true,
      quit: () => void calls.quit++,
      exit: () => {},
    },
    BrowserWindow,
    dialog: {
      showOpenDialog: async () => ({ canceled: true, filePaths: [] }),
      showSaveDialog: async () => ({ canceled: true }),
      showErrorBox: (_t: string, m: string) => void calls.errors.push(m),
    },
    ipcMain: { handle: (c: string, l: Listener) => void handles.set(c, l), on: (c: string, l: Listener) => void ons.set(c, l) },
    Menu: { buildFromTemplate: (t: any[]) => t, setApplicationMenu: (m: any[]) => void (calls.menu = m) },
    protocol: {
      registerSchemesAsPrivileged: (s: unknown) => void (calls.schemes = s),
      handle: (_scheme: string, h: Listener) => void (protocolHandler = h),
    },
    session: { defaultSession: { setPermissionRequestHandler: () => {}, setPermissionCheckHandler: () => {}, webRequest: { onBeforeRequest: () => {} } } },
    shell: { openPath: async (p: string) => (calls.opened.push(p), '') },
  };
  return { electron, calls, appListeners, handles, ons, windows, state, ready, protocol: () => protocolHandler };
});

vi.mock('electron', () => fake.electron);

let dir: string;
const event = (url = `${APP_ORIGIN}/`) => ({ senderFrame: { url }, sender: { id: 7 } });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-main-'));
  fs.mkdirSync(path.join(dir, 'app', 'dist-renderer'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'app', 'dist-renderer', 'index.html'), '<!doctype html><title>t</title>');
  // One (empty) checkpoint file: the models folder is not empty, so the engine does not generate the demo set.
  fs.mkdirSync(path.join(dir, 'models', 'checkpoints'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'models', 'checkpoints', 'x.safetensors'), '');
  fake.state.appPath = path.join(dir, 'app');
  process.argv = ['electron', fake.state.appPath, '--user-data', path.join(dir, 'user'), '--models', path.join(dir, 'models')];
  await import('./main.js');
  expect(fake.calls.schemes).toEqual([{ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);
  expect(fake.calls.sandbox).toBe(true);
  expect(fake.windows).toHaveLength(0);
  fake.ready();
  for (let i = 0; i < 200 && !fake.windows.length; i++) await new Promise((r) => setTimeout(r, 10));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('main process (fake electron)', () => {
  it('opens one sandboxed window on app://studio/', () => {
    expect(fake.calls.errors).toEqual([]);
    expect(fake.windows).toHaveLength(1);
    const w = fake.windows[0];
    expect(w.url).toBe(`${APP_ORIGIN}/`);
    expect(w.options.webPreferences).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true });
    expect(w.options.webPreferences.preload).toMatch(/preload\.cjs$/);
    expect(fake.appListeners.has('web-contents-created')).toBe(true);
  });

  it('serves the renderer with the CSP and refuses other hosts', async () => {
    const res: Response = await fake.protocol()!({ url: `${APP_ORIGIN}/`, method: 'GET' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(await res.text()).toContain('<title>t</title>');
    expect((await fake.protocol()!({ url: 'app://elsewhere/', method: 'GET' })).status).toBe(404);
  });

  it('answers IPC with the real engine, validating every message', async () => {
    const invoke = fake.handles.get(IPC.invoke)!;
    const info = await invoke(event(), 'hostInfo', {});
    expect(info).toMatchObject({ ok: true, result: { host: 'electron', version: '9.9.9', demo: false } });
    const specs = await invoke(event(), 'nodeSpecs', {});
    expect(specs.ok && specs.result.length).toBeGreaterThan(5);
    expect(await invoke(event(), 'enqueue', { workflow: { nodes: 'x' } })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/invalid params for enqueue/),
    });
    expect(await invoke(event('https://evil.example/'), 'nodeSpecs', {})).toMatchObject({ ok: false, error: expect.stringMatching(/IPC refused/) });
    await expect(fake.handles.get(IPC.saveFile)!(event(), { name: 'a' })).rejects.toThrow(/malformed saveFile request/);
    expect(await fake.handles.get(IPC.openFile)!(event(), 'workflow')).toBeNull();
  });

  it('forwards engine events to the window', async () => {
    const wf = { format: 'ipadapter-studio/workflow', version: 1, nodes: [{ id: 'a', type: 'NoSuchNode', params: {} }], edges: [] };
    const r = await fake.handles.get(IPC.invoke)!(event(), 'enqueue', { workflow: wf });
    expect(r.ok).toBe(true);
    const sent = fake.windows[0].webContents.sent as [string, any][];
    for (let i = 0; i < 200 && !sent.some(([c, e]) => c === IPC.event && e.type === 'run-done'); i++) await new Promise((res) => setTimeout(res, 10));
    const done = sent.find(([c, e]) => c === IPC.event && e.type === 'run-done')!;
    expect(done[1]).toMatchObject({ runId: r.result.runId, ok: false });
  });

  it('menu items send their action to the window', () => {
    const items = fake.calls.menu!.flatMap((m: any) => m.submenu ?? []);
    items.find((i: any) => i.id === 'save').click();
    expect(fake.windows[0].webContents.sent.at(-1)).toEqual([IPC.menu, 'save']);
  });

  it('settings name existing folders only, and Open Output / Models Folder open only folders', async () => {
    const invoke = fake.handles.get(IPC.invoke)!;
    const program = path.join(dir, 'program.exe');
    fs.writeFileSync(program, 'MZ');
    const before = (await invoke(event(), 'getSettings', {})).result;
    for (const change of [{ outputDir: program }, { modelsDir: program }, { outputDir: path.join(dir, 'missing') }]) {
      const r = await invoke(event(), 'updateSettings', change);
      expect(r, JSON.stringify(change)).toMatchObject({ ok: false, error: expect.stringMatching(/is not a folder|does not exist/) });
    }
    expect((await invoke(event(), 'getSettings', {})).result).toEqual(before);
    expect(fs.existsSync(path.join(dir, 'user', 'settings.json'))).toBe(false); // nothing saved
    const help = fake.calls.menu!.flatMap((m: any) => m.submenu ?? []);
    help.find((i: any) => i.label === 'Open Output Folder').click();
    help.find((i: any) => i.label === 'Open Models Folder').click();
    for (let i = 0; i < 100 && fake.calls.opened.length < 2; i++) await new Promise((res) => setTimeout(res, 10));
    expect(fake.calls.opened.sort()).toEqual([before.outputDir, path.join(dir, 'models')].sort());
    expect(fake.calls.opened).not.toContain(program);
  });

  it('closes the engine before quitting', async () => {
    let prevented = false;
    for (const l of fake.appListeners.get('will-quit')!) l({ preventDefault: () => void (prevented = true) });
    expect(prevented).toBe(true);
    for (let i = 0; i < 200 && fake.calls.quit === 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(fake.calls.quit).toBe(1);
  });
});
