/**
 * The editor end to end, against web mode on the demo models: the default workflow, building the
 * IP-Adapter graph by hand, running it, cancelling, save / reload / open, export and drop back,
 * refused connections and validation errors on the nodes.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { readTextChunks } from '../../engine/png.js';
import { WORKFLOW_VERSION } from '../../engine/workflow.js';
import { addNode, card, connect, currentWorkflow, e2e, expect, recordAppearance, waitFor } from './harness.js';

type Wf = Awaited<ReturnType<typeof currentWorkflow>>;

/** A small colourful PNG to use as the image prompt. */
async function promptImage(dir: string, name = 'prompt.png', tint = 0): Promise<string> {
  const w = 96;
  const px = Buffer.alloc(w * w * 3);
  for (let y = 0; y < w; y++) for (let x = 0; x < w; x++) px.set([x * 2.6, (y * 2.6 + tint) % 256, 255 - x * 2.6], (y * w + x) * 3);
  const file = path.join(dir, name);
  await sharp(px, { raw: { width: w, height: w, channels: 3 } })
    .png()
    .toFile(file);
  return file;
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

/** Drops a file as the OS would (dragenter, dragover, drop with a DataTransfer) on an element. */
async function dropFile(page: Page, file: string, mime: string, selector = '.react-flow__pane'): Promise<void> {
  const b64 = fs.readFileSync(file).toString('base64');
  await page.evaluate(
    ({ b64, name, mime, selector }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: mime }));
      const target = document.querySelector(selector)!;
      const r = target.getBoundingClientRect();
      const at =
        selector === '.react-flow__pane' ? { clientX: r.left + 200, clientY: r.top + 200 } : { clientX: r.left + r.width / 2, clientY: r.top + r.height / 2 };
      for (const type of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt, ...at }));
      }
    },
    { b64, name: path.basename(file), mime, selector },
  );
}

const edgeKey = (e: any) => `${e.from.node}.${e.from.port}->${e.to.node}.${e.to.port}`;
function sameGraph(a: Wf, b: Wf): boolean {
  const nodes = (w: Wf) => JSON.stringify([...w.nodes].sort((x, y) => x.id.localeCompare(y.id)));
  const edges = (w: Wf) => JSON.stringify(w.edges.map(edgeKey).sort());
  return nodes(a) === nodes(b) && edges(a) === edges(b);
}

/** Sets a param field of a node card (number/text inputs by accessible name). */
async function setField(page: Page, title: string, label: string, value: string, nth = 0): Promise<void> {
  await card(page, title, nth).getByLabel(label, { exact: true }).fill(value);
}

e2e('default workflow opens on first start, with the paper dataflow', async ({ page, results }) => {
  for (const t of [
    'Load Checkpoint',
    'Load Image',
    'CLIP Vision Encode',
    'IP-Adapter Projection',
    'Apply IP-Adapter',
    'DDIM Sampler',
    'VAE Decode',
    'Save Image',
  ]) {
    await card(page, t).waitFor();
  }
  expect((await page.getByRole('group', { name: 'Text Encode', exact: true }).count()) === 2, 'two Text Encode nodes');
  const wf = await currentWorkflow(page);
  expect(wf.edges.length >= 14, `default workflow wired (${wf.edges.length} edges)`);
  // Every control a test or screen reader needs has its name.
  for (const name of ['Run', 'Cancel', 'Save', 'Open', 'Export']) await page.getByRole('button', { name, exact: true }).waitFor();
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(results, 'default-workflow.png') });
});

