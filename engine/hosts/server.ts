/**
 * Web mode host: serves the built renderer over HTTP and the engine API over a WebSocket, on
 * 127.0.0.1 only. Every WebSocket message is validated against `protocol.ts`; a malformed one gets
 * an error reply and the connection stays up. File routes are confined to their folders.
 *
 * Access key: each launch makes a random token and prints the address with it
 * (`http://127.0.0.1:N/?t=<token>`, as Jupyter does). Opening that address sets an HttpOnly,
 * SameSite=Strict cookie and redirects to `/`; the page, the WebSocket and the image routes
 * then need that cookie (or `?t=` for a local script). So another local user, or a page of another
 * origin, cannot drive the engine or read images; the Origin and Host checks stay as well.
 */
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { EngineApi, EngineSettings, RunEvent } from '../api.js';
import { IMAGE_EXT, MIME, confinedPath, contentSecurityPolicy, createApiHandlers, eventWithUrls, invokeApi, routeOf } from './host-api.js';
import { parseRequest, type HostInfo, type ServerMessage } from '../protocol.js';

export interface ServerOptions {
  engine: EngineApi;
  /** 0 picks a free port. */
  port: number;
  /** The built renderer (dist-renderer/). */
  staticDir: string;
  /** Uploaded images go to <userDataDir>/inputs. */
  userDataDir: string;
  examplesDir: string;
  /** Read on each request: demo state and notices change with the settings. */
  info: () => Omit<HostInfo, 'host' | 'sampleImage'>;
  /** Called after settings change (the host persists them). */
  onSettings?: (s: EngineSettings) => void;
  /** The access key (default: 24 random bytes, new per launch). */
  token?: string;
}

export interface WebServer {
  /** The address to open: `http://127.0.0.1:N/?t=<token>`. */
  url: string;
  /** `http://127.0.0.1:N` */
  origin: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

/** What the renderer's build serves without the key (scripts, styles, fonts, icons: nothing that holds a key or an image of the user's). */
const PUBLIC_EXT = new Set(['.js', '.css', '.map', '.svg', '.ico', '.woff', '.woff2']);

const MAX_MESSAGE_BYTES = 48 * 1024 * 1024;

/** Starts the server; resolves once it listens. */
export async function startServer(opts: ServerOptions): Promise<WebServer> {
  const inputsDir = path.join(opts.userDataDir, 'inputs');
  fs.mkdirSync(inputsDir, { recursive: true });
  let port = 0;
  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  const allowedOrigins = () => new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);
  const token = opts.token ?? crypto.randomBytes(24).toString('base64url');
  // Cookies are per host, not per port: the port in the name keeps two servers apart.
  const cookieName = () => `ipa-studio-${port}`;

  /** The request carries this launch's key: the cookie set by the printed address, or `?t=`. */
  function authorised(req: http.IncomingMessage, url: URL): boolean {
    const given = [url.searchParams.get('t'), cookieValue(req.headers.cookie, cookieName())];
    return given.some((g) => g !== null && sameSecret(g, token));
  }

  const server = http.createServer((req, res) => {
    // DNS rebinding: a page on another name resolving to 127.0.0.1 must not reach us.
    if (!allowedHosts().has(req.headers.host ?? '')) return send(res, 403, 'text/plain', 'forbidden host');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed');
    let url: URL;
    let route: string | null;
    try {
      url = new URL(req.url ?? '/', 'http://x');
      route = routeOf(decodeURIComponent(url.pathname));
    } catch {
      return send(res, 400, 'text/plain', 'bad url');
    }
    if (route === null) return send(res, 403, 'text/plain', 'forbidden');
    const pathname = route;
    // Compared in lower case: on a case-insensitive file system /INDEX.HTML is the page too.
    const isIndex = pathname === '/' || pathname.toLowerCase() === '/index.html';
    const isImages = pathname.startsWith('/outputs/') || pathname.startsWith('/inputs/');
    // The renderer's scripts and styles are public; everything else (the page, the images) needs the key.
    const isPublic = !isIndex && !isImages && PUBLIC_EXT.has(path.extname(pathname).toLowerCase());
    if (!isPublic && !authorised(req, url)) {
      return send(
        res,
        403,
        'text/plain; charset=utf-8',
        'This page needs the access key of this launch: open the address that `npm run web` printed (http://127.0.0.1:N/?t=...).',
      );
    }
    if (isIndex && url.searchParams.has('t')) {
      // Keep the key in an HttpOnly cookie and drop it from the address bar (and from history).
      res.writeHead(303, {
        Location: '/',
        'Cache-Control': 'no-store',
        'Referrer-Policy': 'no-referrer',
        'Set-Cookie': `${cookieName()}=${token}; Path=/; HttpOnly; SameSite=Strict`,
      });
      return res.end();
    }
    if (pathname.startsWith('/outputs/')) return serveFile(res, opts.engine.settings().outputDir, pathname.slice(9), true);
    if (pathname.startsWith('/inputs/')) return serveFile(res, inputsDir, pathname.slice(8), true);
    if (isIndex) return serveIndex(res);
    return serveFile(res, opts.staticDir, pathname.slice(1), false);
  });

