/**
 * Seeds, their noise generator and what happens to them after a run, shared by the engine, the
 * node definitions and the editor (pure: no Node, no native code; eslint.config.js RENDERER_SHARED).
 *
 * - A seed is an integer in [0, 2^64), as ComfyUI's seed widgets take (torch.manual_seed's
 *   unsigned range). In a workflow it is a JSON number while it is below 2^53 (every seed saved
 *   before version 2 is one; JavaScript reads larger JSON numbers inexactly), else a decimal
 *   string: `"18446744073709551615"`. Anything else, a negative seed, 2^64 or more, or a JSON
 *   number above 2^53 (already rounded when it was read) is refused at validation.
 * - `noise` says which generator turns the seed into noise: `torch` (torch.randn on the CPU from
 *   manual_seed(seed), what ComfyUI and diffusers draw; models/sampling/torch-randn.ts) or
 *   `philox` (engine/rng.ts, the noise of workflows saved before version 2).
 * - `control_after_generate` is ComfyUI's: after the editor queues a run, `fixed` keeps the seed,
 *   `increment` / `decrement` step it by one (clamped to [0, 2^64 - 1]), `randomize` draws a new one
 *   (below 2^50, ComfyUI's limit for a JavaScript number).
 */

export const SEED_LIMIT = 1n << 64n;
export const NOISE_GENERATORS = ['torch', 'philox'] as const;
export type NoiseGenerator = (typeof NOISE_GENERATORS)[number];
export const SEED_CONTROLS = ['fixed', 'increment', 'decrement', 'randomize'] as const;
export type SeedControl = (typeof SEED_CONTROLS)[number];
/** ComfyUI's randomize range (widgets: max limited to 1125899906842624 = 2^50). */
export const RANDOMIZE_LIMIT = 2 ** 50;

/** Why `v` is not a seed, or null when it is one. */
export function seedProblem(v: unknown): string | null {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return `must be a whole number, found ${v}`;
    if (v < 0) return `${v} is below 0 (seeds are integers in [0, 2^64))`;
    if (!Number.isSafeInteger(v))
      return `${v} is above 2^53 as a JSON number, which JavaScript has already rounded; write seeds from 2^53 up to 2^64 - 1 as a decimal string, e.g. "18446744073709551615"`;
    return null;
  }
  if (typeof v === 'string') {
    if (!/^\d+$/.test(v)) return `must be a whole number in [0, 2^64) (a JSON number, or a decimal string above 2^53), found ${JSON.stringify(v)}`;
    if (BigInt(v) >= SEED_LIMIT) return `${v} is not below 2^64 (18446744073709551616): seeds are integers in [0, 2^64)`;
    return null;
  }
  return `must be a whole number in [0, 2^64), found ${JSON.stringify(v)}`;
}

/** The seed a param value holds (check it with seedProblem first: this throws its sentence). */
export function parseSeed(v: unknown): bigint {
  const bad = seedProblem(v);
  if (bad) throw new Error(`seed ${bad}`);
  return BigInt(v as number | string);
}

/** A seed as a workflow stores it: a number below 2^53, else a decimal string. */
export function seedValue(s: bigint): number | string {
  if (s < 0n || s >= SEED_LIMIT) throw new Error(`seed ${s} is outside [0, 2^64)`);
  return s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s.toString();
}

/** The seed after a run with `control` (ComfyUI's control_after_generate); `value` must be a seed. */
export function seedAfterGenerate(value: unknown, control: unknown, random: () => number = Math.random): number | string {
  const s = parseSeed(value);
  switch (control) {
    case 'increment':
      return seedValue(s + 1n < SEED_LIMIT ? s + 1n : s);
    case 'decrement':
      return seedValue(s > 0n ? s - 1n : 0n);
    case 'randomize':
      return Math.floor(random() * RANDOMIZE_LIMIT);
    default:
      return seedValue(s);
  }
}
