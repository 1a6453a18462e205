/**
 * The host protocol: one typed channel map shared by the web server (WebSocket) and the Electron
 * IPC bridge. Every request, response and event has a zod schema; hosts validate every incoming
 * message against it and answer malformed ones with an error, never by crashing.
 * Pure (zod only): the renderer bundle imports it too.
 */
import { z } from 'zod';
import { PROVIDERS } from '../models/providers.js';
import { ModelKindSchema, NodeSpecSchema } from '../nodes/spec.js';
import { MAX_BUNDLE_BYTES } from './bundle-format.js';

// ---- building blocks ------------------------------------------------------------------------

const Id = z.string().min(1).max(128);
const ShortText = z.string().max(4096);
/** Prompts and paths may be long, but not unbounded. */
const ParamValue = z.union([z.number().finite(), z.string().max(100_000), z.boolean()]);

export { PROVIDERS, type Provider } from '../models/providers.js';
export const ProviderSchema = z.enum(PROVIDERS);
// The node-spec schemas live with the node declarations (nodes/spec.ts, a leaf module).
export { ModelKindSchema, NodeSpecSchema, ParamSpecSchema, PortTypeSchema } from '../nodes/spec.js';

/** The workflow file's format tag (engine/workflow.ts reads, migrates and writes the files). */
export const WORKFLOW_FORMAT = 'ipadapter-studio/workflow';

export const WorkflowNodeSchema = z.object({
  id: Id,
  type: z.string().min(1).max(128),
  params: z.record(z.string().max(128), ParamValue),
  /** Bypassed (passes its inputs through) or muted (does not run); engine/graph-modes.ts. Absent: runs. */
  mode: z.enum(['bypass', 'mute']).optional(),
  /** Editor layout; the engine never reads it. */
  ui: z.looseObject({ x: z.number().finite(), y: z.number().finite() }).optional(),
});
export const WorkflowEdgeSchema = z.object({
  from: z.object({ node: Id, port: z.string().min(1).max(128) }),
  to: z.object({ node: Id, port: z.string().min(1).max(128) }),
});
/** Workflow JSON (format "ipadapter-studio/workflow", versioned). */
export const WorkflowSchema = z.object({
  format: z.literal(WORKFLOW_FORMAT),
  version: z.number().int().min(0).max(1000),
  nodes: z.array(WorkflowNodeSchema).max(2000),
  edges: z.array(WorkflowEdgeSchema).max(10_000),
  meta: z.record(z.string(), z.unknown()).optional(),
});

/** One validation error, tied to a node (and port/param where relevant). */
export const ValidationErrorSchema = z.object({
  node: z.string().optional(),
  port: z.string().optional(),
  param: z.string().optional(),
  message: z.string(),
});

export const ImageRefSchema = z.object({
  /** Absolute path of the written PNG (inside the output folder) or a temp preview. */
  path: z.string(),
  /** A URL the renderer can load (server route or data URL). */
  url: z.string().optional(),
  width: z.number(),
  height: z.number(),
});

