import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EngineApi, EngineSettings, RunEvent, Workflow } from '../engine/api.js';
import { APP_ORIGIN } from './channels.js';
import { createDesktopHost, EXPORT_BATCH_MS, type Dialogs, type Sender } from './ipc.js';

/** A recording fake of the engine API: the host only validates and forwards. */
function fakeEngine(outputDir: string) {
  const listeners = new Set<(e: RunEvent) => void>();
  let settings: EngineSettings = { modelsDir: '/m', outputDir, provider: 'cpu' };
  const calls: unknown[][] = [];
  const api: EngineApi = {
    nodeSpecs: () => [],
    listModels: async () => ({ checkpoints: ['a.safetensors'], ipadapter: [], clip_vision: [], controlnet: [], vae: [], loras: [], tokenizers: [] }),
    validate: (wf) => (calls.push(['validate', wf]), []),
    enqueue: (wf) => (calls.push(['enqueue', wf]), { runId: 'r1' }),
    cancel: (id) => void calls.push(['cancel', id]),
    subscribe: (l) => (listeners.add(l), () => listeners.delete(l)),
    settings: () => settings,
    updateSettings: (s) => (settings = { ...settings, ...s }),
  };
  const emit = (e: RunEvent) => listeners.forEach((l) => l(e));
  return { api, calls, emit, listeners };
}

/** Dialogs that answer from a queue, recording what they were asked. */
function fakeDialogs() {
  const answers: (string | null)[] = [];
  const asked: string[] = [];
  const next = async (what: string) => (asked.push(what), answers.length ? answers.shift()! : null);
  const dialogs: Dialogs = {
    openFile: (_s, kind) => next(`open ${kind}`),
    saveFile: (_s, defaultPath) => next(`save ${defaultPath}`),
    // Export's folder pick has no title; Settings' Browse… names its folder.
    pickFolder: (_s, defaultPath, title) => next(title ? `folder "${title}" at ${defaultPath}` : 'folder'),
  };
  return { dialogs, answers, asked };
}

const WF: Workflow = {
  format: 'ipadapter-studio/workflow',
  version: 1,
  nodes: [{ id: 'a', type: 'EmptyLatentImage', params: { width: 512 }, ui: { x: 0, y: 0 } }],
  edges: [],
};
const ours: Sender = { url: `${APP_ORIGIN}/index.html`, id: 1 };

