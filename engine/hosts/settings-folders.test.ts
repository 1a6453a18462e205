/** Settings changes from a renderer (web mode and desktop alike): the folders they name must be existing folders. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EngineApi, EngineSettings } from '../api.js';
import { createApiHandlers, invokeApi } from './host-api.js';
import { settingsFolderProblem } from './host-config.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-settings-folders-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('settings folders', () => {
  it('are refused unless they are existing folders; nothing is changed or saved then', async () => {
    const program = path.join(dir, 'tool.sh');
    fs.writeFileSync(program, '#!/bin/sh\n');
    fs.mkdirSync(path.join(dir, 'out'));
    let settings: EngineSettings = { modelsDir: dir, outputDir: dir, provider: 'cpu' };
    const saved: EngineSettings[] = [];
    const engine = { settings: () => settings, updateSettings: (s: Partial<EngineSettings>) => (settings = { ...settings, ...s }) } as unknown as EngineApi;
    const handlers = createApiHandlers({
      engine,
      host: 'web',
      info: () => ({ version: 't', providers: ['cpu'], demo: false, notices: [] }),
      examplesDir: dir,
      inputsDir: path.join(dir, 'inputs'),
      onSettings: (s) => saved.push(s),
    });
    for (const [change, msg] of [
      [{ outputDir: program }, /the output folder .*tool\.sh is not a folder/],
      [{ modelsDir: program }, /the models folder .*tool\.sh is not a folder/],
      [{ outputDir: path.join(dir, 'nope') }, /the output folder .*nope does not exist/],
      [{ provider: 'webgpu', modelsDir: program }, /not a folder/],
    ] as const) {
      expect(await invokeApi(handlers, 'updateSettings', change), JSON.stringify(change)).toEqual({ ok: false, error: expect.stringMatching(msg) });
    }
    expect(settings).toEqual({ modelsDir: dir, outputDir: dir, provider: 'cpu' });
    expect(saved).toEqual([]);
    expect(await invokeApi(handlers, 'updateSettings', { outputDir: path.join(dir, 'out'), provider: 'webgpu' })).toMatchObject({ ok: true });
    expect(saved).toEqual([{ modelsDir: dir, outputDir: path.join(dir, 'out'), provider: 'webgpu' }]);
    expect(settingsFolderProblem({ provider: 'cpu' })).toBeNull();
    // A folder that is already the setting is not checked again (the editor sends every field).
    expect(settingsFolderProblem({ outputDir: program }, { modelsDir: dir, outputDir: program, provider: 'cpu' })).toBeNull();
  });
});
