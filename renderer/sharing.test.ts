/**
 * Opening workflows with their images in the editor (renderer/files.ts) against a fake host:
 * relative refs matched to the files opened with them and stored (each file once), Save writing
 * the original refs back, missing refs marked and relinked in one undo step, bundles restored
 * through the host, and older absolute paths into the inputs folder kept as inputs/<file>.
 */
import { describe, expect, it } from 'vitest';
import type { NodeSpec } from '../nodes/types.js';
import type { Host } from './host.js';
import { missingRefs, openWorkflowBytes, relinkMissing, workflowForSave } from './files.js';
import { createEditorStore } from './store/index.js';

const SPECS: NodeSpec[] = [
  {
    type: 'load-image',
    title: 'Load Image',
    category: 'Image',
    description: '',
    inputs: [],
    outputs: [{ name: 'image', type: 'IMAGE' }],
    params: [
      { name: 'image', kind: 'image', default: '' },
      { name: 'mask', kind: 'image', default: '', optional: true, mask: true },
    ],
  },
];

/** A host whose inputs folder is a Set of file names; uploads name files `<stem>-<n>.png` by content. */
function fakeHost(stored = new Set<string>()) {
  const calls: string[] = [];
  const byContent = new Map<string, string>();
  const call = async (method: string, params: any): Promise<any> => {
    calls.push(method);
    if (method === 'uploadImage') {
      const key = params.dataBase64 as string;
      let file = byContent.get(key);
      if (!file) {
        file = `${params.name.replace(/\.png$/, '')}-${String(byContent.size).padStart(12, '0')}.png`;
        byContent.set(key, file);
        stored.add(file);
      }
      return { value: `inputs/${file}`, url: `/inputs/${file}`, width: 1, height: 1 };
    }
    if (method === 'resolveImages') {
      return params.refs.map((ref: string) => {
        const m = /^(?:inputs\/|\/old\/home\/inputs\/)(.+)$/.exec(ref);
        const found = !!m && stored.has(m[1]);
        return { ref, found, value: found ? `inputs/${m![1]}` : ref, ...(found ? { url: `/inputs/${m![1]}` } : {}) };
      });
    }
    if (method === 'importBundle') {
      const b = JSON.parse(params.text);
      for (const img of Object.values(b.images) as { file: string }[]) stored.add(img.file);
      return { workflow: b.workflow, images: Object.keys(b.images).length, written: 1 };
    }
    throw new Error(`unexpected ${method}`);
  };
  return { host: { kind: 'web', call } as unknown as Host, calls, stored };
}

const wf = (nodes: { id: string; image: string; mask?: string }[]) =>
  new TextEncoder().encode(
    JSON.stringify({
      format: 'ipadapter-studio/workflow',
      version: 1,
      edges: [],
      nodes: nodes.map((n) => ({ id: n.id, type: 'load-image', params: { image: n.image, ...(n.mask ? { mask: n.mask } : {}) }, ui: { x: 0, y: 0 } })),
    }),
  );
const png = (tag: number) => new Uint8Array([0x89, 0x50, 0x4e, 0x47, tag]);
const params = (store: ReturnType<typeof createEditorStore>) => Object.fromEntries(store.getState().nodes.map((n) => [n.id, n.data.params]));

function editor() {
  const store = createEditorStore();
  store.getState().setSpecs(SPECS);
  return store;
}

describe('opening a workflow with its images', () => {
  it('matches relative refs to the files opened with it, stores each once, and Save writes the original refs back', async () => {
    const store = editor();
    const { host, stored } = fakeHost();
    const bytes = wf([
      { id: 'a', image: 'images/a.png' },
      { id: 'b', image: './images/a.png', mask: 'masks/m.png' },
    ]);
    expect(
      await openWorkflowBytes(store, 'wf.json', bytes, {
        host,
        images: [
          { path: 'a.png', bytes: png(1) },
          { path: 'project/masks/m.png', bytes: png(2) },
        ],
      }),
    ).toBe(true);
    const p = params(store);
    expect(p.a.image).toBe('inputs/a-000000000000.png');
    expect(p.b.image).toBe(p.a.image);
    expect(p.b.mask).toBe('inputs/m-000000000001.png');
    expect([...stored].sort()).toEqual(['a-000000000000.png', 'm-000000000001.png']);
    expect(missingRefs(store)).toEqual([]);
    expect(store.getState().missingAsk).toBeNull();
    // Save: the images that came from beside the workflow go back to its refs (the first of a shared file's refs).
    const saved = workflowForSave(store).nodes.map((n) => n.params);
    expect(saved[1].mask).toBe('masks/m.png');
    expect(['images/a.png', './images/a.png']).toContain(saved[0].image);
    expect(store.getState().workflow().nodes[0].params.image).toBe('inputs/a-000000000000.png'); // what the engine runs
  });

  it('marks the images it could not find, asks, and relinks every node that named one in one undo step', async () => {
    const store = editor();
    const { host } = fakeHost();
    await openWorkflowBytes(
      store,
      'wf.json',
      wf([
        { id: 'a', image: 'images/a.png' },
        { id: 'b', image: 'images/a.png' },
        { id: 'c', image: 'images/c.png' },
      ]),
      { host },
    );
    expect(missingRefs(store).map((u) => `${u.node}:${u.ref}`)).toEqual(['a:images/a.png', 'b:images/a.png', 'c:images/c.png']);
    expect(store.getState().missingAsk).toEqual({ fileName: 'wf.json' });
    expect(store.getState().notices.at(-1)?.text).toMatch(/2 images not found \(images\/a\.png, images\/c\.png\)/);
    const undoDepth = store.getState().past.length;
    expect(await relinkMissing(store, host, [{ path: 'a.png', bytes: png(7) }])).toBe(1);
    expect(store.getState().past.length).toBe(undoDepth + 1);
    const p = params(store);
    expect(p.a.image).toBe('inputs/a-000000000000.png');
    expect(p.b.image).toBe(p.a.image);
    expect(p.c.image).toBe('images/c.png');
    expect(workflowForSave(store).nodes[0].params.image).toBe('images/a.png');
    store.getState().undo();
    expect(params(store).a.image).toBe('images/a.png');
  });

  it('restores a bundle through the host, and keeps older absolute paths into the inputs folder as inputs/<file>', async () => {
    const store = editor();
    const { host, calls } = fakeHost(new Set(['old-000000000009.png']));
    const bundle = {
      format: 'ipadapter-studio/shared-workflow',
      version: 1,
      images: { ['0'.repeat(64)]: { file: 'x-000000000005.png', type: 'image/png', data: 'AA==' } },
      workflow: JSON.parse(
        new TextDecoder().decode(
          wf([
            { id: 'a', image: 'inputs/x-000000000005.png' },
            { id: 'b', image: '/old/home/inputs/old-000000000009.png' },
          ]),
        ),
      ),
    };
    expect(await openWorkflowBytes(store, 'mine.shared.json', new TextEncoder().encode(JSON.stringify(bundle)), { host })).toBe(true);
    expect(calls).toEqual(['importBundle', 'resolveImages']);
    expect(params(store)).toEqual({ a: { image: 'inputs/x-000000000005.png', mask: '' }, b: { image: 'inputs/old-000000000009.png', mask: '' } });
    expect(store.getState().fileName).toBe('mine.json');
    expect(missingRefs(store)).toEqual([]);
    // Without a host a bundle cannot be opened (its images need the inputs folder).
    expect(await openWorkflowBytes(editor(), 'mine.shared.json', new TextEncoder().encode(JSON.stringify(bundle)))).toBe(false);
  });
});
