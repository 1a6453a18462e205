/**
 * What a node's `execute` may use: the run's abort signal, the model store, path resolution,
 * deterministic noise, progress/log/output reporting. The executor builds one per node run.
 */
import type { ImageRef, Workflow } from './api.js';
import type { ModelStore } from './model-store.js';
import type { PathResolver } from './paths.js';

/**
 * A request for standard-normal noise. `purpose` says which draw of the pipeline it is:
 * - `latents`: the initial latents of text-to-image (diffusers: randn * init_noise_sigma),
 * - `add_noise`: the noise of scheduler.add_noise for image-to-image,
 * - `posterior`: the sample of the VAE's latent distribution (mean + std * noise),
 * - `eta`: DDIM's per-step variance noise when eta > 0 (`step` says which step),
 * - `sampler`: the per-step noise of ancestral / SDE / DDPM / LCM samplers, as ComfyUI's
 *   k-diffusion samplers draw it from their noise_sampler (`step` = how many draws came before).
 * `generator` is the node's `noise` param (engine/seed.ts); absent means `philox`.
 *
 * With `torch` the default source (engine/rng.ts seededNoise) draws what ComfyUI / diffusers draw
 * on the CPU, each request a position in one torch generator's stream:
 * - latents, add_noise, posterior: the first randn(shape) of manual_seed(seed) (ComfyUI's
 *   prepare_noise for the whole batch, the same noise for text- and image-to-image; diffusers'
 *   randn_tensor / latent_dist.sample with a CPU generator seeded with seed);
 * - eta, step k: randn number k + 1 of that same generator (diffusers: the scheduler's
 *   variance noise continues the pipeline's generator after the initial latents);
 * - sampler, step k: randn number k of manual_seed(seed + 1) (ComfyUI's default_noise_sampler
 *   for a latent on the CPU: a torch.Generator seeded with seed + 1, one randn of the whole
 *   batch per call). Every draw of one stream must have the same shape.
 * With `philox` each (seed, purpose, step) is an independent counter-based draw.
 */
export interface NoiseRequest {
  node: string;
  purpose: 'latents' | 'add_noise' | 'posterior' | 'eta' | 'sampler';
  /** An integer in [0, 2^64) (engine/seed.ts parseSeed). */
  seed: number | bigint;
  shape: number[];
  step?: number;
  generator?: 'torch' | 'philox';
}

/**
 * Where every random draw of a run comes from. The default is `seededNoise` (engine/rng.ts):
 * torch's CPU generator or a counter-based generator keyed by (seed, purpose, step), as the
 * request says. A host or test may pass another source (e.g. explicit tensors from a reference
 * run); nodes never know which one they got.
 */
export type NoiseSource = (req: NoiseRequest) => Float32Array;

/**
 * Observer of intermediate tensors (per-step latents, UNet outputs). Nodes report to it at
 * fixed points; it never changes what they compute. Used by conformance and debugging.
 */
export type TraceFn = (e: { node: string; name: string; step?: number; data: Float32Array; shape: number[] }) => void;

export interface ExecContext {
  /** Id of the node being executed. */
  readonly nodeId: string;
  readonly runId: string;
  readonly signal: AbortSignal;
  readonly models: ModelStore;
  readonly paths: PathResolver;
  readonly outputDir: string;
  /** Temp folder for previews (inside the engine's cache dir). */
  readonly tempDir: string;
  /** The workflow being run (embedded into saved PNGs). */
  readonly workflow: Workflow;
  /** The graph that runs (engine/graph-modes.ts: reroutes joined, primitives' values in their params, bypassed / muted nodes out): what a saved image's parameters describe. */
  readonly ran?: Workflow;
  readonly noise: NoiseSource;
  readonly trace?: TraceFn;
  /** Sampler progress, step in 1..total; `preview` is a small RGB PNG of the predicted clean latent. */
  progress(step: number, total: number, preview?: { width: number; height: number; png: Uint8Array }): void;
  log(level: 'info' | 'warn', message: string): void;
  /** Output nodes report the images they wrote. */
  emitImages(images: ImageRef[]): void;
  /** A node shows images on its own card (preprocessor previews); they are not run outputs. */
  previewOnNode(images: ImageRef[]): void;
}

/** Thrown when a run is cancelled; the executor reports it as `cancelled`, not as an error. */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

/** Throws CancelledError when the signal has fired (call between expensive steps). */
export function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new CancelledError();
}
