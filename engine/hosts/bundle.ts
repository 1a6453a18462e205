/**
 * Shared-workflow bundles, written and opened (the format, and why it is JSON: engine/bundle-format.ts).
 * Both hosts answer exportBundle / importBundle with these, the CLI runs bundles with openBundle
 * and writes them with `npm run share`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NodeSpec } from '../../nodes/spec.js';
import type { Workflow } from '../api.js';
import { BUNDLE_FORMAT, BUNDLE_IMAGE_TYPES, BUNDLE_VERSION, BundleSchema, MAX_BUNDLE_BYTES, type Bundle, type BundleImage } from '../bundle-format.js';
import { imageUses, inputsFileOf, inputsRef, isAbsoluteRef, mapImageRefs, refBaseName } from '../image-refs.js';
import { isInsideReal, type PathResolver } from '../paths.js';
import { summarise } from '../protocol.js';
import { parseWorkflow } from '../workflow.js';
import { imageSize, nameMatchesHash, sha256, storedNameOf, storeImageBytes, type StoredImage } from './inputs-store.js';

export interface CreatedBundle {
  bundle: Bundle;
  /** The file's text (two-space JSON). */
  text: string;
  /** The images it carries, and which node params use each. */
  images: { file: string; bytes: number; uses: string[] }[];
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/**
 * The bundle of `input`: every image and mask it uses (resolved as a run resolves them: next to
 * the workflow, in the inputs folder, or an absolute path), each stored once by content hash and
 * referred to as `inputs/<file>`; models by their name within the models folder. Throws one
 * sentence per problem (a missing image, a model outside the models folder), each naming its node.
 */
export function createBundle(input: Workflow, specs: readonly NodeSpec[], paths: PathResolver): CreatedBundle {
  const parsed = parseWorkflow(input);
  if (!parsed.workflow) throw new Error(parsed.errors.map((e) => e.message).join('; '));
  const wf = parsed.workflow;
  const problems: string[] = [];
  const images: Bundle['images'] = {};
  const listed = new Map<string, CreatedBundle['images'][number]>();
  const refOf = new Map<string, string>();
  let total = 0;

  for (const use of imageUses(wf, specs)) {
    const where = `${use.title} (${use.node})`;
    const file = paths.resolveImage(use.ref);
    if (!file) {
      problems.push(`${where}: ${paths.missingImage(use.ref)}`);
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      problems.push(`${where}: cannot read ${use.ref}: ${(e as Error).message}`);
      continue;
    }
    const size = imageSize(bytes);
    if (!size) {
      problems.push(`${where}: ${use.ref} is not a PNG, JPEG or WebP image`);
      continue;
    }
    const hash = sha256(bytes);
    if (!images[hash]) {
      const stored = storedNameOf(refBaseName(use.ref), hash, size.ext);
      const type = BUNDLE_IMAGE_TYPES[size.ext as keyof typeof BUNDLE_IMAGE_TYPES];
      images[hash] = { file: stored, type, data: bytes.toString('base64') } satisfies BundleImage;
      listed.set(hash, { file: stored, bytes: bytes.length, uses: [] });
      total += bytes.length;
    }
    listed.get(hash)!.uses.push(`${use.node}.${use.param}`);
    refOf.set(`${use.node}\0${use.param}`, inputsRef(images[hash].file));
  }

  // Models: by name within <models>/<kind>; an absolute path inside it becomes that name.
  const models: { kind: string; name: string }[] = [];
  const nodes = wf.nodes.map((n) => {
    const spec = specs.find((s) => s.type === n.type);
    if (!spec) return n;
    const params = { ...n.params };
    for (const p of spec.params) {
      const v = params[p.name];
      if (p.kind !== 'file' || typeof v !== 'string' || !v) continue;
      let name = v;
      if (path.isAbsolute(v)) {
        const rel = path.relative(path.join(paths.modelsDir, p.modelKind), v);
        if (!rel || rel.startsWith('..') || path.isAbsolute(rel)) {
          problems.push(
            `${spec.title} (${n.id}): param "${p.name}" is the absolute path ${v}, outside the models folder's ${p.modelKind}/; a shared workflow names each model within the models folder (choose it from the list on the node)`,
          );
          continue;
        }
        name = rel.split(path.sep).join('/');
        params[p.name] = name;
      }
      if (!models.some((m) => m.kind === p.modelKind && m.name === name)) models.push({ kind: p.modelKind, name });
    }
    return { ...n, params };
  });
  if (problems.length) throw new Error(`cannot export for sharing: ${problems.join('; ')}`);

  const shared = mapImageRefs({ ...wf, nodes }, specs, (u) => refOf.get(`${u.node}\0${u.param}`) ?? u.ref);
  const bundle: Bundle = { format: BUNDLE_FORMAT, version: BUNDLE_VERSION, workflow: shared as unknown as Bundle['workflow'], images, models };
  const text = `${JSON.stringify(bundle, null, 2)}\n`;
  if (text.length > MAX_BUNDLE_BYTES) {
    throw new Error(
      `cannot export for sharing: the images come to ${mib(total)} (${mib(text.length)} as text), more than a bundle may hold (${mib(MAX_BUNDLE_BYTES)}); use smaller images`,
    );
  }
  return { bundle, text, images: [...listed.values()] };
}

