/**
 * ComfyUI workflows in the editor (issue 11): a ComfyUI UI workflow chosen with Open (with the
 * image it names) opens as our graph with its titles, says what the import report says and runs
 * on the demo models; one with FaceID keeps the unsupported nodes as placeholders that say why,
 * and Run refuses it naming them.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { card, currentWorkflow, e2e, expect, waitFor } from './harness.js';

const FIXTURES = path.join(fileURLToPath(new URL('../..', import.meta.url)), 'test', 'fixtures-comfyui');

async function open(page: Page, files: string[]): Promise<void> {
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByRole('button', { name: 'Open', exact: true }).click()]);
  await chooser.setFiles(files.map((f) => path.join(FIXTURES, f)));
}

const noticeText = async (page: Page) => (await page.locator('.notice').allTextContents()).join('\n');

e2e('a ComfyUI workflow opens through Open with its image, shows the report and runs', async ({ page, results }) => {
  await card(page, 'DDIM Sampler').waitFor(); // the editor has its node specs (the first-start workflow is drawn)
  await open(page, ['ipadapter-advanced.v04.json', 'example.png']);
  // 13 ComfyUI nodes: 16 cards here (the unified loader's CLIP Vision, IPAdapterAdvanced's encode and projection), its group drawn too.
  await waitFor(async () => (await page.locator('.react-flow__node-card').count()) === 16, '16 nodes on the canvas');
  await waitFor(
    async () =>
      /ipadapter-advanced\.v04\.json: ComfyUI workflow \(UI format 0\.4\): 13 nodes, 12 mapped, 1 approximated, 0 unsupported;/.test(await noticeText(page)),
    'the import report',
  );
  // Its Reroute, PrimitiveNode and Note are ours, as ComfyUI draws them: a reroute dot, a primitive on the seed, a note.
  await page.getByRole('group', { name: 'Reroute' }).waitFor();
  expect((await card(page, 'Primitive').getByLabel('seed (KSampler)', { exact: true }).inputValue()) === '987654321', 'the primitive shows the seed');
  expect((await card(page, 'Primitive').getByLabel('control after generate', { exact: true }).inputValue()) === 'increment', 'the primitive keeps its control');
  expect(/style-transfer image prompt/.test(await page.getByLabel('Note text').inputValue()), 'the note keeps its text');
  await page.screenshot({ path: path.join(results, 'comfyui-import.png') });
  expect((await page.locator('.card[data-node-id="c9"] .card-header .title').textContent()) === 'My sampler', 'the sampler keeps its ComfyUI title');
  const wf = await currentWorkflow(page);
  const sampler = wf.nodes.find((n) => n.id === 'c9')!;
  expect(
    sampler.params.seed === 987654321 && sampler.params.steps === 4 && sampler.params.sampler_name === 'ddim',
    `the sampler has ComfyUI's values: ${JSON.stringify(sampler.params)}`,
  );
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await waitFor(
    async () => {
      const errors = await page.locator('.card .node-error').allTextContents();
      if (errors.length) throw new Error(`node errors: ${errors.join(' | ')}`);
      return (await page.locator('.card[data-node-type="save-image"] [data-status="done"]').count()) === 1;
    },
    'Save Image done',
    100_000,
  );
});

e2e('unsupported ComfyUI nodes stay as placeholders that say why, and the run is refused naming them', async ({ page }) => {
  await card(page, 'DDIM Sampler').waitFor();
  await open(page, ['unsupported-faceid.v04.json']);
  await waitFor(async () => (await page.locator('.card[data-node-type="comfyui-node"]').count()) === 4, 'four placeholders');
  // Its face.png is not there: the editor asks for it, as for any workflow opened without its images.
  const ask = page.getByRole('dialog', { name: 'Missing images' });
  await ask.waitFor();
  await ask.getByRole('button', { name: 'Later' }).click();
  await ask.waitFor({ state: 'detached' });
  const faceid = page.locator('.card[data-node-id="c5"]');
  expect((await faceid.locator('.card-header .title').textContent()) === 'FaceID portrait', 'the placeholder keeps its title');
  expect(
    /Not supported here: IPAdapterFaceID needs InsightFace/.test((await faceid.locator('.node-error').first().textContent()) ?? ''),
    'the placeholder says why',
  );
  expect((await faceid.locator('.port-in').count()) === 7 && (await faceid.locator('.port-out').count()) === 2, 'it keeps the sockets of IPAdapterFaceID');
  // ComfyUI's bypassed LoraLoader and muted SaveImage are a bypassed Load LoRA and a muted Save Image here.
  await page.locator('.card[data-node-id="c2"]').getByText('bypassed', { exact: true }).waitFor();
  await page.locator('.card[data-node-id="c12"]').getByText('muted', { exact: true }).waitFor();
  await waitFor(async () => /Not supported, kept as placeholders/.test(await noticeText(page)), 'the report names the unsupported nodes');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await waitFor(
    async () => /ComfyUI node IPAdapterFaceID "FaceID portrait" is not supported here/.test((await faceid.locator('.node-error').allTextContents()).join(' ')),
    'the run is refused on the FaceID node',
  );
});
