/**
 * Issue 14, feedback / queue / gallery, driven by accessible names: the gallery still shows the last
 * run's images with their parameters after a reload (the output folder's PNGs), with search, the
 * viewer (Escape, next / previous, Open this workflow); the queue panel lists pending and running
 * jobs by name with Remove, re-queues, and an unchanged graph says it is a duplicate instead of
 * writing the same images; a typed models folder that does not exist is refused with its path; a
 * range error shows while typing, with the field's label; a run's error toast goes after a later
 * successful run and after New; New asks before replacing unsaved work. Screenshots of the queue
 * panel and the gallery go to test-results/.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { card, e2e, expect, openApp, startWeb, waitFor } from './harness.js';

const field = (page: Page, title: string, label: string, nth = 0) => card(page, title, nth).getByLabel(label, { exact: true });

/** A small, fast run of the default workflow: 64x64, few steps, its own prompt, prefix and seed. */
async function prepare(page: Page, o: { prompt: string; prefix: string; steps?: number; seed?: number }): Promise<void> {
  await card(page, 'DDIM Sampler').waitFor();
  await field(page, 'DDIM Sampler', 'steps').fill(String(o.steps ?? 2));
  if (o.seed !== undefined) await field(page, 'DDIM Sampler', 'seed').fill(String(o.seed));
  const latent = card(page, 'Empty Latent Image');
  if (await latent.count()) {
    await field(page, 'Empty Latent Image', 'width').fill('64');
    await field(page, 'Empty Latent Image', 'height').fill('64');
  }
  await field(page, 'Text Encode', 'text', 0).fill(o.prompt);
  await field(page, 'Save Image', 'filename_prefix').fill(o.prefix);
}

const run = (page: Page) => page.getByRole('button', { name: 'Run', exact: true }).click();
const queue = (page: Page) => page.getByRole('region', { name: 'Queue' });
const gallery = (page: Page) => page.getByRole('region', { name: 'Gallery' });

e2e(
  'the gallery remembers: after a reload it shows the last run with its parameters, searchable, in a viewer with Escape and next/previous',
  async ({ page, userData, results }) => {
    const stamp = Date.now();
    const prefix = `gallery${stamp}`;
    const prompt = `a lighthouse at dusk ${stamp}`;
    await prepare(page, { prompt, prefix, seed: 7 });
    await run(page);
    await gallery(page)
      .getByRole('img', { name: `Output 1: ${prefix}_00001_.png` })
      .waitFor({ timeout: 90_000 });
    await prepare(page, { prompt: `a red fox in the snow ${stamp}`, prefix, seed: 8 });
    await run(page);
    await gallery(page)
      .getByRole('img', { name: `Output 1: ${prefix}_00002_.png` })
      .waitFor({ timeout: 90_000 });
    expect(fs.existsSync(path.join(userData, 'outputs', `${prefix}_00002_.png`)), 'written to the output folder');

    // A reload (a new page: nothing of this session's runs in memory) lists them from the output folder.
    await page.reload();
    const second = gallery(page).getByRole('img', { name: `Saved image ${prefix}_00002_.png` });
    await second.waitFor();
    await gallery(page)
      .getByRole('img', { name: `Saved image ${prefix}_00001_.png` })
      .waitFor();
    // Each thumbnail shows its whole name and its prompt.
    await gallery(page).getByText(`${prefix}_00002_`, { exact: true }).waitFor();
    await gallery(page).getByText(`a red fox in the snow ${stamp}`).first().waitFor();

    // Search by prompt.
    await gallery(page).getByLabel('Search prompts').fill(`lighthouse ${stamp}`);
    await waitFor(async () => (await gallery(page).getByRole('img').count()) === 1, 'one image matches the search');
    await gallery(page)
      .getByRole('img', { name: `Saved image ${prefix}_00001_.png` })
      .waitFor();
    await gallery(page).getByLabel('Search prompts').fill(String(stamp));
    await waitFor(async () => (await gallery(page).getByRole('img').count()) === 2, 'both runs match their stamp');
    await page.locator('aside.outputs').screenshot({ path: path.join(results, 'gallery-panel.png') });

    // The viewer: its parameters from the PNG, next / previous, Escape closes.
    await gallery(page)
      .getByRole('img', { name: `Saved image ${prefix}_00002_.png` })
      .click();
    const viewer = page.getByRole('dialog', { name: 'Image viewer' });
    await viewer.waitFor();
    await viewer.getByRole('region', { name: 'Prompt' }).getByText(`a red fox in the snow ${stamp}`).waitFor();
    const params = viewer.getByRole('table', { name: 'Parameters' });
    await params.getByRole('row', { name: /Seed 8/ }).waitFor();
    await params.getByRole('row', { name: /Steps 2/ }).waitFor();
    await params.getByRole('row', { name: /Size 64x64/ }).waitFor();
    await page.screenshot({ path: path.join(results, 'gallery-viewer.png') });
    await viewer.getByRole('button', { name: 'Next image' }).click();
    await viewer.getByRole('heading', { name: `${prefix}_00001_.png` }).waitFor();
    await params.getByRole('row', { name: /Seed 7/ }).waitFor();
    await page.keyboard.press('ArrowLeft');
    await viewer.getByRole('heading', { name: `${prefix}_00002_.png` }).waitFor();
    await page.keyboard.press('Escape');
    await viewer.waitFor({ state: 'detached' });

    // Open this workflow: the canvas gets the graph the image was made with (after asking, since the page has edits).
    await field(page, 'DDIM Sampler', 'steps').fill('5');
    await gallery(page)
      .getByRole('img', { name: `Saved image ${prefix}_00001_.png` })
      .click();
    await viewer.getByRole('button', { name: 'Open this workflow' }).click();
    const ask = page.getByRole('alertdialog', { name: 'Replace unsaved work?' });
    await ask.getByRole('button', { name: 'Discard changes' }).click();
    await viewer.waitFor({ state: 'detached' });
    await waitFor(async () => (await field(page, 'Text Encode', 'text', 0).inputValue()) === prompt, 'the image’s workflow is open');
    expect((await field(page, 'DDIM Sampler', 'seed').inputValue()) === '7', 'with its seed');
  },
);

