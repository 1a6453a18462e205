/**
 * Workflows that travel (issue 11), in web mode: every example opened through the Open button's
 * file chooser (the JSON and the images it names, chosen together) gives the same graph as the
 * Examples menu and runs; a workflow opened without its images asks for them, shows
 * "missing: <ref>" with Relink… on its nodes and is refused naming the node; "Export workflow for
 * sharing" opened on a second server with a fresh user-data folder and an empty inputs folder
 * runs to the same output bytes; an exported PNG can carry its input images; and no file the app
 * saves (workflow, bundle, PNG) contains the home or user-data folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { readTextChunks } from '../../engine/png.js';
import { card, currentWorkflow, e2e, expect, openApp, startWeb, waitFor } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLES = path.join(ROOT, 'examples');

type Wf = Awaited<ReturnType<typeof currentWorkflow>>;
const edgeKey = (e: any) => `${e.from.node}.${e.from.port}->${e.to.node}.${e.to.port}`;
function sameGraph(a: Wf, b: Wf): boolean {
  const nodes = (w: Wf) => JSON.stringify([...w.nodes].sort((x, y) => x.id.localeCompare(y.id)));
  const edges = (w: Wf) => JSON.stringify(w.edges.map(edgeKey).sort());
  return nodes(a) === nodes(b) && edges(a) === edges(b);
}

/** The example's file, its title in the Examples menu, and the image files it names (relative to it). */
function example(name: string) {
  const file = path.join(EXAMPLES, name);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  const refs = new Set<string>();
  for (const n of doc.nodes) for (const v of Object.values(n.params ?? {})) if (typeof v === 'string' && /^images\//.test(v)) refs.add(v);
  const title = typeof doc.meta?.title === 'string' ? doc.meta.title : name.replace(/\.json$/, '').replace(/[-_]/g, ' ');
  return { file, doc, title, images: [...refs].map((r) => path.join(EXAMPLES, r)), refs: [...refs] };
}

async function openThroughChooser(page: Page, files: string[]): Promise<void> {
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByRole('button', { name: 'Open', exact: true }).click()]);
  expect(chooser.isMultiple(), 'the Open chooser takes several files (a workflow and its images)');
  await chooser.setFiles(files);
}

async function newWorkflow(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'File menu', exact: true }).click();
  await page.getByRole('menuitem', { name: /New workflow/ }).click();
  // A document with unsaved changes asks first (issue 14): discard them.
  const ask = page.getByRole('alertdialog', { name: 'Replace unsaved work?' });
  await waitFor(async () => (await ask.count()) > 0 || (await page.locator('.react-flow__node').count()) === 0, 'New asked or emptied the canvas');
  if (await ask.count()) await ask.getByRole('button', { name: 'Discard changes' }).click();
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === 0, 'canvas empty');
}

async function nodeCount(page: Page, n: number, what: string): Promise<void> {
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === n, what);
}

/** Small, fast runs: 2 steps, 64x64 empty latents. */
async function makeFast(page: Page): Promise<void> {
  for (const f of await page.locator('.card input[aria-label="steps"]').all()) await f.fill('2');
  const latents = page.getByRole('group', { name: 'Empty Latent Image', exact: true });
  for (let i = 0; i < (await latents.count()); i++) {
    await latents.nth(i).getByLabel('width', { exact: true }).fill('64');
    await latents.nth(i).getByLabel('height', { exact: true }).fill('64');
  }
}

/** Runs and waits until every Save/Preview Image card is done; fails on any node error. */
async function runToEnd(page: Page): Promise<void> {
  // An unchanged graph an earlier test already ran ends as its duplicate (issue 14): its images are there.
  const duplicates = page.locator('.queue-job[data-state="duplicate"]');
  const before = await duplicates.count();
  // A workflow with a Sweep node says its job count ("Run 6 jobs").
  await page.getByRole('button', { name: /^Run( \d+ jobs)?$/ }).click();
  const outputs = page.locator('.card[data-node-type="save-image"], .card[data-node-type="preview-image"]');
  await waitFor(
    async () => {
      const errors = await page.locator('.card .node-error').allTextContents();
      if (errors.length) throw new Error(`node errors: ${errors.join(' | ')}`);
      if ((await duplicates.count()) > before) return true;
      const n = await outputs.count();
      return n > 0 && (await outputs.locator('[data-status="done"]').count()) === n;
    },
    'every output node done',
    100_000,
  );
}