/** What a run reports, in order; hosts forward every event to the renderer. */
export const RunEventSchema = z.discriminatedUnion('type', [
  /** `name`: the workflow's name for the queue panel; `where`: absent = this machine, else e.g. a farm's `redis://host:6379`. */
  z.object({
    type: z.literal('queued'),
    runId: z.string(),
    position: z.number(),
    name: z.string().optional(),
    where: z.string().optional(),
    /** A farm job the host holds because the queue cannot be reached ("waiting for the queue at redis://…"); absent once submitted. */
    held: z.string().optional(),
  }),
  z.object({ type: z.literal('run-start'), runId: z.string() }),
  z.object({ type: z.literal('node-start'), runId: z.string(), node: z.string() }),
  z.object({ type: z.literal('node-done'), runId: z.string(), node: z.string(), ms: z.number(), cached: z.boolean() }),
  z.object({
    type: z.literal('progress'),
    runId: z.string(),
    node: z.string(),
    step: z.number(),
    total: z.number(),
    /** A small RGB PNG (base64) of the predicted clean latent. */
    preview: z.object({ width: z.number(), height: z.number(), png: z.string() }).optional(),
  }),
  z.object({ type: z.literal('node-error'), runId: z.string(), node: z.string(), message: z.string() }),
  z.object({ type: z.literal('output'), runId: z.string(), node: z.string(), images: z.array(ImageRefSchema) }),
  /** A node's own preview (e.g. a preprocessor's result): drawn on its card, not in the outputs panel. */
  z.object({ type: z.literal('node-preview'), runId: z.string(), node: z.string(), images: z.array(ImageRefSchema) }),
  /** `node`: the node whose run logged it (a loader's weight warning: the editor shows it on that card). */
  z.object({ type: z.literal('log'), runId: z.string().optional(), node: z.string().optional(), level: z.enum(['info', 'warn']), message: z.string() }),
  z.object({
    type: z.literal('run-done'),
    runId: z.string(),
    ok: z.boolean(),
    cancelled: z.boolean().optional(),
    error: z.string().optional(),
    errors: z.array(ValidationErrorSchema).optional(),
    /** Not run: its outputs would be identical to those of this finished run (still on disk); nothing was written. */
    duplicateOf: z.string().optional(),
  }),
]);

export const EngineSettingsSchema = z.object({
  modelsDir: z.string(),
  outputDir: z.string(),
  provider: ProviderSchema,
  /** The explicit "Use demo models" choice (tiny random weights); never implied by an empty models folder. */
  demoModels: z.boolean().optional(),
  /** "CPU precision": 'fp32' (absent: exact, the default) or 'fast' (the UNet's and ControlNet's linears in int8, models/onnx/quantize.ts). */
  cpuPrecision: z.enum(['fp32', 'fast']).optional(),
  /** "GPU precision" on webgpu / cuda / dml: 'fp16' (absent: the default, the provider's fp16 graph profile) or 'fp32' (models/onnx/profile.ts). */
  gpuPrecision: z.enum(['fp16', 'fp32']).optional(),
  /** "Run on": absent or '' = this machine; `redis://host:6379` = the render farm's queue there (engine/farm/). */
  farmQueue: z.string().max(500).optional(),
  /** The farm jobs' BullMQ priority: 1 (first) to 2097152; 0 or absent = none (first come, first served; before any prioritized job). */
  farmPriority: z.number().int().min(0).max(2097152).optional(),
});

/** The farm's status line (Settings, Run on a queue): engine/farm/queue.ts FarmStatus; null = Run on this machine. */
export const FarmStatusSchema = z
  .object({
    queue: z.string(),
    connected: z.boolean(),
    error: z.string().optional(),
    workers: z.array(
      z.looseObject({ id: z.string(), host: z.string(), concurrency: z.number(), busy: z.number(), models: z.record(z.string(), z.array(z.string())) }),
    ),
    counts: z.record(z.string(), z.number()),
  })
  .nullable();

// The shapes' types, derived from the schemas above (engine/api.ts re-exports them for the hosts).
export type Workflow = z.infer<typeof WorkflowSchema>;
export type WorkflowNode = z.infer<typeof WorkflowNodeSchema>;
export type WorkflowEdge = z.infer<typeof WorkflowEdgeSchema>;
export type ValidationError = z.infer<typeof ValidationErrorSchema>;
export type ImageRef = z.infer<typeof ImageRefSchema>;
export type RunEvent = z.infer<typeof RunEventSchema>;
export type EngineSettings = z.infer<typeof EngineSettingsSchema>;

