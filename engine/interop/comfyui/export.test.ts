/**
 * Export to ComfyUI and the way back: every example and every imported fixture, ours -> ComfyUI
 * (UI workflow and API prompt) -> ours, gives the same graph; the files are well formed for
 * ComfyUI (links consistent with the nodes' sockets, API links to existing nodes); ComfyUI's
 * PNG / WebP carriers are read, a decompression bomb in a text chunk is refused.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeSpecs } from '../../../nodes/index.js';
import { resolveGraph } from '../../graph-modes.js';
import type { Workflow } from '../../protocol.js';
import { paramsWithDefaults } from '../../validate.js';
import { parseWorkflow } from '../../workflow.js';
import { addTextChunks } from '../../png.js';
import { concatBytes, encodeChunk, PNG_SIGNATURE, readChunks } from '../../png-chunks.js';
import { main as convert } from '../../hosts/convert.js';
import { COMFY_DEFS } from './defs.js';
import { exportComfyUI } from './export.js';
import { comfyDocFromBytes } from './file.js';
import { importComfyUI } from './import.js';
import { comfyFormatOf, normalizeComfy, webpExifStrings } from './read.js';
import { COMFY_FIXTURES as FIXTURES, comfyFixture as fixture, DEMO_LIST } from '../../../test/helpers/comfyui.js';

const specs = nodeSpecs();
const specMap = new Map(specs.map((s) => [s.type, s]));
const EXAMPLES = path.resolve(__dirname, '../../../examples');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-comfy-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A graph as compared: nodes with all params (defaults filled in) and layout, edges as strings. */
function canonical(wf: Workflow, layout = true) {
  return {
    nodes: [...wf.nodes]
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((n) => {
        const spec = specMap.get(n.type);
        return { id: n.id, type: n.type, params: spec ? paramsWithDefaults(spec, n.params) : n.params, ...(layout && n.ui ? { ui: n.ui } : {}) };
      }),
    edges: wf.edges.map((e) => `${e.from.node}.${e.from.port} -> ${e.to.node}.${e.to.port}`).sort(),
  };
}

function examples(): [string, Workflow][] {
  return fs
    .readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      const p = parseWorkflow(JSON.parse(fs.readFileSync(path.join(EXAMPLES, f), 'utf8')));
      if (!p.workflow) throw new Error(`${f}: ${JSON.stringify(p.errors)}`);
      return [f, p.workflow];
    });
}
const FIXTURE_FILES = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.json'));

/** The UI file's links agree with its nodes' sockets, as litegraph keeps them. */
function checkUiFile(ui: Record<string, unknown>) {
  const nodes = ui.nodes as {
    id: number;
    type: string;
    inputs: { name: string; link: number | null }[];
    outputs: { links: number[] }[];
    widgets_values: unknown;
  }[];
  for (const l of ui.links as [number, number, number, number, number, string][]) {
    const [id, from, fromSlot, to, toSlot] = l;
    expect(nodes.find((n) => n.id === from)?.outputs[fromSlot]?.links, `link ${id}`).toContain(id);
    expect(nodes.find((n) => n.id === to)?.inputs[toSlot]?.link, `link ${id}`).toBe(id);
  }
  for (const n of nodes) {
    const def = COMFY_DEFS.get(n.type);
    if (def && Array.isArray(n.widgets_values)) expect(n.widgets_values.length, n.type).toBeGreaterThanOrEqual(def.inputs.filter((i) => i.widget).length);
  }
  expect(normalizeComfy(ui).problems).toEqual([]);
}

