/** IP-Adapter Unified Loader through the engine on the demo models (its search is tested in models/ip-adapter-presets.test.ts). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workflow } from '../engine/api.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { ipAdapterWorkflow } from '../test/helpers/workflows.js';
import type { LatentValue } from './values.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-unified-'));
let engine: Engine;

beforeAll(() => {
  engine = createEngine({
    modelsDir: path.join(tmp, 'none'),
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

/** The standard workflow with the unified loader in place of Load IP-Adapter and Load CLIP Vision. */
function unified(preset: string): Workflow {
  const wf = ipAdapterWorkflow({ image: IMAGE, steps: 2, output: 'preview' });
  wf.nodes = wf.nodes.filter((n) => n.id !== 'ip_adapter' && n.id !== 'clip_vision');
  wf.nodes.push({ id: 'loader', type: 'ip-adapter-unified-loader', params: { preset } });
  wf.edges = wf.edges.map((e) => (e.from.node === 'ip_adapter' || e.from.node === 'clip_vision' ? { ...e, from: { node: 'loader', port: e.from.port } } : e));
  wf.edges.push({ from: { node: 'checkpoint', port: 'model' }, to: { node: 'loader', port: 'model' } });
  return wf;
}

async function sample(wf: Workflow): Promise<{ latent?: LatentValue; error?: string }> {
  let latent: LatentValue | undefined;
  const r = await engine.run(wf, { onNodeOutputs: (node, out) => node === 'sampler' && (latent = out.latent as LatentValue) });
  return { latent, ...(r.ok ? {} : { error: r.error ?? JSON.stringify(r.errors) }) };
}

describe('IP-Adapter Unified Loader', () => {
  it('"standard" finds the demo adapter and encoder by their shapes: the same latents as the explicit loaders, bit for bit', async () => {
    const ref = await sample(ipAdapterWorkflow({ image: IMAGE, steps: 2, output: 'preview' }));
    const got = await sample(unified('standard'));
    expect(got.error).toBeUndefined();
    expect(got.latent!.samples).toEqual(ref.latent!.samples);
  });

  it('"plus" names what is missing and what the folder holds', async () => {
    const r = await sample(unified('plus'));
    expect(r.error).toMatch(
      /no IP-Adapter in .*ipadapter has the shapes of the "plus" preset \(plus ViT-H.*found: ipadapter\/ip-adapter_sd15\.safetensors \(base ViT-H, 4 tokens/,
    );
  });
});
