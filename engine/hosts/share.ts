/**
 * `npm run share -- <workflow.json | image.png | bundle> [--out FILE] [--models DIR] [--user-data DIR]`
 *
 * "Export workflow for sharing" on the command line: writes one `.shared.json` file holding the
 * graph and every image and mask it uses (engine/bundle-format.ts), resolved as a run resolves
 * them (next to the workflow file, `inputs/<file>` in the user-data inputs folder). It names no
 * folder of this machine: `npm run generate -- x.shared.json` runs it anywhere with the same models.
 * Exit codes: 0 written, 2 bad arguments or an image missing / a model outside the models folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { nodeSpecs } from '../../nodes/index.js';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import type { Workflow } from '../api.js';
import { bundleFileName, isBundleDoc } from '../bundle-format.js';
import { PathResolver } from '../paths.js';
import { parseWorkflow } from '../workflow.js';
import { createBundle, openBundle } from './bundle.js';
import { readWorkflowFile, type CliIo } from './cli.js';
import { defaultUserData, readSettings, settingsFileOf } from './host-config.js';

const USAGE = `usage: npm run share -- <workflow.json|image.png|x.shared.json> [--out FILE] [--models DIR] [--user-data DIR]

Writes one file with the workflow and every image and mask it uses (default: <name>.shared.json
in the current folder). Open it in the app, or run it: npm run generate -- <name>.shared.json

options:
  --out FILE          where to write the bundle
  --models DIR        models folder (model params given as absolute paths inside it become their names)
  --user-data DIR     the app's per-user folder, whose inputs/ holds uploaded images (default: $IPA_STUDIO_USER_DATA or ~/.ipadapter-studio)
  -h, --help          this help`;

export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const env = io.env ?? process.env;
  let input = '';
  let out = '';
  let models = '';
  let userData = defaultUserData(env);
  try {
    for (let i = 0; i < argv.length; i++) {
      const k = argv[i];
      const val = () => {
        const v = argv[++i];
        if (v === undefined) throw new Error(`${k} needs a value`);
        return v;
      };
      if (k === '-h' || k === '--help') {
        io.stdout.write(`${USAGE}\n`);
        return 0;
      } else if (k === '--out') out = val();
      else if (k === '--models') models = val();
      else if (k === '--user-data') userData = val();
      else if (k.startsWith('--')) throw new Error(`unknown option ${k}`);
      else if (!input) input = k;
      else throw new Error(`unexpected argument "${k}" (one workflow at a time)`);
    }
    if (!input) throw new Error('no workflow file given');
  } catch (e) {
    io.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const file = path.resolve(input);
  const inputsDir = path.join(path.resolve(userData), 'inputs');
  models ||= env.IPA_MODELS || readSettings(settingsFileOf(userData)).modelsDir || path.join(userData, 'models');
  const specs = nodeSpecs();
  try {
    let raw = readWorkflowFile(file);
    if (isBundleDoc(raw)) raw = openBundle(raw, specs, inputsDir).workflow;
    const parsed = parseWorkflow(raw);
    if (!parsed.workflow) throw new Error(parsed.errors.map((e) => e.message).join('; '));
    const made = createBundle(parsed.workflow as Workflow, specs, new PathResolver(path.resolve(models), path.dirname(file), inputsDir));
    const target = path.resolve(out || bundleFileName(path.basename(file)));
    writeFileAtomicSync(target, made.text);
    for (const img of made.images) io.stdout.write(`image ${img.file} (${img.bytes} bytes) for ${img.uses.join(', ')}\n`);
    for (const m of made.bundle.models ?? []) io.stdout.write(`model ${m.kind}/${m.name}\n`);
    io.stdout.write(`wrote ${target} (${made.images.length} image(s), ${fs.statSync(target).size} bytes)\n`);
    return 0;
  } catch (e) {
    io.stderr.write(`${file}: ${(e as Error).message}\n`);
    return 2;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
