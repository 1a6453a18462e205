import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeSpec } from '../nodes/types.js';
import type { Workflow } from './api.js';
import { PathResolver } from './paths.js';
import { validateWorkflow } from './validate.js';
import { parseWorkflow, WORKFLOW_VERSION } from './workflow.js';

const specs = new Map<string, NodeSpec>([
  [
    'src',
    {
      type: 'src',
      title: 'Source',
      category: 't',
      description: '',
      inputs: [],
      outputs: [
        { name: 'latent', type: 'LATENT' },
        { name: 'image', type: 'IMAGE' },
      ],
      params: [
        { name: 'n', kind: 'number', default: 1, min: 0, max: 10, integer: true },
        { name: 'mode', kind: 'enum', default: 'a', options: ['a', 'b'] },
        { name: 'flag', kind: 'boolean', default: false },
      ],
    },
  ],
  [
    'mid',
    {
      type: 'mid',
      title: 'Middle',
      category: 't',
      description: '',
      inputs: [
        { name: 'latent', type: 'LATENT' },
        { name: 'extra', type: 'LATENT', optional: true },
      ],
      outputs: [{ name: 'latent', type: 'LATENT' }],
      params: [],
    },
  ],
  [
    'sink',
    {
      type: 'sink',
      title: 'Sink',
      category: 't',
      description: '',
      inputs: [{ name: 'image', type: 'IMAGE' }],
      outputs: [],
      params: [{ name: 'filename_prefix', kind: 'string', default: 'x', outputPrefix: true }],
      output: true,
    },
  ],
  [
    'ckpt',
    {
      type: 'ckpt',
      title: 'Loader',
      category: 't',
      description: '',
      inputs: [],
      outputs: [{ name: 'image', type: 'IMAGE' }],
      params: [
        { name: 'file', kind: 'file', modelKind: 'checkpoints', default: 'a.safetensors' },
        { name: 'img', kind: 'image', default: '' },
      ],
    },
  ],
]);

const wf = (nodes: Workflow['nodes'], edges: [string, string, string, string][]): Workflow => ({
  format: 'ipadapter-studio/workflow',
  version: 1,
  nodes,
  edges: edges.map(([a, ap, b, bp]) => ({ from: { node: a, port: ap }, to: { node: b, port: bp } })),
});
const n = (id: string, type: string, params: Record<string, number | string | boolean> = {}) => ({ id, type, params });
const ok = () =>
  wf(
    [n('s', 'src'), n('m', 'mid'), n('o', 'sink')],
    [
      ['s', 'latent', 'm', 'latent'],
      ['s', 'image', 'o', 'image'],
    ],
  );