describe('export to ComfyUI and back', () => {
  it('every example: ours -> ComfyUI UI workflow -> ours is the same graph, layout included', () => {
    for (const [name, wf] of examples()) {
      const ex = exportComfyUI(wf, specs);
      expect(comfyFormatOf(ex.ui), name).toBe('ui-0.4');
      checkUiFile(ex.ui);
      const back = importComfyUI(JSON.parse(JSON.stringify(ex.ui)), { specs, models: DEMO_LIST });
      expect(canonical(back.workflow), name).toEqual(canonical(wf));
    }
  });

  it('every example whose nodes ComfyUI has: ours -> API prompt -> ours is the same graph', () => {
    for (const [name, wf] of examples()) {
      const ex = exportComfyUI(wf, specs);
      if (ex.report.some((r) => r.status === 'unsupported')) continue; // Lineart / Scribble: not in an API prompt
      const api = ex.api as Record<string, { class_type: string; inputs: Record<string, unknown> }>;
      for (const [id, n] of Object.entries(api)) {
        for (const v of Object.values(n.inputs)) if (Array.isArray(v)) expect(api[v[0] as string], `${name} node ${id}`).toBeDefined();
      }
      const back = importComfyUI(JSON.parse(JSON.stringify(ex.api)), { specs, models: DEMO_LIST });
      expect(canonical(back.workflow, false), name).toEqual(canonical(wf, false));
    }
  });

  it('every fixture: ComfyUI -> ours -> ComfyUI -> ours gives the same graph (placeholders included)', () => {
    for (const f of FIXTURE_FILES) {
      const first = importComfyUI(fixture(f), { specs, models: DEMO_LIST }).workflow;
      const ex = exportComfyUI(first, specs);
      checkUiFile(ex.ui);
      expect(canonical(importComfyUI(ex.ui, { specs, models: DEMO_LIST }).workflow), f).toEqual(canonical(first));
      // The API prompt is the graph that runs: reroutes, primitives, notes, bypassed and muted nodes resolved (engine/graph-modes.ts).
      expect(canonical(importComfyUI(ex.api, { specs, models: DEMO_LIST }).workflow, false), f).toEqual(
        canonical(resolveGraph(first, specMap).workflow, false),
      );
    }
  });

  it("the image-prompt example as ComfyUI sees it: IPAdapterAdvanced, KSampler ddim / ddim_uniform, ComfyUI's widget lists", () => {
    const wf = examples().find(([n]) => n === 'image-prompt.json')![1];
    const ex = exportComfyUI(wf, specs);
    const nodes = ex.ui.nodes as { type: string; widgets_values: unknown[] }[];
    const ipa = nodes.find((n) => n.type === 'IPAdapterAdvanced')!;
    const apply = wf.nodes.find((n) => n.type === 'apply-ip-adapter')!;
    expect(ipa.widgets_values).toEqual([apply.params.weight, 'linear', 'concat', apply.params.start_at ?? 0, apply.params.end_at ?? 1, 'V only']);
    const ks = nodes.find((n) => n.type === 'KSampler');
    if (ks) expect(ks.widgets_values.slice(4, 6)).toEqual(['ddim', 'ddim_uniform']);
    expect(nodes.find((n) => n.type === 'LoadImage')!.widgets_values).toEqual([expect.any(String), 'image']);
    // An edit in ComfyUI wins over the values stored for the way back.
    ipa.widgets_values[0] = 0.25;
    const back = importComfyUI(ex.ui, { specs, models: DEMO_LIST }).workflow;
    expect(back.nodes.find((n) => n.id === apply.id)!.params.weight).toBe(0.25);
  });
});

async function tinyPng(): Promise<Uint8Array> {
  return new Uint8Array(
    await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
      .png()
      .toBuffer(),
  );
}

describe('ComfyUI images', () => {
  const ui = JSON.stringify(fixture('ipadapter-advanced.v04.json'));
  const api = JSON.stringify(fixture('controlnet-lora-img2img.api.json'));

  it('a PNG with both chunks opens its UI workflow; with only a prompt, the prompt', async () => {
    const both = addTextChunks(await tinyPng(), { prompt: api, workflow: ui });
    expect(comfyFormatOf(comfyDocFromBytes(both))).toBe('ui-0.4');
    const onlyPrompt = addTextChunks(await tinyPng(), { prompt: api });
    expect(comfyFormatOf(comfyDocFromBytes(onlyPrompt))).toBe('api');
    const brokenWorkflow = addTextChunks(await tinyPng(), { prompt: api, workflow: '{"nodes": [' });
    expect(comfyFormatOf(comfyDocFromBytes(brokenWorkflow))).toBe('api');
    expect(comfyDocFromBytes(await tinyPng())).toBeNull();
    const notJson = addTextChunks(await tinyPng(), { workflow: 'not json' });
    expect(() => comfyDocFromBytes(notJson)).toThrow(/neither its workflow nor its prompt is a readable ComfyUI document/);
  });

  it('a PNG whose workflow chunk is a decompression bomb is refused with a sentence, quickly', async () => {
    const png = await tinyPng();
    const bomb = zlib.deflateSync(Buffer.alloc(64 * 2 ** 20, 0x20), { level: 9 });
    const chunk = encodeChunk('zTXt', concatBytes([new TextEncoder().encode('workflow'), new Uint8Array([0, 0]), bomb]));
    const parts = readChunks(png).map((c) => encodeChunk(c.type, c.data));
    const withBomb = concatBytes([PNG_SIGNATURE, ...parts.slice(0, -1), chunk, parts[parts.length - 1]!]);
    const t0 = Date.now();
    expect(() => comfyDocFromBytes(withBomb)).toThrow(/"workflow" inflates to more than 16 MB/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a WebP carrying workflow / prompt in EXIF (as ComfyUI saves them) opens its workflow', async () => {
    const webp = new Uint8Array(
      await sharp({ create: { width: 8, height: 8, channels: 3, background: '#404040' } })
        .webp()
        .withExif({ IFD0: { Make: `workflow:${ui}`, Model: `prompt:${api}` } })
        .toBuffer(),
    );
    const strings = webpExifStrings(webp);
    expect(Object.keys(strings).sort()).toEqual(['prompt', 'workflow']);
    expect(comfyFormatOf(comfyDocFromBytes(webp))).toBe('ui-0.4');
  });
});

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {} } };
}