/** The file behind the newest output thumbnail (web mode serves <user data>/outputs under /outputs/). */
async function newestOutput(page: Page, userData: string): Promise<string> {
  const src = await page
    .getByRole('img', { name: /^Output/ })
    .first()
    .getAttribute('src');
  expect(src?.startsWith('/outputs/'), `an output image URL (${src})`);
  return path.join(userData, 'outputs', ...src!.slice('/outputs/'.length).split('/').map(decodeURIComponent));
}

/** File > Save As… under `name`: the downloaded file. */
async function saveAs(page: Page, dir: string, name: string): Promise<string> {
  await page.getByRole('button', { name: 'File menu', exact: true }).click();
  await page.getByRole('menuitem', { name: /Save As/ }).click();
  await page.getByRole('dialog', { name: 'Save workflow as' }).getByLabel('File name').fill(name);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
  const file = path.join(dir, `${name}.json`);
  await download.saveAs(file);
  return file;
}

/** Text that must never be in a saved file: the home folder and the user-data folder. */
function assertNoLocalPaths(text: string, what: string, userData: string): void {
  for (const p of [os.homedir(), userData, fs.realpathSync(userData)]) {
    if (p.length > 1) expect(!text.includes(p), `${what} contains the local folder ${p}`);
  }
}
/** A bundle's text without its base64 image data (random bytes may spell anything). */
const bundleTextWithoutData = (text: string) =>
  JSON.stringify({
    ...JSON.parse(text),
    images: Object.fromEntries(Object.entries(JSON.parse(text).images).map(([k, v]: [string, any]) => [k, { ...v, data: '…' }])),
  });
const pngTexts = (file: string) =>
  Object.entries(readTextChunks(fs.readFileSync(file)))
    .map(([k, v]) => (k === 'ipadapter-studio-bundle' ? bundleTextWithoutData(v) : v))
    .join('\n');

/** A small colourful PNG no example uses (so a fresh server cannot have it already). */
async function ownImage(dir: string): Promise<string> {
  const w = 80;
  const px = Buffer.alloc(w * w * 3);
  for (let y = 0; y < w; y++) for (let x = 0; x < w; x++) px.set([(x * 7) % 256, (y * 5 + 40) % 256, (x * y) % 256], (y * w + x) * 3);
  const file = path.join(dir, 'my prompt.png');
  await sharp(px, { raw: { width: w, height: w, channels: 3 } })
    .png()
    .toFile(file);
  return file;
}

// ---- every example through Open -------------------------------------------------------------

for (const name of fs
  .readdirSync(EXAMPLES)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  e2e(`${name}: Open (file chooser, with its images) gives the Examples menu's graph, and it runs`, async ({ page }) => {
    const ex = example(name);
    await card(page, 'DDIM Sampler').waitFor();
    await page.getByRole('button', { name: 'Examples', exact: true }).click();
    await page.getByRole('menu', { name: 'Examples' }).getByRole('menuitem', { name: ex.title, exact: true }).click();
    await nodeCount(page, ex.doc.nodes.length, 'example opened from the menu');
    const fromMenu = await currentWorkflow(page);

    await newWorkflow(page);
    await openThroughChooser(page, [ex.file, ...ex.images]);
    await nodeCount(page, ex.doc.nodes.length, 'example opened through Open');
    const fromOpen = await currentWorkflow(page);
    const differ = fromMenu.nodes.filter((n) => JSON.stringify(n) !== JSON.stringify(fromOpen.nodes.find((m) => m.id === n.id)));
    expect(
      sameGraph(fromMenu, fromOpen),
      `${name}: the same graph through Open as through the Examples menu (differ: ${JSON.stringify(differ)} vs ${JSON.stringify(differ.map((n) => fromOpen.nodes.find((m) => m.id === n.id)))})`,
    );
    expect((await page.locator('.image-missing').count()) === 0, 'no image missing');
    expect((await page.getByRole('dialog', { name: 'Missing images' }).count()) === 0, 'nothing asked');
    await makeFast(page);
    await runToEnd(page);
  });
}

// ---- missing images -------------------------------------------------------------------------

