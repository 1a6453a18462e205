import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { EngineApi, EngineSettings, RunEvent, Workflow } from '../api.js';
import { contentSecurityPolicy } from './host-api.js';
import { startServer, type WebServer } from './server.js';

/** A recording test double of the engine API: the server only forwards, so this is what we check. */
function fakeEngine(outputDir: string) {
  const listeners = new Set<(e: RunEvent) => void>();
  let settings: EngineSettings = { modelsDir: '/m', outputDir, provider: 'cpu' };
  const calls: string[] = [];
  const api: EngineApi = {
    nodeSpecs: () => [],
    listModels: async () => ({ checkpoints: ['a.safetensors'], ipadapter: [], clip_vision: [], controlnet: [], vae: [], loras: [], tokenizers: [] }),
    validate: (wf) => (wf.nodes.length ? [] : [{ message: 'empty workflow' }]),
    enqueue: () => {
      calls.push('enqueue');
      setTimeout(() => {
        for (const l of listeners) l({ type: 'output', runId: 'r1', node: 'n1', images: [{ path: path.join(outputDir, 'x.png'), width: 1, height: 1 }] });
      }, 5);
      return { runId: 'r1' };
    },
    cancel: (id) => void calls.push(`cancel ${id}`),
    subscribe: (l) => (listeners.add(l), () => listeners.delete(l)),
    settings: () => settings,
    updateSettings: (s) => (settings = { ...settings, ...s }),
  };
  return { api, calls };
}

const PNG_1x1 = (() => {
  const crc = (b: Buffer) => zlib.crc32(b);
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(crc(td), 8 + data.length);
    return out;
  };
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', Buffer.from([0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0])),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(20))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
})();

let dir: string;
let server: WebServer;
let engine: ReturnType<typeof fakeEngine>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-server-'));
  for (const d of ['static', 'out', 'examples', 'user']) fs.mkdirSync(path.join(dir, d));
  fs.writeFileSync(path.join(dir, 'static', 'index.html'), '<!doctype html><title>t</title>');
  fs.writeFileSync(path.join(dir, 'static', 'app.js'), 'console.log(1)');
  fs.writeFileSync(path.join(dir, 'out', 'x.png'), PNG_1x1);
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'secret');
  fs.writeFileSync(
    path.join(dir, 'examples', 'one.json'),
    JSON.stringify({ format: 'ipadapter-studio/workflow', version: 1, nodes: [], edges: [], meta: { title: 'First' } }),
  );
  engine = fakeEngine(path.join(dir, 'out'));
  server = await startServer({
    engine: engine.api,
    port: 0,
    staticDir: path.join(dir, 'static'),
    userDataDir: path.join(dir, 'user'),
    examplesDir: path.join(dir, 'examples'),
    info: () => ({ version: 't', providers: ['cpu'], demo: true, notices: [] }),
  });
});
afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The cookie the printed address sets (what our own page sends). */
const cookie = () => ({ Cookie: `ipa-studio-${server.port}=${server.token}` });

function get(p: string, headers: Record<string, string> = cookie()): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: server.port, path: p, headers }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

