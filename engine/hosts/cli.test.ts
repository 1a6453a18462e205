import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../api.js';
import { applySets, main, parseArgs } from './cli.js';

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

describe('--set', () => {
  it('types values by the param, and keeps a seed above 2^53 as its digits', () => {
    const wf: Workflow = { format: 'ipadapter-studio/workflow', version: 2, edges: [], nodes: [{ id: 's', type: 'ddim-sampler', params: {} }] };
    const kind = (_t: string, p: string) => (({ seed: 'number', steps: 'number' }) as Record<string, string>)[p];
    expect(
      applySets(
        wf,
        [
          { node: 's', param: 'seed', value: '18446744073709551615' },
          { node: 's', param: 'steps', value: '20' },
        ],
        kind,
      ),
    ).toEqual([]);
    expect(wf.nodes[0].params).toEqual({ seed: '18446744073709551615', steps: 20 });
    expect(applySets(wf, [{ node: 's', param: 'seed', value: '42' }], kind)).toEqual([]);
    expect(wf.nodes[0].params.seed).toBe(42);
  });
});