export interface OpenedBundle {
  workflow: Workflow;
  /** The images stored in the inputs folder (`written` false for those already there). */
  images: StoredImage[];
  /** Set when the workflow inside was saved by an older version (and migrated). */
  migratedFrom?: number;
}

/** Parses a bundle's text (or parsed JSON) with its schema; throws a sentence when it is not a good one. */
export function parseBundle(input: unknown): Bundle {
  let doc = input;
  if (typeof doc === 'string') {
    if (doc.length > MAX_BUNDLE_BYTES) throw new Error(`the shared workflow is ${mib(doc.length)}; at most ${mib(MAX_BUNDLE_BYTES)} can be opened`);
    try {
      doc = JSON.parse(doc);
    } catch (e) {
      throw new Error(`the shared workflow is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  const r = BundleSchema.safeParse(doc);
  if (!r.success) throw new Error(`not a valid shared workflow: ${summarise(r.error)}`);
  if (r.data.version > BUNDLE_VERSION) {
    throw new Error(
      `the shared workflow is version ${r.data.version}, made by a newer IP-Adapter Studio; this build opens version ${BUNDLE_VERSION}. Update the app to open it.`,
    );
  }
  return r.data;
}

/**
 * Opens a bundle: checks every image against its SHA-256 (and the hash in its name), stores the
 * images the graph uses into `inputsDir` (deduplicated by content: an image already there is not
 * written again) and returns the workflow with its image params pointing at them.
 */
export function openBundle(input: unknown, specs: readonly NodeSpec[], inputsDir: string): OpenedBundle {
  const bundle = parseBundle(input);
  const parsed = parseWorkflow(bundle.workflow);
  if (!parsed.workflow) throw new Error(`the shared workflow's graph: ${parsed.errors.map((e) => e.message).join('; ')}`);
  const byFile = new Map(Object.entries(bundle.images).map(([hash, img]) => [img.file, { hash, img }]));
  const used = new Set(
    imageUses(parsed.workflow, specs)
      .map((u) => inputsFileOf(u.ref))
      .filter((f): f is string => f !== null),
  );
  const stored = new Map<string, StoredImage>();
  for (const file of used) {
    const entry = byFile.get(file);
    if (!entry) continue; // shows as missing on its node
    const bytes = Buffer.from(entry.img.data, 'base64');
    if (sha256(bytes) !== entry.hash || !nameMatchesHash(file, entry.hash)) {
      throw new Error(`the shared workflow's image ${file} is damaged: its bytes do not match the SHA-256 it was saved with`);
    }
    stored.set(file, storeImageBytes(inputsDir, file, bytes));
  }
  const workflow = mapImageRefs(parsed.workflow, specs, (u) => {
    const f = inputsFileOf(u.ref);
    return (f !== null && stored.get(f)?.value) || u.ref;
  });
  return { workflow, images: [...stored.values()], ...(parsed.migratedFrom !== undefined ? { migratedFrom: parsed.migratedFrom } : {}) };
}

/** The most one image beside a workflow may weigh to be read with it (the upload limit's size). */
const MAX_BESIDE_BYTES = 24 * 2 ** 20;

/**
 * The images a workflow file names relative to itself, read from beside it (the desktop host
 * opening a file it knows the folder of): only refs inside the file's folder (no `..`, no symlink
 * out of it), only PNG/JPEG/WebP files, at most 64 of them. The renderer stores them in the inputs
 * folder exactly like images picked together with the workflow in a browser.
 */
export function imagesBeside(text: string, dir: string, specs: readonly NodeSpec[]): { ref: string; bytes: Buffer }[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return [];
  }
  const parsed = parseWorkflow(doc);
  if (!parsed.workflow) return [];
  const root = path.resolve(dir);
  const out: { ref: string; bytes: Buffer }[] = [];
  for (const ref of new Set(imageUses(parsed.workflow, specs).map((u) => u.ref))) {
    if (out.length >= 64 || isAbsoluteRef(ref) || ref.includes('\0')) continue;
    const full = path.resolve(root, ref);
    if (!full.startsWith(root + path.sep) || !isInsideReal(root, full, false)) continue;
    try {
      const st = fs.statSync(full);
      if (!st.isFile() || st.size > MAX_BESIDE_BYTES) continue;
      const bytes = fs.readFileSync(full);
      if (imageSize(bytes)) out.push({ ref, bytes });
    } catch {
      /* not there: the node shows it missing */
    }
  }
  return out;
}
