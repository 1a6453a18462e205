import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, readTensorBytes } from '../../models/safetensors.js';
import { fixtureFolder } from '../../test/helpers/fixtures.js';
import { main, parseConvertArgs } from './convert-model.js';

const MODEL_FILES = fixtureFolder('model-files');
const BASE = fixtureFolder('tiny-sd15');
const TWINS: [string, string][] = [
  [path.join(MODEL_FILES, 'pickles', 'ip-adapter_sd15-tiny.bin'), path.join(BASE, 'ip-adapter_sd15-tiny.safetensors')],
  [path.join(MODEL_FILES, 'pickles', 'vae-ft-mse-tiny-legacy.ckpt'), path.join(MODEL_FILES, 'vae', 'vae-ft-mse-tiny.safetensors')],
  [path.join(MODEL_FILES, 'pickles', 'control_v11p_sd15_tiny.pth'), path.join(BASE, 'controlnet-ldm.safetensors')],
];

describe('convert-model', () => {
  let dir: string;
  const logs: string[] = [];
  const run = (...argv: string[]) =>
    main(
      argv,
      (s) => logs.push(s),
      (s) => logs.push(s),
    );
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convert-model-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each(TWINS)('converts %s into a safetensors file equal to its twin', (pickle, twin) => {
    const src = path.join(dir, path.basename(pickle));
    fs.copyFileSync(pickle, src);
    expect(run(src)).toBe(0);
    const out = src.replace(/\.[^.]+$/, '.safetensors');
    expect(logs.at(-1)).toMatch(new RegExp(`^wrote ${out.replace(/[.\\/]/g, '\\$&')} \\(\\d+ tensors`));
    const a = SafetensorsFile.open(out),
      b = SafetensorsFile.open(twin);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const k of b.keys()) {
      expect([a.get(k).dtype, a.get(k).shape]).toEqual([b.get(k).dtype, b.get(k).shape]);
      expect(readTensorBytes(a.get(k)).equals(readTensorBytes(b.get(k))), k).toBe(true);
    }
    expect(a.metadata).toEqual({ format: 'pt', converted_from: path.basename(pickle) });
  });

  it('--out, an existing output (--force), refusals and bad arguments', () => {
    const out = path.join(dir, 'sub', 'vae.safetensors');
    fs.mkdirSync(path.dirname(out));
    const ckpt = path.join(MODEL_FILES, 'pickles', 'vae-ft-mse-tiny.ckpt');
    expect(run(ckpt, '--out', out)).toBe(0);
    expect(run(ckpt, '--out', out)).toBe(1);
    expect(logs.at(-1)).toMatch(/already exists; pass --force/);
    expect(run(ckpt, `--out=${out}`, '--force')).toBe(0);
    // A refused file writes nothing (no output, no temporary file).
    const bad = path.join(dir, 'bad', 'x.safetensors');
    fs.mkdirSync(path.dirname(bad));
    fs.rmSync('/tmp/ipas-pickle-marker-os_system', { force: true });
    expect(run(path.join(MODEL_FILES, 'malicious', 'ip-adapter_os_system.bin'), '--out', bad)).toBe(1);
    expect(logs.at(-1)).toMatch(/"os\.system" is not a tensor-file global/);
    expect(fs.readdirSync(path.dirname(bad))).toEqual([]);
    expect(fs.existsSync('/tmp/ipas-pickle-marker-os_system')).toBe(false);
    expect(run(path.join(MODEL_FILES, 'vae', 'vae-ft-mse-tiny.safetensors'), '--out', bad)).toBe(1);
    expect(logs.at(-1)).toMatch(/is not a PyTorch pickle/);
    expect(run()).toBe(2);
    expect(run('a.ckpt', 'b.ckpt')).toBe(2);
    expect(run('a.ckpt', '--bogus')).toBe(2);
    expect(run('--help')).toBe(0);
    expect(parseConvertArgs(['x.pt', '--out', 'y.safetensors'])).toEqual({ file: 'x.pt', out: 'y.safetensors', force: false, help: false });
  });
});
