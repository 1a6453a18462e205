/**
 * The shared-workflow bundle ("Export workflow for sharing"): one JSON file holding a workflow and
 * the bytes of every image it uses. Pure (zod only): the renderer recognises bundles with it; the
 * hosts write and unpack them (engine/hosts/bundle.ts).
 *
 *   {
 *     "format": "ipadapter-studio/shared-workflow", "version": 1,
 *     "workflow": { ...an ipadapter-studio/workflow whose image params are inputs/<file> refs... },
 *     "images": { "<sha256 of the bytes>": { "file": "<stem>-<first 12 hex of it>.png", "type": "image/png", "data": "<base64>" } },
 *     "models": [ { "kind": "checkpoints", "name": "v1-5-pruned-emaonly.safetensors" } ]
 *   }
 *
 * Why JSON with base64 rather than a zip: the file opens through the same Open button, drop
 * target and CLI argument as any workflow, in a browser without a zip library, and stays
 * readable (the graph is plain text at the top); the images are PNG/JPEG/WebP, already
 * compressed, so a zip would save nothing but the base64 third. Images are keyed by their SHA-256:
 * one image used by three nodes is stored once, opening verifies every byte, and the file name
 * each one gets in the inputs folder is the one it had (content-hashed), so nothing is renamed
 * and a second open writes nothing. The file carries no folder of the exporting machine:
 * images are `inputs/<file>` refs, models their names within the models folder.
 */
import { z } from 'zod';

export const BUNDLE_FORMAT = 'ipadapter-studio/shared-workflow';
export const BUNDLE_VERSION = 1;
/** The PNG text chunk carrying a bundle in exported PNGs (when they carry their input images). */
export const BUNDLE_CHUNK_KEY = 'ipadapter-studio-bundle';
/** A bundle larger than this is refused on both ends (web mode's WebSocket takes 48 MiB per message). */
export const MAX_BUNDLE_BYTES = 44 * 2 ** 20;
/** The suffix "Export workflow for sharing" gives its file. */
export const BUNDLE_SUFFIX = '.shared.json';

export const BUNDLE_IMAGE_TYPES = { '.png': 'image/png', '.jpg': 'image/jpeg', '.webp': 'image/webp' } as const;

export const BundleImageSchema = z.object({
  /** The image's name in the inputs folder: `<stem>-<first 12 hex digits of its sha256>.<ext>`. */
  file: z.string().regex(/^[\w.-]{1,80}-[0-9a-f]{12}\.(png|jpg|webp)$/, 'a content-hashed file name (<stem>-<12 hex>.png|jpg|webp)'),
  type: z.enum(['image/png', 'image/jpeg', 'image/webp']),
  /** The bytes, base64. */
  data: z.string().min(1),
});

export const BundleSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.number().int().min(1),
  /** Parsed (and migrated) by engine/workflow.ts parseWorkflow when opened. */
  workflow: z.record(z.string(), z.unknown()),
  images: z.record(z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lower-case hex'), BundleImageSchema),
  /** The models the graph names, by kind (what the receiver needs in their models folder). */
  models: z.array(z.object({ kind: z.string(), name: z.string() })).optional(),
});
export type Bundle = z.infer<typeof BundleSchema>;
export type BundleImage = z.infer<typeof BundleImageSchema>;

/** True when a parsed JSON document says it is a bundle (then BundleSchema decides whether it is a good one). */
export function isBundleDoc(doc: unknown): boolean {
  return typeof doc === 'object' && doc !== null && (doc as { format?: unknown }).format === BUNDLE_FORMAT;
}

/** The file name for a bundle of a workflow called `name` (`x.json` -> `x.shared.json`). */
export function bundleFileName(name: string | null): string {
  const stem = (name ?? 'workflow').replace(/\.(shared\.)?json$/i, '').replace(/\.png$/i, '') || 'workflow';
  return stem + BUNDLE_SUFFIX;
}
