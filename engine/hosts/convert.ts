/**
 * Workflow converter between ComfyUI and this app:
 *
 *   npm run convert -- <file> [--out FILE] [--models DIR] [--demo] [--api] [--user-data DIR]
 *
 * A ComfyUI file (UI workflow 0.4 / 1.0, API prompt, or a PNG / WebP carrying ComfyUI's workflow
 * and prompt) becomes our workflow: the import report is printed (every node mapped,
 * approximated or unsupported, the model substitutions, the images not found next to the
 * file), and --out writes the workflow. One of our workflows (JSON or a PNG of ours) becomes a
 * ComfyUI UI workflow (--api: an API prompt), with what differs per node.
 * Exit codes: 0 converted; 1 converted, but some node is unsupported (placeholders in the
 * output); 2 bad arguments or an unreadable file. Missing models and images are reported with
 * their substitutions; they do not make the conversion fail.
 * Models: --models, else $IPA_MODELS, else the app's setting, else <user data>/models; an
 * empty models folder (or --demo) is matched against the demo model set.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ModelKind } from '../../nodes/spec.js';
import { nodeSpecs } from '../../nodes/index.js';
import { ensureDemoModels } from '../demo/demo.js';
import { comfyDocFromBytes } from '../interop/comfyui/file.js';
import { exportComfyUI, formatExportReport } from '../interop/comfyui/export.js';
import { importComfyUI, type ImportResult } from '../interop/comfyui/import.js';
import { ComfyReadError } from '../interop/comfyui/read.js';
import { formatReport, hasUnsupported } from '../interop/comfyui/report.js';
import { listModels, modelsFolderEmpty, PathResolver } from '../paths.js';
import { readEmbeddedWorkflow } from '../png.js';
import { parseWorkflow, stringifyWorkflow } from '../workflow.js';
import { defaultUserData, readSettings, settingsFileOf } from './host-config.js';

const USAGE = `usage: npm run convert -- <file> [options]

Converts a ComfyUI workflow (UI JSON 0.4 / 1.0, API prompt JSON, or a PNG / WebP saved by ComfyUI)
into an IP-Adapter Studio workflow and prints the import report; converts one of ours (JSON or a
PNG exported by the app) into a ComfyUI workflow.

options:
  --out FILE          write the converted workflow there (without it, only the report is printed)
  --models DIR        models folder to match model names in (default: $IPA_MODELS, else the app's
                      setting, else <user data>/models; an empty folder matches the demo set)
  --demo              match against the demo model set
  --api               ours -> ComfyUI: write the API prompt instead of the UI workflow
  --user-data DIR     the app's per-user folder (default: $IPA_STUDIO_USER_DATA or ~/.ipadapter-studio)
  -h, --help          this help

exit codes: 0 converted, 1 converted with unsupported nodes (kept as placeholders), 2 bad arguments or an unreadable file`;

interface Args {
  file: string;
  out: string;
  models: string;
  demo: boolean;
  api: boolean;
  userData: string;
  help: boolean;
}

function parseArgs(argv: string[], env: NodeJS.ProcessEnv): Args {
  const a: Args = { file: '', out: '', models: '', demo: false, api: false, userData: defaultUserData(env), help: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${k} needs a value`);
      return v;
    };
    if (k === '-h' || k === '--help') return { ...a, help: true };
    else if (k === '--out') a.out = val();
    else if (k === '--models') a.models = val();
    else if (k === '--user-data') a.userData = val();
    else if (k === '--demo') a.demo = true;
    else if (k === '--api') a.api = true;
    else if (k.startsWith('--')) throw new Error(`unknown option ${k}`);
    else if (!a.file) a.file = k;
    else throw new Error(`unexpected argument "${k}" (one file at a time)`);
  }
  if (!a.file) throw new Error('no file given');
  a.models ||= env.IPA_MODELS || readSettings(settingsFileOf(a.userData)).modelsDir || path.join(a.userData, 'models');
  return a;
}

/** The models listing a conversion matches names against (the demo set for an empty folder or --demo). */
export function modelsListing(modelsDir: string, userData: string, demo: boolean): { dir: string; models: Record<ModelKind, string[]>; demo: boolean } {
  const useDemo = demo || modelsFolderEmpty(modelsDir);
  const dir = useDemo ? ensureDemoModels(path.join(userData, 'demo-models')) : modelsDir;
  return { dir, models: listModels(dir), demo: useDemo };
}

/** Converts a ComfyUI document with the engine's node specs, checking images next to `file`. */
export function convertComfy(doc: unknown, file: string, models: Partial<Record<ModelKind, string[]>>, specs = nodeSpecs()): ImportResult {
  const paths = new PathResolver('', path.dirname(path.resolve(file)));
  return importComfyUI(doc, { specs, models, imageExists: (name) => paths.resolveImage(name) !== null });
}

export interface ConvertIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env?: NodeJS.ProcessEnv;
}

export async function main(argv: string[], io: ConvertIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv, io.env ?? process.env);
  } catch (e) {
    io.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const file = path.resolve(args.file);
  let bytes: Buffer;
  let doc: unknown;
  try {
    bytes = fs.readFileSync(file);
    doc = comfyDocFromBytes(bytes, path.basename(file));
  } catch (e) {
    io.stderr.write(`cannot read ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  const write = (text: string) => {
    fs.mkdirSync(path.dirname(path.resolve(args.out)), { recursive: true });
    fs.writeFileSync(path.resolve(args.out), text);
    io.stdout.write(`wrote ${path.resolve(args.out)}\n`);
  };
  if (doc !== null) {
    const { dir, models, demo } = modelsListing(path.resolve(args.models), path.resolve(args.userData), args.demo);
    let result: ImportResult;
    try {
      result = convertComfy(doc, file, models);
    } catch (e) {
      io.stderr.write(`${file}: ${e instanceof ComfyReadError ? e.message : `could not be converted: ${(e as Error).message}`}\n`);
      return 2;
    }
    io.stdout.write(`models: ${dir}${demo ? ' (demo)' : ''}\n${formatReport(result.report)}\n`);
    if (args.out) write(stringifyWorkflow(result.workflow));
    return hasUnsupported(result.report) ? 1 : 0;
  }
  // Ours -> ComfyUI.
  let raw: unknown;
  try {
    raw = bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
      ? readEmbeddedWorkflow(bytes)
      : JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, ''));
  } catch (e) {
    io.stderr.write(`cannot read ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  if (raw === null) {
    io.stderr.write(`${file} is a PNG without a ComfyUI workflow or one of ours\n`);
    return 2;
  }
  const parsed = parseWorkflow(raw);
  if (!parsed.workflow) {
    io.stderr.write(`${file}: neither a ComfyUI workflow nor one of ours: ${parsed.errors.map((e) => e.message).join('; ')}\n`);
    return 2;
  }
  const ex = exportComfyUI(parsed.workflow, nodeSpecs());
  io.stdout.write(`IP-Adapter Studio workflow -> ComfyUI ${args.api ? 'API prompt' : 'UI workflow'}:\n${formatExportReport(ex.report)}\n`);
  if (args.out) write(`${JSON.stringify(args.api ? ex.api : ex.ui, null, 2)}\n`);
  return ex.report.some((r) => r.status === 'unsupported') ? 1 : 0;
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
