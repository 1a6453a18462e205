/**
 * The renderer's sandbox, in one place: window preferences, navigation and window-opening
 * refused, permissions denied, requests other than our own protocol cancelled. Type-only Electron
 * imports, so unit tests apply these to fakes.
 */
import type { BrowserWindowConstructorOptions, Session, WebContents } from 'electron';
import { isAllowedRequest } from './app-protocol.js';
import { APP_ORIGIN } from './channels.js';

/** The main window: isolated, sandboxed, no Node in the page, web security on. */
export function windowOptions(preload: string, icon?: string): BrowserWindowConstructorOptions {
  return {
    width: 1440,
    height: 900,
    minWidth: 900,
    minHeight: 560,
    show: false,
    title: 'IP-Adapter Studio',
    backgroundColor: '#15171c',
    ...(icon ? { icon } : {}),
    webPreferences: {
      preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      experimentalFeatures: false,
      // Dropping a file on the window must reach the editor's drop handler, never navigate to it.
      navigateOnDragDrop: false,
      spellcheck: true,
    },
  };
}

/** Only the clipboard write of "Copy image" is granted, and only to our own pages. */
export function permissionAllowed(permission: string, origin: string): boolean {
  const ours = origin === APP_ORIGIN || origin.startsWith(APP_ORIGIN + '/');
  return ours && permission === 'clipboard-sanitized-write';
}

type Preventable = { preventDefault(): void };
type ContentsLike = Pick<WebContents, 'setWindowOpenHandler'> & {
  on(event: string, listener: (e: Preventable, ...args: unknown[]) => void): unknown;
};

/**
 * Every webContents (main.ts applies this on 'web-contents-created'): the page can neither
 * navigate away (links, form posts, window.location, redirects, frames) nor open windows or
 * attach webviews. In-app routing never navigates, so nothing legitimate is lost.
 */
export function hardenWebContents(contents: ContentsLike, log: (msg: string) => void = () => {}): void {
  for (const ev of ['will-navigate', 'will-frame-navigate', 'will-redirect'] as const) {
    contents.on(ev, (e, ...args) => {
      e.preventDefault();
      const target = typeof args[0] === 'string' ? args[0] : (e as { url?: string }).url;
      log(`blocked navigation (${ev}) to ${target ?? 'an unknown URL'}`);
    });
  }
  contents.on('will-attach-webview', (e) => e.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    log(`blocked a new window for ${url}`);
    return { action: 'deny' };
  });
}

type SessionLike = Pick<Session, 'setPermissionRequestHandler' | 'setPermissionCheckHandler'> & {
  webRequest: Pick<Session['webRequest'], 'onBeforeRequest'>;
};

/**
 * Permission requests and checks denied (but the one above); non-app requests cancelled, and
 * devtools: URLs too unless this is a development build (`packaged` false).
 */
export function hardenSession(ses: SessionLike, log: (msg: string) => void = () => {}, opts: { packaged: boolean } = { packaged: true }): void {
  ses.setPermissionRequestHandler((_wc, permission, callback, details) => {
    const ok = permissionAllowed(permission, details.requestingUrl ?? '');
    if (!ok) log(`denied permission ${permission} to ${details.requestingUrl}`);
    callback(ok);
  });
  ses.setPermissionCheckHandler((_wc, permission, requestingOrigin) => permissionAllowed(permission, requestingOrigin));
  ses.webRequest.onBeforeRequest((details, callback) => {
    const ok = isAllowedRequest(details.url, { devtools: !opts.packaged });
    if (!ok) log(`cancelled request to ${details.url}`);
    callback({ cancel: !ok });
  });
}