e2e('build the IP-Adapter workflow from an empty canvas, run it, export the PNG and drop it back', async ({ page, results, tmp }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await newWorkflow(page);
  // Zoom out so that thirteen cards fit in a grid of free spots.
  await page.getByRole('button', { name: 'Zoom Out' }).click();
  await page.getByRole('button', { name: 'Zoom Out' }).click();
  await page.getByRole('button', { name: 'Zoom Out' }).click(); // Apply IP-Adapter is taller than a grid row at 0.69
  const pane = (await page.locator('.react-flow__pane').boundingBox())!;
  const at = (col: number, row: number) => ({ x: pane.x + 30 + col * 250, y: pane.y + 30 + row * 300 });
  const grid: [string, number, number][] = [
    ['Load Image', 0, 0],
    ['Load CLIP Vision', 0, 1],
    ['Load IP-Adapter', 0, 2],
    ['CLIP Vision Encode', 1, 0],
    ['IP-Adapter Projection', 1, 1],
    ['Load Checkpoint', 1, 2],
    ['Apply IP-Adapter', 2, 0],
    ['Text Encode', 2, 1],
    ['Text Encode', 2, 2],
    ['Empty Latent Image', 3, 0],
    ['DDIM Sampler', 3, 1],
    ['VAE Decode', 4, 0],
    ['Save Image', 4, 1],
  ];
  for (const [title, c, r] of grid) await addNode(page, title, at(c, r));
  expect((await page.locator('.react-flow__node').count()) === 13, '13 nodes added through the palette');

  const links: [[string, number, string], [string, number, string]][] = [
    [
      ['Load Image', 0, 'image'],
      ['CLIP Vision Encode', 0, 'image'],
    ],
    [
      ['Load CLIP Vision', 0, 'clip_vision'],
      ['CLIP Vision Encode', 0, 'clip_vision'],
    ],
    [
      ['Load IP-Adapter', 0, 'ip_adapter'],
      ['IP-Adapter Projection', 0, 'ip_adapter'],
    ],
    [
      ['CLIP Vision Encode', 0, 'embeds'],
      ['IP-Adapter Projection', 0, 'embeds'],
    ],
    [
      ['Load Checkpoint', 0, 'model'],
      ['Apply IP-Adapter', 0, 'model'],
    ],
    [
      ['Load IP-Adapter', 0, 'ip_adapter'],
      ['Apply IP-Adapter', 0, 'ip_adapter'],
    ],
    [
      ['IP-Adapter Projection', 0, 'tokens'],
      ['Apply IP-Adapter', 0, 'tokens'],
    ],
    [
      ['Load Checkpoint', 0, 'clip'],
      ['Text Encode', 0, 'clip'],
    ],
    [
      ['Load Checkpoint', 0, 'clip'],
      ['Text Encode', 1, 'clip'],
    ],
    [
      ['Apply IP-Adapter', 0, 'model'],
      ['DDIM Sampler', 0, 'model'],
    ],
    [
      ['Text Encode', 0, 'conditioning'],
      ['DDIM Sampler', 0, 'positive'],
    ],
    [
      ['Text Encode', 1, 'conditioning'],
      ['DDIM Sampler', 0, 'negative'],
    ],
    [
      ['Empty Latent Image', 0, 'latent'],
      ['DDIM Sampler', 0, 'latent'],
    ],
    [
      ['DDIM Sampler', 0, 'latent'],
      ['VAE Decode', 0, 'samples'],
    ],
    [
      ['Load Checkpoint', 0, 'vae'],
      ['VAE Decode', 0, 'vae'],
    ],
    [
      ['VAE Decode', 0, 'image'],
      ['Save Image', 0, 'images'],
    ],
  ];
  for (const [from, to] of links) await connect(page, from, to);
  let wf = await currentWorkflow(page);
  expect(wf.edges.length === links.length, `all ${links.length} connections made by dragging (got ${wf.edges.length})`);

  // An incompatible connection is refused while dragging: MODEL into a LATENT input.
  await connect(page, ['Load Checkpoint', 0, 'model'], ['VAE Decode', 0, 'samples']);
  await page.getByText(/Connection refused: MODEL output cannot feed a LATENT input/).waitFor();
  wf = await currentWorkflow(page);
  expect(wf.edges.length === links.length, 'the refused connection added no edge');

  // Params: the image prompt (upload), λ, prompts, a small fast run.
  await card(page, 'Load Image')
    .getByLabel('image file for Load Image')
    .setInputFiles(await promptImage(tmp));
  await card(page, 'Load Image').getByRole('img').waitFor();
  await setField(page, 'Apply IP-Adapter', 'weight λ', '0.7');
  await setField(page, 'Text Encode', 'text', 'a cat on a mat', 0);
  await setField(page, 'Text Encode', 'text', 'blurry', 1);
  await setField(page, 'Empty Latent Image', 'width', '64');
  await setField(page, 'Empty Latent Image', 'height', '64');
  await setField(page, 'DDIM Sampler', 'steps', '4');
  wf = await currentWorkflow(page);
  expect(wf.nodes.find((n) => n.type === 'apply-ip-adapter')!.params.weight === 0.7, 'λ set to 0.7');

  const sawProgress = await recordAppearance(page, '[role=progressbar][aria-label="Sampler steps"]');
  const sawNodeProgress = await recordAppearance(page, '[role=progressbar][aria-label="DDIM Sampler progress"]');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page
    .getByRole('img', { name: /^Output/ })
    .first()
    .waitFor({ timeout: 90_000 });
  expect(await sawProgress(), 'the sampler progress bar showed during the run');
  expect(await sawNodeProgress(), 'the sampler node showed its progress');
  await waitFor(async () => (await card(page, 'Save Image').locator('[data-status="done"]').count()) === 1, 'Save Image marked done');
  await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('Shift+T'); // Tidy layout (then fit view)
  await page.waitForTimeout(500);
  await page.screenshot({ path: path.join(results, 'finished-run.png') });

  // Export: a PNG carrying the workflow.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export', exact: true }).click()]);
  const png = path.join(tmp, download.suggestedFilename());
  await download.saveAs(png);
  const embedded = JSON.parse(readTextChunks(fs.readFileSync(png))['ipadapter-studio-workflow']);
  expect(embedded.nodes.length === 13 && embedded.edges.length === links.length, 'exported PNG carries the workflow');

  // Drop it back on an empty canvas: the graph of that run returns (positions as they were when it ran).
  await newWorkflow(page);
  await dropFile(page, png, 'image/png');
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === 13, 'graph restored from the dropped PNG');
  expect(sameGraph(await currentWorkflow(page), embedded), 'the dropped PNG restores the same graph');
  const restored = await currentWorkflow(page);
  expect(restored.nodes.find((n) => n.type === 'apply-ip-adapter')!.params.weight === 0.7, 'with λ = 0.7');
});

