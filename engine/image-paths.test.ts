/**
 * Where image refs and model names resolve (engine/paths.ts, engine/image-refs.ts,
 * engine/hosts/inputs-store.ts): next to the workflow file, `inputs/<file>` in the inputs folder,
 * never the current directory; the "missing:" sentence; near matches for a missing model; which
 * picked file a relative ref means; the editor's view of a ref (older absolute paths into the
 * inputs folder become `inputs/<file>`); uploads stored once per content.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashOfStoredName, inputsFileOf, isAbsoluteRef, mapImageRefs, matchRefToFile } from './image-refs.js';
import { nearMatches, PathResolver } from './paths.js';
import { imageRefStatus, storeImageBytes } from './hosts/inputs-store.js';

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-imgpaths-')));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const PNG = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
  Buffer.from('IHDR'),
  Buffer.from([0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0, 0, 0, 0, 0]),
]);
const put = (rel: string, bytes: Buffer | string = PNG) => {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, bytes);
  return p;
};

describe('image refs', () => {
  it('inputs/<file> is one plain segment; absolute paths of both systems are recognised', () => {
    expect(inputsFileOf('inputs/cat-0123456789ab.png')).toBe('cat-0123456789ab.png');
    for (const bad of ['inputs/../x.png', 'inputs/a/b.png', 'inputs/', 'images/x.png', '/inputs/x.png']) expect(inputsFileOf(bad), bad).toBeNull();
    expect(['/home/u/x.png', 'C:\\Users\\u\\x.png', 'D:/x.png', '\\\\srv\\x.png'].every(isAbsoluteRef)).toBe(true);
    expect(['images/x.png', 'inputs/x.png', 'x.png'].some(isAbsoluteRef)).toBe(false);
    expect(hashOfStoredName('cat-0123456789ab.png')).toBe('0123456789ab');
    expect(hashOfStoredName('cat.png')).toBeNull();
  });

  it('resolve next to the workflow, then inputs/ in the inputs folder, and never in the current directory', () => {
    const wfDir = path.join(tmp, 'project');
    const inputs = path.join(tmp, 'user', 'inputs');
    put('project/images/a.png');
    put('user/inputs/b-0123456789ab.png');
    put('project/inputs/c-0123456789ab.png'); // an unpacked bundle folder
    const r = new PathResolver(path.join(tmp, 'models'), wfDir, inputs);
    expect(r.resolveImage('images/a.png')).toBe(path.join(wfDir, 'images', 'a.png'));
    expect(r.resolveImage('inputs/b-0123456789ab.png')).toBe(path.join(inputs, 'b-0123456789ab.png'));
    expect(r.resolveImage('inputs/c-0123456789ab.png')).toBe(path.join(wfDir, 'inputs', 'c-0123456789ab.png'));
    const cwd = process.cwd();
    try {
      process.chdir(path.join(tmp, 'project'));
      const noFolder = new PathResolver(path.join(tmp, 'models'), null, inputs);
      expect(noFolder.resolveImage('images/a.png')).toBeNull(); // the bug of issue 11: cwd is not the workflow's folder
      expect(noFolder.missingImage('images/a.png')).toMatch(
        /^missing: images\/a\.png \(a path relative to the workflow file, and this workflow was not opened from a folder/,
      );
      expect(r.missingImage('images/zz.png')).toMatch(/^missing: images\/zz\.png \(looked in .*project.images.zz\.png\)$/);
    } finally {
      process.chdir(cwd);
    }
  });

  it('a relative ref means the picked file with the longest matching tail of its path', () => {
    expect(matchRefToFile('images/init.png', ['init.png', 'other.png'])).toBe('init.png');
    expect(matchRefToFile('images/init.png', ['a/init.png', 'examples/images/init.png'])).toBe('examples/images/init.png');
    expect(matchRefToFile('./images/x.png', ['x.png'])).toBe('x.png');
    expect(matchRefToFile('images/x.png', ['y.png'])).toBeNull();
  });

  it('mapImageRefs rewrites image params only, and returns the same workflow when there is none', () => {
    const specs = [
      {
        type: 'li',
        title: 'Load Image',
        category: '',
        description: '',
        inputs: [],
        outputs: [],
        params: [
          { name: 'image', kind: 'image' as const, default: '' },
          { name: 'text', kind: 'string' as const, default: '' },
        ],
      },
    ];
    const wf = { nodes: [{ id: 'a', type: 'li', params: { image: 'x.png', text: 'x.png' } }] };
    expect(mapImageRefs(wf, specs, () => 'inputs/y.png').nodes[0].params).toEqual({ image: 'inputs/y.png', text: 'x.png' });
    const none = { nodes: [{ id: 'a', type: 'other', params: {} }] };
    expect(mapImageRefs(none, specs, () => 'z')).toBe(none);
  });
});

describe("the editor's view of a ref", () => {
  it('inputs/ refs found with a URL; an older absolute path into an inputs folder becomes inputs/<file>; other relative paths are missing', () => {
    const inputs = path.join(tmp, 'view', 'inputs');
    const up = storeImageBytes(inputs, 'photo.png', PNG);
    expect(up.value).toMatch(/^inputs\/photo-[0-9a-f]{12}\.png$/);
    expect(imageRefStatus(inputs, up.value)).toEqual({ ref: up.value, found: true, value: up.value, url: up.url });
    const abs = path.join(inputs, up.file);
    expect(imageRefStatus(inputs, abs)).toMatchObject({ found: true, value: up.value });
    // Another machine's inputs folder: the same content-hashed name here is the same image.
    expect(imageRefStatus(inputs, `/home/someone/.ipadapter-studio/inputs/${up.file}`)).toMatchObject({ found: true, value: up.value });
    expect(imageRefStatus(inputs, 'C:\\Users\\x\\.ipadapter-studio\\inputs\\' + up.file)).toMatchObject({ found: true, value: up.value });
    expect(imageRefStatus(inputs, 'images/photo.png')).toEqual({ ref: 'images/photo.png', found: false, value: 'images/photo.png' });
    expect(imageRefStatus(inputs, 'inputs/nope-0123456789ab.png').found).toBe(false);
    const elsewhere = put('view/pictures/p.png');
    expect(imageRefStatus(inputs, elsewhere)).toEqual({ ref: elsewhere, found: true, value: elsewhere });
  });

  it('the same bytes are stored once, whatever name they come with; a stored name is kept as it is', () => {
    const inputs = path.join(tmp, 'dedup', 'inputs');
    const a = storeImageBytes(inputs, 'first.png', PNG);
    const b = storeImageBytes(inputs, 'second name.png', PNG);
    const c = storeImageBytes(inputs, a.file, PNG);
    expect(b.value).toBe(a.value);
    expect(c.value).toBe(a.value);
    expect([a.written, b.written, c.written]).toEqual([true, false, false]);
    expect(fs.readdirSync(inputs)).toEqual([a.file]);
    expect(() => storeImageBytes(inputs, 'x.png', Buffer.from('not an image'))).toThrow(/x\.png is not a PNG, JPEG or WebP image/);
  });
});

describe('models', () => {
  it('a missing model lists near matches of the same kind', () => {
    const models = path.join(tmp, 'models');
    for (const f of [
      'checkpoints/realisticVisionV51_v51VAE.safetensors',
      'checkpoints/sd15/v1-5-pruned-emaonly.safetensors',
      'checkpoints/dreamshaper_8.safetensors',
      'ipadapter/ip-adapter_sd15.safetensors',
      'ipadapter/ip-adapter-plus_sd15.safetensors',
    ])
      put(`models/${f}`, '');
    const r = new PathResolver(models, null, null);
    expect(r.missingModel('checkpoints', 'realisticVisionV51_v51VAE.ckpt')).toMatch(
      /not found \(looked in .*\); near matches in checkpoints: realisticVisionV51_v51VAE\.safetensors$/,
    );
    expect(r.missingModel('checkpoints', 'v1-5-pruned-emaonly.safetensors')).toMatch(/near matches in checkpoints: sd15\/v1-5-pruned-emaonly\.safetensors/);
    expect(r.missingModel('ipadapter', 'ip-adapter-plus_sd15.bin')).toMatch(
      /near matches in ipadapter: ip-adapter-plus_sd15\.safetensors, ip-adapter_sd15\.safetensors$/,
    );
    expect(r.missingModel('checkpoints', 'sdxl_base_1.0.safetensors')).toMatch(/no near match among the 3 checkpoints in the models folder$/);
    expect(r.missingModel('controlnet', 'control_v11p_sd15_canny.pth')).toMatch(/the models folder has no controlnet$/);
    expect(nearMatches('DreamShaper 8', ['dreamshaper_8.safetensors', 'x.safetensors'])).toEqual(['dreamshaper_8.safetensors']);
  });
});