  function send(res: http.ServerResponse, status: number, type: string, body: string | Buffer): void {
    res.writeHead(status, { 'Content-Type': type, 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' });
    res.end(body);
  }

  function serveIndex(res: http.ServerResponse): void {
    const file = path.join(opts.staticDir, 'index.html');
    if (!fs.existsSync(file)) {
      return send(res, 500, 'text/plain', `renderer not built: ${file} is missing (run npm run build:renderer)`);
    }
    res.writeHead(200, {
      'Content-Type': MIME['.html'],
      'Content-Security-Policy': contentSecurityPolicy({ connect: [`ws://127.0.0.1:${port}`, `ws://localhost:${port}`] }),
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': 'no-store',
    });
    res.end(fs.readFileSync(file));
  }

  function serveFile(res: http.ServerResponse, root: string, rel: string, imagesOnly: boolean): void {
    const full = confinedPath(root, rel);
    const ext = path.extname(rel).toLowerCase();
    if (!full || (imagesOnly && !IMAGE_EXT.has(ext))) return send(res, 403, 'text/plain', 'forbidden');
    fs.stat(full, (err, st) => {
      if (err || !st.isFile()) return send(res, 404, 'text/plain', 'not found');
      res.writeHead(200, {
        'Content-Type': MIME[ext] ?? 'application/octet-stream',
        'Content-Length': st.size,
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': imagesOnly ? 'no-store' : 'max-age=3600',
      });
      fs.createReadStream(full).pipe(res);
    });
  }

  const handlers = createApiHandlers({
    engine: opts.engine,
    host: 'web',
    info: opts.info,
    examplesDir: opts.examplesDir,
    inputsDir,
    onSettings: opts.onSettings,
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  server.on('upgrade', (req, socket, head) => {
    const origin = req.headers.origin;
    let url: URL | null = null;
    try {
      url = new URL(req.url ?? '', 'http://x');
    } catch {
      /* refused below */
    }
    // Browsers always send Origin: only our own page may connect. Every client needs the launch's
    // key: our page has its cookie, a local script passes `?t=` (no Origin and no key: refused).
    const ok =
      url !== null &&
      url.pathname === '/ws' &&
      allowedHosts().has(req.headers.host ?? '') &&
      (origin === undefined || allowedOrigins().has(origin)) &&
      authorised(req, url);
    if (!ok) {
      socket.write('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  const reply = (ws: WebSocket, msg: ServerMessage) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  };

  wss.on('connection', (ws) => {
    ws.on('message', async (data, isBinary) => {
      let raw: unknown;
      try {
        if (isBinary) throw new Error('binary');
        raw = JSON.parse(data.toString());
      } catch {
        return reply(ws, { kind: 'reply', id: null, ok: false, error: 'malformed request: not JSON text' });
      }
      const req = parseRequest(raw);
      if (!req.ok) return reply(ws, { kind: 'reply', id: req.id, ok: false, error: req.error });
      const r = await invokeApi(handlers, req.method, req.params);
      reply(ws, r.ok ? { kind: 'reply', id: req.id, ok: true, result: r.result } : { kind: 'reply', id: req.id, ok: false, error: r.error });
    });
    ws.on('error', () => ws.terminate());
  });

  const unsubscribe = opts.engine.subscribe((event: RunEvent) => {
    const out = eventWithUrls(opts.engine.settings().outputDir, event);
    const text = JSON.stringify({ kind: 'event', event: out } satisfies ServerMessage);
    for (const ws of wss.clients) if (ws.readyState === ws.OPEN) ws.send(text);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/?t=${token}`,
    origin: `http://127.0.0.1:${port}`,
    port,
    token,
    close: async () => {
      unsubscribe();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The value of cookie `name` in a Cookie header, or null. */
function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Constant-time comparison of a given key with ours. */
function sameSecret(given: string, secret: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}
