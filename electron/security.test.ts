import { describe, expect, it } from 'vitest';
import { hardenSession, hardenWebContents, permissionAllowed, windowOptions } from './security.js';

describe('window preferences', () => {
  it('isolate and sandbox the renderer', () => {
    const w = windowOptions('/app/dist-electron/preload.cjs').webPreferences!;
    expect(w).toMatchObject({
      preload: '/app/dist-electron/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      navigateOnDragDrop: false,
    });
  });
});

describe('web contents', () => {
  it('blocks navigation, redirects, webviews and new windows', () => {
    const handlers = new Map<string, (e: { preventDefault(): void }, ...a: unknown[]) => void>();
    let openHandler: ((d: { url: string }) => { action: string }) | null = null;
    const fake = {
      on: (ev: string, l: (e: { preventDefault(): void }, ...a: unknown[]) => void) => handlers.set(ev, l),
      setWindowOpenHandler: (h: unknown) => void (openHandler = h as typeof openHandler),
    };
    const logs: string[] = [];
    hardenWebContents(fake as never, (m) => logs.push(m));
    for (const ev of ['will-navigate', 'will-frame-navigate', 'will-redirect', 'will-attach-webview']) {
      let prevented = false;
      handlers.get(ev)!({ preventDefault: () => void (prevented = true) }, 'https://evil.example/');
      expect(prevented, ev).toBe(true);
    }
    expect(openHandler!({ url: 'https://evil.example/' })).toEqual({ action: 'deny' });
    expect(logs.join('\n')).toMatch(/blocked navigation \(will-navigate\) to https:\/\/evil.example/);
  });
});

describe('session', () => {
  it('denies permissions (but clipboard writes from the app) and cancels remote requests', () => {
    let request: ((wc: unknown, p: string, cb: (ok: boolean) => void, d: { requestingUrl: string }) => void) | null = null;
    let check: ((wc: unknown, p: string, origin: string) => boolean) | null = null;
    let before: ((d: { url: string }, cb: (r: { cancel: boolean }) => void) => void) | null = null;
    hardenSession({
      setPermissionRequestHandler: (h: unknown) => void (request = h as typeof request),
      setPermissionCheckHandler: (h: unknown) => void (check = h as typeof check),
      webRequest: { onBeforeRequest: (h: unknown) => void (before = h as typeof before) },
    } as never);
    const ask = (p: string, url: string) => {
      let got: boolean | null = null;
      request!(null, p, (ok) => void (got = ok), { requestingUrl: url });
      return got;
    };
    for (const p of ['media', 'geolocation', 'notifications', 'openExternal', 'clipboard-read', 'fileSystem']) {
      expect(ask(p, 'app://studio/'), p).toBe(false);
      expect(check!(null, p, 'app://studio'), p).toBe(false);
    }
    expect(ask('clipboard-sanitized-write', 'app://studio/index.html')).toBe(true);
    expect(ask('clipboard-sanitized-write', 'https://evil.example/')).toBe(false);
    expect(check!(null, 'clipboard-sanitized-write', 'app://studio')).toBe(true);
    expect(permissionAllowed('clipboard-sanitized-write', 'app://studio.evil')).toBe(false);
    const cancel = (url: string) => {
      let r: boolean | null = null;
      before!({ url }, (x) => void (r = x.cancel));
      return r;
    };
    expect(cancel('https://cdn.example/x.js')).toBe(true);
    expect(cancel('app://studio/assets/x.js')).toBe(false);
  });
});

describe('DevTools requests', () => {
  it('are cancelled in packaged builds, allowed in development', () => {
    const cancelled = (opts?: { packaged: boolean }) => {
      let before: ((d: { url: string }, cb: (r: { cancel: boolean }) => void) => void) | null = null;
      hardenSession(
        {
          setPermissionRequestHandler: () => {},
          setPermissionCheckHandler: () => {},
          webRequest: { onBeforeRequest: (h: unknown) => void (before = h as typeof before) },
        } as never,
        () => {},
        opts as never,
      );
      let r: boolean | null = null;
      before!({ url: 'devtools://devtools/bundled/inspector.html' }, (x) => void (r = x.cancel));
      return r;
    };
    expect(cancelled({ packaged: true })).toBe(true);
    expect(cancelled()).toBe(true); // packaged unless told otherwise
    expect(cancelled({ packaged: false })).toBe(false);
  });
});