/** A WebSocket client; by default our own page (Origin and cookie), or a script with `?t=` / without a key. */
async function socket(
  origin: string | undefined = server.origin,
  key: 'cookie' | 'query' | 'none' = origin ? 'cookie' : 'query',
): Promise<{ ws: WebSocket; next(): Promise<any>; send(x: unknown): void }> {
  const query = key === 'query' ? `?t=${server.token}` : '';
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws${query}`, { ...(origin ? { origin } : {}), headers: key === 'cookie' ? cookie() : {} });
  const queue: any[] = [];
  const waiters: ((v: any) => void)[] = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r))),
    send: (x) => ws.send(typeof x === 'string' ? x : JSON.stringify(x)),
  };
}

describe('web server', () => {
  it('binds 127.0.0.1 and serves the renderer with a strict CSP', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?t=${server.token}`);
    expect(server.token).toMatch(/^[\w-]{32}$/);
    const r = await get('/');
    expect(r.status).toBe(200);
    const csp = String(r.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("object-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe/);
    // One builder for both hosts: web mode only adds its WebSocket origins.
    expect(csp).toBe(contentSecurityPolicy({ connect: [`ws://127.0.0.1:${server.port}`, `ws://localhost:${server.port}`] }));
    expect((await get('/app.js')).body).toBe('console.log(1)');
  });

  it('keeps file routes inside their folders and refuses foreign Host headers', async () => {
    expect((await get('/outputs/x.png')).status).toBe(200);
    for (const p of ['/outputs/..%2Fsecret.txt', '/outputs/../secret.txt', '/inputs/..%2F..%2Fsecret.txt', '/..%2Fsecret.txt', '/outputs/%2e%2e/secret.txt']) {
      const r = await get(p);
      expect(r.status, p).not.toBe(200);
      expect(r.body).not.toContain('secret');
    }
    expect((await get('/outputs/x.txt')).status).toBe(403); // images only
    expect((await get('/', { Host: 'evil.example:80' })).status).toBe(403);
  });

  it('answers malformed messages with an error and keeps the connection', async () => {
    const c = await socket(`http://127.0.0.1:${server.port}`);
    c.send('not json');
    expect(await c.next()).toMatchObject({ kind: 'reply', id: null, ok: false, error: expect.stringMatching(/not JSON/) });
    c.send({ id: 1, method: 'rmrf', params: {} });
    expect(await c.next()).toMatchObject({ id: 1, ok: false, error: expect.stringMatching(/malformed/) });
    c.send({ id: 2, method: 'enqueue', params: { workflow: { format: 'nope' } } });
    expect(await c.next()).toMatchObject({ id: 2, ok: false, error: expect.stringMatching(/invalid params for enqueue/) });
    c.send({ id: 3, method: 'cancel', params: { runId: 'x', extra: 1 } });
    expect(await c.next()).toMatchObject({ id: 3, ok: false });
    c.send({ id: 4, method: 'readExample', params: { name: '../secret.txt' } });
    expect(await c.next()).toMatchObject({ id: 4, ok: false });
    expect(engine.calls).toEqual([]);
    // Still usable.
    c.send({ id: 5, method: 'listExamples', params: {} });
    expect(await c.next()).toMatchObject({ id: 5, ok: true, result: [{ name: 'one.json', title: 'First' }] });
    c.ws.close();
  });

  it('forwards requests and events, adding URLs to output images', async () => {
    const c = await socket();
    const wf: Workflow = { format: 'ipadapter-studio/workflow', version: 1, nodes: [{ id: 'n1', type: 't', params: { a: 1 } }], edges: [] };
    c.send({ id: 1, method: 'validate', params: { workflow: { ...wf, nodes: [] } } });
    expect(await c.next()).toMatchObject({ id: 1, ok: true, result: [{ message: 'empty workflow' }] });
    c.send({ id: 2, method: 'enqueue', params: { workflow: wf } });
    expect(await c.next()).toMatchObject({ id: 2, ok: true, result: { runId: 'r1' } });
    expect(await c.next()).toMatchObject({ kind: 'event', event: { type: 'output', images: [{ url: '/outputs/x.png' }] } });
    c.send({ id: 3, method: 'updateSettings', params: { provider: 'webgpu' } });
    expect(await c.next()).toMatchObject({ id: 3, ok: true, result: { provider: 'webgpu' } });
    c.ws.close();
  });

  it('stores uploads in the inputs folder and refuses non-images', async () => {
    const c = await socket();
    c.send({ id: 1, method: 'uploadImage', params: { name: '../../evil name.png', dataBase64: PNG_1x1.toString('base64') } });
    const r = await c.next();
    expect(r).toMatchObject({ ok: true, result: { width: 3, height: 2 } });
    // The param value names the file within the inputs folder, not the folder (no home path in saved workflows).
    expect(r.result.value).toMatch(/^inputs\/evil_name-[0-9a-f]{12}\.png$/);
    expect(fs.existsSync(path.join(dir, 'user', r.result.value))).toBe(true);
    expect((await get(r.result.url)).status).toBe(200);
    c.send({ id: 2, method: 'uploadImage', params: { name: 'x.png', dataBase64: Buffer.from('hello').toString('base64') } });
    expect(await c.next()).toMatchObject({ id: 2, ok: false, error: expect.stringMatching(/not a PNG, JPEG or WebP/) });
    c.ws.close();
  });

  it('refuses WebSocket connections from other origins', async () => {
    await expect(socket('http://evil.example')).rejects.toThrow(/403/);
    await expect(socket('http://evil.example', 'query')).rejects.toThrow(/403/);
  });

  it('needs the launch key: the printed address sets it as a cookie; pages, images and the socket need it', async () => {
    // Without the key: no page, no images, no socket (from a page or from a script).
    for (const p of ['/', '/index.html', '/outputs/x.png', `/?t=${'x'.repeat(32)}`]) expect((await get(p, {})).status, p).toBe(403);
    expect((await get('/', { Cookie: `ipa-studio-${server.port}=wrong` })).status).toBe(403);
    expect((await get('/', { Cookie: `ipa-studio-1=${server.token}` })).status).toBe(403); // another port's cookie
    await expect(socket(undefined, 'none')).rejects.toThrow(/403/);
    await expect(socket(server.origin, 'none')).rejects.toThrow(/403/);
    // The scripts and styles are public (they hold no key).
    expect((await get('/app.js', {})).status).toBe(200);

    // The printed address: a cookie for this port, HttpOnly, SameSite=Strict, and the key leaves the address bar.
    const first = await get(new URL(server.url).pathname + new URL(server.url).search, {});
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe('/');
    const set = String(first.headers['set-cookie']);
    expect(set).toContain(`ipa-studio-${server.port}=${server.token}`);
    expect(set).toMatch(/HttpOnly/);
    expect(set).toMatch(/SameSite=Strict/);
    const jar = { Cookie: set.split(';')[0] };
    expect((await get('/', jar)).status).toBe(200);
    expect((await get('/outputs/x.png', jar)).status).toBe(200);

    // A local script passes the key in the query instead.
    const c = await socket(undefined, 'query');
    c.send({ id: 1, method: 'getSettings', params: {} });
    expect(await c.next()).toMatchObject({ id: 1, ok: true, result: { provider: expect.any(String) } });
    c.ws.close();
  });
});
