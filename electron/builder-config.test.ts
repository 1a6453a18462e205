/** build/electron-builder.yml, loaded and schema-checked by electron-builder's own code; its Electron fuses applied by electron-builder's and @electron/fuses' own code. */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
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

  it('flips the Electron fuses: no RunAsNode, NODE_OPTIONS or --inspect; app code only from a checked app.asar', async () => {
    const { getConfig } = require('app-builder-lib/out/util/config/config.js');
    const { PlatformPackager } = require('app-builder-lib');
    const { flipFuses, getCurrentFuseWire, FuseV1Options } = require('@electron/fuses');
    const { SENTINEL, FuseState } = require('@electron/fuses/dist/constants.js');
    const cfg = await getConfig(ROOT, path.join('build', 'electron-builder.yml'), null);
    // electron-builder's own translation of the configuration, applied to a binary whose fuse wire has
    // every fuse of the wire's version 1 at Electron's defaults (all on but the asar and V8 snapshot ones).
    const fuses = await PlatformPackager.prototype.generateFuseConfig.call(null, cfg.electronFuses);
    const defaults = [1, 0, 1, 1, 0, 0, 0, 1].map((on) => (on ? FuseState.ENABLE : FuseState.DISABLE));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-fuses-'));
    const binary = path.join(dir, 'ip-adapter-studio');
    try {
      fs.writeFileSync(
        binary,
        Buffer.concat([Buffer.alloc(4096, 0xcc), Buffer.from(SENTINEL), Buffer.from([1, defaults.length, ...defaults]), Buffer.alloc(4096, 0xcc)]),
      );
      await flipFuses(binary, fuses);
      const wire = await getCurrentFuseWire(binary);
      const state = (o: number) => (wire[o] === FuseState.ENABLE ? 'on' : wire[o] === FuseState.DISABLE ? 'off' : String(wire[o]));
      expect({
        RunAsNode: state(FuseV1Options.RunAsNode),
        EnableNodeOptionsEnvironmentVariable: state(FuseV1Options.EnableNodeOptionsEnvironmentVariable),
        EnableNodeCliInspectArguments: state(FuseV1Options.EnableNodeCliInspectArguments),
        EnableEmbeddedAsarIntegrityValidation: state(FuseV1Options.EnableEmbeddedAsarIntegrityValidation),
        OnlyLoadAppFromAsar: state(FuseV1Options.OnlyLoadAppFromAsar),
        GrantFileProtocolExtraPrivileges: state(FuseV1Options.GrantFileProtocolExtraPrivileges),
        EnableCookieEncryption: state(FuseV1Options.EnableCookieEncryption),
        LoadBrowserProcessSpecificV8Snapshot: state(FuseV1Options.LoadBrowserProcessSpecificV8Snapshot),
      }).toEqual({
        RunAsNode: 'off',
        EnableNodeOptionsEnvironmentVariable: 'off',
        EnableNodeCliInspectArguments: 'off',
        EnableEmbeddedAsarIntegrityValidation: 'on',
        OnlyLoadAppFromAsar: 'on',
        GrantFileProtocolExtraPrivileges: 'off',
        EnableCookieEncryption: 'on',
        LoadBrowserProcessSpecificV8Snapshot: 'off',
      });
      // The bytes around the wire are untouched.
      const bytes = fs.readFileSync(binary);
      expect(bytes.subarray(0, 4096).every((b) => b === 0xcc) && bytes.subarray(bytes.length - 4096).every((b) => b === 0xcc)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // The asar the integrity check covers is built (asar: true), and the native add-ons load from app.asar.unpacked.
    expect(cfg.asar).toBe(true);
  });
});
