/**
 * Paths in workflows. Model params name a file or folder under `<models>/<kind>/` (ComfyUI
 * layout), or a path relative to the workflow's own folder, or an absolute path. Image params
 * (engine/image-refs.ts) resolve against the workflow's folder, and `inputs/<file>` refs against
 * the user-data inputs folder; never against the current directory (a web host's working folder
 * is the app's, not the workflow's). Saved images may only land inside the output folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MODEL_KINDS, type ModelKind } from '../nodes/spec.js';
import { inputsFileOf } from './image-refs.js';

/** Folder names that make a directory one model (not a folder of models). */
function isModelFolder(kind: ModelKind, dir: string): boolean {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  switch (kind) {
    case 'checkpoints':
      return has('model_index.json') || has('unet');
    case 'clip_vision':
    case 'controlnet':
    case 'vae':
      return has('config.json');
    case 'tokenizers':
      return has('vocab.json');
    default:
      return false;
  }
}

export class PathResolver {
  /**
   * @param workflowDir the folder of the workflow file (null: opened without one, e.g. in a browser)
   * @param inputsDir the user-data inputs folder, for `inputs/<file>` refs
   */
  constructor(
    readonly modelsDir: string,
    readonly workflowDir: string | null = null,
    readonly inputsDir: string | null = null,
  ) {}

  /** Places a model param is looked up, in order. */
  modelCandidates(kind: ModelKind, name: string): string[] {
    if (path.isAbsolute(name)) return [name];
    const out = [path.join(this.modelsDir, kind, name)];
    if (this.workflowDir) out.push(path.join(this.workflowDir, name));
    return out;
  }

  /** The absolute path of a model param, or null when none of the candidates exists. */
  resolveModel(kind: ModelKind, name: string): string | null {
    if (!name) return null;
    return this.modelCandidates(kind, name).find((p) => fs.existsSync(p)) ?? null;
  }

  /** Places an image ref is looked up, in order: next to the workflow, then (`inputs/<file>`) the inputs folder. */
  imageCandidates(name: string): string[] {
    if (path.isAbsolute(name)) return [name];
    const out: string[] = [];
    if (this.workflowDir) out.push(path.join(this.workflowDir, name));
    const stored = inputsFileOf(name);
    if (stored !== null && this.inputsDir) out.push(path.join(this.inputsDir, stored));
    return out;
  }

  /** The first candidate that exists and is not a folder (validation refuses one that is not a regular file). */
  resolveImage(name: string): string | null {
    if (!name) return null;
    return (
      this.imageCandidates(name).find((p) => {
        try {
          const st = fs.statSync(p, { throwIfNoEntry: false });
          return st !== undefined && !st.isDirectory();
        } catch {
          return false;
        }
      }) ?? null
    );
  }

  /** A sentence for a model param that resolves nowhere, with the near matches of the same kind in the models folder. */
  missingModel(kind: ModelKind, name: string): string {
    if (!name) return `no ${kind} file chosen`;
    const base = `"${name}" not found (looked in ${this.modelCandidates(kind, name).join(', ')})`;
    const have = listModels(this.modelsDir)[kind] ?? [];
    if (!have.length) return `${base}; the models folder has no ${kind}`;
    const near = nearMatches(name, have);
    return near.length
      ? `${base}; near matches in ${kind}: ${near.join(', ')}`
      : `${base}; no near match among the ${have.length} ${kind} in the models folder`;
  }

  /** "missing: <ref>" and where it was looked for (or why nowhere). */
  missingImage(name: string): string {
    if (!name) return 'no image chosen';
    const where = this.imageCandidates(name);
    if (where.length) return `missing: ${name} (looked in ${where.join(', ')})`;
    return `missing: ${name} (a path relative to the workflow file, and this workflow was not opened from a folder: choose the image on the node)`;
  }
}

/** A name reduced to what tells models apart: lower case, no folder, no extension, letters and digits only. */
function modelKey(name: string): string {
  return (name.split(/[\\/]/).pop() ?? name)
    .toLowerCase()
    .replace(/\.(safetensors|ckpt|pt|pth|bin)$/, '')
    .replace(/[^a-z0-9]+/g, '');
}

/** Levenshtein distance (two rows). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * Up to `n` names of `candidates` close to `name`: the same key (case, separators, extension,
 * folder aside), one key containing the other, or an edit distance under 40% of the longer key.
 * Closest first.
 */
export function nearMatches(name: string, candidates: readonly string[], n = 3): string[] {
  const want = modelKey(name);
  const scored = candidates.map((c) => {
    const key = modelKey(c);
    const longer = Math.max(want.length, key.length, 1);
    let score = editDistance(want, key) / longer;
    if (key && want && (key.includes(want) || want.includes(key))) score = Math.min(score, 0.2 * (1 - Math.min(key.length, want.length) / longer) + 0.05);
    return { c, score };
  });
  return scored
    .filter((s) => s.score < 0.4)
    .sort((a, b) => a.score - b.score || a.c.localeCompare(b.c))
    .slice(0, n)
    .map((s) => s.c);
}

/**
 * Checks a Save Image filename prefix: relative, no `..` segment, no drive or root. Returns a
 * sentence saying what is wrong, or null when it is acceptable. Subfolders (`sweeps/a`) are fine.
 */
