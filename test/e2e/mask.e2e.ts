/**
 * Painting an inpainting mask in the editor: the inpainting example, a stroke painted with the
 * mouse in the Paint mask dialog, the saved mask set on Load Image (one undo step, a badge on the
 * card), the painter reopening on it, and a run of the workflow (Load Image's MASK -> VAE Encode's
 * mask) on the demo models.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { card, currentWorkflow, e2e, expect, waitFor } from './harness.js';

/** A small opaque init image (no alpha, so only a painted mask can make a MASK). */
async function initImage(dir: string): Promise<string> {
  const w = 64;
  const px = Buffer.alloc(w * w * 3);
  for (let y = 0; y < w; y++) for (let x = 0; x < w; x++) px.set([40 + x * 3, 200 - y * 2, 120], (y * w + x) * 3);
  const file = path.join(dir, 'init.png');
  await sharp(px, { raw: { width: w, height: w, channels: 3 } })
    .png()
    .toFile(file);
  return file;
}

const maskOf = async (page: Page, id: string) => String((await currentWorkflow(page)).nodes.find((n) => n.id === id)?.params.mask ?? '');

e2e('paint an inpainting mask on Load Image, save it, and run the inpainting workflow', async ({ page, results, tmp, userData }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await page.getByRole('button', { name: 'Examples', exact: true }).click();
  await page
    .getByRole('menuitem', { name: /inpainting/i })
    .first()
    .click();
  // The Load Image whose MASK feeds VAE Encode's mask input.
  await waitFor(async () => ((await currentWorkflow(page))?.nodes ?? []).some((n) => n.type === 'vae-encode'), 'inpainting example opened');
  const wf = await currentWorkflow(page);
  const edge = (wf.edges as { from: { node: string; port: string }; to: { node: string; port: string } }[]).find(
    (e) => e.to.port === 'mask' && wf.nodes.find((n) => n.id === e.to.node)?.type === 'vae-encode',
  );
  expect(edge && edge.from.port === 'mask', 'the example feeds Load Image MASK into VAE Encode');
  const id = edge!.from.node;
  const node = page.locator(`.card[data-node-id="${id}"]`);

  // A small opaque init image and a short run.
  const thumb = node.getByRole('img', { name: 'image of Load Image' });
  await thumb.waitFor();
  const before = await thumb.getAttribute('src');
  await node.getByLabel('image file for Load Image').setInputFiles(await initImage(tmp));
  await waitFor(async () => (await thumb.getAttribute('src')) !== before, 'init image replaced');
  await card(page, 'DDIM Sampler').getByLabel('steps', { exact: true }).fill('3');
  expect((await maskOf(page, id)) === '', 'no mask before painting');

  // Paint a horizontal stroke through the middle with the mouse.
  await node.getByRole('button', { name: 'Paint mask' }).click();
  const dialog = page.getByRole('dialog', { name: 'Paint mask' });
  await dialog.waitFor();
  const nodes = await page.locator('.react-flow__node').count();
  await page.keyboard.press('Delete'); // must not reach the editor behind the dialog
  await dialog.getByRole('slider', { name: /Brush size/ }).fill('8');
  const canvas = dialog.getByLabel('Mask canvas');
  const box = (await canvas.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5, { steps: 12 });
  await page.mouse.up();
  await page.screenshot({ path: path.join(results, 'mask-painter.png') });
  await dialog.getByRole('button', { name: 'Save', exact: true }).click();
  await dialog.waitFor({ state: 'detached' });
  expect((await page.locator('.react-flow__node').count()) === nodes, 'Delete in the dialog left the graph alone');

  // The mask param names an uploaded PNG: white along the stroke, black elsewhere, at the image's size.
  await waitFor(async () => (await maskOf(page, id)) !== '', 'mask param set');
  const ref = await maskOf(page, id);
  const file = path.join(userData, ref);
  expect(/^inputs\/[^/]+\.png$/.test(ref) && fs.existsSync(file), `the mask was uploaded to the inputs folder as inputs/<file> (${ref})`);
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  expect(info.width === 64 && info.height === 64, `mask at the image's size (${info.width}x${info.height})`);
  const at = (x: number, y: number) => data[(y * info.width + x) * info.channels];
  expect(at(32, 32) === 255 && at(16, 32) === 255 && at(48, 32) === 255, 'white along the stroke');
  expect(at(32, 4) === 0 && at(2, 60) === 0 && at(60, 2) === 0, 'black away from it');
  await node.getByRole('img', { name: 'Painted mask of Load Image' }).waitFor();
  await node.screenshot({ path: path.join(results, 'mask-badge.png') });

  // One undo step takes it away, redo brings it back.
  await page.locator('.react-flow__pane').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('Control+z');
  await waitFor(async () => (await maskOf(page, id)) === '', 'undo removes the mask');
  await page.keyboard.press('Control+Shift+z');
  await waitFor(async () => (await maskOf(page, id)) === ref, 'redo sets it again');

  // Reopened, the painter starts from the saved mask; Cancel changes nothing.
  await node.getByRole('button', { name: 'Paint mask' }).click();
  await dialog.waitFor();
  await waitFor(
    () =>
      page.evaluate(() => {
        const c = document.querySelector<HTMLCanvasElement>('canvas[aria-label="Mask canvas"]');
        return !!c && c.getContext('2d')!.getImageData(c.width >> 1, c.height >> 1, 1, 1).data[3] === 255;
      }),
    'the saved mask loaded into the painter',
  );
  await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
  await dialog.waitFor({ state: 'detached' });
  expect((await maskOf(page, id)) === ref, 'Cancel keeps the mask');

  // Run: Load Image's MASK -> VAE Encode -> the sampler inpaints.
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page
    .getByRole('img', { name: /^Output/ })
    .first()
    .waitFor({ timeout: 90_000 });
  await waitFor(async () => (await card(page, 'Save Image').locator('[data-status="done"]').count()) === 1, 'Save Image marked done');
  expect((await page.locator('.card [role=alert]').count()) === 0, 'no node errors');

  // The badge's remove button clears the mask.
  await node.getByRole('button', { name: 'Remove mask' }).click();
  await waitFor(async () => (await maskOf(page, id)) === '', 'mask removed');
  expect((await node.getByRole('img', { name: 'Painted mask of Load Image' }).count()) === 0, 'badge gone');
});
