/**
 * Headless runner:
 *
 *   npm run generate -- <workflow.json | image.png> [--models DIR] [--out DIR]
 *        [--provider cpu|webgpu|cuda|dml] [--set node.param=value ...] [--demo] [--user-data DIR] [-h|--help]
 *
 * Runs a workflow (or the one embedded in a PNG we saved) and writes its images. A progress bar
 * on a terminal, plain lines otherwise. Exit codes: 0 done (or --help), 1 run failed, 2 bad
 * arguments or an invalid workflow, 130 interrupted. Defaults: --models $IPA_MODELS, else the
 * app's models setting (settings.json), else <user data>/models; --out ./output. --demo uses the
 * demo model set; an empty models folder is said to be empty (never silently replaced by it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ParamValue } from '../../nodes/types.js';
import type { EngineSettings, RunEvent, Workflow } from '../api.js';
import { createEngine } from '../engine.js';
import { defaultUserData, missingModelsSentence, modelsFolderReport, readSettings, settingsFileOf } from './host-config.js';
import { readEmbeddedWorkflow, readTextChunks } from '../png.js';
import { BUNDLE_CHUNK_KEY, isBundleDoc } from '../bundle-format.js';
import { nodeSpecs } from '../../nodes/index.js';
import { openBundle } from './bundle.js';
import { convertComfy, modelsListing } from './convert.js';
import { comfyDocFromBytes } from '../interop/comfyui/file.js';
import { formatReport, hasUnsupported } from '../interop/comfyui/report.js';
import { ProviderSchema } from '../protocol.js';
import { parseWorkflow } from '../workflow.js';
import { hasSweep } from '../sweep.js';
import { resumeBatchCli, runBatchCli } from '../farm/cli-batch.js';

export interface CliArgs {
  workflow: string;
  models: string;
  out: string;
  provider: EngineSettings['provider'];
  sets: { node: string; param: string; value: string }[];
  demo: boolean;
  userData: string;
  /** -h / --help: print the usage and exit 0. */
  help: boolean;
  /** --queue redis://HOST:PORT: run the jobs on the render farm (engine/farm/) instead of this machine. */
  queue?: string;
  /** --resume FILE: a farm batch file (<out>/<batch>.batch.json) to submit again. */
  resume?: string;
  priority?: number;
}

const USAGE = `usage: npm run generate -- <workflow.json|image.png> [options]

Runs a workflow (or the one embedded in a PNG saved by the app, or a shared workflow from
"Export workflow for sharing" / npm run share, whose images go to <user data>/inputs) and writes its images.
A ComfyUI workflow (UI or API JSON, or a PNG / WebP saved by ComfyUI) is converted first and its import
report printed; it is refused, with the report, when one of its nodes is not supported.

options:
  --models DIR        models folder (default: $IPA_MODELS, else the app's setting, else <user data>/models)
  --out DIR           output folder (default: ./output)
  --provider NAME     cpu, webgpu, cuda or dml (default: cpu; falls back to CPU when it cannot start)
  --set node.param=V  overrides a param (repeatable); V is typed by the param (number, true/false, text)
  --demo              use the demo models (tiny random weights, for trying the app without models)
  --user-data DIR     the app's per-user folder (default: $IPA_STUDIO_USER_DATA or ~/.ipadapter-studio)
  --queue URL         run on the render farm at redis://HOST:PORT (workers: npm run worker) instead of here
  --resume FILE       submit again what a farm batch (<out>/<batch>.batch.json) has no result for yet
  --priority N        farm job priority, 1 (first) to 2097152; default: none (first come, first served)
  -h, --help          this help

A workflow with a Sweep (XY Plot) node runs as a batch: one job per value (or combination), each
PNG carrying its own workflow, and a labelled grid image (<prefix>-grid_00001_.png).

exit codes: 0 done, 1 run failed, 2 bad arguments or an invalid workflow, 130 interrupted`;

