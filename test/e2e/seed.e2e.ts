/**
 * Seed control after generate in the editor: the DDIM Sampler of the default workflow set to
 * `increment` runs twice; after each queued run the seed widget shows the seed plus one, the saved
 * workflow holds it, and each run used the seed shown when Run was pressed (the workflow its PNG carries).
 * The same through a Primitive feeding the sampler's seed (turned into an input): the primitive takes
 * the seed and its control, its own control steps its value, as ComfyUI's PrimitiveNode does.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { PARAMETERS_CHUNK_KEY, readTextChunks } from '../../engine/png.js';
import { card, connect, currentWorkflow, e2e, expect, waitFor } from './harness.js';

/** A short run of the default workflow (2 steps, 64 px), seed 41 on increment; its PNGs by a fresh prefix. */
async function shortRun(page: Page, userData: string) {
  const sampler = card(page, 'DDIM Sampler');
  await sampler.waitFor();
  await sampler.getByLabel('steps', { exact: true }).fill('2');
  const latent = card(page, 'Empty Latent Image');
  if (await latent.count()) {
    await latent.getByLabel('width', { exact: true }).fill('64');
    await latent.getByLabel('height', { exact: true }).fill('64');
  }
  const prefix = `seedtest${Date.now()}`;
  await card(page, 'Save Image').getByLabel('filename_prefix', { exact: true }).fill(prefix);
  await sampler.getByLabel('seed', { exact: true }).fill('41');
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
  const seedOfPng = (f: string) => {
    const wf = JSON.parse(readTextChunks(fs.readFileSync(path.join(outputs, f)))['ipadapter-studio-workflow']);
    const node = wf.nodes.find((n: { type: string }) => n.type === 'ddim-sampler');
    // Fed by a primitive, the seed the run used is the primitive's value (the PNG keeps the canvas' graph).
    const edge = wf.edges.find((e: { to: { node: string; port: string } }) => e.to.node === node.id && e.to.port === 'seed');
    return edge ? wf.nodes.find((n: { id: string }) => n.id === edge.from.node).params.value : node.params.seed;
  };
  /** Runs twice from seed `from`; after each run `field` shows from + 1 then from + 2, and the PNGs say from then from + 1. */
  const runTwice = async (field: Locator, savedSeed: () => Promise<unknown>, from = 41) => {
    for (const [k, expected] of [
      [1, from + 1],
      [2, from + 2],
    ] as const) {
      await page.getByRole('button', { name: 'Run', exact: true }).click();
      await waitFor(async () => (await field.inputValue()) === String(expected), `the seed widget shows ${expected} after run ${k}`, 30_000);
      await waitFor(() => saved().length === k, `run ${k} saved its image`, 90_000);
      expect(seedOfPng(saved()[k - 1]) === expected - 1, `run ${k} ran with seed ${expected - 1} (its PNG says ${seedOfPng(saved()[k - 1])})`);
      // Its A1111 parameters (what the gallery shows and searches) say the seed it ran with.
      const params = readTextChunks(fs.readFileSync(path.join(outputs, saved()[k - 1]!)))[PARAMETERS_CHUNK_KEY] ?? '';
      expect(params.includes(`Seed: ${expected - 1},`), `run ${k}'s parameters say Seed: ${expected - 1}: ${params}`);
      await waitFor(async () => (await savedSeed()) === expected, `the saved workflow holds seed ${expected}`);
    }
  };
  return { sampler, samplerParams, runTwice, saved };
}

e2e('control after generate: increment adds one to the seed after each run', async ({ page, userData }) => {
  const { sampler, samplerParams, runTwice } = await shortRun(page, userData);
  await runTwice(sampler.getByLabel('seed', { exact: true }), async () => (await samplerParams()).seed);
});

e2e('control after generate on a Primitive feeding the seed: the primitive steps, the sampler runs with its value', async ({ page, userData, results }) => {
  const { sampler, samplerParams, runTwice, saved } = await shortRun(page, userData);
  await sampler.locator('.card-header').click({ button: 'right' });
  await page.getByRole('menu', { name: 'Node menu' }).getByRole('menuitem', { name: 'Convert seed to input' }).click();
  await sampler.locator('.react-flow__handle[data-handleid="seed"]').waitFor();
  // The sampler's own control went with its seed widget.
  expect((await sampler.getByLabel('control after generate', { exact: true }).count()) === 0, 'the sampler hides its control once its seed is an input');
  const save = (await card(page, 'Save Image').boundingBox())!;
  await page.mouse.click(save.x + 5, save.y + save.height + 60, { button: 'right' });
  await page.getByRole('menu', { name: 'Canvas menu' }).getByRole('menuitem', { name: 'Add primitive' }).click();
  await connect(page, ['Primitive', 0, 'value'], ['DDIM Sampler', 0, 'seed']);
  const prim = card(page, 'Primitive');
  const value = prim.getByLabel('seed (DDIM Sampler)', { exact: true });
  await waitFor(async () => (await value.inputValue()) === '41', 'the primitive took the seed 41');
  const control = prim.getByLabel('control after generate', { exact: true });
  expect((await control.inputValue()) === 'increment', 'the primitive took the sampler’s control (increment)');
  const primParams = async () => (await currentWorkflow(page)).nodes.find((n) => n.type === 'primitive')!.params;
  // Seeds of their own (the queue panel also lists the first test's jobs): 141, then 142.
  await value.fill('141');
  await waitFor(async () => (await primParams()).value === 141, 'the primitive holds 141');
  await runTwice(value, async () => (await primParams()).value, 141);
  expect((await samplerParams()).seed === 41, 'the sampler’s own (hidden) seed was left alone');
  // The queue panel says the seed each job ran with: the primitive's.
  for (const s of [141, 142]) await page.getByText(`seed ${s} · 2 steps`, { exact: false }).first().waitFor();
  await page.screenshot({ path: path.join(results, 'seed-primitive.png') });
  // Fixed: the value stays.
  await control.selectOption('fixed');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await waitFor(() => saved().length === 3, 'run 3 saved its image', 90_000);
  expect((await value.inputValue()) === '143', 'fixed keeps the primitive’s value');
});