e2e('the queue panel lists jobs by name with Remove, re-queues, and an unchanged graph is not written twice', async ({ page, userData, results }) => {
  const stamp = Date.now();
  const prefix = `queue${stamp}`;
  const outputs = path.join(userData, 'outputs');
  const written = () => fs.readdirSync(outputs).filter((f) => f.startsWith(prefix));
  // This test's rows: their summary carries its prompt (the panel also lists earlier tests' jobs on this server).
  const mine = (state: RegExp) =>
    queue(page)
      .getByRole('listitem', { name: state })
      .filter({ hasText: `a quiet harbour ${stamp}` });

  // One finished run, then the same graph again: a duplicate, nothing written.
  await prepare(page, { prompt: `a quiet harbour ${stamp}`, prefix, seed: 11 });
  await run(page);
  await mine(/, done$/).waitFor({ timeout: 90_000 });
  await waitFor(() => written().length === 1, 'the first run wrote its image', 90_000);
  await waitFor(async () => (await page.getByText('Queue: 0').count()) === 1, 'the first run finished', 30_000);
  await run(page);
  await mine(/not run: no change$/).waitFor();
  await page.getByText(/Nothing changed since an earlier run, so nothing was written again/).waitFor();
  await page.waitForTimeout(500);
  expect(written().length === 1, `no duplicate written (${written().join(', ')})`);

  // A long job and two waiting behind it, each named after the document.
  await prepare(page, { prompt: `a quiet harbour ${stamp}`, prefix, seed: 12, steps: 300 });
  await run(page);
  await mine(/, running$/).waitFor({ timeout: 60_000 });
  await field(page, 'DDIM Sampler', 'seed').fill('13');
  await run(page);
  await field(page, 'DDIM Sampler', 'seed').fill('14');
  await run(page);
  await waitFor(async () => (await mine(/, waiting$/).count()) === 2, 'two jobs waiting');
  await queue(page).getByRole('progressbar').first().waitFor();
  await page.locator('aside.outputs').screenshot({ path: path.join(results, 'queue-panel.png') });
  await page.screenshot({ path: path.join(results, 'queue-page.png') });

  // Remove one waiting job: it leaves the line; the other still waits.
  const waiting = mine(/, waiting$/);
  const removed = mine(/, removed$/);
  await waiting
    .last()
    .getByRole('button', { name: /^Remove / })
    .click();
  await waitFor(async () => (await removed.count()) === 1, 'the removed job is marked removed');
  await waitFor(async () => (await waiting.count()) === 1, 'one job still waiting');
  // Remove the last waiting one, then stop the running one: the queue is empty. (In this order: once the
  // running job stops, the waiting one would start at once and no longer be "waiting".)
  await waiting
    .first()
    .getByRole('button', { name: /^Remove / })
    .click();
  await waitFor(async () => (await waiting.count()) === 0, 'no job waiting');
  await mine(/, running$/)
    .getByRole('button', { name: /^Stop / })
    .click();
  await waitFor(async () => (await mine(/, (running|waiting)$/).count()) === 0, 'nothing pending');
  await page.getByText('Queue: 0').waitFor();

  // Re-queue the duplicate with Run anyway: now it writes.
  await mine(/not run: no change$/)
    .getByRole('button', { name: /^Run anyway / })
    .click();
  await waitFor(() => written().length === 2, 'Run anyway wrote the image again', 90_000);
});