let dir: string;
let engine: ReturnType<typeof fakeEngine>;
let dlg: ReturnType<typeof fakeDialogs>;
let clock: number;
let saved: EngineSettings[];
let host: ReturnType<typeof createDesktopHost>;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-electron-'));
  for (const d of ['out', 'examples', 'inputs', 'docs', 'chosen']) fs.mkdirSync(path.join(dir, d));
  fs.writeFileSync(path.join(dir, 'examples', 'one.json'), JSON.stringify({ ...WF, meta: { title: 'First' } }));
  fs.writeFileSync(path.join(dir, 'secret.json'), JSON.stringify(WF));
  engine = fakeEngine(path.join(dir, 'out'));
  dlg = fakeDialogs();
  clock = 1_000_000;
  saved = [];
  host = createDesktopHost({
    engine: engine.api,
    info: () => ({ version: '0.1.0', providers: ['cpu'], demo: true, notices: [] }),
    examplesDir: path.join(dir, 'examples'),
    inputsDir: path.join(dir, 'inputs'),
    documentsDir: path.join(dir, 'docs'),
    dialogs: dlg.dialogs,
    onSettings: (s) => saved.push(s),
    now: () => clock,
  });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('invoke: engine calls over the protocol channel map', () => {
  it('dispatches valid requests', async () => {
    expect(await host.invoke(ours, 'hostInfo', {})).toEqual({
      ok: true,
      result: { host: 'electron', version: '0.1.0', providers: ['cpu'], demo: true, notices: [] },
    });
    expect(await host.invoke(ours, 'enqueue', { workflow: WF })).toEqual({ ok: true, result: { runId: 'r1' } });
    expect(await host.invoke(ours, 'cancel', { runId: 'r1' })).toEqual({ ok: true, result: {} });
    expect(engine.calls.map((c) => c[0])).toEqual(['enqueue', 'cancel']);
    expect(engine.calls[0][1]).toEqual(WF);
    const r = await host.invoke(ours, 'updateSettings', { provider: 'webgpu' });
    expect(r.ok && (r.result as EngineSettings).provider).toBe('webgpu');
    expect(saved.map((s) => s.provider)).toEqual(['webgpu']);
    expect(await host.invoke(ours, 'listExamples', undefined)).toEqual({ ok: true, result: [{ name: 'one.json', title: 'First' }] });
    const ex = await host.invoke(ours, 'readExample', { name: 'one.json' });
    expect(ex.ok && (ex.result as Workflow).nodes[0].id).toBe('a');
  });

  it('rejects malformed messages without calling the engine, and keeps answering', async () => {
    const bad: [unknown, unknown, RegExp][] = [
      ['nope', {}, /unknown method "nope"/],
      [42, {}, /unknown method 42/],
      ['toString', {}, /unknown method "toString"/],
      ['__proto__', {}, /unknown method/],
      ['enqueue', { workflow: { ...WF, format: 'other' } }, /invalid params for enqueue: workflow.format/],
      ['enqueue', { workflow: { ...WF, nodes: [{ id: '', type: 'x', params: {} }] } }, /invalid params for enqueue/],
      ['enqueue', { workflow: WF, extra: 1 }, /invalid params for enqueue/],
      ['enqueue', 'a string', /invalid params for enqueue/],
      ['validate', { workflow: { ...WF, nodes: [{ id: 'a', type: 't', params: { p: { nested: 1 } } }] } }, /invalid params for validate/],
      ['cancel', { runId: 7 }, /invalid params for cancel: runId/],
      ['updateSettings', { provider: 'tpu' }, /invalid params for updateSettings: provider/],
      ['updateSettings', { outputDir: '' }, /invalid params for updateSettings: outputDir/],
      ['readExample', { name: '../secret.json' }, /invalid params for readExample: name/],
      ['uploadImage', { name: 'x.png', dataBase64: '' }, /invalid params for uploadImage/],
    ];
    for (const [method, params, error] of bad) {
      const r = await host.invoke(ours, method, params);
      expect(r.ok, `${String(method)} ${JSON.stringify(params)}`).toBe(false);
      expect(!r.ok && r.error).toMatch(error);
    }
    expect(engine.calls).toEqual([]);
    expect(saved).toEqual([]);
    expect((await host.invoke(ours, 'enqueue', { workflow: WF })).ok).toBe(true);
  });

  it('imports example images and the sample image into the inputs folder, as web mode does', async () => {
    // A PNG header is all imageSize reads: 8-byte signature, IHDR with width 3, height 2.
    const png = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
      Buffer.from('IHDR'),
      Buffer.from([0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0, 0, 0, 0, 0]),
    ]);
    fs.mkdirSync(path.join(dir, 'examples', 'images'));
    fs.writeFileSync(path.join(dir, 'examples', 'images', 'image-prompt.png'), png);
    fs.writeFileSync(
      path.join(dir, 'examples', 'two.json'),
      JSON.stringify({ ...WF, nodes: [{ id: 'l', type: 'LoadImage', params: { image: 'images/image-prompt.png' } }] }),
    );
    engine.api.nodeSpecs = () => [
      {
        type: 'LoadImage',
        title: 'Load Image',
        category: 'image',
        description: '',
        inputs: [],
        outputs: [],
        params: [{ name: 'image', kind: 'image', default: '' }],
      },
    ];
    const ex = await host.invoke(ours, 'readExample', { name: 'two.json' });
    const value = ex.ok && ((ex.result as Workflow).nodes[0].params.image as string);
    expect(value).toMatch(/^inputs\/image-prompt-[0-9a-f]{12}\.png$/);
    expect(fs.existsSync(path.join(dir, value as string))).toBe(true);
    const info = await host.invoke(ours, 'hostInfo', {});
    expect(info.ok && (info.result as { sampleImage?: { value: string } }).sampleImage?.value).toBe(value);
  });

  it('answers an engine failure as an error, not a throw', async () => {
    engine.api.enqueue = () => {
      throw new Error('the model store is busy');
    };
    expect(await host.invoke(ours, 'enqueue', { workflow: WF })).toEqual({ ok: false, error: 'the model store is busy' });
    expect(await host.invoke(ours, 'uploadImage', { name: 'x.png', dataBase64: Buffer.from('not an image').toString('base64') })).toEqual({
      ok: false,
      error: 'x.png is not a PNG, JPEG or WebP image',
    });
  });

  it('refuses senders that are not pages of the app origin', async () => {
    for (const url of ['https://evil.example/', 'file:///tmp/x.html', 'app://other/', `${APP_ORIGIN}.evil.example/`, '', 'devtools://devtools/']) {
      const r = await host.invoke({ url, id: 1 }, 'nodeSpecs', {});
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error).toMatch(/IPC refused/);
      await expect(host.openFile({ url, id: 1 }, 'workflow')).rejects.toThrow(/IPC refused/);
      await expect(
        host.saveFile({ url, id: 1 }, { name: 'a.json', bytes: new Uint8Array(1), mime: 'application/json', opts: { saveAs: true } }),
      ).rejects.toThrow(/IPC refused/);
      expect(() => host.nativeEdit({ url, id: 1 }, 'copy')).toThrow(/IPC refused/);
    }
    expect(dlg.asked).toEqual([]);
  });
});

