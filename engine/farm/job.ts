/**
 * A render-farm job as it travels through Redis (BullMQ job data) and what a worker returns. A job
 * is one plain workflow (a sweep already expanded: engine/sweep.ts) plus the bytes of every image it
 * uses, in the sharing bundle's image table (engine/bundle-format.ts: keyed by SHA-256, checked on
 * arrival), and `refs` saying which image ref of the workflow is which bytes, so the worker runs the
 * very workflow the submitter would (its PNGs carry it byte for byte). Models travel by name within
 * the models folder, never as paths. The worker validates all of it with these schemas and the
 * workflow schema of the editor's channels before anything is written.
 */
import { z } from 'zod';
import { BundleImageSchema } from '../bundle-format.js';
import { MODEL_KINDS } from '../../nodes/spec.js';

/** The BullMQ queue every submitter and worker of a farm shares (one per Redis database). */
export const FARM_QUEUE = 'ipadapter-studio-jobs';
/** BullMQ's key prefix for it. */
export const FARM_PREFIX = 'ipas';
/** The Redis hash of online workers (field: worker id, value: WorkerInfo JSON), and the cancel channel. */
export const WORKERS_KEY = `${FARM_PREFIX}:farm:workers`;
export const CANCEL_CHANNEL = `${FARM_PREFIX}:farm:cancel`;
/** A worker whose heartbeat is older than this is offline. */
export const WORKER_TTL_MS = 10_000;
export const HEARTBEAT_MS = 2_000;

const Sha = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lower-case hex');
/** A model name within <models>/<kind>/: relative, no `..`, no drive or root. */
const ModelName = z
  .string()
  .min(1)
  .max(512)
  .refine(
    (s) => !/^([a-zA-Z]:|[\\/])/.test(s) && !s.split(/[\\/]/).includes('..') && !s.includes('\0'),
    'a name within the models folder (no absolute path, no "..")',
  );

export const FarmJobSchema = z.object({
  v: z.literal(1),
  /** The batch (one sweep, or one run) the job belongs to: [\w-] only, it is part of the job id. */
  batch: z.string().regex(/^[\w-]{1,64}$/),
  index: z.number().int().min(0),
  of: z.number().int().min(1),
  label: z.string().max(2000),
  /** The workflow (parsed with engine/workflow.ts and validated like every run, on the worker too). */
  workflow: z.record(z.string(), z.unknown()),
  images: z.record(Sha, BundleImageSchema),
  /** Image ref in the workflow -> the SHA-256 of its bytes in `images`. */
  refs: z.record(z.string().max(1024), Sha),
  /** Every model the workflow names (the worker refuses the job when one is missing from its folder). */
  models: z.array(z.object({ kind: z.enum(MODEL_KINDS), name: ModelName })).max(256),
  /** Worker ids that refused the job for missing models (it waits for another one). */
  refusedBy: z.array(z.string().max(200)).max(1000).optional(),
});
export type FarmJob = z.infer<typeof FarmJobSchema>;

/** What a worker returns: the PNGs, by their path relative to its output folder. */
export const FarmResultSchema = z.object({
  images: z.array(
    z.object({
      name: z.string().max(1024),
      data: z.string(),
    }),
  ),
  worker: z.string(),
  ms: z.number(),
});
export type FarmResult = z.infer<typeof FarmResultSchema>;

/** Job progress (BullMQ job.updateProgress), one per sampler step. */
export interface FarmProgress {
  node: string;
  step: number;
  total: number;
}

/** What each online worker says of itself in WORKERS_KEY. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  concurrency: number;
  /** Model names in its folder, by kind. */
  models: Record<string, string[]>;
  busy: number;
  seen: number;
}

export const jobIdOf = (batch: string, index: number): string => `${batch}-${index}`;

/** A sentence for models a worker lacks: "checkpoints/a.safetensors, loras/b.safetensors". */
export const modelList = (models: FarmJob['models']): string => models.map((m) => `${m.kind}/${m.name}`).join(', ');
