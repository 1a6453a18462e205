/**
 * e2e section (issue 3): the image-prompt workflow run by the engine on SD1.5-size models with
 * random weights (engine/bench-e2e.ts writes them as a ComfyUI models folder in the real layouts),
 * 512x512, IP-Adapter, CFG, 2 DDIM steps (or --steps N): seconds per step, model load seconds
 * (first run minus second run), peak RSS. The image prompt is examples/images/image-prompt.png
 * unless --image names another. Uses the engine's own session options; --opt / --prepack /
 * --attention / --threads do not apply. Takes several minutes on 2 cores; peak RSS is the
 * process's, so run it alone (`--only e2e`) for its own figure.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchEndToEnd } from '../../engine/bench-e2e.js';
import type { Args } from './common.js';

const EXAMPLE_IMAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'images', 'image-prompt.png');

export async function benchE2e(_dir: string, a: Args): Promise<Record<string, unknown>> {
  const image = path.resolve(a.image ?? EXAMPLE_IMAGE);
  const r = await benchEndToEnd({ image, steps: a.stepsGiven ? a.steps : 2, size: 512, provider: a.provider, keep: a.keep });
  return { ...r, image: path.relative(process.cwd(), image) };
}