describe('events', () => {
  it('forwards engine events; output images get app URLs (in the output folder) or are inlined', async () => {
    const got: RunEvent[] = [];
    const off = host.forwardEvents((e) => got.push(e));
    const tmpPng = path.join(dir, 'preview.png');
    fs.writeFileSync(tmpPng, Buffer.from([1, 2, 3]));
    engine.emit({ type: 'run-start', runId: 'r1' });
    engine.emit({
      type: 'output',
      runId: 'r1',
      node: 's',
      images: [
        { path: path.join(dir, 'out', 'sub dir', 'a#1.png'), width: 8, height: 8 },
        { path: tmpPng, width: 1, height: 1 },
      ],
    });
    expect(got[0]).toEqual({ type: 'run-start', runId: 'r1' });
    const out = got[1] as Extract<RunEvent, { type: 'output' }>;
    expect(out.images.map((i) => i.url)).toEqual(['/outputs/sub%20dir/a%231.png', 'data:image/png;base64,AQID']);
    off();
    expect(engine.listeners.size).toBe(0);
  });
});

describe('openFile', () => {
  it('returns the chosen file; cancel gives null; a bad kind is refused', async () => {
    const file = path.join(dir, 'chosen', 'w.json');
    fs.writeFileSync(file, '{"x":1}');
    dlg.answers.push(file, null);
    const got = await host.openFile(ours, 'workflow');
    expect(got?.name).toBe('w.json');
    expect(new TextDecoder().decode(got!.bytes)).toBe('{"x":1}');
    expect(await host.openFile(ours, 'image')).toBeNull();
    await expect(host.openFile(ours, 'executable')).rejects.toThrow(/malformed openFile kind/);
    await expect(host.openFile(ours, { kind: 'workflow' })).rejects.toThrow(/malformed openFile kind/);
    expect(dlg.asked).toEqual(['open workflow', 'open image']);
  });

  it('refuses a folder', async () => {
    dlg.answers.push(path.join(dir, 'chosen'));
    await expect(host.openFile(ours, 'workflow')).rejects.toThrow(/is not a file/);
  });
});

