/**
 * Model names of a ComfyUI workflow matched against this app's models folder (the lists the
 * engine's listModels gives, `<models>/<kind>/...` relative names): first by the same relative
 * name, then by file name in any subfolder, then by stem (a `.ckpt` for a `.safetensors`, a
 * diffusers folder for a single file), then by kind: the closest name of that kind, preferring
 * names of the same model family (SD1.5 over SDXL, the same adapter variant), since a workflow's
 * graph is built for its family. Every match but the exact one is reported as a substitution.
 * Pure (no file access): the editor runs it over the listing it already has.
 */
import type { ModelKind } from '../../../nodes/spec.js';

export type MatchHow = 'exact' | 'renamed' | 'substituted' | 'missing' | 'unchecked';

/** A loader that picks its file by pattern (IPAdapterUnifiedLoader's presets): the pattern, what it stands for, and the usual file name. */
export interface ModelPattern {
  re: RegExp;
  what: string;
  name: string;
}

export interface ModelMatch {
  /** The value for the param: the match, or the wanted name when nothing matched. */
  value: string;
  how: MatchHow;
  /** A sentence for the report (empty for an exact match). */
  note: string;
}

/** ComfyUI writes Windows paths with backslashes; our lists use '/'. */
export const normalizeModelName = (s: string) => s.replace(/\\/g, '/').replace(/^\/+/, '');
const base = (s: string) => s.slice(s.lastIndexOf('/') + 1);
const stem = (s: string) => base(s).replace(/\.(safetensors|ckpt|pt|pth|bin|sft)$/i, '');
const tokens = (s: string) =>
  new Set(
    stem(s)
      .toLowerCase()
      .split(/[^a-z0-9]+/)
      .filter((t) => t.length > 0),
  );

/** A model family guessed from a name: what a substitution should stay within. */
export function familyOf(name: string): 'sdxl' | 'sd2' | 'sd3' | 'flux' | 'sd15' | null {
  const n = name.toLowerCase();
  if (/sdxl|[_\-. ]xl[_\-. ]|xl_|_xl|pony|illustrious/.test(n)) return 'sdxl';
  if (/flux/.test(n)) return 'flux';
  if (/sd3/.test(n)) return 'sd3';
  if (/sd2|v2-1|768-v/.test(n)) return 'sd2';
  if (/sd15|sd1\.5|sd-1-5|v1-5|sd_1\.5|1\.5/.test(n)) return 'sd15';
  return null;
}

/** Similarity of two names: shared name tokens, then the same family, then the same adapter variant words. */
function score(wanted: string, candidate: string): number {
  const a = tokens(wanted);
  const b = tokens(candidate);
  let s = 0;
  for (const t of a) if (b.has(t)) s += t.length >= 3 ? 3 : 1;
  const fw = familyOf(wanted);
  const fc = familyOf(candidate);
  if (fc === 'sdxl' || fc === 'sd2' || fc === 'sd3' || fc === 'flux')
    s -= fw === fc ? 0 : 20; // a different family is a poor stand-in
  else if (fw && fw === fc) s += 5;
  // IP-Adapter variants: plus / face / full / light / vit-g must agree to behave alike.
  for (const v of ['plus', 'face', 'full', 'light', 'vit', 'faceid', 'canny', 'lineart', 'depth', 'openpose', 'scribble', 'inpaint', 'tile']) {
    if (a.has(v) !== b.has(v)) s -= 4;
  }
  return s;
}

/**
 * Finds `wanted` (a ComfyUI model name) among `available` (one kind's listing). With `pattern`
 * (a loader that picks its files by pattern, as IPAdapterUnifiedLoader does), the first listed
 * name the pattern matches is taken, else the best of the kind.
 */
export function matchModel(kind: ModelKind, wanted: string, available: readonly string[] | undefined, pattern?: ModelPattern): ModelMatch {
  const w = normalizeModelName(wanted);
  if (!available) return { value: pattern ? pattern.name : w, how: 'unchecked', note: '' };
  if (pattern) {
    const hit = available.find((m) => pattern.re.test(m));
    if (hit) return { value: hit, how: 'exact', note: '' };
  } else {
    if (available.includes(w)) return { value: w, how: 'exact', note: '' };
    const lower = w.toLowerCase();
    const byPath = available.find((m) => m.toLowerCase() === lower);
    if (byPath) return { value: byPath, how: 'renamed', note: `"${wanted}" found as "${byPath}" (letter case differs)` };
    const byName = available.filter((m) => base(m).toLowerCase() === base(lower));
    if (byName.length) return { value: byName[0]!, how: 'renamed', note: `"${wanted}" found as "${byName[0]}" in <models>/${kind}` };
    const byStem = available.filter((m) => stem(m).toLowerCase() === stem(lower).toLowerCase());
    if (byStem.length) return { value: byStem[0]!, how: 'renamed', note: `"${wanted}" found as "${byStem[0]}" (same model, another file form)` };
  }
  const what = pattern ? pattern.what : `"${wanted}"`;
  if (!available.length) return { value: pattern ? pattern.name : w, how: 'missing', note: `${what} is not in <models>/${kind}, which is empty` };
  const ranked = [...available].map((m, i) => ({ m, s: score(pattern ? pattern.name : w, m), i })).sort((x, y) => y.s - x.s || x.i - y.i);
  const best = ranked[0]!.m;
  return { value: best, how: 'substituted', note: `${what} is not in <models>/${kind}; "${best}" is used instead (the closest ${kind} model there)` };
}
