/**
 * The canvas end to end (web mode, demo models), driven by accessible names: layout that hides
 * nothing (every bundled example opens without two cards intersecting, at a readable zoom, and
 * neither the minimap nor a notice covers a card; an error covers no card), a wire dropped on
 * empty canvas opens the picker filtered to compatible nodes and connects the one picked, Ctrl+B
 * bypasses a node (the run skips it and passes its input through), and the right-click menu,
 * groups, collapse, reroutes and primitives, all undoable.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { nodeSpecs } from '../../nodes/index.js';
import { fillTensor, splitSafetensors } from '../helpers/corrupt.js';
import { addNode, card, connect, currentWorkflow, e2e, expect, waitFor } from './harness.js';

interface Rect {
  name: string;
  x: number;
  y: number;
  w: number;
  h: number;
}
const RESULTS = path.join(import.meta.dirname, '..', '..', 'test-results');
const hit = (a: Rect, b: Rect) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/** The node cards' boxes on screen (groups excluded), with their titles. */
async function cardRects(page: Page): Promise<Rect[]> {
  return page.locator('.react-flow__node-card').evaluateAll((els) =>
    els.map((el) => {
      const r = el.getBoundingClientRect();
      const name = el.querySelector('[role=group]')?.getAttribute('aria-label') ?? el.getAttribute('data-id') ?? '?';
      return { name: `${name} (${el.getAttribute('data-id')})`, x: r.x, y: r.y, w: r.width, h: r.height };
    }),
  );
}

async function expectNoOverlaps(page: Page, what: string, clear = true): Promise<void> {
  const rects = await cardRects(page);
  const fail = async (m: string) => {
    await page.screenshot({ path: path.join(RESULTS, `canvas-overlap-${what.replace(/[^a-z0-9]+/gi, '-')}.png`) });
    expect(false, m);
  };
  for (let i = 0; i < rects.length; i++) {
    for (let j = i + 1; j < rects.length; j++) if (hit(rects[i], rects[j])) await fail(`${what}: ${rects[i].name} and ${rects[j].name} overlap`);
  }
  // Nor do the minimap or a notice cover a card (when fit view shows the whole graph).
  if (!clear) return;
  for (const sel of ['.react-flow__minimap', '.notice']) {
    for (const box of await page.locator(sel).evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON() as DOMRect))) {
      const r = { name: sel, x: box.x, y: box.y, w: box.width, h: box.height };
      for (const c of rects) if (hit(r, c)) await fail(`${what}: the ${sel} covers ${c.name}`);
    }
  }
}

const zoom = (page: Page) => page.locator('.react-flow__viewport').evaluate((el) => new DOMMatrixReadOnly(getComputedStyle(el).transform).a);

async function newWorkflow(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'File menu', exact: true }).click();
  await page.getByRole('menuitem', { name: /New workflow/ }).click();
  // A changed document asks first (helper E's confirm); discard it.
  const discard = page.getByRole('button', { name: /Discard/ });
  if (await discard.isVisible().catch(() => false)) await discard.click();
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === 0, 'canvas empty');
}

