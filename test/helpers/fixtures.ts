/**
 * Where the reference fixture folders are, for the conformance runner and the tests that read them.
 *
 * `IPA_FIXTURES` is a list of fixture folders separated by `:` (`;` on Windows, path.delimiter),
 * e.g. `../shared/fixtures/tiny-sd15:../shared/fixtures/model-files`; unset, every folder under
 * `<repo>/../shared/fixtures/` is one. A folder is known by its name (`tiny-sd15`, `model-files`,
 * `samplers`) or, for a copy under another name, by the first word of its cases.json `format`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The default fixtures root: `shared/fixtures` beside the repository. */
export const DEFAULT_FIXTURES_ROOT = path.join(REPO_ROOT, '..', 'shared', 'fixtures');

/** The folders IPA_FIXTURES lists (resolved), or null when it is unset or empty. */
export function listedFixtureFolders(env: string | undefined = process.env.IPA_FIXTURES): string[] | null {
  if (env === undefined || !env.trim()) return null;
  return env
    .split(path.delimiter)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => path.resolve(s));
}

/** Every folder under the default fixtures root, sorted (empty when the root is absent). */
export function defaultFixtureFolders(root = DEFAULT_FIXTURES_ROOT): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => (e.isDirectory() || e.isSymbolicLink()) && !e.name.startsWith('.') && fs.statSync(path.join(root, e.name)).isDirectory())
    .map((e) => path.join(root, e.name))
    .sort();
}

/** The set name of a fixture folder: its folder name, or the first word of its cases.json `format`. */
function setNames(dir: string): string[] {
  const names = [path.basename(dir)];
  try {
    const format = (JSON.parse(fs.readFileSync(path.join(dir, 'cases', 'cases.json'), 'utf8')) as { format?: unknown }).format;
    if (typeof format === 'string') names.push(format.split(/\s+/)[0]);
  } catch {
    // no readable cases.json: known by its folder name only
  }
  return names;
}

/**
 * The fixture folder of one set (`tiny-sd15`, `model-files`, ...): the IPA_FIXTURES entry of that
 * name, else `<repo>/../shared/fixtures/<name>`. The path may not exist (tests skip then).
 */
export function fixtureFolder(name: string, env: string | undefined = process.env.IPA_FIXTURES): string {
  const listed = listedFixtureFolders(env) ?? [];
  return listed.find((d) => path.basename(d) === name) ?? listed.find((d) => setNames(d).includes(name)) ?? path.join(DEFAULT_FIXTURES_ROOT, name);
}
