import { readRegularFileSync } from './regular-file.js';

/** Reads a JSON file (a model's config, a tokenizer's vocabulary); a failure names the file and `what` it was for. */
export function readJsonFile(file: string, what: string): unknown {
  try {
    return JSON.parse(readRegularFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: cannot read the ${what} (${(e as Error).message})`, { cause: e });
  }
}
