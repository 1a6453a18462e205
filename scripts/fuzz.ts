/**
 * Seeded fuzzing of what a shared workflow or a downloaded model file can throw at the engine
 * (issue 13): `npm run fuzz -- --count N [--seed S] [--run-every K] [--json]`.
 *
 * Workflow cases: an example workflow with 1-4 random mutations (params set to hostile values,
 * nodes / edges removed, rewired or duplicated, types changed, cycles, deep or huge free-form fields,
 * wrong versions), through parsing and validation; every K-th one that validates is run for real on
 * the demo model set (2 sampler steps). File cases: a demo model file (VAE, IP-Adapter, LoRA, UNet,
 * the checkpoint's text encoder, CLIP vision, ControlNet) truncated, with its header length, header
 * bytes, dtypes, shapes or offsets changed, or its data overwritten with NaN, through the loaders and
 * graph builders the nodes use; every K-th one is also run through the engine (the example that loads
 * it), and a refusal there must be a node-error on a node of the file's loader chain naming the file. A case fails on an uncaught error, on a case running past --case-timeout (a hang), on
 * an error that names neither a node nor the file, on an internal error (a TypeError, "internal:",
 * a stack overflow), and at the end when any file appeared outside the output and user-data folders.
 * Prints a summary (JSON with --json) and exits 1 on any failure. Run by test/fuzz.test.ts (bounded).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunEvent, Workflow } from '../engine/api.js';
import { DEMO_NAMES, ensureDemoModels } from '../engine/demo/demo.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { PathResolver } from '../engine/paths.js';
import { parseWorkflow } from '../engine/workflow.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import { buildClipTextEncoder, loadClipTextConfig, SD15_TEXT_CONFIG } from '../models/clip-text.js';
import { buildClipVision, resolveClipVision } from '../models/clip-vision.js';
import { buildControlNet } from '../models/controlnet.js';
import { checkControlNetFitsUNet, loadControlNet } from '../models/controlnet-load.js';
import { clipTextWeights } from '../models/keymaps/clip-text.js';
import { buildImageProj, IpAdapterModel } from '../models/ip-adapter.js';
import { matchLora, unetLoraTargets } from '../models/lora.js';
import { openTensorFile } from '../models/pickle.js';
import { checkIpAdapterLayers, namingFile, weightsFileOf } from '../models/shape-check.js';
import { buildUNet } from '../models/unet.js';
import { buildVaeDecoder, buildVaeEncoder } from '../models/vae.js';
import { loadVaeFile } from '../models/vae-load.js';
import { weightValueProblem } from '../models/weight-sanity.js';
import { joinSafetensors, splitSafetensors } from '../test/helpers/corrupt.js';
import { seededUniform } from '../test/helpers/random.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Options {
  count: number;
  seed: number;
  runEvery: number;
  caseTimeoutMs: number;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { count: 300, seed: 1, runEvery: 40, caseTimeoutMs: 60_000, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === '--count') o.count = num();
    else if (a === '--seed') o.seed = num();
    else if (a === '--run-every') o.runEvery = Math.max(1, num());
    else if (a === '--case-timeout') o.caseTimeoutMs = num() * 1000;
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown argument ${a} (usage: npm run fuzz -- --count N [--seed S] [--run-every K] [--case-timeout SECONDS] [--json])`);
  }
  return o;
}

/** Errors that mean a bug of ours rather than a refusal: they never name what was wrong. */
const INTERNAL =
  /internal:|TypeError|ReferenceError|is not a function|Cannot read propert|Cannot set propert|undefined is not a function|undefined is not an object|Maximum call stack|Invalid string length|Invalid array length|out of memory/i;

interface Failure {
  case: number;
  kind: string;
  what: string;
  message: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

class Rng {
  private u: () => number;
  constructor(seed: number) {
    this.u = seededUniform(seed * 2654435761);
  }
  next(): number {
    return this.u() + 0.5;
  }
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`HANG: ${what} ran past ${ms / 1000} s`)), ms)))]).finally(
    () => clearTimeout(timer),
  );
}

// ---------------------------------------------------------------------------------------
// Workflow mutations
// ---------------------------------------------------------------------------------------

