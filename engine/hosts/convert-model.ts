/**
 * Pickle to safetensors converter:
 *
 *   npm run convert-model -- <file.ckpt|.pt|.pth|.bin> [--out file.safetensors] [--force] [-h|--help]
 *
 * Reads a torch.save file with the app's restricted reader (models/pickle.ts: no code from the file
 * runs; anything but tensors and plain data is refused) and writes its state dict as .safetensors,
 * with the key names the loaders expect (`state_dict` unwrapped, nested dicts joined with "."),
 * atomically. Exit codes: 0 written (or --help), 1 the file was refused or could not be written,
 * 2 bad arguments.
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { convertToSafetensors } from '../../models/pickle/convert.js';

export interface ConvertArgs {
  file: string;
  out?: string;
  force: boolean;
  help: boolean;
}

const USAGE = `usage: npm run convert-model -- <file> [--out file.safetensors] [--force]

Converts a PyTorch pickle (.ckpt, .pt, .pth, .bin made by torch.save) to .safetensors without running
anything from it. Only tensors and plain data are read; a file that would run code is refused.

options:
  --out FILE   output file (default: the input's name with .safetensors, beside it)
  --force      replace an existing output file
  -h, --help   this help

exit codes: 0 written, 1 refused or not written, 2 bad arguments`;

/** Parses the command line; throws Error with a sentence for bad arguments. */
export function parseConvertArgs(argv: string[]): ConvertArgs {
  const a: ConvertArgs = { file: '', force: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '-h' || k === '--help') a.help = true;
    else if (k === '--force') a.force = true;
    else if (k === '--out' || k.startsWith('--out=')) {
      const v = k === '--out' ? argv[++i] : k.slice('--out='.length);
      if (!v) throw new Error('--out needs a file name');
      a.out = v;
    } else if (k.startsWith('-')) throw new Error(`unknown option ${k}`);
    else if (a.file) throw new Error(`one input file at a time (got ${a.file} and ${k})`);
    else a.file = k;
  }
  if (!a.file && !a.help) throw new Error('no input file given');
  return a;
}

/** Runs the converter; returns the exit code. */
export function main(argv: string[], log: (s: string) => void = console.log, err: (s: string) => void = console.error): number {
  let args: ConvertArgs;
  try {
    args = parseConvertArgs(argv);
  } catch (e) {
    err(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    log(USAGE);
    return 0;
  }
  try {
    const r = convertToSafetensors(args.file, { out: args.out, force: args.force });
    log(`wrote ${r.out} (${r.tensors} tensors, ${(r.bytes / 1024 / 1024).toFixed(1)} MiB)`);
    return 0;
  } catch (e) {
    err((e as Error).message);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
