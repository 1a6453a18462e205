/**
 * The gallery's listing of the output folder (listOutputs): newest first, what each PNG carries
 * (parameters text, workflow, title), only images inside the folder (no symlink out, no dot files or
 * temporaries), and the models folder report Settings shows as a path is typed.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { addTextChunks, PARAMETERS_CHUNK_KEY, WORKFLOW_CHUNK_KEY } from '../png.js';
import { listGallery, outputUrl, type GalleryCache } from './gallery.js';
import { hostNotices, missingModelsSentence, modelsFolderReport } from './host-config.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-gallery-'));

async function png(file: string, chunks: Record<string, string>, mtime: number, size = 8) {
  const raw = await sharp({ create: { width: size, height: size + 2, channels: 3, background: '#336699' } })
    .png()
    .toBuffer();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, addTextChunks(raw, chunks));
  fs.utimesSync(file, new Date(mtime), new Date(mtime));
}

describe('listGallery', () => {
  it('lists the images newest first with their parameters, workflow and title; nothing outside the folder', async () => {
    const out = path.join(tmp, 'out');
    const t = Date.now() - 100_000;
    const params = 'a red fox in snow\nNegative prompt: blurry\nSteps: 30, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 8x10';
    await png(path.join(out, 'ipadapter_00001_.png'), { [PARAMETERS_CHUNK_KEY]: params, [WORKFLOW_CHUNK_KEY]: JSON.stringify({ meta: { title: 'Fox' } }) }, t);
    await png(path.join(out, 'sub dir', 'x_00001_.png'), { [PARAMETERS_CHUNK_KEY]: 'a castle' }, t + 2000);
    await png(path.join(out, 'plain.png'), {}, t + 1000);
    fs.writeFileSync(path.join(out, '.hidden.png'), 'x');
    fs.writeFileSync(path.join(out, 'half.png.tmp'), 'x');
    fs.writeFileSync(path.join(out, 'notes.txt'), 'not an image');
    const outside = path.join(tmp, 'secret');
    await png(path.join(outside, 'private.png'), {}, t + 5000);
    fs.symlinkSync(outside, path.join(out, 'link'));
    fs.symlinkSync(path.join(outside, 'private.png'), path.join(out, 'linked.png'));

    const cache: GalleryCache = new Map();
    const items = listGallery(out, 100, cache);
    expect(items.map((i) => i.file)).toEqual(['sub dir/x_00001_.png', 'plain.png', 'ipadapter_00001_.png']);
    expect(items[0]).toMatchObject({ url: '/outputs/sub%20dir/x_00001_.png', width: 8, height: 10, parameters: 'a castle', hasWorkflow: false });
    expect(items[1]).toMatchObject({ hasWorkflow: false });
    expect(items[1].parameters).toBeUndefined();
    expect(items[2]).toMatchObject({ parameters: params, hasWorkflow: true, title: 'Fox' });
    expect(listGallery(out, 1, cache).map((i) => i.file)).toEqual(['sub dir/x_00001_.png']);
    expect(cache.size).toBe(3);
    // A file rewritten in place is read again (its size / mtime changed).
    await png(path.join(out, 'plain.png'), { [PARAMETERS_CHUNK_KEY]: 'now with a prompt' }, t + 3000);
    expect(listGallery(out, 100, cache)[0]).toMatchObject({ file: 'plain.png', parameters: 'now with a prompt' });
  });

  it('an output folder that does not exist lists nothing; a damaged PNG is listed without what it carries', () => {
    expect(listGallery(path.join(tmp, 'nope'))).toEqual([]);
    const out = path.join(tmp, 'damaged');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'bad.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    expect(listGallery(out)).toMatchObject([{ file: 'bad.png', hasWorkflow: false, width: 0 }]);
    expect(outputUrl('a b/c#d.png')).toBe('/outputs/a%20b/c%23d.png');
  });
});

describe('modelsFolderReport', () => {
  it('names a folder that does not exist or is a file, and the kinds an existing one has none of', () => {
    const missing = path.join(tmp, 'no-such-models');
    expect(modelsFolderReport(missing).problem).toBe(`the models folder ${missing} does not exist; create it first or choose another folder`);
    fs.writeFileSync(path.join(tmp, 'file'), 'x');
    expect(modelsFolderReport(path.join(tmp, 'file')).problem).toMatch(/is not a folder/);
    const empty = path.join(tmp, 'empty-models');
    fs.mkdirSync(empty);
    const r = modelsFolderReport(empty);
    expect(r).toMatchObject({ problem: null, missing: ['checkpoints', 'ipadapter', 'clip_vision'] });
    expect(missingModelsSentence(r)).toMatch(new RegExp(`^The models folder ${empty} has no models`));
    fs.mkdirSync(path.join(empty, 'checkpoints'));
    fs.writeFileSync(path.join(empty, 'checkpoints', 'v1-5.safetensors'), 'x');
    const some = modelsFolderReport(empty);
    expect(some.counts.checkpoints).toBe(1);
    expect(some.missing).toEqual(['ipadapter', 'clip_vision']);
    expect(missingModelsSentence(some)).toBe(
      `The models folder ${empty} has nothing in ipadapter/ or clip_vision/; workflows that load those will not run until you add some.`,
    );
  });

  it('host notices: the demo models, --demo over a models setting, and an empty models folder', () => {
    const settings = { modelsDir: path.join(tmp, 'empty-models'), outputDir: tmp, provider: 'cpu' as const };
    expect(hostNotices({ isDemo: () => true, settings: () => settings }, { demoFlag: true, modelsSet: true })[1]).toBe(
      `Started with --demo: the models folder ${settings.modelsDir} is not used this session (the demo models are).`,
    );
    expect(hostNotices({ isDemo: () => true, settings: () => settings }, { demoFlag: true, modelsSet: false })).toHaveLength(1);
    expect(hostNotices({ isDemo: () => false, settings: () => ({ ...settings, modelsDir: path.join(tmp, 'nope') }) })[0]).toMatch(/does not exist/);
  });
});
