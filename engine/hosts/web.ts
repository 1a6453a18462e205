/**
 * `npm run web -- [--port N] [--models DIR] [--out DIR] [--demo] [--provider P] [--user-data DIR]`
 *
 * Web mode: the engine plus the HTTP/WebSocket server on 127.0.0.1, serving the built renderer.
 * Prints `Listening on http://127.0.0.1:N` once ready. Settings changed in the editor persist in
 * <user-data>/settings.json; flags given on the command line win over them.
 */
import { providerReadinessHere } from '../../models/providers-here.js';
import { readinessNotice } from '../../models/providers.js';
import fs from 'node:fs';
import path from 'node:path';
import type { EngineSettings } from '../api.js';
import { createEngine } from '../engine.js';
import { farmStateFileOf, queueStateFileOf, withFarm } from '../farm/editor-queue.js';
import {
  defaultUserData,
  ensureRendererBuilt,
  hostNotices,
  PROJECT_ROOT,
  providersHere,
  readSettings,
  resolveSettings,
  saveSettings,
  settingsFileOf,
} from './host-config.js';
import { ProviderSchema } from '../protocol.js';
import { startServer } from './server.js';

const ROOT = PROJECT_ROOT;
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
  const args: Args = { demo: false, userData: defaultUserData() };
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.userData, { recursive: true });
  const settingsFile = settingsFileOf(args.userData);
  const settings = resolveSettings(args, settingsFile);
  // --demo while a models folder is set (flag or settings.json): the notice says it is not used this session.
  const modelsSet = args.models !== undefined || readSettings(settingsFile).modelsDir !== undefined;
  fs.mkdirSync(settings.outputDir, { recursive: true });
  fs.mkdirSync(settings.modelsDir, { recursive: true });
  const staticDir = ensureRendererBuilt();

  // Settings' Run on a queue: the render farm (engine/farm/editor-queue.ts); else this machine.
  const engine = withFarm(createEngine({ ...settings, userDataDir: args.userData, demo: args.demo, queueStateFile: queueStateFileOf(args.userData) }), {
    inputsDir: path.join(args.userData, 'inputs'),
    stateFile: farmStateFileOf(args.userData),
  });
  engine.subscribe((e) => {
    if (e.type === 'log') console.log(`[engine] ${e.message}`);
    else if (e.type === 'run-done' && !e.ok) console.log(`[engine] run ${e.runId} ${e.cancelled ? 'cancelled' : `failed: ${e.error ?? ''}`}`);
  });
  const providers = providersHere();
  const providerReadiness = providerReadinessHere();
  const info = () => ({
    version: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string,
    providers,
    providerReadiness,
    demo: engine.isDemo(),
    notices: [...hostNotices(engine, { demoFlag: args.demo, modelsSet }), ...readinessNotice(providerReadiness, engine.settings().provider)],
  });

  const listen = (port: number) =>
    startServer({
      engine,
      port,
      staticDir,
      userDataDir: args.userData,
      examplesDir: path.join(ROOT, 'examples'),
      info,
      onSettings: (s) => void saveSettings(settingsFile, s).catch((e: Error) => console.error(`web: ${e.message}`)),
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
