/** build/electron-builder.yml, loaded and schema-checked by electron-builder's own code. */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

describe('electron-builder configuration', () => {
  it('is valid and packs what the app needs', async () => {
    const { getConfig, validateConfiguration } = require('app-builder-lib/out/util/config/config.js');
    const { DebugLogger } = require('builder-util');
    const cfg = await getConfig(ROOT, path.join('build', 'electron-builder.yml'), null);
    await validateConfiguration(cfg, new DebugLogger(false));
    expect(cfg.appId).toMatch(/^[\w.-]+$/);
    const files = JSON.stringify(cfg.files);
    for (const f of ['dist-electron/**', 'dist-renderer/**', 'examples/**']) expect(files).toContain(f);
    for (const m of ['onnxruntime-node', 'sharp', '@img']) expect(cfg.asarUnpack).toContain(`**/node_modules/${m}/**`);
    const pkg = require(path.join(ROOT, 'package.json'));
    expect(pkg.main).toBe('dist-electron/main.js');
  });
});
