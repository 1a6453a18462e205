/**
 * Web mode host: serves the built renderer over HTTP and the engine API over a WebSocket, on
 * 127.0.0.1 only. Every WebSocket message is validated against `protocol.ts`; a malformed one gets
 * an error reply and the connection stays up. File routes are confined to their folders.
 */
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { EngineApi, EngineSettings, ImageRef, RunEvent, Workflow } from './api.js';
import type { NodeSpec } from '../nodes/types.js';
import {
  channels, parseRequest, WorkflowSchema, summarise,
  type ChannelName, type ChannelRequest, type ChannelResponse, type HostInfo, type ServerMessage,
} from './protocol.js';

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
  info: () => Omit<HostInfo, 'host'>;
  /** Called after settings change (the host persists them). */
  onSettings?: (s: EngineSettings) => void;
}

export interface WebServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp',
  '.svg': 'image/svg+xml', '.ico': 'image/x-icon', '.woff2': 'font/woff2',
};
const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp']);
const MAX_MESSAGE_BYTES = 48 * 1024 * 1024;

/** Resolves `rel` under `root`, or null when it would escape it (`..`, absolute, NUL, symlink out). */
export function confinedPath(root: string, rel: string): string | null {
  if (rel.includes('\0')) return null;
  const base = path.resolve(root);
  const full = path.resolve(base, '.' + path.sep + rel);
  if (full !== base && !full.startsWith(base + path.sep)) return null;
  try {
    // A symlink inside the folder must not lead outside it either.
    const real = fs.realpathSync(full);
    const realBase = fs.realpathSync(base);
    if (real !== realBase && !real.startsWith(realBase + path.sep)) return null;
  } catch {
    /* missing file: the caller answers 404 */
  }
  return full;
}

function csp(port: number): string {
  return [
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
    `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`, "font-src 'self'", "object-src 'none'",
    "base-uri 'none'", "frame-ancestors 'none'", "form-action 'none'",
  ].join('; ');
}

/** Starts the server; resolves once it listens. */
export async function startServer(opts: ServerOptions): Promise<WebServer> {
  const inputsDir = path.join(opts.userDataDir, 'inputs');
  fs.mkdirSync(inputsDir, { recursive: true });
  let port = 0;
  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  const allowedOrigins = () => new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);

  const server = http.createServer((req, res) => {
    // DNS rebinding: a page on another name resolving to 127.0.0.1 must not reach us.
    if (!allowedHosts().has(req.headers.host ?? '')) return send(res, 403, 'text/plain', 'forbidden host');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed');
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return send(res, 400, 'text/plain', 'bad url');
    }
    if (pathname.startsWith('/outputs/')) return serveFile(res, opts.engine.settings().outputDir, pathname.slice(9), true);
    if (pathname.startsWith('/inputs/')) return serveFile(res, inputsDir, pathname.slice(8), true);
    if (pathname === '/' || pathname === '/index.html') return serveIndex(res);
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
      'Content-Type': MIME['.html'], 'Content-Security-Policy': csp(port), 'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store',
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
        'Content-Type': MIME[ext] ?? 'application/octet-stream', 'Content-Length': st.size,
        'X-Content-Type-Options': 'nosniff', 'Cache-Control': imagesOnly ? 'no-store' : 'max-age=3600',
      });
      fs.createReadStream(full).pipe(res);
    });
  }

  // ---- the API ----------------------------------------------------------------------------------

  /** Adds a URL the browser can load to each image the engine reports. */
  function withUrls(images: ImageRef[]): ImageRef[] {
    const outDir = path.resolve(opts.engine.settings().outputDir);
    return images.map((img) => {
      if (img.url) return img;
      const rel = path.relative(outDir, path.resolve(img.path));
      if (!rel.startsWith('..') && !path.isAbsolute(rel)) {
        return { ...img, url: '/outputs/' + rel.split(path.sep).map(encodeURIComponent).join('/') };
      }
      // Not in the output folder (a temporary preview): inline it, the engine itself named this file.
      try {
        return { ...img, url: 'data:image/png;base64,' + fs.readFileSync(img.path).toString('base64') };
      } catch {
        return img;
      }
    });
  }

  let sample: { value: string; url: string } | null | undefined;
  const sampleImage = () => (sample === undefined ? (sample = importSampleImage(opts.examplesDir, inputsDir)) : sample);

  type Handler<K extends ChannelName> = (req: ChannelRequest<K>) => Promise<ChannelResponse<K>> | ChannelResponse<K>;
  const handlers: { [K in ChannelName]: Handler<K> } = {
    hostInfo: () => ({ host: 'web', ...opts.info(), ...(sampleImage() ? { sampleImage: sampleImage()! } : {}) }),
    nodeSpecs: () => opts.engine.nodeSpecs(),
    listModels: () => opts.engine.listModels(),
    validate: (r) => opts.engine.validate(r.workflow),
    enqueue: (r) => opts.engine.enqueue(r.workflow),
    cancel: (r) => (opts.engine.cancel(r.runId), {}),
    getSettings: () => opts.engine.settings(),
    updateSettings: (r) => {
      const s = opts.engine.updateSettings(r);
      opts.onSettings?.(s);
      return s;
    },
    listExamples: () => listExamples(opts.examplesDir),
    readExample: (r) => {
      const file = confinedPath(opts.examplesDir, r.name);
      if (!file || !fs.existsSync(file)) throw new Error(`no example named ${r.name}`);
      const parsed = WorkflowSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
      if (!parsed.success) throw new Error(`${r.name} is not a workflow: ${summarise(parsed.error)}`);
      return importExampleImages(parsed.data, opts.examplesDir, inputsDir, opts.engine.nodeSpecs());
    },
    uploadImage: (r) => storeUpload(inputsDir, r.name, r.dataBase64),
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  server.on('upgrade', (req, socket, head) => {
    const origin = req.headers.origin;
    const url = req.url ?? '';
    // Browsers always send Origin: only our own page may connect. Local non-browser clients send none.
    if (!allowedHosts().has(req.headers.host ?? '') || url !== '/ws' || (origin !== undefined && !allowedOrigins().has(origin))) {
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
      try {
        const handler = handlers[req.method] as Handler<ChannelName>;
        const result = await handler(req.params as never);
        reply(ws, { kind: 'reply', id: req.id, ok: true, result });
      } catch (e) {
        reply(ws, { kind: 'reply', id: req.id, ok: false, error: (e as Error).message ?? String(e) });
      }
    });
    ws.on('error', () => ws.terminate());
  });

  const unsubscribe = opts.engine.subscribe((event: RunEvent) => {
    const out: RunEvent = event.type === 'output' ? { ...event, images: withUrls(event.images) } : event;
    const text = JSON.stringify({ kind: 'event', event: out } satisfies ServerMessage);
    for (const ws of wss.clients) if (ws.readyState === ws.OPEN) ws.send(text);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: async () => {
      unsubscribe();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Workflows in examples/, titled by meta.title when present. */
export function listExamples(dir: string): ChannelResponse<'listExamples'> {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /^[\w.-]+\.json$/.test(f)).sort().map((name) => {
    let title = name.replace(/\.json$/, '').replace(/[-_]/g, ' ');
    try {
      const meta = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'))?.meta;
      if (typeof meta?.title === 'string') title = meta.title;
    } catch {
      /* listed by name; opening it reports the problem */
    }
    return { name, title };
  });
}

/** Image dimensions from the header (PNG, JPEG, WebP), or null when the bytes are not one of those. */
export function imageSize(b: Buffer): { width: number; height: number; ext: string } | null {
  if (b.length > 24 && b.readUInt32BE(0) === 0x89504e47 && b.toString('latin1', 12, 16) === 'IHDR') {
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), ext: '.png' };
  }
  if (b.length > 4 && b[0] === 0xff && b[1] === 0xd8) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const marker = b[i + 1];
      const len = b.readUInt16BE(i + 2);
      // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC) carry the frame size.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7), ext: '.jpg' };
      }
      i += 2 + len;
    }
    return null;
  }
  if (b.length > 30 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') {
    const kind = b.toString('latin1', 12, 16);
    if (kind === 'VP8X') return { width: 1 + b.readUIntLE(24, 3), height: 1 + b.readUIntLE(27, 3), ext: '.webp' };
    if (kind === 'VP8 ') return { width: b.readUInt16LE(26) & 0x3fff, height: b.readUInt16LE(28) & 0x3fff, ext: '.webp' };
    if (kind === 'VP8L') {
      const bits = b.readUInt32LE(21);
      return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >> 14) & 0x3fff), ext: '.webp' };
    }
  }
  return null;
}