e2e(
  'a workflow opened without its images asks for them, marks them missing with Relink…, and the run is refused naming the node',
  async ({ page, results }) => {
    const ex = example('img2img-image-prompt.json');
    await card(page, 'DDIM Sampler').waitFor();
    await openThroughChooser(page, [ex.file]);
    await nodeCount(page, ex.doc.nodes.length, 'opened');
    const ask = page.getByRole('dialog', { name: 'Missing images' });
    await ask.waitFor();
    for (const r of ex.refs) await ask.getByText(r, { exact: true }).waitFor();
    await ask.getByRole('button', { name: 'Later' }).click();
    await ask.waitFor({ state: 'detached' });

    const prompt = page.locator('.card', { has: page.getByText('missing: images/image-prompt.png', { exact: true }) });
    await prompt.waitFor();
    await prompt.getByRole('button', { name: 'Relink…' }).waitFor();
    await page.screenshot({ path: path.join(results, 'missing-image.png') });

    // Run: refused before anything executes, on the node that lacks its image.
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.getByText(/The workflow has \d+ errors?; see the marked nodes/).waitFor();
    await prompt
      .locator('.node-error')
      .getByText(/missing: images\/image-prompt\.png/)
      .waitFor();
    expect((await page.locator('.card[data-node-type="save-image"] [data-status="done"]').count()) === 0, 'nothing ran');

    // Relink on the node: the file chooser, then the thumbnail, and the mark is gone.
    const id = await prompt.getAttribute('data-node-id');
    const node = page.locator(`.card[data-node-id="${id}"]`);
    await node.getByLabel('image file for Load Image').setInputFiles(path.join(EXAMPLES, 'images', 'image-prompt.png'));
    await node.getByRole('img', { name: 'image of Load Image' }).waitFor();
    expect((await node.locator('.image-missing').count()) === 0, 'relinked');
    expect((await page.locator('.image-missing').count()) === 1, 'the other image is still missing');
  },
);

e2e('the missing-images question takes the chosen images, and Save writes them relative to the workflow again', async ({ page, tmp, userData }) => {
  const ex = example('inpaint-image-prompt.json');
  await card(page, 'DDIM Sampler').waitFor();
  await openThroughChooser(page, [ex.file]);
  const ask = page.getByRole('dialog', { name: 'Missing images' });
  await ask.waitFor();
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), ask.getByRole('button', { name: 'Choose images…' }).click()]);
  await chooser.setFiles(ex.images);
  await ask.waitFor({ state: 'detached' });
  expect((await page.locator('.image-missing').count()) === 0, 'every image found');
  await makeFast(page);
  await runToEnd(page);

  // Save: the images that came from beside the workflow are written as the refs it had.
  const saved = await saveAs(page, tmp, 'inpaint-again');
  const text = fs.readFileSync(saved, 'utf8');
  assertNoLocalPaths(text, 'the saved workflow', userData);
  const refs = new Set<string>();
  for (const n of JSON.parse(text).nodes) for (const [k, v] of Object.entries(n.params)) if (k === 'image' || k === 'mask') if (v) refs.add(String(v));
  expect([...refs].sort().join() === ex.refs.sort().join(), `saved relative refs ${[...refs].join(', ')}`);
});

// ---- sharing -------------------------------------------------------------------------------

