/**
 * Shared-workflow bundles: written from a workflow whose images sit next to it and in the inputs
 * folder, deduplicated by content, free of absolute paths and of the home and user-data folders;
 * opened into a fresh inputs folder (each image verified, written once); refused when damaged or
 * when an image is missing; and the CLI round trip (npm run share, then npm run generate on
 * another user-data folder) gives the same image bytes as running the original.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeSpecs } from '../../nodes/index.js';
import type { Workflow } from '../api.js';
import { BUNDLE_CHUNK_KEY, BUNDLE_FORMAT, bundleFileName } from '../bundle-format.js';
import { imageUses } from '../image-refs.js';
import { PathResolver } from '../paths.js';
import { ipAdapterWorkflow } from '../../test/helpers/workflows.js';
import { createBundle, imagesBeside, openBundle, parseBundle } from './bundle.js';
import { main as generate, readWorkflowFile } from './cli.js';
import { addTextChunks } from '../png.js';
import { storeImageBytes } from './inputs-store.js';
import { main as share } from './share.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const IMAGE = fs.readFileSync(path.join(root, 'examples', 'images', 'image-prompt.png'));
const INIT = fs.readFileSync(path.join(root, 'examples', 'images', 'init.png'));
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-bundle-')));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const specs = nodeSpecs();

/** A workflow folder: images/prompt.png next to it, plus an upload of the same bytes and a mask in the inputs folder. */
function setup(name: string) {
  const base = path.join(tmp, name);
  const userData = path.join(base, 'user');
  const inputs = path.join(userData, 'inputs');
  const wfDir = path.join(base, 'project');
  fs.mkdirSync(path.join(wfDir, 'images'), { recursive: true });
  fs.writeFileSync(path.join(wfDir, 'images', 'prompt.png'), IMAGE);
  const upload = storeImageBytes(inputs, 'prompt copy.png', IMAGE); // the same bytes, another name
  const mask = storeImageBytes(inputs, 'init.png', INIT);
  const wf = ipAdapterWorkflow({ image: 'images/prompt.png', steps: 2, prefix: 'shared/run' });
  // A second Load Image of the same picture (by its upload) with a mask.
  wf.nodes.push({ id: 'image2', type: 'load-image', params: { image: upload.value, mask: mask.value }, ui: { x: 0, y: 0 } });
  const wfFile = path.join(wfDir, 'wf.json');
  fs.writeFileSync(wfFile, JSON.stringify(wf, null, 2));
  return { base, userData, inputs, wfDir, wfFile, wf, upload, mask, resolver: new PathResolver(path.join(base, 'models'), wfDir, inputs) };
}

