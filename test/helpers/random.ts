/** test/helpers: code shared by tests and benches — seeded random numbers. */

/**
 * A reproducible stream of uniform numbers in [-0.5, 0.5) from `seed` (the Numerical Recipes
 * 32-bit LCG), for random weights and inputs: the same seed gives the same values on every run
 * and machine. Not for anything that needs statistical quality.
 */
export function seededUniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}
