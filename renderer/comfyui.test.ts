/** Opening ComfyUI files in the editor (JSON, a PNG with ComfyUI's chunks), the report as notices, and Export for ComfyUI. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { nodeSpecs } from '../nodes/index.js';
import { addTextChunks } from '../engine/png.js';
import { COMFY_FIXTURES, DEMO_LIST } from '../test/helpers/comfyui.js';
import { exportForComfyUI, openComfyBytes } from './comfyui.js';
import { openWorkflowBytes } from './files.js';
import type { Host } from './host.js';
import { createEditorStore } from './store/index.js';

function editor() {
  const store = createEditorStore();
  store.getState().setSpecs(nodeSpecs());
  store.setState({ models: DEMO_LIST });
  return store;
}
const bytesOf = (f: string) => new Uint8Array(fs.readFileSync(path.join(COMFY_FIXTURES, f)));

describe('ComfyUI files in the editor', () => {
  it('opens a UI workflow: the graph with its titles, placeholders with their sockets, the report as notices', async () => {
    const store = editor();
    expect(await openComfyBytes(store, 'faceid.json', bytesOf('unsupported-faceid.v04.json'))).toBe(true);
    const s = store.getState();
    const faceid = s.nodes.find((n) => n.id === 'c5')!;
    expect(faceid.data).toMatchObject({ type: 'comfyui-node', params: { class_type: 'IPAdapterFaceID' }, ui: { title: 'FaceID portrait' } });
    // The placeholder's MODEL output keeps its link to the sampler, typed MODEL.
    expect(s.edges.find((e) => e.source === 'c5' && e.target === 'c9')?.data?.portType).toBe('MODEL');
    const texts = s.notices.map((n) => n.text);
    expect(texts[0]).toMatch(/^faceid\.json: ComfyUI workflow \(UI format 0\.4\): 15 nodes, .* 4 unsupported/);
    expect(texts.join('\n')).toMatch(
      /Not supported, kept as placeholders to replace before running: IPAdapterUnifiedLoaderFaceID .*IPAdapterFaceID "FaceID portrait" \(IPAdapterFaceID needs InsightFace/,
    );
    // Saved again, the titles stay.
    expect(s.workflow().nodes.find((n) => n.id === 'c9')?.ui).toMatchObject({ x: 1400, y: 0 });
    expect(s.workflow().nodes.find((n) => n.id === 'c5')?.ui).toMatchObject({ title: 'FaceID portrait' });
  });

  it("opens a PNG carrying ComfyUI's workflow and prompt, and says null for files that are not ComfyUI's", async () => {
    const store = editor();
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    const withChunks = addTextChunks(png, { workflow: fs.readFileSync(path.join(COMFY_FIXTURES, 'ipadapter-advanced.v04.json'), 'utf8'), prompt: '{}' });
    expect(await openComfyBytes(store, 'comfy.png', new Uint8Array(withChunks))).toBe(true);
    expect(store.getState().nodes.find((n) => n.id === 'c9')?.data.params).toMatchObject({ seed: 987654321, steps: 4 });
    // Its groups and note (meta) are saved back with the graph.
    expect(store.getState().workflow().meta).toMatchObject({ groups: [{ title: 'Image prompt' }], comfyui: { format: 'ui-0.4' } });
    expect(await openComfyBytes(store, 'plain.png', new Uint8Array(png))).toBeNull();
    expect(await openComfyBytes(store, 'ours.json', new Uint8Array(fs.readFileSync(path.join(COMFY_FIXTURES, '../../examples/image-prompt.json'))))).toBeNull();
  });

  it('Open and drop go through openWorkflowBytes: a ComfyUI API prompt opens as a new, unnamed graph', async () => {
    const store = editor();
    expect(await openWorkflowBytes(store, 'prompt.json', bytesOf('controlnet-lora-img2img.api.json'))).toBe(true);
    const s = store.getState();
    expect(s.nodes.map((n) => n.id)).toEqual(expect.arrayContaining(['c10', 'c10_neg', 'c13']));
    expect(s.fileName).toBeNull(); // Save asks a name instead of writing over the ComfyUI file
    expect(s.notices.map((n) => n.text).join('\n')).toMatch(/prompt\.json: ComfyUI API prompt: 16 nodes, 14 mapped, 2 approximated, 0 unsupported/);
    expect(await openWorkflowBytes(store, 'bad.json', new TextEncoder().encode('{"1": {"class_type": "KSampler"}, "2": 5}'))).toBe(false);
  });

  it('Export for ComfyUI saves the UI workflow', async () => {
    const store = editor();
    await openComfyBytes(store, 'a.json', bytesOf('embeds-noise.v1.json'));
    const saved: { name: string; bytes: Uint8Array }[] = [];
    const host = {
      kind: 'web',
      saveFile: async (name: string, bytes: Uint8Array) => {
        saved.push({ name, bytes });
        return name;
      },
    } as unknown as Host;
    await exportForComfyUI(store, host);
    expect(saved[0]!.name).toBe('workflow.comfyui.json');
    const ui = JSON.parse(new TextDecoder().decode(saved[0]!.bytes));
    expect(ui.version).toBe(0.4);
    expect(ui.nodes.map((n: { type: string }) => n.type)).toEqual(
      expect.arrayContaining(['IPAdapterEmbeds', 'IPAdapterCombineEmbeds', 'IPAdapterEncoder', 'KSamplerAdvanced']),
    );
    expect(store.getState().notices.at(-1)?.text).toMatch(/^Exported for ComfyUI: /);
  });
});
