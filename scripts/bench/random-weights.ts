/**
 * Random-weight safetensors files for the benchmarks (scripts/bench/*, the e2e section's models
 * folder too): F32 tensors from a xorshift32 stream, written chunk by chunk (the SD1.5 UNet is
 * 3.4 GB in fp32). Only the benchmarks use it; the demo set has its own (engine/demo/weights.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { roundToHalf } from '../../models/safetensors.js';

export interface RandomInit {
  /** Amplitude of 1-D tensors that are not norm weights (biases); default sqrt(3), i.e. fan_in 1. */
  vectorAmp?: number;
  /** Stored dtype (default F32): F16 / BF16 store the same random values rounded to nearest even, as torch's .half() / .bfloat16(). */
  dtype?: 'F32' | 'F16' | 'BF16';
}

/**
 * Writes a safetensors file of random F32 (or F16 / BF16) tensors (xorshift32 from `seed`), creating its folder;
 * returns its size. Norm weights are uniform around 1 (+-0.1), everything else uniform with
 * std ~ 1/sqrt(fan_in): activations stay O(1) through the network, so no denormals or infinities
 * distort the timing.
 */
export function writeRandomSafetensors(file: string, shapes: Map<string, number[]>, seed: number, init: RandomInit = {}): number {
  const vectorAmp = init.vectorAmp ?? Math.sqrt(3);
  const dtype = init.dtype ?? 'F32';
  const size = dtype === 'F32' ? 4 : 2;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, s] of shapes) {
    const bytes = s.reduce((a, d) => a * d, 1) * size;
    header[k] = { dtype, shape: s, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    const chunk = new Float32Array(1 << 22);
    const half = new Uint16Array(chunk.length);
    let s = seed >>> 0 || 1;
    for (const [k, shape] of shapes) {
      const n = shape.reduce((a, d) => a * d, 1);
      // Matches layer_norm1.weight, norm1.weight, group_norm.weight, final_layer_norm.weight, ...
      const isNormWeight = shape.length === 1 && /norm[^.]*\.weight$/.test(k);
      const amp = isNormWeight ? 0.1 : shape.length > 1 ? Math.sqrt(3 / (n / shape[0])) : vectorAmp;
      const center = isNormWeight ? 1 : 0;
      for (let done = 0; done < n;) {
        const m = Math.min(chunk.length, n - done);
        for (let i = 0; i < m; i++) {
          s ^= s << 13;
          s ^= s >>> 17;
          s ^= s << 5; // xorshift32
          chunk[i] = center + amp * ((s >>> 0) / 2147483648 - 1);
        }
        if (dtype === 'F32') {
          fs.writeSync(fd, new Uint8Array(chunk.buffer, 0, m * 4));
        } else {
          roundToHalf(chunk.subarray(0, m), dtype, half);
          fs.writeSync(fd, new Uint8Array(half.buffer, 0, m * 2));
        }
        done += m;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return fs.statSync(file).size;
}
