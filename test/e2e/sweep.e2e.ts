/**
 * Issue 16 in the editor: the λ × seed grid example cut to a 2 x 2 sweep at 64 x 64 and 2 steps, on
 * this machine's queue. The Run button says how many jobs it makes, the queue panel lists each job
 * by name with its values, and the gallery shows the four PNGs and the labelled grid image. Then a
 * slower sweep's Cancel batch removes its pending jobs in one click. With Run on a queue that does
 * not answer, the job waits in the editor, said so in the panel, with Retry (screenshot
 * test-results/queue-held.png).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { card, e2e, expect, waitFor } from './harness.js';

const field = (page: Page, title: string, label: string) => card(page, title).getByLabel(label, { exact: true });
const queue = (page: Page) => page.getByRole('region', { name: 'Queue' });
const gallery = (page: Page) => page.getByRole('region', { name: 'Gallery' });

/**
 * Puts `stamp` in front of every prompt. The queue panel shows each job's first prompt in its summary, so this test's
 * rows are told from the rows of earlier tests on the same server (which the panel lists too, as the host keeps them).
 */
async function stampPrompts(page: Page, stamp: string): Promise<void> {
  const prompts = page.getByRole('group', { name: 'Text Encode', exact: true });
  for (let i = 0; i < (await prompts.count()); i++) {
    const text = prompts.nth(i).getByLabel('text', { exact: true });
    await text.fill(`${stamp} ${await text.inputValue()}`);
  }
}
/** This test's rows in a state: its stamp is in their summary. */
const rows = (page: Page, state: RegExp, stamp: string) => queue(page).getByRole('listitem', { name: state }).filter({ hasText: stamp });

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

    // The queue panel: one job per combination, named by its values, each done. The panel also keeps
    // the jobs of earlier tests on this server (the same example ran in sharing.e2e.ts), so each row is
    // picked by this run's file prefix, which a done job shows.
    for (const label of ['weight=0, seed=1', 'weight=1, seed=1', 'weight=0, seed=2', 'weight=1, seed=2'])
      await queue(page)
        .getByRole('listitem', { name: new RegExp(`\\[${label}\\], done$`) })
        .filter({ hasText: prefix })
        .waitFor({ timeout: 120_000 });
    // Each job's row shows its own values (the host's workflow of that job) and re-queues that one job.
    const last = queue(page)
      .getByRole('listitem', { name: /\[weight=1, seed=2\], done$/ })
      .filter({ hasText: prefix });
    await last.getByText(/^seed 2 · 2 steps · /).waitFor();
    await last.getByRole('button', { name: /^Re-queue / }).waitFor();
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

    // A slower sweep: Cancel batch removes (or stops) every pending job of it. Its rows are picked by the stamp in
    // their prompt (counting all removed rows would also count, or lose to the panel's limit of finished rows, other tests' jobs).
    const stamp = `${prefix}b`;
    await field(page, 'DDIM Sampler', 'steps').fill('60');
    await field(page, 'Save Image', 'filename_prefix').fill(stamp);
    await stampPrompts(page, stamp);
    await run.click();
    const running = rows(page, /, running$/, stamp);
    await running.waitFor({ timeout: 60_000 });
    await running.getByRole('button', { name: /^Cancel batch of / }).click();
    await waitFor(async () => (await rows(page, /, (waiting|running)$/, stamp).count()) === 0, 'no job of the batch pending', 60_000);
    const removed = await rows(page, /, removed$/, stamp).count();
    const done = await rows(page, /, done$/, stamp).count();
    expect(removed >= 3 && removed + done === 4, `the batch's jobs removed (${removed} removed, ${done} done)`);
  },
);

e2e(
  'Run on a queue that cannot be reached: the job waits in the editor, "waiting for the queue at redis://…", with Retry; Remove ends it',
  async ({ page, results }) => {
    await card(page, 'DDIM Sampler').waitFor();
    await field(page, 'DDIM Sampler', 'steps').fill('2');
    const stamp = `held${Date.now()}`;
    await stampPrompts(page, stamp);
    const dead = 'redis://127.0.0.1:9'; // the discard port: nothing answers Redis there
    const settings = async (apply: (dialog: ReturnType<Page['getByRole']>) => Promise<void>) => {
      await page.getByRole('button', { name: 'Settings' }).click();
      const dialog = page.getByRole('dialog', { name: 'Settings' });
      await apply(dialog);
      await dialog.getByRole('button', { name: 'Apply' }).click();
      await dialog.waitFor({ state: 'detached' });
    };
    await settings(async (d) => {
      await d.getByRole('radio', { name: /queue at/ }).check();
      await d.getByLabel('Farm queue (Redis address)').fill(dead);
    });
    try {
      await page.getByRole('button', { name: 'Run', exact: true }).click();
      const job = rows(page, /, waiting$/, stamp);
      await job.getByText(`waiting for the queue at ${dead}`).waitFor({ timeout: 30_000 });
      await page.locator('section.queue-panel').screenshot({ path: path.join(results, 'queue-held.png') });
      await job.getByRole('button', { name: /^Retry / }).click();
      await job.getByText(`waiting for the queue at ${dead}`).waitFor();
      // The host's queue lists other tests' finished jobs too: this one is its row by the stamp in its prompt.
      await job.getByRole('button', { name: /^Remove / }).click();
      await waitFor(
        async () => (await rows(page, /, removed$/, stamp).count()) === 1 && (await queue(page).getByText(`waiting for the queue at ${dead}`).count()) === 0,
        'the held job removed',
      );
    } finally {
      await settings(async (d) => d.getByRole('radio', { name: /this machine/ }).check());
    }
  },
);
