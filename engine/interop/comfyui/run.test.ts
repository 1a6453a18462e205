/**
 * Each converted ComfyUI fixture runs on the demo model set (models matched by kind), and its
 * sampler ran with ComfyUI's values; the one with unsupported nodes is refused, naming them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../../engine.js';
import { COMFY_FIXTURES, comfyFixture } from '../../../test/helpers/comfyui.js';
import { importComfyUI } from './import.js';
import { main as generate } from '../../hosts/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-comfy-run-'));
let engine: Engine;
beforeAll(() => {
  engine = createEngine({
    modelsDir: path.join(tmp, 'models'),
    outputDir: path.join(tmp, 'out'),
    provider: 'cpu',
    userDataDir: path.join(tmp, 'user'),
    demo: true,
  });
});
afterAll(async () => {
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function convert(name: string) {
  return importComfyUI(comfyFixture(name), { specs: engine.nodeSpecs(), models: await engine.listModels() });
}

describe('converted ComfyUI workflows on the demo models', () => {
  for (const [name, sampler, expected] of [
    ['ipadapter-advanced.v04.json', 'c9', { seed: 987654321, steps: 4, cfg: 7.5, sampler_name: 'ddim', scheduler: 'ddim_uniform', denoise: 1 }],
    ['embeds-noise.v1.json', 'c15', { noise_seed: 42, steps: 3, cfg: 6, sampler_name: 'euler', scheduler: 'normal', add_noise: 'enable' }],
    [
      'controlnet-lora-img2img.api.json',
      'c13',
      { seed: '18446744073709551615', steps: 3, cfg: 5.5, sampler_name: 'dpmpp_2m', scheduler: 'karras', denoise: 0.6 },
    ],
  ] as const) {
    it(`${name} runs and writes its image, the sampler with ComfyUI's values`, async () => {
      const { workflow, report } = await convert(name);
      expect(report.nodes.filter((n) => n.status === 'unsupported')).toEqual([]);
      const ran: Record<string, unknown>[] = [];
      const res = await engine.run(workflow, {
        workflowDir: COMFY_FIXTURES,
        onNodeOutputs: (node) => {
          if (node === sampler) ran.push(workflow.nodes.find((n) => n.id === sampler)!.params);
        },
      });
      expect(res.errors ?? [], name).toEqual([]);
      expect(res.error, name).toBeUndefined();
      expect(res.ok).toBe(true);
      expect(res.images.length).toBe(1);
      expect(ran).toHaveLength(1);
      expect(ran[0]).toMatchObject(expected);
    });
  }

  it('the workflow with FaceID and a custom node is refused before anything runs, naming each placeholder', async () => {
    const { workflow } = await convert('unsupported-faceid.v04.json');
    const res = await engine.run(workflow, { workflowDir: COMFY_FIXTURES });
    expect(res.ok).toBe(false);
    const msgs = (res.errors ?? []).map((e) => `${e.node}: ${e.message}`);
    expect(msgs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^c5: .*ComfyUI node IPAdapterFaceID "FaceID portrait" is not supported here: IPAdapterFaceID needs InsightFace/),
        expect.stringMatching(/^c11: .*ComfyUI node WAS_Image_Blend "Blend with the face" is not supported here/),
      ]),
    );
  });
});

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) }, env: {} } };
}

describe('npm run generate with ComfyUI files', () => {
  it('converts first, prints the report and runs', async () => {
    const r = io();
    const out = path.join(tmp, 'gen');
    expect(
      await generate([path.join(COMFY_FIXTURES, 'controlnet-lora-img2img.api.json'), '--demo', '--out', out, '--user-data', path.join(tmp, 'user')], r.io),
    ).toBe(0);
    expect(r.out.join('')).toMatch(/^ComfyUI API prompt: 16 nodes, 14 mapped, 2 approximated, 0 unsupported/);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.png'))).toHaveLength(1);
  });

  it('refuses a file with unsupported nodes, with the report', async () => {
    const r = io();
    expect(
      await generate(
        [path.join(COMFY_FIXTURES, 'unsupported-faceid.v04.json'), '--demo', '--out', path.join(tmp, 'gen2'), '--user-data', path.join(tmp, 'user')],
        r.io,
      ),
    ).toBe(2);
    expect(r.err.join('')).toMatch(/unsupported:\n {2}3 IPAdapterUnifiedLoaderFaceID/);
    expect(r.err.join('')).toMatch(/not run: .* has ComfyUI nodes that are not supported here/);
    expect(fs.existsSync(path.join(tmp, 'gen2'))).toBe(false);
  });
});