e2e('save, reload, open again: the same graph', async ({ page, tmp }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await setField(page, 'DDIM Sampler', 'steps', '12');
  await setField(page, 'Apply IP-Adapter', 'weight λ', '0.45');
  await page.getByText('●').waitFor(); // unsaved mark
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('dialog', { name: 'Save workflow as' }).getByLabel('File name').fill('ipa-test');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
  const file = path.join(tmp, download.suggestedFilename());
  await download.saveAs(file);
  expect(download.suggestedFilename() === 'ipa-test.json', `saved as ipa-test.json (${download.suggestedFilename()})`);
  const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
  expect(saved.format === 'ipadapter-studio/workflow' && saved.version === WORKFLOW_VERSION, `a workflow file of the current version (${saved.version})`);
  await waitFor(async () => (await page.getByText('●').count()) === 0, 'unsaved mark cleared after save');

  await page.reload();
  await card(page, 'DDIM Sampler').waitFor();
  await page.getByText('ipa-test.json').waitFor();
  await newWorkflow(page);
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByRole('button', { name: 'Open', exact: true }).click()]);
  await chooser.setFiles(file);
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === saved.nodes.length, 'opened graph');
  expect(sameGraph(await currentWorkflow(page), saved), 'the reopened graph equals the saved file');
  // Dropping the JSON file on the window opens it too.
  await newWorkflow(page);
  await dropFile(page, file, 'application/json');
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === saved.nodes.length, 'graph from the dropped JSON');
  expect(sameGraph(await currentWorkflow(page), saved), 'the dropped JSON equals the saved file');

  // Undo/redo survive the round trip: Ctrl+Z takes the Open back (to the empty canvas).
  await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('Control+z');
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === 0, 'undo of Open');
  await page.keyboard.press('Control+Shift+z');
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === saved.nodes.length, 'redo of Open');
});

