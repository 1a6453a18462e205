/** scripts/: developer commands — npm start, the benchmark (bench.ts, bench/), examples relayout. */
/**
 * `npm start`: opens the desktop app (Electron), first building its main process when missing and
 * the renderer when missing or stale. Where the Electron binary is not installed (offline
 * installs skip its download), says so in one line and serves the same editor in web mode instead.
 * Extra arguments go to web mode (`npm start -- --port 9000 --demo`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ensureRendererBuilt } from '../engine/hosts/host-config.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The Electron executable, or a sentence saying why there is none. */
function electronBinary(): { path: string } | { missing: string } {
  try {
    // The electron package's main export is the path of its downloaded binary; it throws when the download was skipped.
    const bin = createRequire(import.meta.url)('electron') as unknown;
    if (typeof bin === 'string' && fs.existsSync(bin)) return { path: bin };
    return { missing: 'the Electron binary is not installed' };
  } catch {
    return { missing: 'the Electron binary is not installed' };
  }
}

async function main(): Promise<void> {
  const found = electronBinary();
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main?: string; scripts?: Record<string, string> };
  if ('path' in found) {
    const entry = path.join(ROOT, pkg.main ?? 'dist-electron/main.js');
    if (!fs.existsSync(entry) && pkg.scripts?.['build:electron']) {
      const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build:electron'], { cwd: ROOT, stdio: 'inherit' });
      if (r.status !== 0) process.exit(r.status ?? 1);
    }
    if (fs.existsSync(entry)) {
      // The window loads dist-renderer/: build it when missing or older than renderer/ (as web mode does).
      try {
        ensureRendererBuilt(ROOT);
      } catch (e) {
        console.error(`start: ${(e as Error).message}`);
        process.exit(1);
      }
      const child = spawn(found.path, [ROOT, ...process.argv.slice(2)], { stdio: 'inherit' });
      child.on('exit', (code) => process.exit(code ?? 0));
      return;
    }
    console.log(`Electron is installed but its main process is not built (${path.relative(ROOT, entry)}); starting web mode instead.`);
  } else {
    console.log(`Electron: ${found.missing} (installed with ELECTRON_SKIP_BINARY_DOWNLOAD or offline); starting web mode instead — open the URL below.`);
  }
  // Web mode reads process.argv itself and prints "Listening on http://127.0.0.1:N/?t=<key>".
  await import('../engine/hosts/web.js');
}

void main();