export const HostInfoSchema = z.object({
  /** 'web' or 'electron': the renderer picks file dialogs / downloads accordingly. */
  host: z.enum(['web', 'electron']),
  version: z.string(),
  /** Providers this machine may support; choosing another falls back to CPU with a notice. */
  providers: z.array(ProviderSchema),
  /** Each provider's readiness here in words (models/providers.ts providerReadiness): available, needs its libraries, not on this platform. */
  providerReadiness: z
    .array(
      z.object({
        provider: ProviderSchema,
        state: z.enum(['available', 'needs-libraries', 'not-on-this-platform']),
        sentence: z.string(),
        missing: z.string().optional(),
        install: z.string().optional(),
      }),
    )
    .optional(),
  demo: z.boolean(),
  /** Notices to show on start (demo weights draw noise, provider fallback, ...). */
  notices: z.array(z.string()),
  /** An image the default workflow may start with (the examples' image prompt), as an image param value. */
  sampleImage: z.object({ value: z.string(), url: z.string() }).optional(),
});

export const ExampleSchema = z.object({ name: z.string(), title: z.string() });

/** An uploaded image (Load Image): at most 32 MiB of base64. */
export const UploadImageRequestSchema = z.object({
  name: z.string().min(1).max(255),
  dataBase64: z
    .string()
    .min(1)
    .max(32 * 1024 * 1024),
});
export const UploadImageResponseSchema = z.object({
  /** The value to put into an image param: `inputs/<content-hashed file>` (engine/image-refs.ts). */
  value: z.string(),
  /** A URL the renderer may show as a thumbnail. */
  url: z.string(),
  width: z.number(),
  height: z.number(),
});

/** Whether an image ref of the open document will be found (engine/hosts/inputs-store.ts imageRefStatus). */
export const ImageRefStatusSchema = z.object({
  ref: z.string(),
  found: z.boolean(),
  /** The ref to keep (an older absolute path into the inputs folder comes back as `inputs/<file>`). */
  value: z.string(),
  url: z.string().optional(),
});
export type ImageRefStatus = z.infer<typeof ImageRefStatusSchema>;

/** "Export workflow for sharing": the bundle's text (engine/bundle-format.ts) and the images it carries. */
export const ExportBundleResponseSchema = z.object({
  text: z.string(),
  images: z.array(z.object({ file: z.string(), bytes: z.number(), uses: z.array(z.string()) })),
});
/** A bundle opened: its workflow (images stored in the inputs folder), how many images it had and how many were new. */
export const ImportBundleResponseSchema = z.object({
  workflow: WorkflowSchema,
  images: z.number(),
  written: z.number(),
  migratedFrom: z.number().optional(),
});

/** A PyTorch pickle in the models folder converted to .safetensors beside it (models/pickle/convert.ts). */
export const ConvertModelRequestSchema = z
  .object({
    kind: ModelKindSchema,
    /** The pickle's name within `<models>/<kind>/`, as listModels gives it. */
    name: z.string().min(1).max(4096),
  })
  .strict();
export const ConvertModelResponseSchema = z.object({
  /** The .safetensors file's name within `<models>/<kind>/` (the value to select). */
  written: z.string(),
  tensors: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
});

/** A job of the queue panel: this machine's, or a remote (farm) one; docs in /work/notes/s8/queue-api.md. */
export const QueueJobSchema = z.object({
  runId: z.string(),
  /** The workflow's name (meta.title, the file name, or "untitled"). */
  name: z.string(),
  state: z.enum(['queued', 'running', 'done', 'failed', 'cancelled', 'duplicate']),
  /** Absent: this machine; a remote queue names itself (e.g. `redis://host:6379`). */
  where: z.string().optional(),
  /** Queued jobs: 0 runs next. */
  position: z.number().optional(),
  progress: z.object({ step: z.number(), total: z.number(), node: z.string().optional() }).optional(),
  submittedAt: z.number(),
  finishedAt: z.number().optional(),
  /** State `duplicate`: the finished run whose images this job would have written again. */
  duplicateOf: z.string().optional(),
  /** Output image paths (finished jobs; a duplicate's are its original's). */
  images: z.array(z.string()).optional(),
  error: z.string().optional(),
  /** Held by the host until the queue can be reached (the sentence the panel shows). */
  held: z.string().optional(),
  /** The first job's runId of the sweep this job belongs to (the panel's Cancel batch). */
  batch: z.string().optional(),
  /** The job's workflow as it ran (the panel's summary and Re-queue, also after a reload or restart). */
  workflow: WorkflowSchema.optional(),
});
export type QueueJob = z.infer<typeof QueueJobSchema>;

