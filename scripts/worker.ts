/**
 * `npm run worker -- --redis redis://HOST:PORT [--models DIR] [--concurrency 1] [--demo] [--user-data DIR] [--provider cpu|cuda|...] [--name NAME]`
 *
 * Runs the engine as a render-farm worker (engine/farm/worker.ts) on the BullMQ queue at that Redis:
 * it takes jobs that `npm run generate -- wf.json --queue redis://…` and the editor submit, runs them
 * with the models of its own models folder (looked up by name) and returns their PNGs. Stops on
 * SIGINT / SIGTERM after the job in hand (BullMQ gives a killed worker's job to another).
 */
import * as path from 'node:path';
import { startFarmWorker } from '../engine/farm/worker.js';
import { redactedUrl, redisOptions } from '../engine/farm/redis.js';
import { defaultUserData, readSettings, settingsFileOf } from '../engine/hosts/host-config.js';
import { ProviderSchema, type Provider } from '../engine/protocol.js';

const USAGE = `usage: npm run worker -- --redis redis://HOST:PORT [options]

options:
  --redis URL          the farm's Redis (required)
  --models DIR         models folder (default: $IPA_MODELS, else the app's setting, else <user data>/models)
  --concurrency N      jobs at once, each on its own engine (own cache and cancel), one shared copy of the models (default 1)
  --separate-models    with --concurrency: each slot loads its own copy of the models (N x the memory; for comparison)
  --demo               use the demo models (tiny random weights)
  --user-data DIR      where the demo models and the generated ONNX cache live (default: $IPA_STUDIO_USER_DATA or ~/.ipadapter-studio)
  --provider NAME      cpu, webgpu, cuda or dml (default: cpu)
  --name NAME          this worker's name in the status line (default: host:pid)
  --lock-ms MS         BullMQ lock duration: a dead worker's job is retried after about this long (default 30000)`;

async function main(argv: string[]): Promise<number> {
  const o: Record<string, string> = {};
  let demo = false;
  let separate = false;
  try {
    for (let i = 0; i < argv.length; i++) {
      const k = argv[i];
      if (k === '-h' || k === '--help') {
        process.stdout.write(`${USAGE}\n`);
        return 0;
      }
      if (k === '--demo') demo = true;
      else if (k === '--separate-models') separate = true;
      else if (['--redis', '--models', '--concurrency', '--user-data', '--provider', '--name', '--lock-ms'].includes(k)) {
        const v = argv[++i];
        if (v === undefined) throw new Error(`${k} needs a value`);
        o[k.slice(2)] = v;
      } else throw new Error(`unknown argument ${k}`);
    }
    if (!o.redis) throw new Error('--redis redis://HOST:PORT is required');
    redisOptions(o.redis);
    if (o.provider && !ProviderSchema.safeParse(o.provider).success) throw new Error(`--provider must be ${ProviderSchema.options.join(', ')}`);
    if (o.concurrency && !(Number.isInteger(Number(o.concurrency)) && Number(o.concurrency) >= 1)) throw new Error('--concurrency must be a whole number >= 1');
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const userData = path.resolve(o['user-data'] ?? defaultUserData(process.env));
  const models = path.resolve(o.models ?? (process.env.IPA_MODELS || readSettings(settingsFileOf(userData)).modelsDir || path.join(userData, 'models')));
  const w = await startFarmWorker({
    redis: o.redis,
    modelsDir: models,
    concurrency: o.concurrency ? Number(o.concurrency) : 1,
    demo,
    userDataDir: userData,
    provider: (o.provider as Provider | undefined) ?? 'cpu',
    name: o.name,
    lockMs: o['lock-ms'] ? Number(o['lock-ms']) : undefined,
    shareModels: !separate,
  });
  await w.ready;
  process.stdout.write(`worker ${w.id} on ${redactedUrl(o.redis)}: models ${w.modelsDir}${demo ? ' (demo)' : ''}, temporary folder ${w.tempDir}; ready\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  process.stdout.write('stopping after the job in hand\n');
  await w.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (code === 0) process.exit(0);
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
