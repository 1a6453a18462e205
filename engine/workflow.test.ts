import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseWorkflow, WORKFLOW_VERSION } from './workflow.js';

const examplesDir = path.join(import.meta.dirname, '..', 'examples');

describe('workflow migration to version 3 (node modes, reroute / note / primitive, groups)', () => {
  it('opens every older saved file unchanged: the bundled examples saved as version 2 keep their nodes, edges and meta', () => {
    const files = fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      // The examples are version 3 files without modes or canvas-only nodes: what version 2 saved.
      const doc = { ...JSON.parse(fs.readFileSync(path.join(examplesDir, f), 'utf8')), version: 2 };
      const r = parseWorkflow(doc);
      expect(r.errors, f).toEqual([]);
      expect(r.workflow!.version).toBe(WORKFLOW_VERSION);
      if (doc.version < WORKFLOW_VERSION) expect(r.migratedFrom, f).toBe(doc.version);
      expect(r.workflow!.nodes, f).toEqual(doc.nodes);
      expect(r.workflow!.edges, f).toEqual(doc.edges);
      if (doc.meta) expect(r.workflow!.meta, f).toEqual(doc.meta);
      expect(r.workflow!.nodes.some((n) => n.mode !== undefined)).toBe(false);
    }
  });

  it('version 2 ignored a "mode" field; the migration drops it, so such a file still runs every node', () => {
    const v2 = { format: 'ipadapter-studio/workflow', version: 2, nodes: [{ id: 'a', type: 'vae-decode', params: {}, mode: 'bypass' }], edges: [] };
    const r = parseWorkflow(v2);
    expect(r.migratedFrom).toBe(2);
    expect(r.workflow!.nodes).toEqual([{ id: 'a', type: 'vae-decode', params: {} }]);
  });

  it("version 3 keeps a node's mode and refuses an unknown one, naming the node", () => {
    const v3 = (mode: unknown) => ({ format: 'ipadapter-studio/workflow', version: 3, nodes: [{ id: 'a', type: 'vae-decode', params: {}, mode }], edges: [] });
    expect(parseWorkflow(v3('bypass')).workflow!.nodes[0].mode).toBe('bypass');
    expect(parseWorkflow(v3('mute')).workflow!.nodes[0].mode).toBe('mute');
    const bad = parseWorkflow(v3('sleep'));
    expect(bad.workflow).toBeNull();
    expect(bad.errors[0]).toMatchObject({ node: 'a' });
    expect(bad.errors[0].message).toMatch(/node a: "mode" must be "bypass" or "mute"/);
  });

  it('version 0 and 1 still migrate through every step', () => {
    const v0 = parseWorkflow({ version: 0, nodes: [{ id: 's', type: 'ddim-sampler', params: { seed: 1 }, position: [3, 4] }], links: [] });
    expect(v0.migratedFrom).toBe(0);
    expect(v0.workflow!.nodes[0]).toEqual({ id: 's', type: 'ddim-sampler', params: { seed: 1, noise: 'philox' }, ui: { x: 3, y: 4 } });
  });
});