async function handle(page: Page, title: string, side: 'input' | 'output', port: string) {
  const box = await card(page, title)
    .locator(`.react-flow__handle[data-handleid="${port}"].${side === 'input' ? 'target' : 'source'}`)
    .boundingBox();
  if (!box) throw new Error(`no ${side} ${port} on ${title}`);
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

e2e('the default workflow and every bundled example open without overlapping cards, at zoom >= 0.7, minimap and notices clear', async ({ page, results }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await page.waitForTimeout(600); // restack and fit after measuring
  await expectNoOverlaps(page, 'default workflow');
  expect((await zoom(page)) >= 0.7, `the default workflow opens at zoom ${await zoom(page)}`);
  await page.screenshot({ path: path.join(results, 'canvas-default-workflow.png') });

  await page.getByRole('button', { name: 'Examples', exact: true }).click();
  const titles = await page.getByRole('menu', { name: 'Examples' }).getByRole('menuitem').allTextContents();
  await page.getByRole('button', { name: 'Examples', exact: true }).click(); // closes the menu
  expect(titles.length >= 10, `the examples menu lists the bundled examples (${titles.length})`);
  const tooLarge: string[] = [];
  for (const title of titles) {
    await page.getByRole('button', { name: 'Examples', exact: true }).click();
    await page.getByRole('menuitem', { name: title, exact: true }).click();
    const discard = page.getByRole('button', { name: /Discard/ });
    if (await discard.isVisible().catch(() => false)) await discard.click();
    await page.waitForTimeout(800); // opened, measured, fitted
    // A graph larger than one screen at 0.7 is framed at its centre (FIT_VIEW.minZoom): panned, so the minimap may lie over it.
    const pane = (await page.locator('.react-flow__pane').boundingBox())!;
    const fits = (await cardRects(page)).every((r) => r.x >= pane.x && r.y >= pane.y && r.x + r.w <= pane.x + pane.width && r.y + r.h <= pane.y + pane.height);
    if (!fits) tooLarge.push(title);
    await expectNoOverlaps(page, title, fits);
    const z = await zoom(page);
    expect(z >= 0.7, `${title} opens at zoom ${z.toFixed(2)} (at least 0.7 at 1600x1000)`);
    expect((await page.getByRole('status', { name: 'Overlapping cards' }).count()) === 0, `${title}: no Tidy offer (nothing overlaps)`);
    if (/λ sweep|lambda|sweep/i.test(title)) await page.screenshot({ path: path.join(results, 'canvas-example-lambda-sweep.png') });
  }
  await page.screenshot({ path: path.join(results, 'canvas-example-last.png') });
  console.log(`    examples larger than one screen at zoom 0.7 (framed at their centre): ${tooLarge.join(', ') || 'none'}`);
});

e2e('a wire dropped on empty canvas from LATENT lists only nodes with a LATENT input; picking one connects it', async ({ page }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await newWorkflow(page);
  const pane = (await page.locator('.react-flow__pane').boundingBox())!;
  await addNode(page, 'Empty Latent Image', { x: pane.x + 150, y: pane.y + 120 });
  const from = await handle(page, 'Empty Latent Image', 'output', 'latent');
  // Compatible inputs light up while dragging (none on this canvas yet: the card's own ports dim).
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(from.x + 200, from.y + 40, { steps: 6 });
  await page.mouse.move(from.x + 380, from.y + 60, { steps: 6 });
  await page.mouse.up();
  const picker = page.getByRole('dialog', { name: 'Add node for the wire' });
  await picker.waitFor();
  const listed = (await picker.getByRole('option').allTextContents()).sort();
  const want = nodeSpecs()
    .filter((s) => !s.dynamicPorts && (s.virtual === 'reroute' || s.inputs.some((p) => p.type === 'LATENT')))
    .map((s) => s.title)
    .sort();
  expect(JSON.stringify(listed) === JSON.stringify(want), `the picker lists the nodes with a LATENT input: ${listed.join(', ')} (want ${want.join(', ')})`);
  await picker.getByLabel('Search nodes').fill('decode');
  await picker.getByRole('option', { name: 'VAE Decode', exact: true }).click();
  await card(page, 'VAE Decode').waitFor();
  const wf = await currentWorkflow(page);
  const dec = wf.nodes.find((n) => n.type === 'vae-decode')!;
  const lat = wf.nodes.find((n) => n.type === 'empty-latent-image')!;
  expect(
    (wf.edges as { from: { node: string; port: string }; to: { node: string; port: string } }[]).some(
      (e) => e.from.node === lat.id && e.from.port === 'latent' && e.to.node === dec.id && e.to.port === 'samples',
    ),
    `Empty Latent Image's LATENT feeds the new VAE Decode: ${JSON.stringify(wf.edges)}`,
  );
  // The new card sits clear of the other one.
  await expectNoOverlaps(page, 'after the wire-drop');
  // Dragging from the LATENT output again: VAE Decode's LATENT input lights up, its VAE input dims.
  const again = await handle(page, 'Empty Latent Image', 'output', 'latent');
  await page.mouse.move(again.x, again.y);
  await page.mouse.down();
  await page.mouse.move(again.x + 60, again.y + 40, { steps: 5 });
  expect((await card(page, 'VAE Decode').locator('.port-compatible .react-flow__handle[data-handleid="samples"]').count()) === 1, 'the LATENT input lights up');
  expect((await card(page, 'VAE Decode').locator('.port-incompatible .react-flow__handle[data-handleid="vae"]').count()) === 1, 'the VAE input dims');
  await page.mouse.move(again.x, again.y, { steps: 3 });
  await page.mouse.up();
  await page.keyboard.press('Escape');
  // While dragging from VAE Decode's VAE input, the compatible ports light up (none: no VAE output yet) and the LATENT output dims.
  const vaeIn = await handle(page, 'VAE Decode', 'input', 'vae');
  await page.mouse.move(vaeIn.x, vaeIn.y);
  await page.mouse.down();
  await page.mouse.move(vaeIn.x - 100, vaeIn.y + 30, { steps: 5 });
  expect((await page.locator('.port-incompatible').count()) > 0, 'incompatible ports dim while dragging');
  await page.mouse.up();
  await page.keyboard.press('Escape');
});

/** Writes a colourful PNG and drops it on Load Image's image picker, as the OS would. */
async function dropImage(page: Page, file: string): Promise<void> {
  const w = 96;
  const px = Buffer.alloc(w * w * 3);
  for (let y = 0; y < w; y++) for (let x = 0; x < w; x++) px.set([x * 2.6, y * 2.6, 255 - x * 2.6], (y * w + x) * 3);
  await sharp(px, { raw: { width: w, height: w, channels: 3 } })
    .png()
    .toFile(file);
  const b64 = fs.readFileSync(file).toString('base64');
  await page.evaluate(
    ({ b64, name }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: 'image/png' }));
      const target = document.querySelector('.react-flow__node .image-param')!;
      const r = target.getBoundingClientRect();
      for (const type of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(
          new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt, clientX: r.left + r.width / 2, clientY: r.top + r.height / 2 }),
        );
      }
    },
    { b64, name: path.basename(file) },
  );
}