/** Stores an uploaded image (base64) under a content-hashed name; the param value is its absolute path. */
export function storeUpload(inputsDir: string, name: string, dataBase64: string): ChannelResponse<'uploadImage'> {
  return storeImageBytes(inputsDir, name, Buffer.from(dataBase64, 'base64'));
}

/**
 * Image params of an example name files beside it (`images/x.png`). The editor runs workflows
 * without a folder of their own, so those images are imported like uploads and the params point
 * at the copies (which also gives them thumbnails). Used by both hosts.
 */
export function importExampleImages(wf: Workflow, examplesDir: string, inputsDir: string, specs: NodeSpec[]): Workflow {
  const imageParams = new Map(specs.map((s) => [s.type, new Set(s.params.filter((p) => p.kind === 'image').map((p) => p.name))]));
  for (const node of wf.nodes) {
    for (const [k, v] of Object.entries(node.params)) {
      if (typeof v !== 'string' || !v || path.isAbsolute(v) || !imageParams.get(node.type)?.has(k)) continue;
      const src = confinedPath(examplesDir, v);
      if (!src || !fs.existsSync(src)) continue;
      node.params[k] = storeImageBytes(inputsDir, path.basename(v), fs.readFileSync(src)).value;
    }
  }
  return wf;
}

/** The examples' image prompt imported into the inputs folder (the default workflow starts with it), or null. */
export function importSampleImage(examplesDir: string, inputsDir: string): { value: string; url: string } | null {
  const file = path.join(examplesDir, 'images', 'image-prompt.png');
  try {
    if (!fs.existsSync(file)) return null;
    const up = storeImageBytes(inputsDir, 'image-prompt.png', fs.readFileSync(file));
    return { value: up.value, url: up.url };
  } catch {
    return null;
  }
}

function storeImageBytes(inputsDir: string, name: string, bytes: Buffer): ChannelResponse<'uploadImage'> {
  fs.mkdirSync(inputsDir, { recursive: true });
  const size = imageSize(bytes);
  if (!size) throw new Error(`${name} is not a PNG, JPEG or WebP image`);
  const stem = path.basename(name).replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_').slice(0, 60) || 'image';
  const hash = crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  const file = `${stem}-${hash}${size.ext}`;
  const full = path.join(inputsDir, file);
  if (!fs.existsSync(full)) fs.writeFileSync(full, bytes);
  return { value: full, url: '/inputs/' + encodeURIComponent(file), width: size.width, height: size.height };
}

export { channels };