e2e(
  'after a reload and after the app restarts the queue lists the same jobs, with their summary and Re-queue, and an unchanged graph is still not written twice',
  async ({ results }) => {
    // Its own server and user data: a restart of the app is a restart of this server, and no other test's jobs are listed.
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-e2e-restart-'));
    const stamp = Date.now();
    const prefix = `restart${stamp}`;
    const prompt = `a windmill by the sea ${stamp}`;
    const outputs = path.join(data, 'outputs');
    const written = () => (fs.existsSync(outputs) ? fs.readdirSync(outputs).filter((f) => f.startsWith(prefix)) : []);
    // This run's rows only: its summary carries the prompt with the stamp.
    const rows = (page: Page, state: RegExp) => queue(page).getByRole('listitem', { name: state }).filter({ hasText: prompt });
    const summary = `seed 21 · 2 steps · “${prompt}”`;
    // The done row shows its summary and offers Re-queue.
    const doneRowKept = async (page: Page) => {
      await rows(page, /, done$/)
        .getByText(summary, { exact: true })
        .waitFor();
      await rows(page, /, done$/)
        .getByRole('button', { name: /^Re-queue / })
        .waitFor();
    };
    let web = await startWeb(data);
    let app = await openApp(web.url, data, results, 'restart');
    try {
      let page = app.t.page;
      await prepare(page, { prompt, prefix, seed: 21 });
      await run(page);
      await rows(page, /, done$/).waitFor({ timeout: 90_000 });
      await waitFor(() => written().length === 1, 'the run wrote its image', 90_000);

      // A reload: the host lists the job with its workflow, so the row keeps its summary and Re-queue.
      await page.reload();
      await doneRowKept(page);

      // The app restarts (the server is stopped and started again on the same user data): the same row, the same actions.
      await app.close();
      await web.stop();
      const old = web.url;
      await waitFor(
        async () =>
          !(await fetch(old).then(
            () => true,
            () => false,
          )),
        'the first server stopped',
        30_000,
      );
      web = await startWeb(data);
      app = await openApp(web.url, data, results, 'restart (again)');
      page = app.t.page;
      await doneRowKept(page);
      await page.locator('aside.outputs').screenshot({ path: path.join(results, 'queue-after-restart.png') });

      // The same graph again: deduplication remembers the run from before the restart.
      await prepare(page, { prompt, prefix, seed: 21 });
      await run(page);
      await rows(page, /not run: no change$/).waitFor();
      await page.getByText(/Nothing changed since an earlier run, so nothing was written again/).waitFor();
      await page.waitForTimeout(500);
      expect(written().length === 1, `no duplicate written after the restart (${written().join(', ')})`);

      // Re-queue on the row from before the restart: it runs as it was, and writes.
      await rows(page, /, done$/)
        .getByRole('button', { name: /^Re-queue / })
        .click();
      await waitFor(() => written().length === 2, 'Re-queue wrote the image again', 90_000);
      if (app.problems.length) throw new Error(app.problems.join('\n'));
    } finally {
      await app.close();
      await web.stop();
      fs.rmSync(data, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }); // the server may still be closing
    }
  },
);

