/** The provider readiness of this machine (models/providers.ts providerReadiness over the real probes). */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { type ProviderReadiness, providerReadiness } from './providers.js';

let ldconfig: string | null = null;

/** Whether the dynamic loader's cache (ldconfig -p) lists a library, or a standard folder holds it. */
function hasLibrary(name: string): boolean {
  if (process.platform !== 'linux') return true;
  ldconfig ??= spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '';
  if (ldconfig.includes(name)) return true;
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/usr/local/cuda/lib64',
  ];
  return dirs.some((d) => fs.existsSync(path.join(d, name)));
}

/** Each provider's readiness here, in PROVIDERS order. */
export function providerReadinessHere(): ProviderReadiness[] {
  let ortFiles: string[] = [];
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    ortFiles = fs.readdirSync(path.join(path.dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch));
  } catch {
    /* not installed for this platform: every provider but the CPU reads as missing its libraries */
  }
  return providerReadiness({ platform: process.platform, arch: process.arch, ortFiles, hasLibrary });
}
