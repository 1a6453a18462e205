/**
 * Start-up configuration shared by the web host, the desktop host and the CLI: the per-user
 * folder, settings.json (read with schema validation, written atomically), which providers to
 * offer, the hosts' notices, and building the renderer when it is stale.
 *
 * Settings precedence everywhere: command-line flags, then settings.json, then defaults under the
 * user-data folder (IPA_STUDIO_USER_DATA or ~/.ipadapter-studio).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { EngineSettings } from '../api.js';
import { MODEL_KINDS, type ModelKind } from '../../nodes/spec.js';
import { listModels } from '../paths.js';
import type { Provider } from '../../models/providers.js';
import { writeFileAtomic } from '../../models/fs-atomic.js';
import { EngineSettingsSchema, type ModelsFolderReport } from '../protocol.js';

/** The repository root: engine/hosts/../.. in development (web mode and the CLI run from the sources). */
export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The app's per-user folder: models, outputs, inputs, caches and settings.json. */
export function defaultUserData(env: Record<string, string | undefined> = process.env): string {
  return env.IPA_STUDIO_USER_DATA || path.join(os.homedir(), '.ipadapter-studio');
}

export const settingsFileOf = (userData: string) => path.join(userData, 'settings.json');

/**
 * The saved settings: each field validated on its own with EngineSettingsSchema.partial(), so a
 * bad provider does not throw away a good models folder. A missing, unreadable or corrupt file
 * reads as {} (the defaults apply); empty paths are ignored.
 */
export function readSettings(file: string): Partial<EngineSettings> {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const shape = EngineSettingsSchema.partial().shape;
  const out: Partial<EngineSettings> = {};
  for (const key of Object.keys(shape) as (keyof EngineSettings)[]) {
    const v = (raw as Record<string, unknown>)[key];
    const r = shape[key].safeParse(v);
    if (v !== undefined && v !== '' && r.success) Object.assign(out, { [key]: r.data });
  }
  return out;
}

const saving = new Map<string, Promise<void>>();

/**
 * Writes settings.json atomically (a crash never leaves half a file). Saves of one file run in
 * order, so the last change made is the one that stays.
 */
export function saveSettings(file: string, s: EngineSettings): Promise<void> {
  const text = JSON.stringify(EngineSettingsSchema.parse(s), null, 2) + '\n';
  const next = (saving.get(file) ?? Promise.resolve()).catch(() => {}).then(() => writeFileAtomic(file, text));
  saving.set(file, next);
  void next
    .finally(() => {
      if (saving.get(file) === next) saving.delete(file);
    })
    .catch(() => {});
  return next;
}

/**
 * Why a settings change may not be saved, or null: the models and output folders it names must
 * be existing folders (through symlinks), not files, so "Open Output / Models Folder" can only
 * ever open a folder, even when a compromised renderer sends the change. Checked by both hosts
 * before the engine takes the change and before it is written to settings.json. A folder equal to
 * the one in `current` is not checked again (the editor sends every field with each change).
 */
export function settingsFolderProblem(update: Partial<EngineSettings>, current?: EngineSettings): string | null {
  const label = { modelsDir: 'models folder', outputDir: 'output folder' } as const;
  for (const key of ['modelsDir', 'outputDir'] as const) {
    const p = update[key];
    if (p === undefined || p === current?.[key]) continue;
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p, { throwIfNoEntry: false });
    } catch (e) {
      return `the ${label[key]} ${p} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
    }
    if (!st) return `the ${label[key]} ${p} does not exist; create it first or choose another folder`;
    if (!st.isDirectory()) return `the ${label[key]} ${p} is not a folder`;
  }
  return null;
}

/** The kinds an image-prompt workflow needs at least one of; the report names those the folder lacks. */
export const NEEDED_KINDS: readonly ModelKind[] = ['checkpoints', 'ipadapter', 'clip_vision'];

/**
 * What a models folder holds, per kind, and why it cannot be used (it does not exist, is a file,
 * cannot be read), naming its path. Settings shows it as the path is typed and hosts say it on start.
 */
export function modelsFolderReport(dir: string): ModelsFolderReport {
  const zero = Object.fromEntries(MODEL_KINDS.map((k) => [k, 0])) as Record<ModelKind, number>;
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir, { throwIfNoEntry: false });
  } catch (e) {
    return {
      dir,
      problem: `the models folder ${dir} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      counts: zero,
      missing: [...NEEDED_KINDS],
    };
  }
  if (!st)
    return { dir, problem: `the models folder ${dir} does not exist; create it first or choose another folder`, counts: zero, missing: [...NEEDED_KINDS] };
  if (!st.isDirectory()) return { dir, problem: `the models folder ${dir} is not a folder`, counts: zero, missing: [...NEEDED_KINDS] };
  const listed = listModels(dir);
  const counts = Object.fromEntries(MODEL_KINDS.map((k) => [k, listed[k].length])) as Record<ModelKind, number>;
  return { dir, problem: null, counts, missing: NEEDED_KINDS.filter((k) => counts[k] === 0) };
}

