/**
 * `npm run web -- [--port N] [--models DIR] [--out DIR] [--demo] [--provider P] [--user-data DIR]`
 *
 * Web mode: the engine plus the HTTP/WebSocket server on 127.0.0.1, serving the built renderer.
 * Prints `Listening on http://127.0.0.1:N` once ready. Settings changed in the editor persist in
 * <user-data>/settings.json; flags given on the command line win over them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { EngineSettings } from './api.js';
import { createEngine } from './engine.js';
import { ProviderSchema } from './protocol.js';
import { startServer } from './server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEFAULT_PORT = 8765;

interface Args {
  port?: number;
  models?: string;
  out?: string;
  provider?: EngineSettings['provider'];
  demo: boolean;
  userData: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { demo: false, userData: process.env.IPA_STUDIO_USER_DATA || path.join(os.homedir(), '.ipadapter-studio') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--port') {
      const p = Number(value());
      if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error(`--port expects a port number, got ${argv[i]}`);
      args.port = p;
    } else if (a === '--models') args.models = path.resolve(value());
    else if (a === '--out') args.out = path.resolve(value());
    else if (a === '--user-data') args.userData = path.resolve(value());
    else if (a === '--provider') args.provider = ProviderSchema.parse(value());
    else if (a === '--demo') args.demo = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run web -- [--port N] [--models DIR] [--out DIR] [--demo] [--provider cpu|webgpu|cuda|dml] [--user-data DIR]');
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  return args;
}

/** Builds the renderer when its build is missing or older than its sources. */
export function ensureRendererBuilt(): string {
  const out = path.join(ROOT, 'dist-renderer');
  const index = path.join(out, 'index.html');
  const newest = (dir: string): number => fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = path.join(dir, e.name);
    return Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }, 0);
  const srcDir = path.join(ROOT, 'renderer');
  const stale = !fs.existsSync(index) || (fs.existsSync(srcDir) && newest(srcDir) > fs.statSync(index).mtimeMs);
  if (stale) {
    console.log('Building the editor (vite)…');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('building the renderer failed');
  }
  return out;
}

/** Providers worth offering on this machine (the engine still falls back to CPU with a notice). */
function providersHere(): EngineSettings['provider'][] {
  const list: EngineSettings['provider'][] = ['cpu', 'webgpu'];
  const bin = path.join(ROOT, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch);
  const hasCuda = fs.existsSync(bin) && fs.readdirSync(bin).some((f) => /providers_cuda/.test(f));
  if (hasCuda) list.push('cuda');
  if (process.platform === 'win32') list.push('dml');
  return list;
}

function readSaved(file: string): Partial<EngineSettings> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.userData, { recursive: true });
  const settingsFile = path.join(args.userData, 'settings.json');
  const saved = readSaved(settingsFile);
  const settings: EngineSettings = {
    modelsDir: args.models ?? saved.modelsDir ?? path.join(args.userData, 'models'),
    outputDir: args.out ?? saved.outputDir ?? path.join(args.userData, 'outputs'),
    provider: args.provider ?? ProviderSchema.catch('cpu').parse(saved.provider ?? 'cpu'),
  };
  fs.mkdirSync(settings.outputDir, { recursive: true });
  fs.mkdirSync(settings.modelsDir, { recursive: true });
  const staticDir = ensureRendererBuilt();

  const engine = createEngine({ ...settings, userDataDir: args.userData, demo: args.demo });
  engine.subscribe((e) => {
    if (e.type === 'log') console.log(`[engine] ${e.message}`);
    else if (e.type === 'run-done' && !e.ok) console.log(`[engine] run ${e.runId} ${e.cancelled ? 'cancelled' : `failed: ${e.error ?? ''}`}`);
  });
  const info = () => ({
    version: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string,
    providers: providersHere(),
    demo: engine.isDemo(),
    notices: engine.isDemo() ? [`Demo models: tiny random weights, so images are noise. Point Settings → Models folder at real SD1.5 models.`] : [],
  });

  const listen = (port: number) => startServer({
    engine, port, staticDir, userDataDir: args.userData, examplesDir: path.join(ROOT, 'examples'), info,
    onSettings: (s) => fs.writeFileSync(settingsFile, JSON.stringify(s, null, 2)),
  });
  let server;
  try {
    server = await listen(args.port ?? DEFAULT_PORT);
  } catch (e) {
    // The default port is taken: any free one will do (an explicit --port is not second-guessed).
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || args.port !== undefined) throw e;
    server = await listen(0);
  }
  console.log(`Listening on ${server.url}`);

  const stop = async () => {
    await server.close();
    await engine.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e) => {
  console.error(`web: ${(e as Error).message}`);
  process.exit(1);
});
