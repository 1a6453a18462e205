/**
 * `npm run build:electron`: bundles the main process and the preload into dist-electron/.
 *   main.js      ESM (package.json "type": "module"), Node platform; npm packages stay external so
 *                onnxruntime-node and sharp load their native libraries from node_modules
 *                (app.asar.unpacked when packaged).
 *   preload.cjs  CommonJS, as a sandboxed preload must be; only `electron` is external (a sandboxed
 *                preload can require nothing else), so everything it uses is bundled in.
 * Also renders build/icon.png from build/icon.svg when the PNG is missing or older.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = path.join(ROOT, 'dist-electron');

async function main(): Promise<void> {
  fs.rmSync(OUT, { recursive: true, force: true });
  const common = { bundle: true, sourcemap: 'linked', logLevel: 'warning', legalComments: 'none' } as const;
  await build({
    ...common,
    entryPoints: [path.join(ROOT, 'electron', 'main.ts')],
    outfile: path.join(OUT, 'main.js'),
    platform: 'node',
    format: 'esm',
    target: 'node22',
    packages: 'external',
  });
  await build({
    ...common,
    entryPoints: [path.join(ROOT, 'electron', 'preload.ts')],
    outfile: path.join(OUT, 'preload.cjs'),
    platform: 'node',
    format: 'cjs',
    target: 'chrome130',
    external: ['electron'],
  });
  checkPreload(path.join(OUT, 'preload.cjs'));
  await renderIcon();
  console.log(`built ${path.relative(ROOT, OUT)}/main.js and preload.cjs`);
}

/** A sandboxed preload that requires anything but electron fails at run time: refuse it now. */
function checkPreload(file: string): void {
  const required = [...fs.readFileSync(file, 'utf8').matchAll(/\brequire\(["']([^"']+)["']\)/g)].map((m) => m[1]);
  const extra = required.filter((r) => r !== 'electron');
  if (extra.length) throw new Error(`${file} requires ${extra.join(', ')}; a sandboxed preload may only require electron`);
}

async function renderIcon(): Promise<void> {
  const svg = path.join(ROOT, 'build', 'icon.svg');
  const png = path.join(ROOT, 'build', 'icon.png');
  if (!fs.existsSync(svg) || (fs.existsSync(png) && fs.statSync(png).mtimeMs >= fs.statSync(svg).mtimeMs)) return;
  const { default: sharp } = await import('sharp');
  await sharp(svg, { density: 384 }).resize(1024, 1024).png().toFile(png);
  console.log('rendered build/icon.png');
}

main().catch((e) => {
  console.error(`build:electron: ${(e as Error).message}`);
  process.exit(1);
});
