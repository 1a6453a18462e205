import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, parseArgs } from './cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {} } };
}

describe('cli arguments', () => {
  it('-h and --help print the usage to stdout and exit 0, whatever else is given', async () => {
    for (const argv of [['-h'], ['--help'], ['wf.json', '--help'], ['--models', 'm', '-h', 'extra', 'args']]) {
      const r = io();
      expect(await main(argv, r.io), argv.join(' ')).toBe(0);
      expect(r.out.join('')).toMatch(/^usage: npm run generate -- <workflow\.json\|image\.png>/);
      expect(r.out.join('')).toContain('--set node.param=V');
      expect(r.err).toEqual([]);
    }
  });

  it('bad arguments exit 2 with the reason and the usage on stderr', async () => {
    const r = io();
    expect(await main(['--provider', 'tpu', 'wf.json'], r.io)).toBe(2);
    expect(r.err.join('')).toMatch(/--provider must be cpu, webgpu, cuda, dml \(got "tpu"\)\nusage:/);
    expect(r.out).toEqual([]);
  });

  it('takes the models folder from --models, $IPA_MODELS, the app settings, then the user folder', () => {
    const user = path.join(tmp, 'user');
    fs.mkdirSync(user);
    expect(parseArgs(['w.json', '--user-data', user], {}).models).toBe(path.join(user, 'models'));
    fs.writeFileSync(path.join(user, 'settings.json'), JSON.stringify({ modelsDir: '/comfy/models', provider: 'tpu' }));
    expect(parseArgs(['w.json', '--user-data', user], {}).models).toBe('/comfy/models');
    expect(parseArgs(['w.json', '--user-data', user], { IPA_MODELS: '/env' }).models).toBe('/env');
    expect(parseArgs(['w.json', '--user-data', user, '--models', '/flag'], { IPA_MODELS: '/env' }).models).toBe('/flag');
  });
});