export function checkOutputPrefix(prefix: string): string | null {
  if (!prefix.trim()) return 'the filename prefix is empty';
  if (path.isAbsolute(prefix) || path.win32.isAbsolute(prefix) || /^[a-zA-Z]:/.test(prefix)) {
    return `the filename prefix "${prefix}" is an absolute path; images are written only inside the output folder`;
  }
  if (prefix.split(/[\\/]/).some((s) => s === '..')) {
    return `the filename prefix "${prefix}" contains "..", which would leave the output folder`;
  }
  if (/[\0<>:"|?*]/.test(prefix)) return `the filename prefix "${prefix}" contains a character not allowed in file names`;
  const reserved = prefix.split(/[\\/]/).find((s) => WINDOWS_RESERVED.test(s.split('.')[0]!.trimEnd()));
  if (reserved !== undefined) {
    return `the filename prefix "${prefix}" uses "${reserved}", a device name on Windows (CON, PRN, AUX, NUL, COM1-9, LPT1-9), which is not a folder or file there`;
  }
  return null;
}

/** Names Windows reserves for devices in every folder, with any extension (case-insensitive). */
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])$/i;

/**
 * True when a relative model or image name climbs above the folder it is looked up in
 * (`../x`, `a/../../x`, also with backslashes): a shared workflow reads files inside the models
 * folder, its own folder or the inputs folder, or an absolute path it names outright.
 */
export function climbsOut(name: string): boolean {
  if (path.isAbsolute(name) || path.win32.isAbsolute(name)) return false;
  const n = path.posix.normalize(name.replace(/\\/g, '/'));
  return n === '..' || n.startsWith('../');
}

/**
 * Joins a checked prefix under `outputDir`, and checks the result stays inside it, also after
 * symlinks: a subfolder of the output folder that is a symlink to elsewhere is refused.
 */
export function outputPath(outputDir: string, relative: string): string {
  const err = checkOutputPrefix(relative);
  if (err) throw new Error(err);
  const root = path.resolve(outputDir);
  const p = path.resolve(root, relative);
  if (!p.startsWith(root + path.sep)) throw new Error(`"${relative}" would be written outside the output folder ${root}`);
  if (!isInsideReal(root, p, false)) {
    throw new Error(`"${relative}" leads outside the output folder ${root} through a symbolic link`);
  }
  return p;
}

/**
 * The real path of `p`: its deepest existing ancestor (or itself) with symlinks resolved, plus
 * the components that do not exist yet. Null when that ancestor is a dangling symlink (writing
 * through it could create a file anywhere).
 */
export function realPathOf(p: string): string | null {
  let cur = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      fs.lstatSync(cur);
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return path.join(cur, ...rest);
      rest.unshift(path.basename(cur));
      cur = parent;
      continue;
    }
    try {
      return path.join(fs.realpathSync(cur), ...rest);
    } catch {
      return null;
    }
  }
}

/** True when `p` is inside `root` (or is `root`, when `allowRoot`) after resolving symlinks of both. */
export function isInsideReal(root: string, p: string, allowRoot = true): boolean {
  const realRoot = realPathOf(root);
  const real = realPathOf(p);
  if (!realRoot || !real) return false;
  if (real === realRoot) return allowRoot;
  return real.startsWith(realRoot.endsWith(path.sep) ? realRoot : realRoot + path.sep);
}

/** Weight files a model list shows: safetensors, and the torch pickles models/pickle.ts reads safely. */
const WEIGHT_FILE = /\.(safetensors|ckpt|pt|pth|bin)$/i;
/** Kinds whose loader reads safetensors only (CLIP vision refuses pickles with the convert command). */
const SAFETENSORS_ONLY: readonly ModelKind[] = ['clip_vision'];

/** True when a file of this name is listed under `kind` (never for tokenizers, which are folders). */
export function isListedModelFile(kind: ModelKind, name: string): boolean {
  if (kind === 'tokenizers') return false;
  return SAFETENSORS_ONLY.includes(kind) ? name.endsWith('.safetensors') : WEIGHT_FILE.test(name);
}

/** stat of `p` through symlinks when it can be read, else null (dangling link, loop, no permission). */
function readableStat(p: string): fs.Stats | null {
  try {
    const st = fs.statSync(p);
    fs.accessSync(p, fs.constants.R_OK);
    return st;
  } catch {
    return null;
  }
}

/**
 * Lists the models of each kind, up to two levels deep: model folders, `.safetensors` files and,
 * where the loader reads them, `.ckpt` / `.pt` / `.pth` / `.bin` pickles.
 */
export function listModels(modelsDir: string): Record<ModelKind, string[]> {
  const out = {} as Record<ModelKind, string[]>;
  for (const kind of MODEL_KINDS) {
    const found: string[] = [];
    const walk = (dir: string, rel: string, depth: number) => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
        if (e.name.startsWith('.')) continue;
        const p = path.join(dir, e.name);
        const r = rel ? `${rel}/${e.name}` : e.name;
        // Through symlinks; a dangling link, a loop, an unreadable entry or a FIFO is left out.
        const st = readableStat(p);
        if (!st) continue;
        if (st.isDirectory()) {
          if (isModelFolder(kind, p)) found.push(r);
          else if (depth < 2) walk(p, r, depth + 1);
        } else if (st.isFile() && isListedModelFile(kind, e.name)) {
          found.push(r);
        }
      }
    };
    walk(path.join(modelsDir, kind), '', 1);
    out[kind] = found;
  }
  return out;
}

/** True when the models folder holds no model at all (then the demo set is used). */
export function modelsFolderEmpty(modelsDir: string): boolean {
  const m = listModels(modelsDir);
  return MODEL_KINDS.every((k) => m[k].length === 0);
}