e2e('feedback at the right time: a missing models folder, a range error while typing, toasts that clear, New asks first', async ({ page, results }) => {
  await card(page, 'DDIM Sampler').waitFor();

  // The banner says the demo models are in use (this server runs with --demo, over its models folder).
  await page
    .getByRole('status', { name: 'Models' })
    .getByText(/Tiny random weights/)
    .waitFor();

  // Settings: a typed models folder that does not exist is refused, naming it, before Apply.
  await page.getByRole('button', { name: 'Settings' }).click();
  const dialog = page.getByRole('dialog', { name: 'Settings' });
  const missing = path.join('/nonexistent', `models-${Date.now()}`);
  await dialog.getByLabel('Models folder').fill(missing);
  await dialog.getByRole('alert').getByText(`The models folder ${missing} does not exist`, { exact: false }).waitFor();
  expect(await dialog.getByRole('button', { name: 'Apply' }).isDisabled(), 'Apply refused for a folder that does not exist');
  await dialog.screenshot({ path: path.join(results, 'settings-missing-folder.png') });
  await dialog.getByRole('button', { name: 'Close' }).click();

  // A value out of range is said as it is typed, with the field's label; the value kept is the last good one.
  const weight = field(page, 'Apply IP-Adapter', 'weight λ');
  if (await weight.count()) {
    await weight.fill('70');
    await card(page, 'Apply IP-Adapter')
      .getByRole('alert')
      .getByText(/^weight λ: 70 is above the maximum/)
      .waitFor();
    await weight.fill('0.8');
    await waitFor(async () => (await card(page, 'Apply IP-Adapter').getByRole('alert').count()) === 0, 'the message goes with a good value');
  }
  await field(page, 'DDIM Sampler', 'steps').fill('0');
  await card(page, 'DDIM Sampler')
    .getByRole('alert')
    .getByText(/^steps: 0 is below the minimum 1/)
    .waitFor();
  await field(page, 'DDIM Sampler', 'steps').fill('2');

  // A run refused: its toast goes once a later run succeeds.
  const stamp = Date.now();
  await prepare(page, { prompt: `toast ${stamp}`, prefix: `toast${stamp}`, seed: 21 });
  await field(page, 'Empty Latent Image', 'width').fill('100'); // not a multiple of 8: refused at Run
  await run(page);
  const toast = page.getByRole('alert').filter({ hasText: /The workflow has \d+ errors?/ });
  await toast.waitFor();
  await field(page, 'Empty Latent Image', 'width').fill('64');
  await run(page);
  await gallery(page)
    .getByRole('img', { name: `Output 1: toast${stamp}_00001_.png` })
    .waitFor({ timeout: 90_000 });
  await toast.waitFor({ state: 'detached' });

  // Refused again, then New: the toast goes with the document. New asks first (the document has edits).
  await field(page, 'Empty Latent Image', 'width').fill('100');
  await run(page);
  await toast.waitFor();
  await page.getByRole('button', { name: 'File menu', exact: true }).click();
  await page.getByRole('menuitem', { name: /New workflow/ }).click();
  const ask = page.getByRole('alertdialog', { name: 'Replace unsaved work?' });
  await ask.getByRole('button', { name: 'Keep editing' }).click();
  await ask.waitFor({ state: 'detached' });
  expect((await page.locator('.react-flow__node').count()) > 0, 'Keep editing keeps the document');
  await page.getByRole('button', { name: 'File menu', exact: true }).click();
  await page.getByRole('menuitem', { name: /New workflow/ }).click();
  await ask.getByRole('button', { name: 'Discard changes' }).click();
  await waitFor(async () => (await page.locator('.react-flow__node').count()) === 0, 'canvas empty after Discard');
  await toast.waitFor({ state: 'detached' });
});

e2e('an empty models folder is never silently replaced by the demo models: the banner says so, and Use demo models is a saved choice', async ({ results }) => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-e2e-nomodels-'));
  const web = await startWeb(data, { demo: false });
  const app = await openApp(web.url, data, results, 'no models');
  try {
    const page = app.t.page;
    const banner = page.getByRole('alert', { name: 'Models' });
    await banner.getByText(`The models folder ${path.join(data, 'models')} has no models`, { exact: false }).waitFor();
    expect((await page.locator('.demo-badge').count()) === 0, 'no demo badge: the demo models are not in use');
    // Model pickers list nothing from the demo set.
    const ckpt = card(page, 'Load Checkpoint').getByLabel('checkpoint', { exact: true });
    if (await ckpt.count()) expect(!(await ckpt.inputValue()).includes('demo'), 'no demo checkpoint chosen');
    await page.screenshot({ path: path.join(results, 'no-models-banner.png') });

    await banner.getByRole('button', { name: 'Use demo models' }).click();
    const demo = page.getByRole('status', { name: 'Models' });
    await demo.getByText('You chose them in Settings.').waitFor();
    await page.locator('.demo-badge').waitFor();
    await waitFor(() => JSON.parse(fs.readFileSync(path.join(data, 'settings.json'), 'utf8')).demoModels === true, 'the choice is saved');
    // And back: the banner says the folder has no models again.
    await demo.getByRole('button', { name: 'Use my models folder' }).click();
    await banner.waitFor();
    if (app.problems.length) throw new Error(app.problems.join('\n'));
  } finally {
    await app.close();
    await web.stop();
    fs.rmSync(data, { recursive: true, force: true });
  }
});
