/** test/e2e: the editor end to end in Chromium against web mode — runner, harness, tests. */
/**
 * `npm run e2e [-- --only substring]`: starts web mode (`--demo`, a free port, a temporary user
 * data folder), then runs every test/e2e/*.e2e.ts in Chromium, one fresh profile per test.
 * Screenshots go to test-results/ (failures too).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CHROMIUM, openApp, registry, setCurrentFile, startWeb } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RESULTS = path.join(ROOT, 'test-results');
const TEST_TIMEOUT_MS = 120_000;

async function main(): Promise<void> {
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  if (!fs.existsSync(CHROMIUM)) {
    console.error(`e2e: Chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
    process.exit(1);
  }
  fs.mkdirSync(RESULTS, { recursive: true });
  // Failure screenshots of an earlier run would read as failures of this one.
  for (const f of fs.readdirSync(RESULTS)) if (/^failed-.*\.png$/.test(f)) fs.rmSync(path.join(RESULTS, f), { force: true });
  const dir = path.join(ROOT, 'test', 'e2e');
  for (const f of fs
    .readdirSync(dir)
    .filter((x) => x.endsWith('.e2e.ts'))
    .sort()) {
    setCurrentFile(f);
    await import(pathToFileURL(path.join(dir, f)).href);
  }
  const tests = registry.filter((t) => !only || t.name.includes(only) || t.file.includes(only));

  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-e2e-user-'));
  const t0 = Date.now();
  const web = await startWeb(userData);
  console.log(`e2e: web mode at ${web.url} (started in ${((Date.now() - t0) / 1000).toFixed(1)} s), user data ${userData}`);
  let failed = 0;
  try {
    for (const test of tests) {
      const started = Date.now();
      const app = await openApp(web.url, userData, RESULTS, test.name);
      let error: Error | null = null;
      try {
        await Promise.race([
          test.fn(app.t),
          new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${TEST_TIMEOUT_MS / 1000} s`)), TEST_TIMEOUT_MS)),
        ]);
        if (app.problems.length) throw new Error(app.problems.join('\n'));
      } catch (e) {
        error = e as Error;
        const shot = path.join(RESULTS, `failed-${test.name.replace(/[^\w]+/g, '-')}.png`);
        await app.t.page.screenshot({ path: shot }).catch(() => {});
      }
      await app.close();
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (error) {
        failed++;
        console.log(
          `✗ ${test.file} › ${test.name} (${secs} s)\n    ${String(error.stack ?? error)
            .split('\n')
            .slice(0, 6)
            .join('\n    ')}`,
        );
      } else console.log(`✓ ${test.file} › ${test.name} (${secs} s)`);
    }
  } finally {
    await web.stop();
    if (failed) console.log(`--- web mode log ---\n${web.log.join('').split('\n').slice(-40).join('\n')}`);
    fs.rmSync(userData, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
  console.log(`e2e: ${tests.length - failed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