e2e('Ctrl+B bypasses a node: the run skips it and passes its input through; Ctrl+Z brings it back', async ({ page, results, tmp }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await newWorkflow(page);
  const pane = (await page.locator('.react-flow__pane').boundingBox())!;
  await addNode(page, 'Load Image', { x: pane.x + 120, y: pane.y + 120 });
  await addNode(page, 'Canny', { x: pane.x + 480, y: pane.y + 120 });
  await addNode(page, 'Preview Image', { x: pane.x + 820, y: pane.y + 120 });
  // A colourful image dropped on Load Image's picker.
  await dropImage(page, path.join(tmp, 'colourful.png'));
  await waitFor(
    async () => typeof (await currentWorkflow(page)).nodes.find((n) => n.type === 'load-image')?.params.image === 'string',
    'Load Image has its image',
  );
  await waitFor(async () => String((await currentWorkflow(page)).nodes.find((n) => n.type === 'load-image')?.params.image) !== '', 'Load Image has its image');
  await connect(page, ['Load Image', 0, 'image'], ['Canny', 0, 'image']);
  await connect(page, ['Canny', 0, 'image'], ['Preview Image', 0, 'images']);
  const img = page.getByRole('img', { name: /^Output/ });
  const before = await img.count();

  await card(page, 'Canny').locator('.card-header').click();
  await page.keyboard.press('Control+b');
  await card(page, 'Canny').getByText('bypassed', { exact: true }).waitFor();
  let wf = await currentWorkflow(page);
  const canny = wf.nodes.find((n) => n.type === 'canny') as { mode?: string };
  expect(canny.mode === 'bypass', 'the saved workflow marks Canny bypassed');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await waitFor(async () => (await img.count()) > before, 'the preview appeared', 90_000);
  await waitFor(async () => (await card(page, 'Preview Image').locator('[data-status="done"]').count()) === 1, 'Preview Image done');
  expect((await card(page, 'Canny').locator('[data-status]').count()) === 0, 'Canny did not run (no status badge)');
  // The preview is the colourful input image, not Canny's grey edges.
  const sat = await img.first().evaluate(async (el: HTMLImageElement) => {
    await el.decode();
    const c = document.createElement('canvas');
    c.width = el.naturalWidth;
    c.height = el.naturalHeight;
    const g = c.getContext('2d')!;
    g.drawImage(el, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let s = 0;
    for (let i = 0; i < d.length; i += 4) s += Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
    return s / (d.length / 4);
  });
  expect(sat > 20, `the bypassed Canny passed its input through (mean saturation ${sat.toFixed(1)}; Canny's edges are grey)`);
  await page.screenshot({ path: path.join(results, 'canvas-bypass.png') });

  // Undo: Canny runs again.
  await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('Control+z');
  wf = await currentWorkflow(page);
  expect(!(wf.nodes.find((n) => n.type === 'canny') as { mode?: string }).mode, 'undo removes the bypass');
});

e2e('an error on a card covers no other card', async ({ page, results }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await page.waitForTimeout(600);
  // A width that is not a multiple of 8 and a removed model: errors on two cards at once.
  await card(page, 'Empty Latent Image').getByLabel('width', { exact: true }).fill('100');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await card(page, 'Empty Latent Image').getByRole('alert').waitFor();
  await page.waitForTimeout(400);
  await expectNoOverlaps(page, 'with an error shown');
  await page.screenshot({ path: path.join(results, 'canvas-error.png') });
});

e2e('right-click menus, groups, collapse, mute, reroute and primitive; all undoable and saved', async ({ page, results }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await newWorkflow(page);
  const pane = (await page.locator('.react-flow__pane').boundingBox())!;
  // Add node from the canvas menu.
  await page.mouse.click(pane.x + 200, pane.y + 150, { button: 'right' });
  await page
    .getByRole('menu', { name: 'Canvas menu' })
    .getByRole('menuitem', { name: /Add node/ })
    .click();
  await page.getByLabel('Search nodes').fill('EmptyLatentImage');
  await page.getByRole('option', { name: 'Empty Latent Image', exact: true }).click();
  // Searched by its ComfyUI name.
  await page.mouse.dblclick(pane.x + 650, pane.y + 150);
  await page.getByLabel('Search nodes').fill('ksampler');
  await page.getByRole('option', { name: 'KSampler', exact: true }).click();
  await card(page, 'KSampler').waitFor();
  await connect(page, ['Empty Latent Image', 0, 'latent'], ['KSampler', 0, 'latent']);

  // A reroute on the wire (wire menu).
  const edge = page.locator('.react-flow__edge').first();
  const eb = (await edge.boundingBox())!;
  await page.mouse.click(eb.x + eb.width / 2, eb.y + eb.height / 2, { button: 'right' });
  await page.getByRole('menu', { name: 'Wire menu' }).getByRole('menuitem', { name: 'Add reroute' }).click();
  await page.getByRole('group', { name: 'Reroute' }).waitFor();
  let wf = await currentWorkflow(page);
  expect(wf.nodes.some((n) => n.type === 'reroute') && wf.edges.length === 2, 'the wire now goes through a reroute');

  // Node menu: mute, collapse, convert seed to input.
  const ks = card(page, 'KSampler');
  await ks.locator('.card-header').click({ button: 'right' });
  await page.getByRole('menu', { name: 'Node menu' }).getByRole('menuitem', { name: 'Mute' }).click();
  await ks.getByText('muted', { exact: true }).waitFor();
  await ks.locator('.card-header').click({ button: 'right' });
  await page.getByRole('menu', { name: 'Node menu' }).getByRole('menuitem', { name: 'Convert seed to input' }).click();
  await ks.locator('.react-flow__handle[data-handleid="seed"]').waitFor();
  // A primitive feeds the seed.
  await page.mouse.click(pane.x + 200, pane.y + 600, { button: 'right' });
  await page.getByRole('menu', { name: 'Canvas menu' }).getByRole('menuitem', { name: 'Add primitive' }).click();
  await connect(page, ['Primitive', 0, 'value'], ['KSampler', 0, 'seed']);
  wf = await currentWorkflow(page);
  const prim = wf.nodes.find((n) => n.type === 'primitive')!;
  const ksn = wf.nodes.find((n) => n.type === 'ksampler')! as { id: string; mode?: string; params: Record<string, unknown> };
  expect(ksn.mode === 'mute', 'KSampler saved muted');
  expect(
    (wf.edges as { from: { node: string }; to: { node: string; port: string } }[]).some(
      (e) => e.from.node === prim.id && e.to.node === ksn.id && e.to.port === 'seed',
    ),
    'the primitive feeds the seed',
  );
  expect(prim.params.value === ksn.params.seed, `the primitive took the seed's value (${String(prim.params.value)})`);

  // Ctrl+A, Ctrl+G: a group around everything; Alt+C collapses.
  await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('Control+a');
  await page.keyboard.press('Control+g');
  await page.getByRole('region', { name: 'Group Group' }).waitFor();
  await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } }); // deselect
  await card(page, 'Empty Latent Image').locator('.card-header').click();
  await page.keyboard.press('Alt+c');
  await waitFor(async () => (await page.locator('[data-collapsed="true"]').count()) === 1, 'Empty Latent Image collapsed').catch(async (e) => {
    await page.screenshot({ path: path.join(results, 'canvas-tools-failed.png') });
    throw e;
  });
  wf = await currentWorkflow(page);
  const meta = (wf as unknown as { meta?: { groups?: { title: string; bounding: number[] }[] } }).meta;
  expect(meta?.groups?.length === 1 && meta.groups[0].bounding.length === 4, `the group is saved in meta.groups: ${JSON.stringify(meta)}`);

  // Moving the group moves its cards.
  const before = (await card(page, 'KSampler').boundingBox())!;
  const title = page.locator('.group-title').first();
  const tb = (await title.boundingBox())!;
  await page.mouse.move(tb.x + 30, tb.y + tb.height / 2);
  await page.mouse.down();
  await page.mouse.move(tb.x + 90, tb.y + tb.height / 2 + 50, { steps: 6 });
  await page.mouse.up();
  const after = (await card(page, 'KSampler').boundingBox())!;
  const tb2 = (await title.boundingBox())!;
  const [dx, dy] = [tb2.x - tb.x, tb2.y - tb.y];
  expect(dx > 20 && dy > 20, `the group moved (${dx}, ${dy})`);
  expect(
    Math.abs(after.x - before.x - dx) < 3 && Math.abs(after.y - before.y - dy) < 3,
    `the group's cards moved with it (group by ${dx},${dy}; KSampler ${before.x},${before.y} -> ${after.x},${after.y})`,
  );
  await page.screenshot({ path: path.join(results, 'canvas-tools.png') });

  // Undo walks back: the move, the collapse, the group.
  for (let i = 0; i < 3; i++) await page.keyboard.press('Control+z');
  wf = await currentWorkflow(page);
  expect(!(wf as unknown as { meta?: { groups?: unknown[] } }).meta?.groups?.length, 'undo removed the group');
  expect((await page.locator('[data-collapsed="true"]').count()) === 0, 'undo expanded the card');
});

