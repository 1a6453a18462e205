/**
 * The first-start workflow on the demo model set: it gets the ControlNet slot (the demo set has
 * ControlNets), its control image is the sample picture, and it validates and runs as it opens.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createEngine } from '../engine/engine.js';
import { nodeSpecs } from '../nodes/index.js';
import { defaultWorkflow } from './defaults.js';
import { toWorkflow, type SpecMap } from './graph.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe('default workflow', () => {
  it('has a ControlNet slot on the demo models and runs as it opens', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-default-'));
    const engine = createEngine({
      modelsDir: path.join(tmp, 'none'),
      outputDir: path.join(tmp, 'out'),
      provider: 'cpu',
      userDataDir: path.join(tmp, 'user'),
      demo: true,
    });
    try {
      const specs: SpecMap = Object.fromEntries(nodeSpecs().map((s) => [s.type, s]));
      const sample = path.join(root, 'examples', 'images', 'image-prompt.png');
      const wf = toWorkflow(defaultWorkflow(specs, await engine.listModels(), sample));
      const types = wf.nodes.map((n) => n.type);
      expect(types.filter((t) => t === 'apply-controlnet')).toHaveLength(2);
      expect(types).toContain('canny');
      // The control image is cropped to the latent's size before Canny, as the examples do.
      const idOf = (t: string) => wf.nodes.find((n) => n.type === t)!.id;
      const into = (id: string) =>
        wf.edges
          .filter((e) => e.to.node === id)
          .map((e) => `${wf.nodes.find((n) => n.id === e.from.node)!.type}>${e.to.port}`)
          .sort();
      expect(into(idOf('image-resize'))).toEqual(['empty-latent-image>latent', 'load-image>image']);
      expect(into(idOf('canny'))).toEqual(['image-resize>image']);
      expect(wf.nodes.find((n) => n.type === 'image-resize')!.params.mode).toBe('crop');
      expect(wf.nodes.filter((n) => n.type === 'load-image').map((n) => n.params.image)).toEqual([sample, sample]);
      expect(engine.validate(wf)).toEqual([]);
      // Small and short, as a test; the graph is the one the editor opens.
      for (const n of wf.nodes) {
        if (n.type === 'empty-latent-image') Object.assign(n.params, { width: 64, height: 64 });
        if (n.type === 'ddim-sampler') n.params.steps = 1;
      }
      const r = await engine.run(wf);
      expect(r.error ?? '').toBe('');
      expect(r.ok).toBe(true);
    } finally {
      await engine.close();
    }
  });
});
