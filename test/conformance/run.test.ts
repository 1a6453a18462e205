import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixtureFolder, listedFixtureFolders } from '../helpers/fixtures.js';
import { Ctx } from './context.js';
import { parseArgs, selectGroups } from './run.js';

const sets = [
  { set: 'tiny-sd15', groups: ['tokenizer', 'vae', 'pipeline_ip_adapter'] },
  { set: 'model-files', groups: ['lora', 'standalone_vae', 'pickle_files'] },
  { set: 'samplers', groups: ['sampler_euler'] },
];
const picked = (m: Map<string, Set<string>>) => Object.fromEntries([...m].map(([k, v]) => [k, [...v].sort()]));

describe('conformance runner options', () => {
  it('--only selects whole folders, FOLDER/GROUP, or a group in any folder; entries that select nothing are reported', () => {
    const { selected, unmatched } = selectGroups(sets, ['tiny-sd15', 'model-files/standalone_vae', 'pickle_files', 'model-files/nope', 'nofolder']);
    expect(picked(selected)).toEqual({
      'tiny-sd15': ['pipeline_ip_adapter', 'tokenizer', 'vae'],
      'model-files': ['pickle_files', 'standalone_vae'],
      samplers: [],
    });
    expect(unmatched).toEqual(['model-files/nope', 'nofolder']);
  });

  it('without --only every group of every folder runs', () => {
    expect(picked(selectGroups(sets, null).selected)).toEqual({
      'tiny-sd15': ['pipeline_ip_adapter', 'tokenizer', 'vae'],
      'model-files': ['lora', 'pickle_files', 'standalone_vae'],
      samplers: ['sampler_euler'],
    });
  });

  it('parses --fixtures and --only, and refuses unknown options or missing values', () => {
    expect(parseArgs(['--fixtures', 'a:b', '--only', 'x, y/z'])).toEqual({
      fixtures: 'a:b',
      only: ['x', 'y/z'],
      precision: 'fp32',
      provider: 'cpu',
      controlNetsInUNet: false,
    });
    expect(parseArgs([])).toEqual({ fixtures: null, only: null, precision: 'fp32', provider: 'cpu', controlNetsInUNet: false });
    expect(parseArgs(['--precision', 'fp16', '--only', 'tiny-sd15'])).toEqual({
      fixtures: null,
      only: ['tiny-sd15'],
      precision: 'fp16',
      provider: 'cpu',
      controlNetsInUNet: false,
    });
    expect(parseArgs(['--controlnet-in-unet', '--only', 'tiny-sd15/pipeline_controlnet_ip_adapter']).controlNetsInUNet).toBe(true);
    expect(parseArgs(['--provider', 'webgpu']).provider).toBe('webgpu');
    expect(() => parseArgs(['--provider', 'tpu'])).toThrow(/--provider must be cpu, webgpu, cuda, dml/);
    expect(() => parseArgs(['--precision', 'fp8'])).toThrow(/--precision must be fp32, fp16, int8/);
    expect(() => parseArgs(['--onyl', 'x'])).toThrow(/unknown option --onyl/);
    expect(() => parseArgs(['--only'])).toThrow(/--only needs a value/);
  });
});

describe('fixture folders', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-fixtures-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('IPA_FIXTURES is a path.delimiter-separated list; a set is found by folder name or by its cases.json format', () => {
    const copy = path.join(tmp, 'set-a-copy');
    fs.mkdirSync(path.join(copy, 'cases'), { recursive: true });
    fs.writeFileSync(path.join(copy, 'cases', 'cases.json'), JSON.stringify({ format: 'tiny-sd15 golden fixtures', model_dir: '..', models: {}, groups: {} }));
    const env = [path.join(tmp, 'model-files'), copy].join(path.delimiter);
    expect(listedFixtureFolders(env)).toEqual([path.join(tmp, 'model-files'), copy]);
    expect(listedFixtureFolders('')).toBeNull();
    expect(fixtureFolder('model-files', env)).toBe(path.join(tmp, 'model-files'));
    expect(fixtureFolder('tiny-sd15', env)).toBe(copy);
    expect(fixtureFolder('samplers', env)).toMatch(/shared[\\/]fixtures[\\/]samplers$/);
  });

  it('models entries resolve against model_dir or base_model_dir as their relative_to says; anything else is an error', () => {
    const dir = path.join(tmp, 'model-files');
    fs.mkdirSync(path.join(dir, 'cases'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'cases', 'cases.json'),
      JSON.stringify({
        model_dir: '..',
        base_model_dir: '../../tiny-sd15',
        models: { v: { path: 'vae/x.safetensors', relative_to: 'model_dir' } },
        groups: {},
      }),
    );
    const ctx = new Ctx(dir);
    expect(ctx.set).toBe('model-files');
    expect(ctx.topModel('v')).toBe(path.join(dir, 'vae', 'x.safetensors'));
    expect(ctx.resolve({ path: 'diffusers', relative_to: 'base_model_dir' })).toBe(path.join(tmp, 'tiny-sd15', 'diffusers'));
    expect(() => ctx.resolve({ path: 'x' })).toThrow(/relative_to undefined is not understood/);
    expect(() => ctx.resolve({ path: 'x', relative_to: 'elsewhere' })).toThrow(/relative_to "elsewhere" is not understood/);
  });
});