/** The models folder the app is set to (settings.json in the user folder), else <user data>/models. */
function defaultModels(userData: string): string {
  return readSettings(settingsFileOf(userData)).modelsDir ?? path.join(userData, 'models');
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): CliArgs {
  const a: CliArgs = { workflow: '', models: '', out: 'output', provider: 'cpu', sets: [], demo: false, userData: defaultUserData(env), help: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${k} needs a value`);
      return v;
    };
    if (k === '-h' || k === '--help') return { ...a, help: true };
    else if (k === '--models') a.models = val();
    else if (k === '--out') a.out = val();
    else if (k === '--user-data') a.userData = val();
    else if (k === '--demo') a.demo = true;
    else if (k === '--queue') a.queue = val();
    else if (k === '--resume') a.resume = val();
    else if (k === '--priority') {
      const n = Number(val());
      if (!Number.isInteger(n) || n < 1 || n > 2 ** 21) throw new Error(`--priority must be a whole number from 1 to ${2 ** 21} (got "${argv[i]}")`);
      a.priority = n;
    } else if (k === '--provider') {
      const p = ProviderSchema.safeParse(val());
      if (!p.success) throw new Error(`--provider must be ${ProviderSchema.options.join(', ')} (got "${argv[i]}")`);
      a.provider = p.data;
    } else if (k === '--set') {
      const s = val();
      const m = /^([^.=]+)\.([^=]+)=(.*)$/s.exec(s);
      if (!m) throw new Error(`--set expects node.param=value (got "${s}")`);
      a.sets.push({ node: m[1], param: m[2], value: m[3] });
    } else if (k.startsWith('--')) throw new Error(`unknown option ${k}`);
    else if (!a.workflow) a.workflow = k;
    else throw new Error(`unexpected argument "${k}" (one workflow per run)`);
  }
  if (!a.workflow && !a.resume) throw new Error('no workflow file given');
  a.models ||= env.IPA_MODELS || defaultModels(a.userData);
  return a;
}

/** Reads a workflow JSON file (or a shared-workflow bundle), or the workflow embedded in one of our PNGs (its bundle when it carries one). */
export function readWorkflowFile(file: string): unknown {
  const buf = fs.readFileSync(file);
  if (buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    const bundle = readTextChunks(buf)[BUNDLE_CHUNK_KEY];
    if (bundle !== undefined) return JSON.parse(bundle);
    const wf = readEmbeddedWorkflow(buf);
    if (!wf) throw new Error(`${file} is a PNG without an embedded IP-Adapter Studio workflow`);
    return wf;
  }
  // A UTF-8 byte order mark (Windows editors write one) is not part of the JSON.
  return JSON.parse(buf.toString('utf8').replace(/^\uFEFF/, ''));
}

/** Applies `--set` overrides, typed by the param's declaration (a number param gets a number). */
export function applySets(wf: Workflow, sets: CliArgs['sets'], paramKind: (type: string, param: string) => string | undefined): string[] {
  const errors: string[] = [];
  for (const s of sets) {
    const n = wf.nodes.find((x) => x.id === s.node);
    if (!n) {
      errors.push(`--set ${s.node}.${s.param}: no node "${s.node}" (nodes: ${wf.nodes.map((x) => x.id).join(', ')})`);
      continue;
    }
    const kind = paramKind(n.type, s.param);
    if (!kind) {
      errors.push(`--set ${s.node}.${s.param}: ${n.type} has no param "${s.param}"`);
      continue;
    }
    let v: ParamValue = s.value;
    if (kind === 'number') {
      v = Number(s.value);
      if (s.value.trim() === '' || !Number.isFinite(v)) {
        errors.push(`--set ${s.node}.${s.param}: "${s.value}" is not a number`);
        continue;
      }
      // A whole number beyond 2^53 stays as written (a seed up to 2^64 - 1: engine/seed.ts); validation judges it.
      if (/^\d+$/.test(s.value.trim()) && !Number.isSafeInteger(v)) v = s.value.trim();
    } else if (kind === 'boolean') {
      if (s.value !== 'true' && s.value !== 'false') {
        errors.push(`--set ${s.node}.${s.param}: expected true or false`);
        continue;
      }
      v = s.value === 'true';
    }
    n.params = { ...n.params, [s.param]: v };
  }
  return errors;
}

/** A one-line progress display: a bar on a TTY, plain lines otherwise. */
function reporter(out: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean }) {
  const tty = !!(out as NodeJS.WriteStream).isTTY;
  let bar = false;
  const line = (s: string) => {
    if (bar) {
      out.write('\n');
      bar = false;
    }
    out.write(`${s}\n`);
  };
  return (e: RunEvent) => {
    switch (e.type) {
      case 'node-done':
        if (!e.cached) line(`${e.node}: done in ${e.ms} ms`);
        else line(`${e.node}: cached`);
        break;
      case 'progress': {
        if (tty) {
          const w = 30;
          const fill = Math.round((e.step / e.total) * w);
          out.write(`\r${e.node} [${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${e.step}/${e.total}`);
          bar = true;
        } else line(`${e.node}: step ${e.step}/${e.total}`);
        break;
      }
      case 'node-error':
        line(`${e.node}: error: ${e.message}`);
        break;
      case 'output':
        for (const i of e.images) line(`wrote ${i.path} (${i.width}x${i.height})`);
        break;
      case 'log':
        line(`${e.level === 'warn' ? 'warning: ' : ''}${e.message}`);
        break;
      default:
        break;
    }
  };
}

export interface CliIo {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  env?: NodeJS.ProcessEnv;
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let args: CliArgs;
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
  if (args.resume) return resumeBatchCli(path.resolve(args.resume), { ...args, ...io }, nodeSpecs());
  const file = path.resolve(args.workflow);
  let raw: unknown;
  try {
    // A ComfyUI file (UI workflow, API prompt, or a PNG / WebP saved by ComfyUI) is converted first,
    // and refused with the import report when a node has no counterpart here (engine/hosts/convert.ts).
    const comfy = comfyDocFromBytes(fs.readFileSync(file), path.basename(file));
    if (comfy !== null) {
      const conv = convertComfy(comfy, file, modelsListing(path.resolve(args.models), path.resolve(args.userData), args.demo).models);
      if (hasUnsupported(conv.report)) {
        io.stderr.write(
          `${formatReport(conv.report)}\nnot run: ${file} has ComfyUI nodes that are not supported here (see above); npm run convert writes the workflow with placeholders to replace\n`,
        );
        return 2;
      }
      io.stdout.write(`${formatReport(conv.report)}\n`);
      raw = conv.workflow;
    } else raw = readWorkflowFile(file);
  } catch (e) {
    io.stderr.write(`cannot read ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  if (isBundleDoc(raw)) {
    // A shared workflow: its images go to the inputs folder (once each, by content) and the graph points there.
    const inputsDir = path.join(path.resolve(args.userData), 'inputs');
    try {
      const b = openBundle(raw, nodeSpecs(), inputsDir);
      raw = b.workflow;
      io.stdout.write(`shared workflow: ${b.images.length} image(s) in ${inputsDir} (${b.images.filter((i) => i.written).length} new)\n`);
    } catch (e) {
      io.stderr.write(`${file}: ${(e as Error).message}\n`);
      return 2;
    }
  }
  const parsed = parseWorkflow(raw);
  if (!parsed.workflow) {
    for (const err of parsed.errors) io.stderr.write(`${file}: ${err.message}\n`);
    return 2;
  }
  const wf = parsed.workflow;
  const engine = createEngine({
    modelsDir: path.resolve(args.models),
    outputDir: path.resolve(args.out),
    provider: args.provider,
    demo: args.demo,
    userDataDir: path.resolve(args.userData),
  });
  const specs = new Map(engine.nodeSpecs().map((s) => [s.type, s]));
  const setErrors = applySets(wf, args.sets, (t, p) => specs.get(t)?.params.find((x) => x.name === p)?.kind);
  if (setErrors.length) {
    for (const e of setErrors) io.stderr.write(`${e}\n`);
    await engine.close();
    return 2;
  }
  if (args.queue || hasSweep(wf)) {
    // A batch (a Sweep node), or a run on the render farm: engine/farm/cli-batch.ts.
    const off = args.queue ? () => {} : engine.subscribe(reporter(io.stdout));
    try {
      const o = { file, out: args.out, models: args.models, inputsDir: path.join(path.resolve(args.userData), 'inputs'), ...io };
      return await runBatchCli(engine, wf, { ...o, queue: args.queue, priority: args.priority });
    } finally {
      off();
      await engine.close();
    }
  }
  const off = engine.subscribe(reporter(io.stdout));
  if (engine.isDemo()) io.stdout.write(`models: ${engine.modelsDir()} (demo)\n`);
  else {
    const empty = missingModelsSentence(modelsFolderReport(engine.modelsDir()));
    if (empty) io.stderr.write(`${empty} (--demo runs on the demo models)\n`);
  }
  let interrupted = false;
  const run = engine.start(wf, { workflowDir: path.dirname(file) });
  const onSigint = () => {
    interrupted = true;
    engine.cancel(run.runId);
  };
  process.once('SIGINT', onSigint);
  try {
    const res = await run.done;
    if (res.errors?.length) {
      io.stderr.write(`the workflow is not valid (${res.errors.length} error(s)):\n`);
      for (const e of res.errors) io.stderr.write(`  ${e.node ? `[${e.node}] ` : ''}${e.message}\n`);
      return 2;
    }
    if (res.cancelled) {
      io.stderr.write('cancelled\n');
      return interrupted ? 130 : 1;
    }
    if (!res.ok) {
      io.stderr.write(`failed: ${res.error}\n`);
      return 1;
    }
    io.stdout.write(`done: ${res.images.length} image(s) in ${path.resolve(args.out)}\n`);
    return 0;
  } finally {
    process.removeListener('SIGINT', onSigint);
    off();
    await engine.close();
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