e2e(
  'export for sharing, open on a fresh server with an empty inputs folder, run: the same output bytes; PNGs can carry their images; no saved file names a local folder',
  async ({ page, tmp, userData, results }) => {
    await card(page, 'DDIM Sampler').waitFor();
    const ex = example('image-prompt.json');
    await openThroughChooser(page, [ex.file, ...ex.images]);
    await nodeCount(page, ex.doc.nodes.length, 'opened');
    // An image of our own (not the examples' one, which any fresh server imports as its sample).
    const mine = await ownImage(tmp);
    await card(page, 'Load Image').getByLabel('image file for Load Image').setInputFiles(mine);
    await waitFor(
      async () => /^inputs\/my_prompt-[0-9a-f]{12}\.png$/.test(String((await currentWorkflow(page)).nodes.find((n) => n.type === 'load-image')?.params.image)),
      'uploaded as inputs/<file>',
    );
    await makeFast(page);
    await runToEnd(page);
    const outA = await newestOutput(page, userData);
    assertNoLocalPaths(pngTexts(outA), 'the PNG the engine wrote', userData);

    // Save and Export write no local folder either.
    assertNoLocalPaths(fs.readFileSync(await saveAs(page, tmp, 'mine'), 'utf8'), 'the saved workflow', userData);
    const [pngDl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export', exact: true }).click()]);
    await pngDl.saveAs(path.join(tmp, 'exported.png'));
    assertNoLocalPaths(pngTexts(path.join(tmp, 'exported.png')), 'the exported PNG', userData);
    expect(!('ipadapter-studio-bundle' in readTextChunks(fs.readFileSync(path.join(tmp, 'exported.png')))), 'PNGs carry no images by default');

    // Export workflow for sharing (File menu): one file, the image inside, no local folder.
    await page.getByRole('button', { name: 'File menu', exact: true }).click();
    const [shareDl] = await Promise.all([page.waitForEvent('download'), page.getByRole('menuitem', { name: /Export workflow for sharing/ }).click()]);
    expect(shareDl.suggestedFilename() === 'mine.shared.json', `named after the workflow (${shareDl.suggestedFilename()})`);
    const bundleFile = path.join(tmp, 'mine.shared.json');
    await shareDl.saveAs(bundleFile);
    const bundleText = fs.readFileSync(bundleFile, 'utf8');
    const bundle = JSON.parse(bundleText);
    expect(bundle.format === 'ipadapter-studio/shared-workflow' && Object.keys(bundle.images).length === 1, 'a bundle with one image');
    assertNoLocalPaths(bundleTextWithoutData(bundleText), 'the shared workflow', userData);

    // With the setting on, an exported PNG carries its input images as well.
    await page.getByRole('button', { name: 'Settings' }).click();
    const settings = page.getByRole('dialog', { name: 'Settings' });
    await settings.getByLabel('Exported PNGs carry their input images').check();
    await settings.getByRole('button', { name: 'Apply' }).click();
    await settings.waitFor({ state: 'detached' });
    const [pngDl2] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export', exact: true }).click()]);
    const carrying = path.join(tmp, 'carrying.png');
    await pngDl2.saveAs(carrying);
    expect('ipadapter-studio-bundle' in readTextChunks(fs.readFileSync(carrying)), 'the PNG carries a bundle chunk');
    assertNoLocalPaths(pngTexts(carrying), 'the PNG with its images', userData);

    // Another machine: its own user data; its inputs folder emptied after start-up.
    const otherData = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-e2e-other-'));
    const other = await startWeb(otherData);
    const app = await openApp(other.url, otherData, results, 'other machine');
    try {
      const p2 = app.t.page;
      await card(p2, 'DDIM Sampler').waitFor();
      const inputs = path.join(otherData, 'inputs');
      for (const f of fs.readdirSync(inputs)) fs.rmSync(path.join(inputs, f));
      await openThroughChooser(p2, [bundleFile]);
      await nodeCount(p2, ex.doc.nodes.length, 'bundle opened on the other server');
      expect((await p2.locator('.image-missing').count()) === 0, 'no image missing there');
      await card(p2, 'Load Image').getByRole('img', { name: 'image of Load Image' }).waitFor();
      expect(fs.readdirSync(inputs).length === 1, `the bundle's image restored into the empty inputs folder (${fs.readdirSync(inputs).join(', ')})`);
      await runToEnd(p2);
      const outB = await newestOutput(p2, otherData);
      expect(fs.readFileSync(outA).equals(fs.readFileSync(outB)), `the same output bytes on both servers (${outA} vs ${outB})`);

      // The PNG that carries its images opens there too, with its image (stored once: same content).
      await newWorkflow(p2);
      await openThroughChooser(p2, [carrying]);
      await nodeCount(p2, ex.doc.nodes.length, 'PNG opened on the other server');
      await card(p2, 'Load Image').getByRole('img', { name: 'image of Load Image' }).waitFor();
      expect((await p2.locator('.image-missing').count()) === 0, 'its image came with it');
      expect(fs.readdirSync(inputs).length === 1, 'deduplicated by content');
      if (app.problems.length) throw new Error(app.problems.join('\n'));
    } finally {
      await app.close();
      await other.stop();
      fs.rmSync(otherData, { recursive: true, force: true });
    }
  },
);
