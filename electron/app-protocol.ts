/**
 * The `app://studio/` protocol: the renderer is loaded from it (never file:// or http://), with
 * the same routes as web mode so the renderer's relative URLs work unchanged:
 *   /                -> dist-renderer/index.html, with the Content-Security-Policy header
 *   /assets/...      -> dist-renderer/ (confined)
 *   /outputs/<rel>   -> images in the output folder (confined, images only)
 *   /inputs/<name>   -> uploaded input images (confined, images only)
 * Pure path logic here; main.ts turns the answer into a Response.
 */
import * as path from 'node:path';
import { IMAGE_EXT, MIME, confinedPath, contentSecurityPolicy, routeOf } from '../engine/hosts/host-api.js';
import { APP_HOST, APP_SCHEME } from './channels.js';

/** The renderer's CSP: the one web mode sends too (no 'unsafe-inline' anywhere), without WebSocket origins. */
export const CSP = contentSecurityPolicy();

export interface AppRoots {
  /** The built renderer (dist-renderer/). */
  renderer: string;
  /** The output folder is a setting, so it is read per request. */
  outputs: () => string;
  inputs: string;
}

export type AppAnswer =
  { status: 200; file: string; headers: Record<string, string> } | { status: 400 | 403 | 404 | 405; body: string; headers: Record<string, string> };

const refuse = (status: 400 | 403 | 404 | 405, body: string): AppAnswer => ({
  status,
  body,
  headers: { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' },
});

/** Which file answers `url` (GET/HEAD only), or why none does. */
export function resolveAppRequest(url: string, method: string, roots: AppRoots): AppAnswer {
  if (method !== 'GET' && method !== 'HEAD') return refuse(405, 'method not allowed');
  let u: URL;
  let route: string | null;
  try {
    u = new URL(url);
    // One spelling per route (as web mode): /index.html/ and /index.html%2f are the page, with its CSP.
    route = routeOf(decodeURIComponent(u.pathname));
  } catch {
    return refuse(400, 'bad url');
  }
  if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return refuse(404, 'not found');
  if (route === null) return refuse(403, 'forbidden');
  const pathname = route;

  let root: string;
  let rel: string;
  let imagesOnly = false;
  if (pathname === '/' || pathname.toLowerCase() === '/index.html') {
    root = roots.renderer;
    rel = 'index.html';
  } else if (pathname.startsWith('/outputs/')) {
    [root, rel, imagesOnly] = [roots.outputs(), pathname.slice('/outputs/'.length), true];
  } else if (pathname.startsWith('/inputs/')) {
    [root, rel, imagesOnly] = [roots.inputs, pathname.slice('/inputs/'.length), true];
  } else {
    [root, rel] = [roots.renderer, pathname.slice(1)];
  }
  const ext = path.extname(rel).toLowerCase();
  const file = confinedPath(root, rel);
  if (!file || (imagesOnly && !IMAGE_EXT.has(ext))) return refuse(403, 'forbidden');
  const headers: Record<string, string> = {
    'Content-Type': MIME[ext] ?? 'application/octet-stream',
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  };
  if (ext === '.html') Object.assign(headers, { 'Content-Security-Policy': CSP, 'Referrer-Policy': 'no-referrer' });
  return { status: 200, file, headers };
}

/**
 * Requests the renderer's session may make: our own protocol, inline data/blob URLs and, in
 * development only (`devtools`, false in packaged builds), DevTools. Everything else (http,
 * https, ws, file, ftp, another app:// host) is cancelled, so no remote content ever loads even
 * if a URL slips into the page.
 */
export function isAllowedRequest(url: string, opts: { devtools: boolean } = { devtools: false }): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  switch (u.protocol) {
    case `${APP_SCHEME}:`:
      return u.host === APP_HOST;
    case 'data:':
    case 'blob:':
      return true;
    case 'devtools:':
      return opts.devtools;
    default:
      return false;
  }
}