function nested(depth: number): Json {
  let v: Json = 'x';
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

function hostileValue(r: Rng, modelNames: string[]): Json {
  const pool: (() => Json)[] = [
    () => -1,
    () => 0,
    () => 1e308,
    () => -1e308,
    () => 2 ** 64,
    () => 0.5,
    () => '18446744073709551616',
    () => '',
    () => 'x'.repeat(r.pick([300, 5000, 200_000])),
    () => '../../../../../../etc/passwd',
    () => '/etc/passwd',
    () => 'C:\\Windows\\System32\\cmd.exe',
    () => '..\\..\\x.safetensors',
    () => 'nul',
    () => 'con/x',
    () => 'a\u0000b',
    () => '%2e%2e%2fsecret',
    () => 'inputs/../../x.png',
    () => r.pick(modelNames),
    () => ({}),
    () => [],
    () => null,
    () => true,
    () => nested(r.pick([5, 40, 2000])),
  ];
  return r.pick(pool)();
}

type Doc = { [k: string]: Json };
const asObj = (v: Json | undefined): Doc | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Doc) : null);
const asArr = (v: Json | undefined): Json[] | null => (Array.isArray(v) ? v : null);

function mutateWorkflow(doc: Doc, r: Rng, types: string[], modelNames: string[]): string {
  const nodes = asArr(doc.nodes) ?? [];
  const edges = asArr(doc.edges) ?? [];
  const node = () => asObj(nodes.length ? r.pick(nodes) : null);
  const ids = () => nodes.map((n) => asObj(n)?.id).filter((x): x is string => typeof x === 'string');
  const m = r.int(14);
  switch (m) {
    case 0:
    case 1:
    case 2: {
      const n = node();
      const params = asObj(n?.params);
      if (!n || !params) return 'noop';
      const keys = Object.keys(params);
      const k = keys.length && r.next() < 0.85 ? r.pick(keys) : `unknown_${r.int(5)}`;
      // Hostile values, or plausible ones (another number in range, another model name, a seed) that validation lets through.
      const old = params[k];
      if (m === 0 || old === undefined) params[k] = hostileValue(r, modelNames);
      else if (typeof old === 'number') params[k] = r.pick([0, 1, 2, r.int(100), r.next(), old * 2, -old]);
      else if (typeof old === 'string') params[k] = r.next() < 0.7 ? r.pick(modelNames) : '';
      else params[k] = !old;
      return `param ${String(n.id)}.${k}${m === 0 ? ' (hostile)' : ''}`;
    }
    case 3:
      if (nodes.length) nodes.splice(r.int(nodes.length), 1);
      return 'remove node';
    case 4:
      if (edges.length) edges.splice(r.int(edges.length), 1);
      return 'remove edge';
    case 5: {
      const e = asObj(edges.length ? r.pick(edges) : null);
      const end = asObj(e?.[r.pick(['from', 'to'])]);
      if (!end) return 'noop';
      if (r.next() < 0.5) end.node = r.next() < 0.8 && ids().length ? r.pick(ids()) : 'ghost';
      else end.port = r.pick(['model', 'clip', 'vae', 'image', 'images', 'latent', 'samples', 'conditioning', 'positive', 'nope']);
      return 'rewire edge';
    }
    case 6: {
      const a = ids();
      if (!a.length) return 'noop';
      edges.push({
        from: { node: r.pick(a), port: r.pick(['model', 'latent', 'image', 'conditioning', 'vae']) },
        to: { node: r.pick(a), port: r.pick(['model', 'samples', 'images', 'positive', 'vae', 'pixels']) },
      });
      return 'add edge (maybe a cycle)';
    }
    case 7: {
      const n = node();
      if (!n) return 'noop';
      n.type = r.next() < 0.8 ? r.pick(types) : 'not-a-node';
      return 'change type';
    }
    case 8: {
      const n = node();
      if (!n) return 'noop';
      nodes.push(JSON.parse(JSON.stringify(n)) as Json);
      return 'duplicate node id';
    }
    case 9: {
      const k = r.pick(['nodes', 'edges', 'format', 'version', 'meta']);
      if (r.next() < 0.5) delete doc[k];
      else doc[k] = hostileValue(r, modelNames);
      return `field ${k}`;
    }
    case 10: {
      const n = node();
      const where = r.next() < 0.5 || !n ? doc : n;
      where[r.pick(['meta', 'ui'])] = nested(r.pick([20, 100, 5000]));
      return 'deep nesting';
    }
    case 11:
      doc.version = r.pick<Json>([0, -1, 99, '2', 1.5, null]);
      return 'version';
    case 12: {
      const n = node();
      if (!n) return 'noop';
      n.mode = r.pick<Json>(['bypass', 'mute', 'off', 3]);
      return 'mode';
    }
    default: {
      const n = node();
      if (!n) return 'noop';
      n.params = hostileValue(r, modelNames);
      return 'params replaced';
    }
  }
}