describe('npm run convert', () => {
  const user = path.join(tmp, 'user');
  const base = ['--demo', '--user-data', user];

  it('converts a ComfyUI workflow, prints the report, writes --out, exits 0', async () => {
    const r = io();
    const out = path.join(tmp, 'converted.json');
    expect(await convert([path.join(FIXTURES, 'ipadapter-advanced.v04.json'), '--out', out, ...base], r.io)).toBe(0);
    const text = r.out.join('');
    expect(text).toMatch(/ComfyUI workflow \(UI format 0\.4\): 13 nodes, 12 mapped, 1 approximated, 0 unsupported; /);
    expect(text).toMatch(
      /c1\.ckpt_name: "sd15\/realisticVisionV51_v51VAE\.safetensors" is not in <models>\/checkpoints; "stable-diffusion-v1-5" is used instead/,
    );
    expect(parseWorkflow(JSON.parse(fs.readFileSync(out, 'utf8'))).workflow?.nodes.length).toBe(16); // 13 nodes of ComfyUI: 11 + the unified loader's CLIP Vision, IPAdapterAdvanced's encode and projection; its reroute, primitive and note as ours
  });

  it('exits 1 when a node is unsupported, still writing the workflow with its placeholders', async () => {
    const r = io();
    const out = path.join(tmp, 'faceid.json');
    expect(await convert([path.join(FIXTURES, 'unsupported-faceid.v04.json'), '--out', out, ...base], r.io)).toBe(1);
    expect(r.out.join('')).toMatch(/unsupported:\n {2}3 IPAdapterUnifiedLoaderFaceID -> c3\n/);
    expect(r.out.join('')).toMatch(/images not found:\n {2}c6: "face\.png"/);
    expect(fs.readFileSync(out, 'utf8')).toContain('"type": "comfyui-node"');
  });

  it('reads ComfyUI PNGs; converts ours to ComfyUI (UI, or --api); exits 2 for what it cannot read', async () => {
    const png = path.join(tmp, 'comfy.png');
    fs.writeFileSync(png, addTextChunks(await tinyPng(), { workflow: JSON.stringify(fixture('embeds-noise.v1.json')) }));
    let r = io();
    expect(await convert([png, ...base], r.io)).toBe(0);
    expect(r.out.join('')).toMatch(/UI format 1\.0/);
    r = io();
    const out = path.join(tmp, 'ours.comfy.json');
    expect(await convert([path.join(EXAMPLES, 'image-prompt.json'), '--out', out, '--api'], r.io)).toBe(0);
    expect(comfyFormatOf(JSON.parse(fs.readFileSync(out, 'utf8')))).toBe('api');
    r = io();
    fs.writeFileSync(path.join(tmp, 'junk.json'), '{"nodes": 3}');
    expect(await convert([path.join(tmp, 'junk.json')], r.io)).toBe(2);
    expect(r.err.join('')).toMatch(/neither a ComfyUI workflow nor one of ours/);
    r = io();
    expect(await convert([path.join(tmp, 'missing.json')], r.io)).toBe(2);
    r = io();
    expect(await convert([], r.io)).toBe(2);
    expect(r.err.join('')).toMatch(/no file given\nusage: npm run convert/);
  });
});
