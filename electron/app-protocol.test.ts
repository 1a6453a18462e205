import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSP, isAllowedRequest, resolveAppRequest, type AppRoots } from './app-protocol.js';

let dir: string;
let roots: AppRoots;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-appproto-'));
  for (const d of ['renderer/assets', 'out/sub', 'inputs']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'renderer', 'index.html'), '<!doctype html>');
  fs.writeFileSync(path.join(dir, 'renderer', 'assets', 'app.js'), '');
  fs.writeFileSync(path.join(dir, 'out', 'sub', 'a.png'), '');
  fs.writeFileSync(path.join(dir, 'out', 'notes.txt'), '');
  fs.writeFileSync(path.join(dir, 'inputs', 'i.jpg'), '');
  fs.writeFileSync(path.join(dir, 'secret.png'), '');
  fs.symlinkSync(path.join(dir, 'secret.png'), path.join(dir, 'out', 'link.png'));
  roots = { renderer: path.join(dir, 'renderer'), outputs: () => path.join(dir, 'out'), inputs: path.join(dir, 'inputs') };
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const get = (url: string, method = 'GET') => resolveAppRequest(url, method, roots);

describe('app://studio routes', () => {
  it('serves the index with the CSP, assets, outputs and inputs', () => {
    const index = get('app://studio/');
    expect(index.status).toBe(200);
    expect(index.status === 200 && index.file).toBe(path.join(dir, 'renderer', 'index.html'));
    expect(index.headers['Content-Security-Policy']).toBe(CSP);
    expect(CSP).toContain("script-src 'self'");
    expect(CSP).not.toMatch(/unsafe|https?:|\*/);
    expect(CSP).toContain("style-src 'self';");
    const js = get('app://studio/assets/app.js');
    expect(js.status === 200 && js.headers['Content-Type']).toMatch(/javascript/);
    const out = get('app://studio/outputs/sub/a.png');
    expect(out.status === 200 && out.file).toBe(path.join(dir, 'out', 'sub', 'a.png'));
    expect(get('app://studio/inputs/i.jpg').status).toBe(200);
    expect(get('app://studio/', 'HEAD').status).toBe(200);
  });

  it('serves the index with its CSP however the path is spelled (trailing or encoded slash, case, dot segments)', () => {
    for (const p of ['/index.html/', '/index.html%2f', '/index.html%5c', '/INDEX.HTML', '/./index.html', '/.%2findex.html', '/index.html//']) {
      const a = get(`app://studio${p}`);
      expect(a.status, p).toBe(200);
      expect(a.status === 200 && a.file, p).toBe(path.join(dir, 'renderer', 'index.html'));
      expect(a.headers['Content-Security-Policy'], p).toBe(CSP);
    }
  });

  it('refuses escapes, non-images from data folders, other hosts and methods', () => {
    const cases: [string, number][] = [
      ['app://studio/outputs/..%2F..%2Fsecret.png', 403],
      ['app://studio/outputs/link.png', 403],
      ['app://studio/outputs/notes.txt', 403],
      ['app://studio/inputs/..%2Fout%2Fsub%2Fa.png', 403],
      ['app://studio/..%2Fsecret.png', 403],
      ['app://studio/outputs/a%00.png', 403],
      ['app://other/index.html', 404],
      ['app://studio/%E0%A4%A', 400],
    ];
    for (const [url, status] of cases) expect(get(url).status, url).toBe(status);
    // URL parsing removes dot segments first: what is left must stay inside the renderer folder.
    for (const url of ['app://studio/outputs/%2e%2e/secret.png', 'app://studio/outputs/../../secret.png', 'app://studio/../secret.png']) {
      const a = get(url);
      if (a.status === 200) expect(a.file.startsWith(roots.renderer + path.sep), url).toBe(true);
    }
    expect(get('app://studio/', 'POST').status).toBe(405);
  });
});

describe('request filter', () => {
  it('lets through only the app origin and inline data (and DevTools in development builds only)', () => {
    for (const u of ['app://studio/', 'app://studio/assets/x.js', 'data:image/png;base64,AA', 'blob:app://studio/123']) {
      expect(isAllowedRequest(u), u).toBe(true);
    }
    expect(isAllowedRequest('devtools://devtools/bundled/x')).toBe(false);
    expect(isAllowedRequest('devtools://devtools/bundled/x', { devtools: false })).toBe(false);
    expect(isAllowedRequest('devtools://devtools/bundled/x', { devtools: true })).toBe(true);
    for (const u of [
      'https://example.com/x.js',
      'http://127.0.0.1:8765/',
      'ws://127.0.0.1/ws',
      'file:///etc/passwd',
      'app://other/',
      'ftp://x/',
      'not a url',
    ]) {
      expect(isAllowedRequest(u), u).toBe(false);
    }
  });
});