/** One image of the output folder, as the gallery lists it (engine/hosts/gallery.ts). */
export const GalleryItemSchema = z.object({
  /** Path within the output folder, with `/` separators. */
  file: z.string(),
  url: z.string(),
  width: z.number(),
  height: z.number(),
  bytes: z.number(),
  mtimeMs: z.number(),
  /** The Automatic1111 parameters text of its PNG (prompt, negative prompt, steps, seed, ...), when it has one. */
  parameters: z.string().optional(),
  /** The PNG carries its workflow (Open this workflow restores it). */
  hasWorkflow: z.boolean(),
  /** The workflow's name (meta.title), when it has one. */
  title: z.string().optional(),
});
export type GalleryItem = z.infer<typeof GalleryItemSchema>;

/** What a models folder holds (Settings checks it as the path is typed). */
export const ModelsFolderReportSchema = z.object({
  dir: z.string(),
  /** Null when the folder exists and is readable: else the sentence saying why not, naming the path. */
  problem: z.string().nullable(),
  counts: z.record(ModelKindSchema, z.number()),
  /** The kinds a workflow needs at least one of (checkpoints, ...) that the folder has none of. */
  missing: z.array(ModelKindSchema),
});
export type ModelsFolderReport = z.infer<typeof ModelsFolderReportSchema>;

// ---- the channel map --------------------------------------------------------------------------

const Empty = z.object({}).strict();

/** Every request the renderer may send, with its request and response schemas. */
export const channels = {
  hostInfo: { request: Empty, response: HostInfoSchema },
  nodeSpecs: { request: Empty, response: z.array(NodeSpecSchema) },
  listModels: { request: Empty, response: z.record(ModelKindSchema, z.array(z.string())) },
  validate: { request: z.object({ workflow: WorkflowSchema }).strict(), response: z.array(ValidationErrorSchema) },
  /** `force`: run even when a finished run already wrote these very images (else the job ends as a duplicate). */
  enqueue: {
    request: z.object({ workflow: WorkflowSchema, name: z.string().max(256).optional(), force: z.boolean().optional() }).strict(),
    /** `runIds`: every job of a sweep (the first is `runId`). */
    response: z.object({ runId: z.string(), duplicateOf: z.string().optional(), runIds: z.array(z.string()).optional() }),
  },
  /** Queued, running and recently finished jobs (the queue panel after a reload). */
  listQueue: { request: Empty, response: z.array(QueueJobSchema) },
  /** Settings' Run on a queue: connected?, the workers online and their models, the jobs waiting. */
  farmStatus: { request: Empty, response: FarmStatusSchema },
  /** Jobs held because the queue was unreachable try it now (the queue panel's Retry). */
  farmRetry: { request: Empty, response: z.object({}) },
  cancel: { request: z.object({ runId: Id }).strict(), response: z.object({}) },
  getSettings: { request: Empty, response: EngineSettingsSchema },
  updateSettings: {
    request: z
      .object({
        modelsDir: ShortText.min(1).optional(),
        outputDir: ShortText.min(1).optional(),
        provider: ProviderSchema.optional(),
        demoModels: z.boolean().optional(),
        cpuPrecision: z.enum(['fp32', 'fast']).optional(),
        gpuPrecision: z.enum(['fp16', 'fp32']).optional(),
        farmQueue: z.string().max(500).optional(),
        farmPriority: z.number().int().min(0).max(2097152).optional(),
      })
      .strict(),
    response: EngineSettingsSchema,
  },
  listExamples: { request: Empty, response: z.array(ExampleSchema) },
  readExample: { request: z.object({ name: z.string().regex(/^[\w.-]+\.json$/) }).strict(), response: WorkflowSchema },
  uploadImage: { request: UploadImageRequestSchema.strict(), response: UploadImageResponseSchema },
  resolveImages: { request: z.object({ refs: z.array(z.string().max(100_000)).max(2000) }).strict(), response: z.array(ImageRefStatusSchema) },
  exportBundle: { request: z.object({ workflow: WorkflowSchema }).strict(), response: ExportBundleResponseSchema },
  importBundle: { request: z.object({ text: z.string().min(1).max(MAX_BUNDLE_BYTES) }).strict(), response: ImportBundleResponseSchema },
  convertModel: { request: ConvertModelRequestSchema, response: ConvertModelResponseSchema },
  /** The output folder's images, newest first (the gallery; confined to the folder, images only). */
  listOutputs: { request: z.object({ limit: z.number().int().min(1).max(2000).optional() }).strict(), response: z.array(GalleryItemSchema) },
  /** Settings' "Clear model cache": the files removed and the bytes that freed (a link to a model file frees none). */
  clearModelCache: { request: Empty, response: z.object({ files: z.number(), freedBytes: z.number() }) },
  /** What a models folder holds, per kind (`dir` absent: the setting). */
  checkModelsFolder: { request: z.object({ dir: ShortText.min(1).optional() }).strict(), response: ModelsFolderReportSchema },
} as const;