describe('validateWorkflow', () => {
  it('accepts a valid graph', () => {
    expect(validateWorkflow(ok(), specs)).toEqual([]);
  });

  it('reports an unknown node type', () => {
    const w = ok();
    w.nodes.push(n('x', 'nope'));
    const e = validateWorkflow(w, specs);
    expect(e).toHaveLength(1);
    expect(e[0]).toMatchObject({ node: 'x' });
    expect(e[0].message).toMatch(/unknown node type "nope"/);
  });

  it('reports unknown output and input ports', () => {
    const e = validateWorkflow(
      wf(
        [n('s', 'src'), n('m', 'mid'), n('o', 'sink')],
        [
          ['s', 'lat', 'm', 'latent'],
          ['s', 'image', 'o', 'img'],
        ],
      ),
      specs,
    );
    expect(e.find((x) => x.node === 's' && x.port === 'lat')?.message).toMatch(/unknown output port "lat"/);
    expect(e.find((x) => x.node === 'o' && x.port === 'img')?.message).toMatch(/unknown input port "img"/);
  });

  it("reports a port type mismatch with canConnect's reason", () => {
    const e = validateWorkflow(
      wf(
        [n('s', 'src'), n('m', 'mid'), n('o', 'sink')],
        [
          ['s', 'image', 'm', 'latent'],
          ['s', 'image', 'o', 'image'],
        ],
      ),
      specs,
    );
    expect(e).toHaveLength(1);
    expect(e[0]).toMatchObject({ node: 'm', port: 'latent' });
    expect(e[0].message).toMatch(/IMAGE output cannot feed a LATENT input/);
  });

  it('reports a cycle, naming its nodes', () => {
    const w = wf(
      [n('s', 'src'), n('a', 'mid'), n('b', 'mid'), n('o', 'sink')],
      [
        ['s', 'latent', 'a', 'latent'],
        ['a', 'latent', 'b', 'latent'],
        ['b', 'latent', 'a', 'extra'],
        ['s', 'image', 'o', 'image'],
      ],
    );
    const e = validateWorkflow(w, specs);
    expect(e).toHaveLength(1);
    expect(e[0].message).toMatch(/a, b form a cycle/);
  });

  it('reports a self-link', () => {
    const w = wf(
      [n('s', 'src'), n('a', 'mid'), n('o', 'sink')],
      [
        ['s', 'latent', 'a', 'latent'],
        ['a', 'latent', 'a', 'extra'],
        ['s', 'image', 'o', 'image'],
      ],
    );
    expect(validateWorkflow(w, specs)[0].message).toMatch(/cannot feed itself/);
  });

  it('reports a missing required input but not a missing optional one', () => {
    const e = validateWorkflow(wf([n('s', 'src'), n('m', 'mid'), n('o', 'sink')], [['s', 'image', 'o', 'image']]), specs);
    expect(e).toHaveLength(1);
    expect(e[0]).toMatchObject({ node: 'm', port: 'latent' });
    expect(e[0].message).toMatch(/required input "latent" \(LATENT\) is not connected/);
  });

  it('reports params out of range, of the wrong type, not whole, not an option, unknown', () => {
    const w = ok();
    w.nodes[0].params = { n: 11, mode: 'c', flag: 'yes', extra: 1 };
    let e = validateWorkflow(w, specs);
    const msg = (p: string) => e.find((x) => x.param === p)?.message ?? '';
    expect(msg('n')).toMatch(/11 is above the maximum 10/);
    expect(msg('mode')).toMatch(/"c" is not one of a, b/);
    expect(msg('flag')).toMatch(/must be true or false/);
    expect(msg('extra')).toMatch(/unknown param "extra"/);
    w.nodes[0].params = { n: 'three' };
    e = validateWorkflow(w, specs);
    expect(msg('n')).toMatch(/must be a number/);
    w.nodes[0].params = { n: 2.5 };
    e = validateWorkflow(w, specs);
    expect(msg('n')).toMatch(/whole number/);
    w.nodes[0].params = { n: -1 };
    e = validateWorkflow(w, specs);
    expect(msg('n')).toMatch(/below the minimum 0/);
  });

  it('returns every error at once, each with its node', () => {
    const w = wf([n('s', 'src', { n: 99 }), n('m', 'mid'), n('x', 'nope'), n('o', 'sink', { filename_prefix: '../up' })], [['s', 'image', 'm', 'latent']]);
    const e = validateWorkflow(w, specs);
    expect(e.map((x) => x.node).sort()).toEqual(['m', 'o', 'o', 's', 'x']);
  });

  it('refuses a second edge into one input', () => {
    const w = ok();
    w.edges.push({ from: { node: 's', port: 'latent' }, to: { node: 'm', port: 'latent' } });
    expect(validateWorkflow(w, specs)[0].message).toMatch(/more than one incoming edge/);
  });

  it('refuses Save prefixes that leave the output folder', () => {
    for (const bad of ['../x', 'a/../../x', '/etc/x', 'C:\\x']) {
      const w = ok();
      w.nodes[2].params = { filename_prefix: bad };
      const e = validateWorkflow(w, specs);
      expect(e, bad).toHaveLength(1);
      expect(e[0]).toMatchObject({ node: 'o', param: 'filename_prefix' });
    }
    const w = ok();
    w.nodes[2].params = { filename_prefix: 'sweeps/lambda' };
    expect(validateWorkflow(w, specs)).toEqual([]);
  });

  it('reports a workflow without an output node', () => {
    expect(validateWorkflow(wf([n('s', 'src')], []), specs)[0].message).toMatch(/no output node/);
  });

  it('checks that file and image params resolve (models folder, then the workflow folder)', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-val-'));
    fs.mkdirSync(path.join(root, 'models', 'checkpoints'), { recursive: true });
    fs.writeFileSync(path.join(root, 'models', 'checkpoints', 'a.safetensors'), '');
    fs.writeFileSync(path.join(root, 'pic.png'), '');
    const w = wf([n('c', 'ckpt', { img: 'pic.png' }), n('o', 'sink')], [['c', 'image', 'o', 'image']]);
    expect(validateWorkflow(w, specs, { paths: new PathResolver(path.join(root, 'models'), root) })).toEqual([]);
    w.nodes[0].params = { file: 'b.safetensors', img: 'nope.png' };
    const e = validateWorkflow(w, specs, { paths: new PathResolver(path.join(root, 'models'), root) });
    expect(e.map((x) => x.param).sort()).toEqual(['file', 'img']);
    expect(e[0].message).toMatch(/"b.safetensors" not found \(looked in .*checkpoints/);
  });
});

describe('parseWorkflow', () => {
  it('migrates version 0 (links, position) to the current version', () => {
    const r = parseWorkflow({
      version: 0,
      nodes: [
        { id: 'a', type: 'src', params: {}, position: [10, 20] },
        { id: 'b', type: 'sink' },
      ],
      links: [['a', 'image', 'b', 'image']],
    });
    expect(r.errors).toEqual([]);
    expect(r.migratedFrom).toBe(0);
    expect(r.workflow).toEqual({
      format: 'ipadapter-studio/workflow',
      version: WORKFLOW_VERSION,
      nodes: [
        { id: 'a', type: 'src', params: {}, ui: { x: 10, y: 20 } },
        { id: 'b', type: 'sink', params: {} },
      ],
      edges: [{ from: { node: 'a', port: 'image' }, to: { node: 'b', port: 'image' } }],
    });
  });

  it('refuses a newer version with a sentence', () => {
    const r = parseWorkflow({ format: 'ipadapter-studio/workflow', version: 7, nodes: [], edges: [] });
    expect(r.workflow).toBeNull();
    expect(r.errors[0].message).toMatch(new RegExp(`version 7, saved by a newer .* up to ${WORKFLOW_VERSION}`));
  });

  it('refuses other formats, missing versions and malformed parts', () => {
    expect(parseWorkflow({ format: 'comfyui', version: 1 }).errors[0].message).toMatch(/not an IP-Adapter Studio workflow/);
    expect(parseWorkflow({ format: 'ipadapter-studio/workflow', nodes: [], edges: [] }).errors[0].message).toMatch(/no valid "version"/);
    expect(parseWorkflow('{oops').errors[0].message).toMatch(/not valid JSON/);
    const r = parseWorkflow({ format: 'ipadapter-studio/workflow', version: 1, nodes: [{ id: 'a', type: 't', params: { p: [1] } }], edges: [{ from: 'a' }] });
    expect(r.errors.map((e) => e.message)).toEqual([
      'node a: param "p" must be a number, string or boolean, found [1]',
      'edges[0] must look like {"from": {"node", "port"}, "to": {"node", "port"}}',
    ]);
  });
});
