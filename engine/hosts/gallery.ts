/**
 * The gallery's view of the output folder (the `listOutputs` channel, both hosts): its images,
 * newest first, each with what its PNG says about it (the Automatic1111 parameters text, whether it
 * carries its workflow, the workflow's title). Only image files inside the folder are listed (no
 * symlink out, no dot files, no temporaries of atomic writes); what a PNG holds is read once per
 * (size, mtime) and kept, so listing again after a run reads only the new files.
 *
 * Node built-ins only (no http, ws or Electron): either host imports it through host-api.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GalleryItem } from '../protocol.js';
import { PARAMETERS_CHUNK_KEY, readTextChunks, WORKFLOW_CHUNK_KEY } from '../png.js';
import { isInsideReal } from '../paths.js';
import { imageSize } from './inputs-store.js';

const IMAGES = /\.(png|jpe?g|webp)$/i;
/** How deep below the output folder images are looked for (a filename_prefix may name subfolders). */
const MAX_DEPTH = 4;
/** Images above this size are listed without reading what they carry. */
const MAX_READ_BYTES = 64 * 2 ** 20;
export const DEFAULT_GALLERY_LIMIT = 300;

interface Found {
  rel: string;
  full: string;
  size: number;
  mtimeMs: number;
}

/** What a file carries, by `full path\0size\0mtime`. */
type Carried = Pick<GalleryItem, 'width' | 'height' | 'parameters' | 'hasWorkflow' | 'title'>;
/** Kept by a host between listings. */
export type GalleryCache = Map<string, Carried>;

/** The output URL both hosts serve (`/outputs/<path within the folder>`, each segment encoded). */
export const outputUrl = (rel: string) => '/outputs/' + rel.split('/').map(encodeURIComponent).join('/');

/** Lists the images of `outputDir`; `cache` (kept by the caller between calls) saves re-reading unchanged files. */
export function listGallery(outputDir: string, limit = DEFAULT_GALLERY_LIMIT, cache: GalleryCache = new Map()): GalleryItem[] {
  const root = path.resolve(outputDir);
  const found: Found[] = [];
  const walk = (dir: string, rel: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name.endsWith('.tmp')) continue;
      const full = path.join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(full, { throwIfNoEntry: false });
      } catch {
        continue;
      }
      if (!st) continue;
      if (st.isDirectory()) {
        if (depth < MAX_DEPTH && isInsideReal(root, full)) walk(full, r, depth + 1);
      } else if (st.isFile() && IMAGES.test(e.name) && isInsideReal(root, full)) {
        found.push({ rel: r, full, size: st.size, mtimeMs: st.mtimeMs });
      }
    }
  };
  walk(root, '', 1);
  // Newest first; files written in one run share an mtime to the millisecond at most, so the name breaks ties (higher counter first).
  found.sort((a, b) => b.mtimeMs - a.mtimeMs || (a.rel < b.rel ? 1 : a.rel > b.rel ? -1 : 0));
  return found.slice(0, limit).map((f) => {
    const key = `${f.full}\0${f.size}\0${f.mtimeMs}`;
    let carried = cache.get(key);
    if (!carried) {
      carried = readCarried(f.full, f.size);
      cache.set(key, carried);
    }
    return { file: f.rel, url: outputUrl(f.rel), bytes: f.size, mtimeMs: f.mtimeMs, ...carried };
  });
}

/** Size, parameters text, workflow presence and title of one image file (nothing for an unreadable one). */
function readCarried(file: string, size: number): Carried {
  const none: Carried = { width: 0, height: 0, hasWorkflow: false };
  if (size > MAX_READ_BYTES) return none;
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    return none;
  }
  const dims = imageSize(bytes);
  const out: Carried = { width: dims?.width ?? 0, height: dims?.height ?? 0, hasWorkflow: false };
  if (dims?.ext !== '.png') return out;
  let text: Record<string, string>;
  try {
    text = readTextChunks(bytes);
  } catch {
    return out; // a damaged PNG is still listed (the browser may show what it can)
  }
  if (text[PARAMETERS_CHUNK_KEY] !== undefined) out.parameters = text[PARAMETERS_CHUNK_KEY].slice(0, 20_000);
  const wf = text[WORKFLOW_CHUNK_KEY];
  if (wf !== undefined) {
    out.hasWorkflow = true;
    try {
      const title = JSON.parse(wf)?.meta?.title;
      if (typeof title === 'string' && title) out.title = title.slice(0, 200);
    } catch {
      /* a workflow chunk that is not JSON: Open reports it */
    }
  }
  return out;
}
