/**
 * Hardening (issue 13) through the real engine on a models folder of our own making: a FIFO as a
 * model or image file (refused at validation; inside a model folder refused by the loader, while
 * the web server keeps answering), a dangling symlink or a symlink loop in the models folder
 * (skipped by the listing, a run that needs it fails on its node), deeply nested free-form
 * fields, and stale temporaries of atomic writes cleaned at start-up.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RunEvent, Workflow } from './api.js';
import { ensureDemoModels } from './demo/demo.js';
import { createEngine, type Engine } from './engine.js';
import { readWorkflowFile } from './hosts/cli.js';
import { startServer, type WebServer } from './hosts/server.js';
import { parseWorkflow } from './workflow.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = path.join(root, 'examples', 'images', 'image-prompt.png');
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-hardening-')));
const models = path.join(tmp, 'models');
const vaeDir = path.join(models, 'vae');
const haveMkfifo = spawnSync('mkfifo', ['--help']).status === 0;
const mkfifo = (p: string) => {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p}: ${r.stderr}`);
};

let engine: Engine;
const events: RunEvent[] = [];
const writers: ChildProcess[] = [];

/** Load Image -> VAE Encode -> VAE Decode -> Preview Image, the VAE from Load VAE `vae_name`. */
function vaeWorkflow(vae: string, image = IMAGE): Workflow {
  const e = (a: string, ap: string, b: string, bp: string) => ({ from: { node: a, port: ap }, to: { node: b, port: bp } });
  return {
    format: 'ipadapter-studio/workflow',
    version: 1,
    nodes: [
      { id: 'image', type: 'load-image', params: { image } },
      { id: 'vae', type: 'load-vae', params: { vae_name: vae } },
      { id: 'encode', type: 'vae-encode', params: {} },
      { id: 'decode', type: 'vae-decode', params: {} },
      { id: 'out', type: 'preview-image', params: {} },
    ],
    edges: [
      e('image', 'image', 'encode', 'pixels'),
      e('vae', 'vae', 'encode', 'vae'),
      e('encode', 'latent', 'decode', 'samples'),
      e('vae', 'vae', 'decode', 'vae'),
      e('decode', 'image', 'out', 'images'),
    ],
  };
}

/** A diffusers VAE folder with the demo VAE's config and `weights` as its weight file (created by `make`). */
function vaeFolder(name: string, make: (weights: string) => void): void {
  const demo = ensureDemoModels(path.join(tmp, 'demo'));
  const dir = path.join(vaeDir, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(demo, 'checkpoints', 'stable-diffusion-v1-5', 'vae', 'config.json'), path.join(dir, 'config.json'));
  make(path.join(dir, 'diffusion_pytorch_model.safetensors'));
}