// ---------------------------------------------------------------------------------------
// Model file corruptions
// ---------------------------------------------------------------------------------------

function corrupt(bytes: Buffer, r: Rng): { bytes: Buffer; how: string } {
  const m = r.int(9);
  if (m === 0) {
    const at = r.int(bytes.length);
    return { bytes: bytes.subarray(0, at), how: `truncated at ${at}` };
  }
  if (m === 1) {
    const b = Buffer.from(bytes);
    b.writeBigUInt64LE(r.pick([0n, 1n, 7n, BigInt(bytes.length), 2n ** 40n, 2n ** 63n]), 0);
    return { bytes: b, how: 'header length' };
  }
  if (m === 2) {
    const b = Buffer.from(bytes);
    const n = Number(b.readBigUInt64LE(0));
    for (let i = 0; i < 1 + r.int(4); i++) b[8 + r.int(n)] = r.int(256);
    return { bytes: b, how: 'header bytes' };
  }
  const { header, data } = splitSafetensors(bytes);
  const keys = Object.keys(header).filter((k) => k !== '__metadata__');
  const key = r.pick(keys);
  const e = header[key] as { dtype: string; shape: number[]; data_offsets: [number, number] };
  const elems = e.shape.reduce((a, d) => a * d, 1);
  switch (m) {
    case 3:
      e.dtype = r.pick(['F16', 'BF16', 'I64', 'I32', 'U8', 'F64', 'BOOL', 'F8_E4M3', 'XYZ']);
      return { bytes: joinSafetensors(header, data), how: `dtype of ${key} -> ${e.dtype}` };
    case 4: {
      const shapes: Json[] = [[...e.shape].reverse(), [elems], [elems, 1], [1, elems], [], [-1, elems], [47.5, 2], [2 ** 40, 2 ** 40], [elems + 1], 'x'];
      (e as unknown as { shape: Json }).shape = r.pick(shapes);
      return { bytes: joinSafetensors(header, data), how: `shape of ${key}` };
    }
    case 5: {
      const [a, b] = e.data_offsets;
      (e as unknown as { data_offsets: Json }).data_offsets = r.pick<Json>([[b, a], [a, data.length + 4], [-4, b], [a, a], [0, b - a], [a + 1, b + 1], 'x']);
      return { bytes: joinSafetensors(header, data), how: `offsets of ${key}` };
    }
    case 6: {
      const d = Buffer.from(data);
      if (e.dtype === 'F32') for (let o = e.data_offsets[0]; o < e.data_offsets[1]; o += 4) d.writeFloatLE(r.next() < 0.5 ? NaN : Infinity, o);
      return { bytes: joinSafetensors(header, d), how: `NaN / Inf in ${key}` };
    }
    case 7:
      (header as unknown as Record<string, Json>).__metadata__ = r.pick<Json>([{ a: 1 }, 'x', nested(50), { format: 'pt' }]);
      return { bytes: joinSafetensors(header, data), how: 'metadata' };
    default:
      delete header[key];
      return { bytes: joinSafetensors(header, data), how: `tensor ${key} removed` };
  }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

function listFiles(dir: string, skip: Set<string>, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (skip.has(p)) continue;
    if (e.isDirectory()) listFiles(p, skip, out);
    else out.push(p);
  }
  return out;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-fuzz-')));
  const failures: Failure[] = [];
  const stats = {
    workflows: { cases: 0, refusedByParse: 0, refusedByValidation: 0, valid: 0, run: 0, runOk: 0, runRefusedOnNode: 0 },
    files: { cases: 0, refusedByLoader: 0, accepted: 0, run: 0, runOk: 0, runRefusedOnNode: 0, warned: 0 },
    /** Per corrupted file kind: cases, loader refusals, and the first refusal's sentence (what a person reads). */
    byKind: {} as Record<string, { cases: number; refused: number; first?: string }>,
    /** The clean examples ran on the same engine after all the cases. */
    usableAfterwards: false,
  };
  let current = 'start-up';
  const fail = (c: number, kind: string, what: string, message: string) => failures.push({ case: c, kind, what, message: message.slice(0, 500) });
  process.on('uncaughtException', (e) => {
    fail(-1, 'crash', current, `uncaught: ${e.stack ?? e}`);
    finish();
  });
  process.on('unhandledRejection', (e) => fail(-1, 'crash', current, `unhandled rejection: ${(e as Error)?.stack ?? e}`));

  const demo = ensureDemoModels(path.join(tmp, 'demo'));
  const models = path.join(tmp, 'models');
  fs.cpSync(demo, models, { recursive: true });
  const out = path.join(tmp, 'out');
  const user = path.join(tmp, 'user');
  const before = new Set(listFiles(tmp, new Set([out, user])));
  const engine: Engine = createEngine({ modelsDir: models, outputDir: out, provider: 'cpu', userDataDir: user, demo: false });
  const nodeErrors = new Map<string, { node: string; message: string }[]>();
  engine.subscribe((e: RunEvent) => {
    if (e.type === 'node-error') nodeErrors.set(e.runId, [...(nodeErrors.get(e.runId) ?? []), { node: e.node, message: e.message }]);
  });
  const types = engine.nodeSpecs().map((s) => s.type);
  const lists = await engine.listModels();
  const modelNames = Object.values(lists).flat();
  const examples = fs
    .readdirSync(path.join(ROOT, 'examples'))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ name: f, doc: JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8')) as Doc }));
  const examplesDir = path.join(ROOT, 'examples');
  const r = new Rng(o.seed);

  /** Runs `wf` on the engine with a timeout; checks the outcome. Returns 'ok' | 'node' (refused on a node) | 'failed'. */
  const runOnce = async (c: number, kind: string, what: string, wf: Workflow, mustName?: string): Promise<'ok' | 'node' | 'failed'> => {
    for (const n of wf.nodes) if (n.params && typeof n.params.steps === 'number') n.params.steps = Math.min(n.params.steps, 2);
    for (const n of wf.nodes) if (n.params && typeof n.params.width === 'number') n.params.width = Math.min(n.params.width, 128);
    for (const n of wf.nodes) if (n.params && typeof n.params.height === 'number') n.params.height = Math.min(n.params.height, 128);
    const job = engine.start(wf, { workflowDir: examplesDir });
    let res;
    try {
      res = await withTimeout(job.done, o.caseTimeoutMs, what);
    } catch (e) {
      engine.cancel(job.runId);
      fail(c, 'hang', what, (e as Error).message);
      await job.done.catch(() => undefined);
      return 'failed';
    }
    if (res.ok) return 'ok';
    if (res.errors?.length) return 'node'; // validation at run time: named per node (checked in the validation pass)
    const errs = nodeErrors.get(job.runId) ?? [];
    const msg = errs[0]?.message ?? res.error ?? '';
    if (!errs.length) fail(c, 'unnamed', what, `a run failed with no node-error event: ${msg}`);
    else if (!wf.nodes.some((n) => n.id === errs[0]!.node))
      fail(c, 'unnamed-node', what, `the node-error names node "${errs[0]!.node}", which is not in the workflow: ${msg}`);
    else if (INTERNAL.test(msg)) fail(c, 'internal', what, msg);
    else if (mustName && !msg.includes(mustName)) fail(c, 'unnamed-file', what, `the error does not name ${mustName}: ${msg}`);
    else return 'node';
    return 'failed';
  };

  // Corruptible files: the demo's standalone VAE, IP-Adapter, LoRA and the checkpoint's UNet, with the example that loads each.
  const ck = path.join(models, 'checkpoints', DEMO_NAMES.checkpoint);
  const targets = [
    { kind: 'vae', file: path.join(models, 'vae', DEMO_NAMES.vae), example: 'custom-vae.json' },
    { kind: 'ip-adapter', file: path.join(models, 'ipadapter', DEMO_NAMES.ipAdapter), example: 'image-prompt.json' },
    { kind: 'lora', file: path.join(models, 'loras', DEMO_NAMES.lora), example: 'image-prompt-lora.json' },
    { kind: 'unet', file: path.join(ck, 'unet', 'diffusion_pytorch_model.safetensors'), example: 'image-prompt.json' },
    { kind: 'text-encoder', file: path.join(ck, 'text_encoder', 'model.safetensors'), example: 'image-prompt.json' },
    { kind: 'clip-vision', file: path.join(models, 'clip_vision', DEMO_NAMES.clipVision, 'model.safetensors'), example: 'image-prompt.json' },
    {
      kind: 'controlnet',
      file: path.join(models, 'controlnet', DEMO_NAMES.controlnetCanny, 'diffusion_pytorch_model.safetensors'),
      example: 'ip-canny-controlnet.json',
    },
  ].map((t) => ({ ...t, original: fs.readFileSync(t.file) }));
  const base = loadCheckpoint(ck);
  const unetTargets = unetLoraTargets(base.unet.config, base.unet.weights, ck);

  /** The loaders and graph builders a file of `kind` goes through (no sessions). */
  const load = (kind: string, file: string): void => {
    if (kind === 'vae') {
      const v = loadVaeFile(file);
      buildVaeDecoder(v.config, v.weights).build();
      buildVaeEncoder(v.config, v.weights).build();
    } else if (kind === 'ip-adapter') {
      const ad = namingFile(file, () => IpAdapterModel.load(file));
      checkIpAdapterLayers(ad.layers, ad.crossAttentionDim, base.unet.config, ck);
      buildImageProj(ad).build();
    } else if (kind === 'lora') {
      matchLora(openTensorFile(file), [unetTargets], { allowEmpty: true });
    } else if (kind === 'text-encoder') {
      // As nodes/runtime/networks.ts textRuntime: the checkpoint's text encoder, its config, the graph.
      const te = loadCheckpoint(ck).textEncoder!;
      const cfg = te.configPath ? loadClipTextConfig(te.configPath) : { ...SD15_TEXT_CONFIG };
      buildClipTextEncoder(cfg, clipTextWeights(openTensorFile(te.weightsFile))).build();
    } else if (kind === 'clip-vision') {
      // As Load CLIP Vision (resolveClipVision) and the encoder's graph.
      const cv = resolveClipVision(path.dirname(file));
      buildClipVision(cv.config, cv.file).build();
    } else if (kind === 'controlnet') {
      // As nodes/runtime/controlnet.ts: the file and its config, checked against the checkpoint's UNet, the graph.
      const cn = loadControlNet(path.dirname(file));
      checkControlNetFitsUNet(cn, base.unet.config, ck);
      buildControlNet(cn.config, cn.weights).build();
    } else {
      const c = loadCheckpoint(ck);
      namingFile(weightsFileOf(c.unet.weights, 'conv_in.weight', ck), () => buildUNet(c.unet.config, c.unet.weights).build());
    }
  };

  let runs = 0;
  for (let c = 0; c < o.count; c++) {
    const isFile = c % 4 === 3; // a quarter of the cases are model files
    if (!isFile) {
      stats.workflows.cases++;
      const ex = r.pick(examples);
      const doc = JSON.parse(JSON.stringify(ex.doc)) as Doc;
      const how: string[] = [];
      for (let i = 0, n = r.next() < 0.5 ? 1 : 2 + r.int(3); i < n; i++) how.push(mutateWorkflow(doc, r, types, modelNames));
      const what = `case ${c}: ${ex.name}: ${how.join(', ')}`;
      current = what;
      try {
        const parsed = parseWorkflow(doc);
        if (!parsed.workflow || parsed.errors.length) {
          stats.workflows.refusedByParse++;
          for (const e of parsed.errors) if (!e.message || INTERNAL.test(e.message)) fail(c, 'internal', what, e.message);
          continue;
        }
        const errors = engine.executor.validate(parsed.workflow, new PathResolver(models, examplesDir, null));
        if (errors.length) {
          stats.workflows.refusedByValidation++;
          for (const e of errors) {
            if (INTERNAL.test(e.message)) fail(c, 'internal', what, e.message);
            else if (!e.node && !/node|edge|workflow|cycle|param/i.test(e.message)) fail(c, 'unnamed', what, e.message);
          }
          continue;
        }
        stats.workflows.valid++;
        if (stats.workflows.valid % o.runEvery === 1 || o.runEvery === 1) {
          stats.workflows.run++;
          runs++;
          const res = await runOnce(c, 'workflow', what, parsed.workflow);
          if (res === 'ok') stats.workflows.runOk++;
          else if (res === 'node') stats.workflows.runRefusedOnNode++;
        }
      } catch (e) {
        fail(c, 'crash', what, `threw: ${(e as Error).stack ?? e}`);
      }
    } else {
      stats.files.cases++;
      const t = r.pick(targets);
      const { bytes, how } = corrupt(t.original, r);
      const what = `case ${c}: ${t.kind} ${path.basename(t.file)}: ${how}`;
      current = what;
      fs.writeFileSync(t.file, bytes);
      const name = path.basename(t.file);
      const kind = (stats.byKind[t.kind] ??= { cases: 0, refused: 0 });
      kind.cases++;
      try {
        let refused = false;
        try {
          load(t.kind, t.file);
          const warn = weightValueProblem(t.file);
          if (warn) stats.files.warned++;
        } catch (e) {
          refused = true;
          const msg = (e as Error).message ?? String(e);
          kind.refused++;
          kind.first ??= msg.slice(0, 300);
          if (INTERNAL.test(msg)) fail(c, 'internal', what, msg);
          else if (!msg.includes(name) && !msg.includes(path.dirname(t.file))) fail(c, 'unnamed-file', what, msg);
        }
        if (refused) stats.files.refusedByLoader++;
        else stats.files.accepted++;
        if (stats.files.cases % o.runEvery === 1 || o.runEvery === 1) {
          stats.files.run++;
          runs++;
          const ex = examples.find((x) => x.name === t.example)!;
          const parsed = parseWorkflow(JSON.parse(JSON.stringify(ex.doc)));
          const res = await runOnce(c, 'file', what, parsed.workflow!, refused ? name : undefined);
          if (res === 'ok') stats.files.runOk++;
          else if (res === 'node') stats.files.runRefusedOnNode++;
        }
      } catch (e) {
        fail(c, 'crash', what, `threw: ${(e as Error).stack ?? e}`);
      } finally {
        fs.writeFileSync(t.file, t.original);
      }
    }
    if (!o.json && (c + 1) % 500 === 0) process.stderr.write(`fuzz: ${c + 1}/${o.count} cases, ${failures.length} failures, ${runs} runs\n`);
  }

  // The engine that took every case still works: the files are back as they were, and a clean example runs.
  current = 'usable afterwards';
  for (const t of targets) fs.writeFileSync(t.file, t.original);
  for (const name of ['image-prompt.json', 'ip-canny-controlnet.json']) {
    const clean = parseWorkflow(JSON.parse(JSON.stringify(examples.find((x) => x.name === name)!.doc))).workflow!;
    if ((await runOnce(-1, 'usable', `${name} after the run`, clean)) !== 'ok')
      fail(-1, 'unusable', name, `${name} does not run on the engine after the fuzz cases`);
  }
  stats.usableAfterwards = !failures.some((f) => f.kind === 'unusable');

  // A shared workflow writes only into the output folder (and the app its user-data folder).
  current = 'final check';
  for (const f of listFiles(tmp, new Set([out, user]))) if (!before.has(f)) fail(-1, 'wrote-outside', f, `a file appeared outside the output folder: ${f}`);
  await engine.close();
  fs.rmSync(tmp, { recursive: true, force: true });
  finish();

  function finish(): never {
    const report = { seed: o.seed, count: o.count, runEvery: o.runEvery, ...stats, failures, wallSeconds: Math.round((Date.now() - t0) / 100) / 10 };
    if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      process.stdout.write(`${JSON.stringify({ ...report, failures: failures.length }, null, 2)}\n`);
      for (const f of failures.slice(0, 50)) process.stdout.write(`FAIL ${f.kind} ${f.what}\n  ${f.message}\n`);
    }
    process.exit(failures.length ? 1 : 0);
  }
}

void main();