/** One sentence for a report's missing kinds ("no checkpoints, ipadapter or clip_vision models in <dir>/…"), or null. */
export function missingModelsSentence(r: ModelsFolderReport): string | null {
  if (r.problem) return r.problem;
  if (!r.missing.length) return null;
  const names = r.missing.map((k) => `${k}/`);
  const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : names[0];
  const none = r.missing.length === NEEDED_KINDS.length && Object.values(r.counts).every((n) => n === 0);
  return none
    ? `The models folder ${r.dir} has no models (looked in ${list} and the other kinds' folders); add SD1.5 files there, choose another folder, or use the demo models.`
    : `The models folder ${r.dir} has nothing in ${list}; workflows that load those will not run until you add some.`;
}

export interface SettingsFlags {
  models?: string;
  out?: string;
  provider?: EngineSettings['provider'];
  userData: string;
}

/** Settings for a host: flags win over the saved file, which wins over the defaults under the user-data folder. */
export function resolveSettings(flags: SettingsFlags, settingsFile = settingsFileOf(flags.userData)): EngineSettings {
  const saved = readSettings(settingsFile); // each field validated; every saved one is kept (demo models, CPU and GPU precision, Run on, ...)
  return {
    ...saved,
    modelsDir: flags.models ?? saved.modelsDir ?? path.join(flags.userData, 'models'),
    outputDir: flags.out ?? saved.outputDir ?? path.join(flags.userData, 'outputs'),
    provider: flags.provider ?? saved.provider ?? 'cpu',
  };
}

/** onnxruntime-node's bin/napi-v6 folder (per platform/arch subfolders), or null when it is not installed. */
export function ortBinDir(): string | null {
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    return path.join(path.dirname(pkg), 'bin', 'napi-v6');
  } catch {
    return null;
  }
}

/**
 * Providers worth offering here (the engine still falls back to CPU with a notice): CPU and
 * WebGPU everywhere, CUDA where its provider library was installed, DirectML on Windows.
 */
export function providersHere(binDir: string | null = ortBinDir(), platform = process.platform, arch = process.arch): Provider[] {
  const list: Provider[] = ['cpu', 'webgpu'];
  let files: string[] = [];
  try {
    if (binDir) files = fs.readdirSync(path.join(binDir, platform, arch));
  } catch {
    /* no binaries for this platform: CPU and WebGPU are still offered, the engine reports failures */
  }
  if (files.some((f) => /providers_cuda/.test(f))) list.push('cuda');
  if (platform === 'win32') list.push('dml');
  return list;
}

export const DEMO_HOST_NOTICE = 'Demo models: tiny random weights, so images are noise. Point Settings → Models folder at real SD1.5 models.';

/**
 * The notices a host shows on start: the demo models in use; `--demo` given while a models folder
 * is set (it is not used this session, and says so); a models folder that is missing or has no models.
 * `demoFlag`: the host was started with --demo; `modelsSet`: the models folder came from --models or settings.json.
 */
export function hostNotices(engine: { isDemo(): boolean; settings(): EngineSettings }, opts: { demoFlag?: boolean; modelsSet?: boolean } = {}): string[] {
  const s = engine.settings();
  if (engine.isDemo()) {
    const out = [DEMO_HOST_NOTICE];
    if (opts.demoFlag && opts.modelsSet) out.push(`Started with --demo: the models folder ${s.modelsDir} is not used this session (the demo models are).`);
    return out;
  }
  const bad = missingModelsSentence(modelsFolderReport(s.modelsDir));
  return bad ? [bad] : [];
}

/** Builds the renderer (vite) when dist-renderer/ is missing or older than renderer/. Returns dist-renderer/. */
export function ensureRendererBuilt(root = PROJECT_ROOT, log: (msg: string) => void = console.log): string {
  const out = path.join(root, 'dist-renderer');
  const index = path.join(out, 'index.html');
  const newest = (dir: string): number =>
    fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = path.join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
    }, 0);
  const srcDir = path.join(root, 'renderer');
  const stale = !fs.existsSync(index) || (fs.existsSync(srcDir) && newest(srcDir) > fs.statSync(index).mtimeMs);
  if (stale) {
    log('Building the editor (vite)…');
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], {
      cwd: root,
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error('building the renderer failed');
  }
  return out;
}