describe('saveFile', () => {
  const json = (s: string) => new TextEncoder().encode(s);
  const leftovers = (d: string) => fs.readdirSync(d).filter((f) => f.endsWith('.tmp'));

  it('Save As asks, writes atomically; Save then writes back to the same file without asking', async () => {
    const target = path.join(dir, 'chosen', 'mine.json');
    dlg.answers.push(target);
    expect(await host.saveFile(ours, { name: 'workflow.json', bytes: json('{"v":1}'), mime: 'application/json', opts: { saveAs: true } })).toBe(target);
    expect(dlg.asked).toEqual([`save ${path.join(dir, 'docs', 'workflow.json')}`]);
    expect(await host.saveFile(ours, { name: 'mine.json', bytes: json('{"v":2}'), mime: 'application/json', opts: { saveAs: false } })).toBe(target);
    expect(dlg.asked.length).toBe(1);
    expect(fs.readFileSync(target, 'utf8')).toBe('{"v":2}');
    expect(leftovers(path.join(dir, 'chosen'))).toEqual([]);
  });

  it('Save of a name the host never chose asks (the renderer cannot name a path)', async () => {
    dlg.answers.push(null);
    expect(await host.saveFile(ours, { name: '/etc/passwd', bytes: json('x'), mime: 'application/json', opts: { saveAs: false } })).toBeNull();
    expect(dlg.asked).toEqual([`save ${path.join(dir, 'docs', 'passwd.json')}`]);
  });

  it('opening a JSON makes Save write back to it', async () => {
    const file = path.join(dir, 'chosen', 'opened.json');
    fs.writeFileSync(file, '{}');
    dlg.answers.push(file);
    await host.openFile(ours, 'workflow');
    expect(await host.saveFile(ours, { name: 'opened.json', bytes: json('{"n":1}'), mime: 'application/json', opts: { saveAs: false } })).toBe(file);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"n":1}');
  });

  it('exports into a picked folder: one pick per batch, names confined and never overwriting', async () => {
    const folder = path.join(dir, 'chosen');
    fs.writeFileSync(path.join(folder, 'out.png'), 'old');
    dlg.answers.push(folder);
    const png = new Uint8Array([137, 80, 78, 71]);
    const a = await host.saveFile(ours, { name: 'out.png', bytes: png, mime: 'image/png', opts: { saveAs: true, folder: true } });
    const b = await host.saveFile(ours, { name: '../../escape.png', bytes: png, mime: 'image/png', opts: { saveAs: true, folder: true } });
    const c = await host.saveFile(ours, { name: '..\\..\\win.png', bytes: png, mime: 'image/png', opts: { saveAs: true, folder: true } });
    expect([a, b, c]).toEqual([path.join(folder, 'out-1.png'), path.join(folder, 'escape.png'), path.join(folder, 'win.png')]);
    expect(fs.readFileSync(path.join(folder, 'out.png'), 'utf8')).toBe('old');
    expect(fs.existsSync(path.join(dir, 'escape.png'))).toBe(false);
    expect(dlg.asked).toEqual(['folder']);
    clock += EXPORT_BATCH_MS + 1;
    dlg.answers.push(null);
    expect(await host.saveFile(ours, { name: 'late.png', bytes: png, mime: 'image/png', opts: { saveAs: true, folder: true } })).toBeNull();
    expect(dlg.asked).toEqual(['folder', 'folder']);
    expect(leftovers(folder)).toEqual([]);
  });

  it('rejects malformed save requests', async () => {
    const bad: unknown[] = [
      null,
      'x',
      { name: 'a.json', bytes: 'not bytes', mime: 'application/json', opts: { saveAs: true } },
      { name: 'a.json', bytes: [1, 2], mime: 'application/json', opts: { saveAs: true } },
      { name: '', bytes: new Uint8Array(1), mime: 'application/json', opts: { saveAs: true } },
      { name: 'a.json', bytes: new Uint8Array(1), mime: 'application/json', opts: { saveAs: 'yes' } },
      { name: 'a.json', bytes: new Uint8Array(1), mime: 'application/json', opts: { saveAs: true }, path: '/etc/passwd' },
    ];
    for (const req of bad) await expect(host.saveFile(ours, req)).rejects.toThrow(/malformed saveFile request/);
    expect(dlg.asked).toEqual([]);
  });
});

describe('pickFolder (Settings: Browse…)', () => {
  it('opens the native folder dialog where the field points (or at the folder in use); cancel gives null', async () => {
    const chosen = path.join(dir, 'chosen');
    dlg.answers.push(chosen, null, chosen);
    expect(await host.pickFolder(ours, { purpose: 'models', current: chosen })).toBe(chosen);
    expect(await host.pickFolder(ours, { purpose: 'output', current: 'relative/typed' })).toBeNull();
    expect(await host.pickFolder(ours, { purpose: 'models' })).toBe(chosen);
    expect(dlg.asked).toEqual([
      `folder "Choose the Models Folder" at ${chosen}`,
      `folder "Choose the Output Folder" at ${path.join(dir, 'out')}`,
      'folder "Choose the Models Folder" at /m',
    ]);
    // Picking is not applying: the engine's settings change only through updateSettings.
    expect(engine.api.settings().modelsDir).toBe('/m');
    expect(saved).toEqual([]);
  });

  it('rejects malformed requests and foreign senders before any dialog', async () => {
    const bad: unknown[] = [
      null,
      'models',
      { purpose: 'system' },
      { purpose: 'models', current: 7 },
      { purpose: 'models', current: 'x'.repeat(5000) },
      { purpose: 'models', defaultPath: '/etc' },
    ];
    for (const req of bad) await expect(host.pickFolder(ours, req)).rejects.toThrow(/malformed pickFolder request/);
    await expect(host.pickFolder({ url: 'https://evil.example/', id: 1 }, { purpose: 'models' })).rejects.toThrow(/IPC refused/);
    expect(dlg.asked).toEqual([]);
  });
});

describe('nativeEdit', () => {
  it('names only editing commands', () => {
    expect(host.nativeEdit(ours, 'paste')).toBe('paste');
    for (const a of ['executeJavaScript', 'loadURL', 'openDevTools', '', 1, null]) {
      expect(() => host.nativeEdit(ours, a)).toThrow(/malformed native edit/);
    }
  });
});