e2e(
  'a model file with NaN weights: a warning badge on the card that loaded it, naming the file; another file clears it',
  async ({ page, results, userData }) => {
    const sampler = card(page, 'DDIM Sampler');
    await sampler.waitFor();
    await sampler.getByLabel('steps', { exact: true }).fill('2');
    const latent = card(page, 'Empty Latent Image');
    await latent.getByLabel('width', { exact: true }).fill('64');
    await latent.getByLabel('height', { exact: true }).fill('64');
    // A copy of the demo adapter whose first tensor is all NaN, beside it in the models folder.
    const dir = path.join(userData, 'demo-models', 'ipadapter');
    const bad = path.join(dir, 'nan-weights-e2e.safetensors');
    const bytes = fs.readFileSync(path.join(dir, 'ip-adapter_sd15.safetensors'));
    const { header } = splitSafetensors(bytes);
    const tensor = Object.keys(header).find((k) => k !== '__metadata__')!;
    fs.writeFileSync(bad, bytes);
    fillTensor(bad, tensor, NaN);
    try {
      const loader = card(page, 'Load IP-Adapter');
      const pick = loader.getByLabel('adapter', { exact: true });
      const original = await pick.inputValue();
      await pick.focus(); // the list is asked for again on focus
      await waitFor(async () => (await pick.locator('option', { hasText: 'nan-weights-e2e.safetensors' }).count()) === 1, 'the new file is listed');
      await pick.selectOption('nan-weights-e2e.safetensors');
      await page.getByRole('button', { name: 'Run', exact: true }).click();
      const badge = loader.getByRole('img', { name: /^Warning: / });
      await waitFor(async () => (await badge.count()) === 1, 'the warning badge on Load IP-Adapter', 90_000);
      const text = (await badge.getAttribute('aria-label'))!;
      expect(
        text.includes('nan-weights-e2e.safetensors') && text.includes(`"${tensor}"`) && /NaN or infinite/.test(text),
        `the badge names the file, the tensor and the problem: ${text}`,
      );
      expect((await badge.getAttribute('title')) === text.replace(/^Warning: /, ''), 'hovering shows the same sentence');
      expect(!/^Warning: Load IP-Adapter \(/.test(text), `on its card the message has no "Title (id):" prefix: ${text}`);
      // Every other card shows no weight warning about this file (VAE Decode may say the image is NaN: that is its own sentence).
      for (const other of ['Load Checkpoint', 'Load CLIP Vision']) {
        expect(
          (await card(page, other)
            .getByRole('img', { name: /^Warning: / })
            .count()) === 0,
          `${other} has no warning`,
        );
      }
      await waitFor(async () => (await card(page, 'Save Image').locator('[data-status="done"]').count()) === 1, 'the run ended (Save Image done)', 90_000);
      await page.screenshot({ path: path.join(results, 'canvas-weight-warning.png') });
      // Choosing another file clears the badge at once.
      await pick.selectOption(original);
      await waitFor(async () => (await badge.count()) === 0, 'the badge went with the file');
      await expectNoOverlaps(page, 'after a weight warning', false);
    } finally {
      fs.rmSync(bad, { force: true });
    }
  },
);
