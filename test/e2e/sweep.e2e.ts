/**
 * Issue 16 in the editor: the λ × seed grid example cut to a 2 x 2 sweep at 64 x 64 and 2 steps, on
 * this machine's queue. The Run button says how many jobs it makes, the queue panel lists each job
 * by name with its values, and the gallery shows the four PNGs and the labelled grid image. Then a
 * slower sweep's Cancel batch removes its pending jobs in one click.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { card, e2e, expect, waitFor } from './harness.js';

const field = (page: Page, title: string, label: string) => card(page, title).getByLabel(label, { exact: true });
const queue = (page: Page) => page.getByRole('region', { name: 'Queue' });
const gallery = (page: Page) => page.getByRole('region', { name: 'Gallery' });

e2e(
  'a 2 x 2 sweep: Run says 4 jobs, the queue lists them by their values, the gallery shows the 4 PNGs and the grid; Cancel batch',
  async ({ page, userData }) => {
    await card(page, 'DDIM Sampler').waitFor();
    await page.getByRole('button', { name: 'Examples', exact: true }).click();
    await page.getByRole('menuitem', { name: /λ × seed grid/ }).click();
    await card(page, 'Sweep (XY Plot)').waitFor();
    const prefix = `sweep${Date.now()}`;
    await field(page, 'Empty Latent Image', 'width').fill('64');
    await field(page, 'Empty Latent Image', 'height').fill('64');
    await field(page, 'DDIM Sampler', 'steps').fill('2');
    await field(page, 'Save Image', 'filename_prefix').fill(prefix);
    await field(page, 'Sweep (XY Plot)', 'X values').fill('0, 1');
    const run = page.getByRole('button', { name: 'Run 4 jobs', exact: true });
    await run.waitFor();
    await run.click();

    // The queue panel: one job per combination, named by its values, each done.
    for (const label of ['weight=0, seed=1', 'weight=1, seed=1', 'weight=0, seed=2', 'weight=1, seed=2'])
      await queue(page)
        .getByRole('listitem', { name: new RegExp(`\\[${label}\\], done$`) })
        .waitFor({ timeout: 120_000 });
    // The gallery: the four PNGs and the grid.
    for (let i = 1; i <= 4; i++)
      await gallery(page)
        .getByRole('img', { name: new RegExp(`${prefix}-00${i}_00001_\\.png$`) })
        .waitFor({ timeout: 30_000 });
    await gallery(page)
      .getByRole('img', { name: new RegExp(`${prefix}-grid_00001_\\.png$`) })
      .waitFor({ timeout: 30_000 });
    const outputs = path.join(userData, 'outputs');
    expect(fs.readdirSync(outputs).filter((f) => f.startsWith(prefix)).length === 5, 'four PNGs and the grid in the output folder');

    // A slower sweep: Cancel batch removes (or stops) every pending job of it.
    await field(page, 'DDIM Sampler', 'steps').fill('60');
    await field(page, 'Save Image', 'filename_prefix').fill(`${prefix}b`);
    await run.click();
    const running = queue(page).getByRole('listitem', { name: /, running$/ });
    await running.waitFor({ timeout: 60_000 });
    await running.getByRole('button', { name: /^Cancel batch of / }).click();
    await waitFor(
      async () =>
        (await queue(page)
          .getByRole('listitem', { name: /, (waiting|running)$/ })
          .count()) === 0,
      'no job of the batch pending',
      60_000,
    );
    const removed = await queue(page)
      .getByRole('listitem', { name: /, removed$/ })
      .count();
    expect(removed >= 3, `the batch's jobs removed (${removed})`);
  },
);
