/**
 * Seed control after generate in the editor: the DDIM Sampler of the default workflow set to
 * `increment` runs twice; after each queued run the seed widget shows the seed plus one, the saved
 * workflow holds it, and each run used the seed shown when Run was pressed (the workflow its PNG carries).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readTextChunks } from '../../engine/png.js';
import { card, currentWorkflow, e2e, expect, waitFor } from './harness.js';

e2e('control after generate: increment adds one to the seed after each run', async ({ page, userData }) => {
  const sampler = card(page, 'DDIM Sampler');
  await sampler.waitFor();
  // A short run: few steps, a small latent when the workflow has an Empty Latent Image.
  await sampler.getByLabel('steps', { exact: true }).fill('2');
  const latent = card(page, 'Empty Latent Image');
  if (await latent.count()) {
    await latent.getByLabel('width', { exact: true }).fill('64');
    await latent.getByLabel('height', { exact: true }).fill('64');
  }
  const prefix = `seedtest${Date.now()}`;
  await card(page, 'Save Image').getByLabel('filename_prefix', { exact: true }).fill(prefix);

  const seedField = sampler.getByLabel('seed', { exact: true });
  await seedField.fill('41');
  await sampler.getByLabel('control after generate', { exact: true }).selectOption('increment');
  const samplerParams = async () => (await currentWorkflow(page)).nodes.find((n) => n.type === 'ddim-sampler')!.params;
  await waitFor(async () => (await samplerParams()).seed === 41, 'seed 41 in the workflow');
  expect((await samplerParams()).control_after_generate === 'increment', 'control after generate saved as a param');

  const outputs = path.join(userData, 'outputs');
  const saved = () =>
    fs.existsSync(outputs)
      ? fs
          .readdirSync(outputs)
          .filter((f) => f.startsWith(prefix) && f.endsWith('.png'))
          .sort()
      : [];
  const seedOfPng = (f: string) =>
    JSON.parse(readTextChunks(fs.readFileSync(path.join(outputs, f)))['ipadapter-studio-workflow']).nodes.find(
      (n: { type: string }) => n.type === 'ddim-sampler',
    ).params.seed;

  for (const [k, expected] of [
    [1, 42],
    [2, 43],
  ] as const) {
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await waitFor(async () => (await seedField.inputValue()) === String(expected), `the seed widget shows ${expected} after run ${k}`, 30_000);
    await waitFor(() => saved().length === k, `run ${k} saved its image`, 90_000);
    expect(seedOfPng(saved()[k - 1]) === expected - 1, `run ${k} ran with seed ${expected - 1} (its PNG says ${seedOfPng(saved()[k - 1])})`);
    await waitFor(async () => (await samplerParams()).seed === expected, `the saved workflow holds seed ${expected}`);
  }
});