e2e('cancel a run, then the next run completes', async ({ page, tmp }) => {
  await card(page, 'Load Image').waitFor();
  await card(page, 'Load Image')
    .getByLabel('image file for Load Image')
    .setInputFiles(await promptImage(tmp));
  await card(page, 'Load Image').getByRole('img').waitFor();
  await setField(page, 'Empty Latent Image', 'width', '64');
  await setField(page, 'Empty Latent Image', 'height', '64');
  await setField(page, 'DDIM Sampler', 'steps', '400');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.getByRole('progressbar', { name: 'Sampler steps' }).waitFor({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Cancel', exact: true }).click();
  await page.getByText('Run cancelled.').waitFor({ timeout: 30_000 });
  await page.getByText('Queue: 0').waitFor();
  expect((await page.getByRole('img', { name: /^Output/ }).count()) === 0, 'a cancelled run has no output');

  await setField(page, 'DDIM Sampler', 'steps', '3');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page
    .getByRole('img', { name: /^Output/ })
    .first()
    .waitFor({ timeout: 90_000 });
  // Unchanged upstream nodes were cached.
  await waitFor(
    async () => (await card(page, 'CLIP Vision Encode').locator('[data-status="cached"]').count()) === 1,
    'CLIP Vision Encode cached on the second run',
  );
  // The default workflow's Canny preprocessor shows its edges on its own card, not among the outputs.
  if (await card(page, 'Canny').count()) await card(page, 'Canny').getByRole('img', { name: 'Preview of Canny' }).waitFor();
});

e2e('an invalid graph shows its errors on the nodes', async ({ page, results }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await newWorkflow(page);
  const pane = (await page.locator('.react-flow__pane').boundingBox())!;
  await page.mouse.dblclick(pane.x + 200, pane.y + 150);
  await page.getByLabel('Search nodes').fill('latent');
  await page.screenshot({ path: path.join(results, 'palette.png') });
  await page.keyboard.press('Escape');
  await addNode(page, 'DDIM Sampler', { x: pane.x + 200, y: pane.y + 150 });
  await addNode(page, 'Empty Latent Image', { x: pane.x + 600, y: pane.y + 150 });
  await setField(page, 'Empty Latent Image', 'width', '100'); // not a multiple of 8
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await card(page, 'DDIM Sampler').getByRole('alert').waitFor();
  const text = await card(page, 'DDIM Sampler').getByRole('alert').innerText();
  expect(/model/i.test(text), `the sampler's error names its missing input: ${text}`);
  await card(page, 'Empty Latent Image').getByRole('alert').waitFor();
  await page.screenshot({ path: path.join(results, 'validation-errors.png') });
  expect((await card(page, 'DDIM Sampler').locator('[data-status="error"]').count()) === 1, 'error badge on the node');

  // Delete + undo restore a node; the palette search filters.
  await card(page, 'Empty Latent Image').click({ position: { x: 60, y: 12 } });
  await page.keyboard.press('Delete');
  await waitFor(async () => (await card(page, 'Empty Latent Image').count()) === 0, 'node deleted');
  await page.keyboard.press('Control+z');
  await card(page, 'Empty Latent Image').waitFor();
});

e2e('an example opens in one click and runs, with a live preview of the sampler', async ({ page }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await page.getByRole('button', { name: 'Examples', exact: true }).click();
  const items = page.getByRole('menu', { name: 'Examples' }).getByRole('menuitem');
  expect((await items.count()) >= 3, 'examples listed');
  await page
    .getByRole('menuitem', { name: /image prompt/i })
    .first()
    .click();
  await card(page, 'Load Image').getByRole('img').waitFor(); // the example's image, imported with a thumbnail
  await setField(page, 'Empty Latent Image', 'width', '64');
  await setField(page, 'Empty Latent Image', 'height', '64');
  await setField(page, 'DDIM Sampler', 'steps', '40');
  const sawPreview = await recordAppearance(page, 'img[alt="Live preview of the sampler"]');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page
    .getByRole('img', { name: /^Output/ })
    .first()
    .waitFor({ timeout: 90_000 });
  expect(await sawPreview(), 'the live latent preview showed during the run');
});

e2e('drop an image, copy/paste, settings, and recovery of unsaved work', async ({ page, tmp }) => {
  await card(page, 'DDIM Sampler').waitFor();
  const before = await page.getByRole('group', { name: 'Load Image', exact: true }).count();
  // An image without a workflow dropped on the canvas becomes a Load Image node holding it.
  await dropFile(page, await promptImage(tmp), 'image/png');
  await waitFor(
    async () => (await page.getByRole('group', { name: 'Load Image', exact: true }).count()) === before + 1,
    'Load Image node from a dropped image',
  );
  // An image dropped on a node's image param replaces that image (and adds no node).
  const thumb = card(page, 'Load Image', 0).getByRole('img');
  const oldSrc = await thumb.getAttribute('src');
  await dropFile(page, await promptImage(tmp, 'other.png', 90), 'image/png', '.react-flow__node .image-param');
  await waitFor(async () => (await thumb.getAttribute('src')) !== oldSrc, 'the dropped image replaced the param');
  expect((await page.getByRole('group', { name: 'Load Image', exact: true }).count()) === before + 1, 'no extra node for a drop on a param');

  // Copy/paste with the keyboard (the new node is selected).
  const n = await page.locator('.react-flow__node').count();
  await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
  await card(page, 'Save Image').click({ position: { x: 40, y: 10 } });
  await page.keyboard.press('Control+c');
  await page.keyboard.press('Control+v');
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === n + 1, 'pasted a copy');

  // Settings show the engine's folders and provider.
  await page.getByRole('button', { name: 'Settings' }).click();
  const dialog = page.getByRole('dialog', { name: 'Settings' });
  expect((await dialog.getByLabel('Models folder').inputValue()).length > 0, 'models folder shown');
  expect((await dialog.getByLabel('Execution provider').inputValue()) === 'cpu', 'provider cpu');
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Unsaved work survives a reload (autosave to the recovery slot).
  const wf = await currentWorkflow(page);
  await page.reload();
  await card(page, 'DDIM Sampler').waitFor();
  await page.getByText('●').waitFor();
  expect(sameGraph(await currentWorkflow(page), wf), 'recovered graph equals the unsaved one');
});