describe('bundles', () => {
  it('carry every image once by content hash, as inputs/<file> refs, with no absolute path, home or user-data folder', () => {
    const s = setup('write');
    const made = createBundle(s.wf, specs, s.resolver);
    expect(made.bundle.format).toBe(BUNDLE_FORMAT);
    // prompt.png and its upload are the same bytes: one entry used three times... twice (image.image, image2.image), the mask once.
    expect(Object.keys(made.bundle.images)).toHaveLength(2);
    expect(made.images.map((i) => i.uses.sort())).toEqual([['image.image', 'image2.image'], ['image2.mask']]);
    for (const [hash, img] of Object.entries(made.bundle.images)) expect(img.file.endsWith(`-${hash.slice(0, 12)}.png`)).toBe(true);
    const refs = imageUses(made.bundle.workflow as unknown as Workflow, specs).map((u) => u.ref);
    expect(refs).toHaveLength(3);
    for (const r of refs) expect(r).toMatch(/^inputs\/[\w.-]+-[0-9a-f]{12}\.png$/);
    for (const leak of [os.homedir(), tmp, s.userData, s.inputs, s.wfDir, os.userInfo().username]) {
      if (leak.length > 2) expect(made.text.includes(leak), `bundle contains ${leak}`).toBe(false);
    }
    expect(made.text).not.toMatch(/"(\/|[A-Za-z]:\\\\)[^"]*"/); // no string value that is an absolute path
    expect(made.bundle.models).toContainEqual({ kind: 'checkpoints', name: 'stable-diffusion-v1-5' });
    expect(bundleFileName('wf.json')).toBe('wf.shared.json');
  });

  it('open into a fresh inputs folder: verified, written once, refs that resolve there', () => {
    const s = setup('open');
    const { text } = createBundle(s.wf, specs, s.resolver);
    const fresh = path.join(s.base, 'elsewhere', 'inputs');
    const first = openBundle(text, specs, fresh);
    expect(first.images).toHaveLength(2);
    expect(first.images.every((i) => i.written)).toBe(true);
    expect(fs.readdirSync(fresh).sort()).toEqual(first.images.map((i) => i.file).sort());
    const paths = new PathResolver(path.join(s.base, 'models'), null, fresh);
    for (const u of imageUses(first.workflow, specs)) {
      const file = paths.resolveImage(u.ref);
      expect(file, u.ref).not.toBeNull();
      expect(fs.readFileSync(file!).equals(u.param === 'mask' ? INIT : IMAGE)).toBe(true);
    }
    // Opening again writes nothing; an inputs folder that already has the upload keeps its file.
    const again = openBundle(text, specs, fresh);
    expect(again.images.some((i) => i.written)).toBe(false);
    expect(again.workflow).toEqual(first.workflow);
    const own = openBundle(text, specs, s.inputs);
    expect(own.images.find((i) => i.sha256 === s.upload.sha256)?.written).toBe(false);
  });

  it('refuses a damaged image, a newer version, and exports naming the node of a missing image', () => {
    const s = setup('bad');
    const made = createBundle(s.wf, specs, s.resolver);
    const [hash, img] = Object.entries(made.bundle.images)[0];
    const bytes = Buffer.from(img.data, 'base64');
    bytes[bytes.length - 20] ^= 0xff;
    const damaged = { ...made.bundle, images: { ...made.bundle.images, [hash]: { ...img, data: bytes.toString('base64') } } };
    expect(() => openBundle(damaged, specs, path.join(s.base, 'x'))).toThrow(/is damaged/);
    expect(fs.existsSync(path.join(s.base, 'x'))).toBe(false);
    expect(() => parseBundle({ ...made.bundle, version: 99 })).toThrow(/version 99, made by a newer IP-Adapter Studio/);
    expect(() => parseBundle({ format: BUNDLE_FORMAT, version: 1, workflow: {}, images: { nothex: img } })).toThrow(/not a valid shared workflow/);

    fs.rmSync(path.join(s.wfDir, 'images', 'prompt.png'));
    expect(() => createBundle(s.wf, specs, s.resolver)).toThrow(/Load Image \(image\): missing: images\/prompt\.png/);
  });

  it('names models within the models folder: an absolute path inside it becomes the name, one outside is refused', () => {
    const s = setup('models');
    const inside = path.join(s.base, 'models', 'checkpoints', 'sub', 'my-model.safetensors');
    const wf = structuredClone(s.wf);
    wf.nodes.find((n) => n.id === 'checkpoint')!.params.ckpt_name = inside;
    const made = createBundle(wf, specs, s.resolver);
    expect((made.bundle.workflow as unknown as Workflow).nodes.find((n) => n.id === 'checkpoint')!.params.ckpt_name).toBe('sub/my-model.safetensors');
    wf.nodes.find((n) => n.id === 'checkpoint')!.params.ckpt_name = path.join(s.base, 'elsewhere.safetensors');
    expect(() => createBundle(wf, specs, s.resolver)).toThrow(/Load Checkpoint \(checkpoint\): .* outside the models folder's checkpoints\//);
  });

  it('the desktop host reads the images a workflow names relative to itself, inside its folder only, images only', () => {
    const s = setup('beside');
    fs.writeFileSync(path.join(s.base, 'secret.png'), IMAGE);
    fs.writeFileSync(path.join(s.wfDir, 'notes.png'), 'not an image');
    const wf = structuredClone(s.wf);
    wf.nodes.push({ id: 'up', type: 'load-image', params: { image: '../secret.png' } }, { id: 'txt', type: 'load-image', params: { image: 'notes.png' } });
    const got = imagesBeside(JSON.stringify(wf), s.wfDir, specs);
    expect(got.map((g) => g.ref)).toEqual(['images/prompt.png']);
    expect(got[0].bytes.equals(IMAGE)).toBe(true);
    expect(imagesBeside('not json', s.wfDir, specs)).toEqual([]);
  });

  it('a PNG carrying a bundle chunk reads as that bundle (the CLI runs it with its images)', () => {
    const s = setup('png');
    const { text } = createBundle(s.wf, specs, s.resolver);
    const file = path.join(s.base, 'carrying.png');
    fs.writeFileSync(file, addTextChunks(INIT, { [BUNDLE_CHUNK_KEY]: text, 'ipadapter-studio-workflow': JSON.stringify(s.wf) }));
    expect(readWorkflowFile(file)).toEqual(JSON.parse(text));
  });

  it('npm run share, then npm run generate with another user-data folder: the same image bytes as the original', async () => {
    const s = setup('cli');
    const out: string[] = [];
    const io = { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => out.push(t) }, env: {} };
    const models = path.join(s.base, 'models');
    const shared = path.join(s.base, 'wf.shared.json');
    expect(await share([s.wfFile, '--out', shared, '--user-data', s.userData, '--models', models], io), out.join('')).toBe(0);
    expect(out.join('')).toMatch(/wrote .*wf\.shared\.json \(2 image\(s\)/);
    const text = fs.readFileSync(shared, 'utf8');
    for (const leak of [os.homedir(), s.userData, s.wfDir]) expect(text.includes(leak)).toBe(false);

    // The original, run where it was made; the bundle, run from another folder with an empty user-data folder.
    const demoCache = path.join(s.base, 'demo-user');
    expect(await generate([s.wfFile, '--demo', '--models', models, '--out', path.join(s.base, 'out-a'), '--user-data', s.userData], io), out.join('')).toBe(0);
    const moved = path.join(s.base, 'receiver', 'got.shared.json');
    fs.mkdirSync(path.dirname(moved), { recursive: true });
    fs.copyFileSync(shared, moved);
    fs.rmSync(s.wfDir, { recursive: true }); // the sender's folder is gone
    expect(await generate([moved, '--demo', '--models', models, '--out', path.join(s.base, 'out-b'), '--user-data', demoCache], io), out.join('')).toBe(0);
    expect(out.join('')).toMatch(/shared workflow: 2 image\(s\) in .*demo-user.inputs \(2 new\)/);
    const a = fs.readFileSync(path.join(s.base, 'out-a', 'shared', 'run_00001_.png'));
    const b = fs.readFileSync(path.join(s.base, 'out-b', 'shared', 'run_00001_.png'));
    const pixels = async (png: Buffer) => (await import('sharp')).default(png).raw().toBuffer();
    expect((await pixels(a)).equals(await pixels(b))).toBe(true);
    // The receiver's PNG embeds inputs/ refs, not a folder of the receiver's machine.
    expect(b.includes(Buffer.from(demoCache))).toBe(false);
  }, 180_000);
});
