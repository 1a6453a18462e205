/**
 * Every route of the web server with and without the launch key, including the spellings that
 * reach the same file another way (trailing slash, encoded slash or backslash, doubled slashes,
 * dot segments, another letter case): only the renderer's scripts and styles are public.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { EngineApi, EngineSettings } from '../api.js';
import { startServer, type WebServer } from './server.js';

const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478da63f8cfc000000301010018dd8db00000000049454e44ae426082',
  'hex',
);

let dir: string;
let server: WebServer;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-routes-'));
  for (const d of ['static/assets', 'out/sub', 'examples', 'user/inputs']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'static', 'index.html'), '<!doctype html><title>editor page</title>');
  fs.writeFileSync(path.join(dir, 'static', 'assets', 'app.js'), 'console.log(1)');
  fs.writeFileSync(path.join(dir, 'static', 'assets', 'app.css'), 'body{}');
  fs.writeFileSync(path.join(dir, 'out', 'x.png'), PNG);
  fs.writeFileSync(path.join(dir, 'out', 'sub', 'y.png'), PNG);
  fs.writeFileSync(path.join(dir, 'user', 'inputs', 'in.png'), PNG);
  let settings: EngineSettings = { modelsDir: path.join(dir, 'm'), outputDir: path.join(dir, 'out'), provider: 'cpu' };
  const engine: EngineApi = {
    nodeSpecs: () => [],
    listModels: async () => ({}) as never,
    validate: () => [],
    enqueue: () => ({ runId: 'r' }),
    cancel: () => {},
    subscribe: () => () => {},
    settings: () => settings,
    updateSettings: (s) => (settings = { ...settings, ...s }),
  };
  server = await startServer({
    engine,
    port: 0,
    staticDir: path.join(dir, 'static'),
    userDataDir: path.join(dir, 'user'),
    examplesDir: path.join(dir, 'examples'),
    info: () => ({ version: 't', providers: ['cpu'], demo: false, notices: [] }),
  });
});
afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function get(p: string, withKey: boolean): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const headers = withKey ? { Cookie: `ipa-studio-${server.port}=${server.token}` } : {};
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: server.port, path: p, headers }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      })
      .on('error', reject);
  });
}

/** The editor page, spelled every way that reaches dist-renderer/index.html. */
const PAGE = [
  '/',
  '/index.html',
  '/index.html/',
  '/index.html%2f',
  '/index.html%2F',
  '//index.html',
  '/./index.html',
  '/%2e/index.html',
  '/.%2findex.html',
  '/assets/../index.html',
  '/index.html%5c',
  '/INDEX.HTML',
  '/Index.html/',
  '/index.html//',
];
const IMAGES = [
  '/outputs/x.png',
  '/outputs/sub/y.png',
  '/outputs//x.png',
  '/outputs/sub%2fy.png',
  '/outputs/./x.png',
  '/inputs/in.png',
  '/inputs//in.png',
  '/inputs/in.png/',
];
const PUBLIC = ['/assets/app.js', '/assets/app.css', '/assets//app.js'];

describe('web server routes with and without the access key', () => {
  it('the editor page: 403 without the key in every spelling; with it, the page with its CSP', async () => {
    for (const p of PAGE) {
      const r = await get(p, false);
      expect(r.status, p).toBe(403);
      expect(r.body, p).not.toContain('editor page');
    }
    for (const p of PAGE) {
      const r = await get(p, true);
      expect(r.status, p).toBe(200);
      expect(r.body, p).toContain('editor page');
      expect(String(r.headers['content-security-policy']), p).toContain("script-src 'self'");
    }
    // A `..` left after decoding is refused outright (browsers never send one), with the key too;
    // a plain /assets/../ is resolved by URL parsing first, so it is the page above.
    for (const p of ['///', '/%', '/index.html%00', '/assets/..%2findex.html', '/outputs/..%5cindex.html', '/outputs/..%2f..%2findex.html']) {
      expect((await get(p, false)).status, p).not.toBe(200);
      expect((await get(p, true)).body, p).not.toContain('editor page');
    }
  });

  it('output and input images: 403 without the key, 200 with it', async () => {
    for (const p of IMAGES) {
      expect((await get(p, false)).status, p).toBe(403);
      const r = await get(p, true);
      expect(r.status, p).toBe(200);
      expect(r.headers['content-type'], p).toBe('image/png');
    }
  });

  it('the scripts and styles are public; nothing else is', async () => {
    for (const p of PUBLIC) {
      expect((await get(p, false)).status, p).toBe(200);
      expect((await get(p, true)).status, p).toBe(200);
    }
    for (const p of ['/assets/missing.js', '/missing', '/assets/', '/assets']) {
      expect([403, 404], p).toContain((await get(p, false)).status);
    }
    for (const p of ['/missing', '/assets/missing.js']) expect((await get(p, true)).status, p).toBe(404);
  });

  it('the WebSocket: refused without the key, on /ws only', async () => {
    const open = (p: string, key: boolean) =>
      new Promise<boolean>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}${p}${key ? `?t=${server.token}` : ''}`);
        ws.once('open', () => {
          ws.close();
          resolve(true);
        });
        ws.once('error', () => resolve(false));
      });
    expect(await open('/ws', true)).toBe(true);
    for (const p of ['/ws', '/ws/', '/ws%2f', '//ws']) expect(await open(p, false), p).toBe(false);
  });

  it('a request without params is a request with empty params (the envelope does not require them)', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?t=${server.token}`);
    const replies: any[] = [];
    ws.on('message', (d) => replies.push(JSON.parse(d.toString())));
    await new Promise<void>((r, j) => {
      ws.once('open', () => r());
      ws.once('error', j);
    });
    ws.send(JSON.stringify({ id: 1, method: 'getSettings' }));
    ws.send(JSON.stringify({ id: 2, method: 'cancel' })); // a channel that needs params still says which
    for (let i = 0; i < 100 && replies.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(replies.find((r) => r.id === 1)).toMatchObject({ ok: true, result: { provider: 'cpu' } });
    expect(replies.find((r) => r.id === 2)).toMatchObject({ ok: false, error: expect.stringMatching(/invalid params for cancel: runId/) });
    ws.close();
  });
});