export type Channels = typeof channels;
export type ChannelName = keyof Channels;
export type ChannelRequest<K extends ChannelName> = z.infer<Channels[K]['request']>;
export type ChannelResponse<K extends ChannelName> = z.infer<Channels[K]['response']>;
export type HostInfo = z.infer<typeof HostInfoSchema>;
export type UploadImageResponse = z.infer<typeof UploadImageResponseSchema>;
export type Example = z.infer<typeof ExampleSchema>;

export const CHANNEL_NAMES = Object.keys(channels) as ChannelName[];

// ---- wire envelopes (WebSocket; Electron IPC carries the same request/response bodies) --------

/** Client -> host: one request. `id` pairs the reply. */
export const RequestEnvelopeSchema = z
  .object({
    id: z.number().int().nonnegative(),
    method: z.enum(CHANNEL_NAMES as [ChannelName, ...ChannelName[]]),
    /** Optional: a request without params is checked as `{}` (parseRequest), as the channels without params expect. */
    params: z.unknown().optional(),
  })
  .strict();

/** Host -> client: a reply or an engine event. */
export type ServerMessage =
  | { kind: 'reply'; id: number; ok: true; result: unknown }
  | { kind: 'reply'; id: number | null; ok: false; error: string }
  | { kind: 'event'; event: RunEvent };

export const ServerMessageSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('reply'), id: z.number().nullable(), ok: z.boolean(), result: z.unknown().optional(), error: z.string().optional() }),
  z.object({ kind: z.literal('event'), event: RunEventSchema }),
]);

/** Parses a raw client message: the envelope, then the channel's own request schema. */
export function parseRequest(raw: unknown): { ok: true; id: number; method: ChannelName; params: unknown } | { ok: false; id: number | null; error: string } {
  const env = RequestEnvelopeSchema.safeParse(raw);
  if (!env.success) {
    const id = typeof (raw as { id?: unknown })?.id === 'number' ? (raw as { id: number }).id : null;
    return { ok: false, id, error: `malformed request: ${summarise(env.error)}` };
  }
  const { id, method } = env.data;
  const params = channels[method].request.safeParse(env.data.params ?? {});
  if (!params.success) return { ok: false, id, error: `invalid params for ${method}: ${summarise(params.error)}` };
  return { ok: true, id, method, params: params.data };
}

/** One readable line from a zod error (first few issues, with their paths). */
export function summarise(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}
