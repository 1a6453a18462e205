/**
 * A small e2e harness: tests register with `e2e(name, fn)`; run.ts starts web mode once and gives
 * each test a fresh Chromium profile (so localStorage and downloads never leak between tests).
 * A test fails on a page error or a CSP violation too.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface E2E {
  page: Page;
  context: BrowserContext;
  url: string;
  /** The server's user data dir (inputs/, outputs/, demo models). */
  userData: string;
  /** test-results/ */
  results: string;
  /** A scratch folder for this test (downloads, fixtures). */
  tmp: string;
}

type TestFn = (t: E2E) => Promise<void>;
export const registry: { name: string; fn: TestFn; file: string }[] = [];
let currentFile = '';
export const setCurrentFile = (f: string) => (currentFile = f);

export function e2e(name: string, fn: TestFn): void {
  registry.push({ name, fn, file: currentFile });
}

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/**
 * Starts web mode (`--demo` unless `demo: false`, a free port) on a user-data folder; resolves with the printed address
 * (it carries the launch's access key). run.ts starts one for all tests; a test may start another
 * (a second machine: its own user data, inputs and outputs).
 */
export async function startWeb(userData: string, opts: { demo?: boolean } = {}): Promise<{ url: string; stop(): Promise<void>; log: string[] }> {
  const log: string[] = [];
  // `demo: false`: no --demo, so the app runs on its (empty) models folder and must say so.
  const flags = ['--port', '0', ...(opts.demo === false ? [] : ['--demo']), '--user-data', userData];
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'engine', 'hosts', 'web.ts'), ...flags], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, IPA_STUDIO_USER_DATA: userData },
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`web mode did not start in 300 s:\n${log.join('')}`)), 300_000);
    const onData = (d: Buffer) => {
      log.push(d.toString());
      // The printed address carries the launch's access key (`/?t=...`); opening it sets the page's cookie.
      const m = /Listening on (http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(log.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`web mode exited with ${code}:\n${log.join('')}`)));
  });
  // stop() resolves when the server has exited (it writes its state files while closing), so a caller can remove its
  // user data afterwards; SIGKILL after 15 s.
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  return { url, log, stop };
}
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Opens a fresh profile and page on the app; returns it with a cleanup function. */
export async function openApp(url: string, userData: string, results: string, name: string): Promise<{ t: E2E; problems: string[]; close(): Promise<void> }> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-e2e-'));
  const context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    acceptDownloads: true,
    viewport: { width: 1600, height: 1000 },
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  page.setDefaultTimeout(20_000);
  await page.goto(url);
  return {
    t: { page, context, url, userData, results, tmp },
    problems,
    close: async () => {
      await context.close().catch(() => {});
      fs.rmSync(tmp, { recursive: true, force: true });
      void name;
    },
  };
}

// ---- helpers shared by tests ----------------------------------------------------------------

export function expect(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

export async function waitFor(fn: () => Promise<boolean> | boolean, message: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out: ${message}`);
}

/** A node card by title (nth when several share it). */
export function card(page: Page, title: string, nth = 0): Locator {
  return page.getByRole('group', { name: title, exact: true }).nth(nth);
}

/** Adds a node through the palette (double-click on an empty spot of the canvas, search, Enter). */
export async function addNode(page: Page, title: string, at: { x: number; y: number }): Promise<void> {
  await page.mouse.dblclick(at.x, at.y);
  const search = page.getByLabel('Search nodes');
  await search.fill(title);
  await page.getByRole('option', { name: title, exact: true }).click();
}

/** The centre of a node's port handle. */
async function handleCentre(page: Page, title: string, nth: number, side: 'input' | 'output', port: string) {
  const h = card(page, title, nth).locator(`.react-flow__handle[data-handleid="${port}"].${side === 'input' ? 'target' : 'source'}`);
  const box = await h.boundingBox();
  if (!box) throw new Error(`no ${side} handle ${port} on ${title}`);
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

/** Drags a connection from an output handle to an input handle, as a person would. */
export async function connect(page: Page, from: [string, number, string], to: [string, number, string]): Promise<void> {
  const a = await handleCentre(page, from[0], from[1], 'output', from[2]);
  const b = await handleCentre(page, to[0], to[1], 'input', to[2]);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 5 });
  await page.mouse.move(b.x, b.y, { steps: 5 });
  await page.mouse.up();
}

/** The current workflow as the editor would save it (read from the autosave slot). */
export async function currentWorkflow(page: Page): Promise<{ nodes: { id: string; type: string; params: Record<string, unknown> }[]; edges: unknown[] }> {
  await page.waitForTimeout(400); // autosave debounce
  return page.evaluate(() => JSON.parse(localStorage.getItem('ipa-studio:recovery') ?? 'null')?.workflow);
}

/**
 * Starts recording whether an element matching `selector` ever appears (a MutationObserver, so a
 * progress bar that lives for a few milliseconds on fast demo runs is not missed).
 */
export async function recordAppearance(page: Page, selector: string): Promise<() => Promise<boolean>> {
  await page.evaluate((sel) => {
    const w = window as unknown as { __seen?: Record<string, boolean> };
    const seen = (w.__seen ??= {});
    seen[sel] = !!document.querySelector(sel);
    new MutationObserver(() => {
      if (!seen[sel] && document.querySelector(sel)) seen[sel] = true;
    }).observe(document.body, { subtree: true, childList: true, attributes: true });
  }, selector);
  return () => page.evaluate((sel) => !!(window as unknown as { __seen: Record<string, boolean> }).__seen[sel], selector);
}