beforeAll(() => {
  const demo = ensureDemoModels(path.join(tmp, 'demo'));
  fs.mkdirSync(vaeDir, { recursive: true });
  fs.copyFileSync(path.join(demo, 'vae', 'vae-ft-mse-840000-ema-pruned.safetensors'), path.join(vaeDir, 'good.safetensors'));
  fs.symlinkSync(path.join(tmp, 'not-there.safetensors'), path.join(vaeDir, 'dangling.safetensors'));
  fs.symlinkSync(path.join(vaeDir, 'loop-b.safetensors'), path.join(vaeDir, 'loop-a.safetensors'));
  fs.symlinkSync(path.join(vaeDir, 'loop-a.safetensors'), path.join(vaeDir, 'loop-b.safetensors'));
  vaeFolder('folder-dangling', (w) => fs.symlinkSync(path.join(tmp, 'gone.safetensors'), w));
  if (haveMkfifo) {
    mkfifo(path.join(vaeDir, 'fifo.safetensors'));
    mkfifo(path.join(tmp, 'fifo.png'));
    vaeFolder('folder-fifo', mkfifo);
  }
  // What killed atomic writes leave behind (an exited child's pid, modified ten minutes ago), and what must stay.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const put = (rel: string, ageMs: number) => {
    const p = path.join(tmp, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, 'partial');
    const t = (Date.now() - ageMs) / 1000;
    fs.utimesSync(p, t, t);
  };
  for (const rel of [
    `out/.test_00001_.png.${dead}.0a1b2c3d.tmp`,
    `out/sweeps/a/.x_00001_.png.${dead}.0a1b2c3d.tmp`,
    `user/.settings.json.${dead}.12345678.tmp`,
    `user/inputs/.cat-0123456789ab.png.${dead}.abcdef01.tmp`,
    'user/cache/onnx/unet-x/weights.safetensors.tmp',
    `user/cache/onnx/unet-x/.model.onnx.${dead}.00000000.tmp`,
    `models/vae/.converted.safetensors.${dead}.deadbeef.tmp`,
  ])
    put(rel, 10 * 60_000);
  for (const rel of [`out/.fresh.png.${dead}.0a1b2c3d.tmp`, 'out/notes.tmp', 'models/vae/readme.tmp']) put(rel, rel.includes('fresh') ? 0 : 10 * 60_000);
  engine = createEngine({ modelsDir: models, outputDir: path.join(tmp, 'out'), provider: 'cpu', userDataDir: path.join(tmp, 'user') });
  engine.subscribe((e) => events.push(e));
});
afterAll(async () => {
  for (const w of writers) w.kill('SIGKILL');
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!haveMkfifo)('a FIFO as a model or image file', () => {
  it('is refused at validation, naming the node', () => {
    expect(engine.isDemo()).toBe(false);
    const errs = engine.validate(vaeWorkflow('fifo.safetensors', path.join(tmp, 'fifo.png')));
    expect(errs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          node: 'vae',
          param: 'vae_name',
          message: expect.stringMatching(/Load VAE \(vae\): .*fifo\.safetensors is not a regular file \(a FIFO\)/),
        }),
        expect.objectContaining({
          node: 'image',
          param: 'image',
          message: expect.stringMatching(/Load Image \(image\): .*fifo\.png is not a regular file \(a FIFO\)/),
        }),
      ]),
    );
  });

  it('inside a model folder fails the run on its node, and the web server keeps answering meanwhile', async () => {
    const weights = path.join(vaeDir, 'folder-fifo', 'diffusion_pytorch_model.safetensors');
    // Were the loader to block on the FIFO, this writer would release it after 5 s (so a regression fails, not hangs).
    writers.push(spawn('sh', ['-c', 'sleep 5; : > "$0"', weights], { stdio: 'ignore' }));
    const staticDir = path.join(tmp, 'static');
    fs.mkdirSync(staticDir, { recursive: true });
    fs.writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>t</title>');
    const server: WebServer = await startServer({
      engine,
      port: 0,
      staticDir,
      userDataDir: path.join(tmp, 'user'),
      examplesDir: path.join(root, 'examples'),
      info: () => ({ version: 't', providers: ['cpu'], demo: false, notices: [] }),
    });
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?t=${server.token}`);
      const got: any[] = [];
      ws.on('message', (d) => got.push(JSON.parse(d.toString())));
      await new Promise<void>((r, j) => {
        ws.once('open', () => r());
        ws.once('error', j);
      });
      ws.send(JSON.stringify({ id: 1, method: 'enqueue', params: { workflow: vaeWorkflow('folder-fifo') } }));
      const t0 = Date.now();
      const page = await new Promise<number>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: server.port, path: `/?t=${server.token}` }, (res) => {
            res.resume();
            resolve(res.statusCode!);
          })
          .on('error', reject);
      });
      expect(page).toBe(303);
      expect(Date.now() - t0).toBeLessThan(2000);
      for (let i = 0; i < 400 && !got.some((m) => m.event?.type === 'run-done'); i++) await new Promise((r) => setTimeout(r, 25));
      const nodeError = got.find((m) => m.event?.type === 'node-error')?.event;
      expect(nodeError).toMatchObject({ node: 'vae', message: expect.stringMatching(/diffusion_pytorch_model\.safetensors: not a regular file \(a FIFO\)/) });
      expect(Date.now() - t0).toBeLessThan(4000);
      ws.close();
    } finally {
      await server.close();
    }
  });
});

describe('a dangling symlink or a symlink loop in the models folder', () => {
  it('is left out of the model list', async () => {
    const list = await engine.listModels();
    expect(list.vae).toContain('good.safetensors');
    expect(list.vae).not.toContain('dangling.safetensors');
    expect(list.vae).not.toContain('loop-a.safetensors');
    expect(list.vae).not.toContain('loop-b.safetensors');
  });

  it('inside a model folder fails the run on its node (node-error naming the file)', async () => {
    events.length = 0;
    const r = await engine.run(vaeWorkflow('folder-dangling'));
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/^Load VAE \(vae\): /);
    const ne = events.find((e) => e.type === 'node-error');
    expect(ne).toMatchObject({ node: 'vae', message: expect.stringMatching(/models.vae.folder-dangling/) });
  });

  it('a loop named directly is refused at validation, naming the node', () => {
    const errs = engine.validate(vaeWorkflow('loop-a.safetensors'));
    expect(errs).toEqual([expect.objectContaining({ node: 'vae', param: 'vae_name' })]);
  });
});

describe('free-form fields (meta, node ui)', () => {
  const deep = (levels: number) => {
    let o: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < levels; i++) o = { a: o };
    return o;
  };

  it('are bounded in nesting depth and size at parse time, before anything runs', async () => {
    const wf = { ...vaeWorkflow('good.safetensors'), meta: deep(100_000) };
    const parsed = parseWorkflow(wf);
    expect(parsed.workflow).toBeNull();
    expect(parsed.errors).toEqual([{ message: expect.stringMatching(/"meta" is nested deeper than 32 levels/) }]);
    expect(engine.validate(wf)).toEqual(parsed.errors);
    // A run is refused with the same error (it used to overflow the stack in Save Image).
    const r = await engine.run(wf);
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual(parsed.errors);

    const ui = vaeWorkflow('good.safetensors');
    ui.nodes[0]!.ui = { x: 0, y: 0, extra: deep(40) } as never;
    expect(parseWorkflow(ui).errors).toEqual([{ node: 'image', message: expect.stringMatching(/node image: "ui" is nested deeper than 32 levels/) }]);
    const big = { ...vaeWorkflow('good.safetensors'), meta: { notes: 'x'.repeat(2 * 2 ** 20) } };
    expect(parseWorkflow(big).errors).toEqual([{ message: expect.stringMatching(/"meta" is larger than 1 MB/) }]);
    const wide = { ...vaeWorkflow('good.safetensors'), meta: { list: Array.from({ length: 300_000 }, () => 0) } };
    expect(parseWorkflow(wide).errors).toEqual([{ message: expect.stringMatching(/"meta" is larger than 1 MB/) }]);
    // Ordinary metadata passes.
    expect(parseWorkflow({ ...vaeWorkflow('good.safetensors'), meta: { title: 't', tags: ['a', { b: [1, 2] }], nested: deep(30) } }).errors).toEqual([]);
  });
});

describe('a workflow file with a UTF-8 byte order mark', () => {
  it('is read like one without (the editor, the CLI and parseWorkflow)', () => {
    const text = JSON.stringify(vaeWorkflow('good.safetensors'));
    const file = path.join(tmp, 'bom.json');
    fs.writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]));
    expect(parseWorkflow(readWorkflowFile(file)).errors).toEqual([]);
    expect(parseWorkflow(`\uFEFF${text}`).errors).toEqual([]);
    expect(parseWorkflow(fs.readFileSync(file, 'utf8')).workflow?.nodes).toHaveLength(5);
  });
});

describe('stale temporaries of interrupted atomic writes', () => {
  it('are removed at engine start (output, inputs, settings, model cache, models folder); fresh and foreign files stay', async () => {
    const removed = (await engine.startupCleanup).map((r) => path.relative(tmp, r.file)).sort();
    expect(removed).toEqual([
      expect.stringMatching(/^models\/vae\/\.converted\.safetensors\.\d+\.deadbeef\.tmp$/),
      expect.stringMatching(/^out\/\.test_00001_\.png\./),
      expect.stringMatching(/^out\/sweeps\/a\/\.x_00001_\.png\./),
      expect.stringMatching(/^user\/\.settings\.json\./),
      expect.stringMatching(/^user\/cache\/onnx\/unet-x\/\.model\.onnx\./),
      'user/cache/onnx/unet-x/weights.safetensors.tmp',
      expect.stringMatching(/^user\/inputs\/\.cat-/),
    ]);
    for (const rel of ['out/notes.tmp', 'models/vae/readme.tmp']) expect(fs.existsSync(path.join(tmp, rel)), rel).toBe(true);
    expect(fs.readdirSync(path.join(tmp, 'out')).filter((f) => f.startsWith('.fresh'))).toHaveLength(1);
  });
});

describe('relative names that climb out of their folder', () => {
  it('are refused at validation, naming the node (absolute paths stay readable on purpose)', () => {
    fs.writeFileSync(path.join(tmp, 'outside.safetensors'), fs.readFileSync(path.join(vaeDir, 'good.safetensors')));
    const errs = engine.validate(vaeWorkflow('../../outside.safetensors', '../secret.png'));
    expect(errs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          node: 'vae',
          param: 'vae_name',
          message: expect.stringMatching(/"\.\.\/\.\.\/outside\.safetensors" climbs out of the folder it is looked up in/),
        }),
        expect.objectContaining({ node: 'image', param: 'image', message: expect.stringMatching(/"\.\.\/secret\.png" climbs out/) }),
      ]),
    );
    expect(engine.validate(vaeWorkflow('sub\\..\\..\\..\\outside.safetensors'))).toEqual([
      expect.objectContaining({ node: 'vae', message: expect.stringMatching(/climbs out/) }),
    ]);
    expect(engine.validate(vaeWorkflow(path.join(tmp, 'outside.safetensors')))).toEqual([]);
  });
});
