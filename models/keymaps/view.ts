/** models/keymaps: checkpoint key maps — canonical (diffusers / transformers) names over LDM and other files' keys, as renamed views. */
/**
 * The one "renamed view" behind every key map: canonical (diffusers / transformers) names are
 * looked up in a file through a name -> key function, nothing is copied. A missing key fails
 * with the file's name, the key looked for, the canonical name and the layout.
 */
import * as path from 'node:path';
import type { WeightMap } from '../onnx/graph.js';
import type { SafetensorsFile, TensorRef } from '../safetensors.js';

export class KeyMapView implements WeightMap {
  /** `what` names the layout in errors, e.g. `prefix "cond_stage_model.transformer."`. */
  constructor(
    readonly file: SafetensorsFile,
    private readonly toKey: (name: string) => string,
    readonly what: string,
  ) {}

  /** The file's key holding canonical parameter `name`. */
  keyOf(name: string): string {
    return this.toKey(name);
  }

  has(name: string): boolean {
    try {
      return this.file.has(this.keyOf(name));
    } catch {
      return false; // a name with no counterpart in this layout
    }
  }

  get(name: string): TensorRef {
    const key = this.keyOf(name);
    if (!this.file.has(key)) {
      throw new Error(`${path.basename(this.file.file)}: missing tensor "${key}" (weight ${name}, ${this.what}); file: ${this.file.file}`);
    }
    return this.file.get(key);
  }
}

/** A view of `file` in which canonical name `n` is the file's key `prefix + n`. */
export function prefixedWeights(file: SafetensorsFile, prefix: string): WeightMap {
  return new KeyMapView(file, (name) => prefix + name, prefix ? `prefix "${prefix}"` : 'no prefix');
}

/** A view of `file` through a name -> key function (`what` describes it in errors). */
export function mappedWeights(file: SafetensorsFile, toKey: (name: string) => string, what = 'key map'): WeightMap {
  return new KeyMapView(file, toKey, what);
}
