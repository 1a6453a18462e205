/** Workflow version 4: Apply IP-Adapter's `blocks` preset became ComfyUI_IPAdapter_plus' `weight_type`. */
import { describe, expect, it } from 'vitest';
import { parseWorkflow, WORKFLOW_VERSION } from './workflow.js';

const doc = (version: number, params: Record<string, unknown>) => ({
  format: 'ipadapter-studio/workflow',
  version,
  nodes: [
    { id: 'apply', type: 'apply-ip-adapter', params },
    { id: 'other', type: 'vae-decode', params: { blocks: 'all' } },
  ],
  edges: [],
});
const migrated = (version: number, params: Record<string, unknown>) => {
  const r = parseWorkflow(doc(version, params));
  expect(r.errors).toEqual([]);
  expect(r.migratedFrom).toBe(version);
  expect(r.workflow!.version).toBe(WORKFLOW_VERSION);
  return r.workflow!.nodes;
};

describe('workflow migration to version 4 (blocks -> weight_type)', () => {
  it('each preset becomes the weight type whose layer map it was; a preset drops its unused layer_weights', () => {
    const p = (blocks: string, layer_weights = '') => migrated(3, { weight: 0.8, start_at: 0.1, end_at: 1, blocks, layer_weights })[0]!.params;
    expect(p('all')).toEqual({ weight: 0.8, start_at: 0.1, end_at: 1, weight_type: 'linear' });
    expect(p('style only', '1, 2')).toEqual({ weight: 0.8, start_at: 0.1, end_at: 1, weight_type: 'style transfer' });
    expect(p('composition only')).toEqual({ weight: 0.8, start_at: 0.1, end_at: 1, weight_type: 'composition' });
  });

  it('custom keeps its layer weights (which now replace the type’s factors) under linear', () => {
    const nodes = migrated(2, { weight: 1, blocks: 'custom', layer_weights: '4:0.25, 5:1' });
    expect(nodes[0]!.params).toEqual({ weight: 1, weight_type: 'linear', layer_weights: '4:0.25, 5:1' });
  });

  it('touches only Apply IP-Adapter nodes that had blocks; an unknown preset stays visible as an unknown type for validation to name', () => {
    const nodes = migrated(1, { weight: 1 });
    expect(nodes[0]!.params).toEqual({ weight: 1 });
    expect(nodes[1]!.params).toEqual({ blocks: 'all' });
    expect(migrated(3, { blocks: 'sideways' })[0]!.params).toEqual({ weight_type: 'sideways' });
  });

  it('a version-4 file is read as it is', () => {
    const r = parseWorkflow(doc(4, { weight_type: 'ease in', layer_weights: '' }));
    expect(r.migratedFrom).toBeUndefined();
    expect(r.workflow!.nodes[0]!.params).toEqual({ weight_type: 'ease in', layer_weights: '' });
  });
});
