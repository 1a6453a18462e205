/**
 * Refusal of PyTorch pickle weight files (.ckpt, .pt, .pth, .bin, .pkl).
 *
 * A pickle can run arbitrary code when it is loaded, so this app never unpickles one: every
 * loader calls `refusePickle` before it opens a file, and the person gets a sentence saying
 * what the file is and how to convert it to .safetensors, instead of a header error.
 * Besides the extension, the first bytes are checked, so a pickle renamed to .safetensors is
 * recognised too (zip-based torch.save files start with "PK\x03\x04", older ones with the
 * pickle protocol opcode 0x80 followed by the protocol number 2..5).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const PICKLE_EXT = /\.(ckpt|pt|pth|bin|pkl)$/i;

/** A pickle file handed to a loader; carries the file for the UI. */
export class PickleFileError extends Error {
  constructor(readonly file: string, message: string) {
    super(message);
    this.name = 'PickleFileError';
  }
}

/**
 * True when the first bytes are a torch.save zip or a pickle stream. A safetensors file starts
 * with its header length (u64 LE): for a zip signature that length would be 67 MB, and for a
 * pickle stream bytes 3..7 would be non-zero (a header over 16 MB), neither of which a real
 * safetensors file has.
 */
export function looksLikePickle(head: Uint8Array): boolean {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return true;
  if (head.length >= 8 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return head.subarray(3, 8).some((b) => b !== 0);
  return false;
}

function firstBytes(file: string): Uint8Array | null {
  let fd: number | undefined;
  try {
    if (!fs.statSync(file).isFile()) return null;
    fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(8);
    const n = fs.readSync(fd, buf, 0, 8, 0);
    return buf.subarray(0, n);
  } catch {
    return null; // missing or unreadable: the loader's own open reports that
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Throws PickleFileError when `file` is a PyTorch pickle (by extension or by its first bytes).
 * `what` names the expected model for the sentence, e.g. "the checkpoint", "the IP-Adapter".
 */
export function refusePickle(file: string, what: string): void {
  const abs = path.resolve(file);
  const byName = PICKLE_EXT.test(abs);
  if (!byName) {
    const head = firstBytes(abs);
    if (!head || !looksLikePickle(head)) return;
  }
  const ext = path.extname(abs) || '(no extension)';
  const kind = byName ? `a PyTorch pickle file (${ext})` : `a PyTorch pickle file despite its ${ext} name (its first bytes are torch.save / pickle data)`;
  const stem = path.basename(abs, path.extname(abs));
  throw new PickleFileError(abs,
    `${path.basename(abs)}: ${what} is ${kind}, and pickle files are never unpickled here, for safety: loading one can run arbitrary code. ` +
    `Please convert it to .safetensors and load that file instead: for example with the safetensors "convert" tool, or in Python with ` +
    `torch.load("${path.basename(abs)}", map_location="cpu", weights_only=True) then safetensors.torch.save_file(tensors, "${stem}.safetensors") ` +
    `(a checkpoint's tensors are under "state_dict"; nested dicts become "a.b" keys) ` +
    `(file: ${abs})`);
}
