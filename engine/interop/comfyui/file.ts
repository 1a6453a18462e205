/**
 * A ComfyUI file on the engine side (CLI, tests): JSON (UI workflow or API prompt), a PNG with
 * ComfyUI's `workflow` / `prompt` text chunks (inflated through engine/png.ts, which caps them),
 * or a WebP with them in EXIF. The editor reads the same forms in the page (renderer/files.ts).
 */
import { readTextChunks } from '../../png.js';
import { PNG_SIGNATURE } from '../../png-chunks.js';
import { ComfyReadError, comfyDocFromTexts, comfyFormatOf, isWebp, MAX_COMFY_BYTES, parseJsonExact, webpExifStrings } from './read.js';

const isPngBytes = (b: Uint8Array) => b.length >= 8 && PNG_SIGNATURE.every((x, i) => b[i] === x);

/**
 * The ComfyUI document in a file's bytes, or null when the file is not a ComfyUI one (our own
 * workflow, a PNG of ours). Throws ComfyReadError for a ComfyUI file that cannot be read.
 */
export function comfyDocFromBytes(bytes: Uint8Array, name = 'the file'): unknown | null {
  if (bytes.length > MAX_COMFY_BYTES)
    throw new ComfyReadError(`${name} is ${(bytes.length / 2 ** 20).toFixed(1)} MB; ComfyUI files of at most ${MAX_COMFY_BYTES / 2 ** 20} MB are read`);
  if (isPngBytes(bytes)) {
    const t = readTextChunks(bytes);
    return (
      comfyDocFromTexts({ ...(t.workflow !== undefined ? { workflow: t.workflow } : {}), ...(t.prompt !== undefined ? { prompt: t.prompt } : {}) })?.doc ?? null
    );
  }
  if (isWebp(bytes)) return comfyDocFromTexts(webpExifStrings(bytes))?.doc ?? null;
  let text = new TextDecoder().decode(bytes);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let doc: unknown;
  try {
    doc = parseJsonExact(text);
  } catch {
    return null; // not JSON: not ours to say
  }
  return comfyFormatOf(doc) ? doc : null;
}
