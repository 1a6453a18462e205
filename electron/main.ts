/** electron/: the desktop host — main process, preload bridge, IPC, menus, security, packaging build. */
/**
 * The Electron main process: a thin host. It owns the engine (engine/engine.ts), serves the built
 * renderer from app://studio/, opens one sandboxed window, registers the IPC handlers of ipc.ts
 * (which validate every message), the application menu, and forwards engine events.
 * Bundled to dist-electron/main.js (ESM) by electron/build.ts; launched by `npm start`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  app,
  BrowserWindow,
  dialog,
  ipcMain,
  Menu,
  protocol,
  session,
  shell,
  type IpcMainEvent,
  type IpcMainInvokeEvent,
  type OpenDialogOptions,
  type SaveDialogOptions,
} from 'electron';
import type { RunEvent } from '../engine/api.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { farmStateFileOf, queueStateFileOf, withFarm } from '../engine/farm/editor-queue.js';
import { providerReadinessHere } from '../models/providers-here.js';
import { readinessNotice } from '../models/providers.js';
import { hostNotices, providersHere, readSettings, resolveSettings, saveSettings, settingsFileOf } from '../engine/hosts/host-config.js';
import { resolveAppRequest } from './app-protocol.js';
import { APP_ORIGIN, APP_SCHEME, IPC, type MenuAction } from './channels.js';
import { parseDesktopArgs } from './config.js';
import { openFolderOnly } from './files.js';
import { createDesktopHost, type Dialogs, type Sender } from './ipc.js';
import { menuTemplate } from './menu.js';
import { hardenSession, hardenWebContents, windowOptions } from './security.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const log = (msg: string) => console.log(`[main] ${msg}`);

// Before 'ready': the app scheme behaves like https (origin, storage, fetch), and every renderer is sandboxed.
protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);
app.enableSandbox();
app.on('web-contents-created', (_e, contents) => hardenWebContents(contents, log));

let engine: Engine | null = null;
let mainWindow: BrowserWindow | null = null;

function senderOf(e: IpcMainEvent | IpcMainInvokeEvent): Sender {
  return { url: e.senderFrame?.url ?? '', id: e.sender.id };
}

function windowOf(sender: Sender): BrowserWindow | null {
  return BrowserWindow.getAllWindows().find((w) => w.webContents.id === sender.id) ?? null;
}

const dialogs: Dialogs = {
  async openFile(sender, kind, filters, defaultPath) {
    const opts: OpenDialogOptions = { title: kind === 'workflow' ? 'Open Workflow' : 'Open Image', filters, defaultPath, properties: ['openFile'] };
    const win = windowOf(sender);
    const r = await (win ? dialog.showOpenDialog(win, opts) : dialog.showOpenDialog(opts));
    return r.canceled ? null : (r.filePaths[0] ?? null);
  },
  async saveFile(sender, defaultPath, filters) {
    const opts: SaveDialogOptions = { title: 'Save', defaultPath, filters, properties: ['createDirectory', 'showOverwriteConfirmation'] };
    const win = windowOf(sender);
    const r = await (win ? dialog.showSaveDialog(win, opts) : dialog.showSaveDialog(opts));
    return r.canceled ? null : r.filePath || null;
  },
  async pickFolder(sender, defaultPath, title) {
    const opts: OpenDialogOptions = { title: title ?? 'Export to Folder', defaultPath, properties: ['openDirectory', 'createDirectory'] };
    const win = windowOf(sender);
    const r = await (win ? dialog.showOpenDialog(win, opts) : dialog.showOpenDialog(opts));
    return r.canceled ? null : (r.filePaths[0] ?? null);
  },
};

function createWindow(rendererDir: string): BrowserWindow {
  const icon = path.join(app.getAppPath(), 'build', 'icon.png');
  const win = new BrowserWindow(windowOptions(path.join(here, 'preload.cjs'), fs.existsSync(icon) ? icon : undefined));
  win.once('ready-to-show', () => win.show());
  win.webContents.on('render-process-gone', (_e, d) => log(`renderer gone: ${d.reason}`));
  const id = win.webContents.id;
  win.on('closed', () => {
    host?.release(id);
    if (mainWindow === win) mainWindow = null;
  });
  if (!fs.existsSync(path.join(rendererDir, 'index.html'))) {
    dialog.showErrorBox('IP-Adapter Studio', `The editor is not built (${rendererDir}/index.html is missing). Run: npm run build:renderer`);
  }
  void win.loadURL(`${APP_ORIGIN}/`);
  return win;
}

let host: ReturnType<typeof createDesktopHost> | null = null;

function sendToWindows(channel: string, payload: unknown): void {
  for (const w of BrowserWindow.getAllWindows()) if (!w.webContents.isDestroyed()) w.webContents.send(channel, payload);
}

async function start(): Promise<void> {
  // process.argv: [electron, app path, ...flags] in development, [app, ...flags] when packaged.
  const args = parseDesktopArgs(process.argv.slice(app.isPackaged ? 1 : 2));
  fs.mkdirSync(args.userData, { recursive: true });
  const settingsFile = settingsFileOf(args.userData);
  const settings = resolveSettings(args, settingsFile);
  for (const d of [settings.modelsDir, settings.outputDir]) fs.mkdirSync(d, { recursive: true });
  const inputsDir = path.join(args.userData, 'inputs');
  fs.mkdirSync(inputsDir, { recursive: true });

  await app.whenReady();
  const appRoot = app.getAppPath();
  const rendererDir = path.join(appRoot, 'dist-renderer');

  // Settings' Run on a queue: the render farm (engine/farm/editor-queue.ts); else this machine.
  engine = withFarm(createEngine({ ...settings, userDataDir: args.userData, demo: args.demo, queueStateFile: queueStateFileOf(args.userData) }), {
    inputsDir,
    stateFile: farmStateFileOf(args.userData),
  });
  const eng = engine;
  eng.subscribe((e: RunEvent) => {
    if (e.type === 'log') log(`[engine] ${e.message}`);
  });
  const providers = providersHere();
  const providerReadiness = providerReadinessHere();

  hardenSession(session.defaultSession, log, { packaged: app.isPackaged });
  protocol.handle(APP_SCHEME, async (req) => {
    const answer = resolveAppRequest(req.url, req.method, { renderer: rendererDir, outputs: () => eng.settings().outputDir, inputs: inputsDir });
    if (answer.status !== 200) return new Response(answer.body, { status: answer.status, headers: answer.headers });
    try {
      const body = req.method === 'HEAD' ? null : await fs.promises.readFile(answer.file);
      return new Response(body, { status: 200, headers: answer.headers });
    } catch {
      return new Response('not found', { status: 404, headers: { 'Content-Type': 'text/plain' } });
    }
  });

  host = createDesktopHost({
    engine: eng,
    info: () => ({
      version: app.getVersion(),
      providers,
      providerReadiness,
      demo: eng.isDemo(),
      notices: [
        ...hostNotices(eng, { demoFlag: args.demo, modelsSet: args.models !== undefined || readSettings(settingsFile).modelsDir !== undefined }),
        ...readinessNotice(providerReadiness, eng.settings().provider),
      ],
    }),
    examplesDir: path.join(appRoot, 'examples'),
    inputsDir,
    documentsDir: app.getPath('documents'),
    dialogs,
    onSettings: (s) => void saveSettings(settingsFile, s).catch((e: Error) => log(e.message)),
  });
  const h = host;
  ipcMain.handle(IPC.invoke, (e, method: unknown, params: unknown) => h.invoke(senderOf(e), method, params));
  ipcMain.handle(IPC.openFile, (e, kind: unknown) => h.openFile(senderOf(e), kind));
  ipcMain.handle(IPC.saveFile, (e, request: unknown) => h.saveFile(senderOf(e), request));
  ipcMain.handle(IPC.pickFolder, (e, request: unknown) => h.pickFolder(senderOf(e), request));
  ipcMain.on(IPC.nativeEdit, (e, action: unknown) => {
    try {
      e.sender[h.nativeEdit(senderOf(e), action)]();
    } catch (err) {
      log((err as Error).message);
    }
  });
  h.forwardEvents((ev) => sendToWindows(IPC.event, ev));

  const showOpenError = (err: string | null) => {
    if (err) {
      log(err);
      dialog.showErrorBox('IP-Adapter Studio', err);
    }
  };
  const send = (action: MenuAction) => {
    const win = BrowserWindow.getFocusedWindow() ?? mainWindow;
    if (win && !win.webContents.isDestroyed()) win.webContents.send(IPC.menu, action);
  };
  Menu.setApplicationMenu(
    Menu.buildFromTemplate(
      menuTemplate({
        platform: process.platform,
        dev: !app.isPackaged,
        appName: app.getName(),
        send,
        // Folders only: a setting naming a program or a document is never handed to the shell.
        openOutputFolder: () => void openFolderOnly(eng.settings().outputDir, (p) => shell.openPath(p)).then(showOpenError),
        openModelsFolder: () => void openFolderOnly(eng.modelsDir(), (p) => shell.openPath(p)).then(showOpenError),
      }),
    ),
  );

  mainWindow = createWindow(rendererDir);
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) mainWindow = createWindow(rendererDir);
  });
}

app.setName('IP-Adapter Studio');
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => {
    if (mainWindow) {
      if (mainWindow.isMinimized()) mainWindow.restore();
      mainWindow.focus();
    }
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  let closing = false;
  app.on('will-quit', (e) => {
    // Release ONNX Runtime sessions before the process goes (once; then quit for real).
    if (!engine || closing) return;
    closing = true;
    e.preventDefault();
    void engine
      .close()
      .catch(() => {})
      .finally(() => app.quit());
  });
  start().catch((e: Error) => {
    dialog.showErrorBox('IP-Adapter Studio could not start', e.stack ?? e.message);
    app.exit(1);
  });
}
