/**
 * Random-weight safetensors files for the benchmarks (scripts/bench/*, the e2e section's models
 * folder too): F32 tensors from a xorshift32 stream, written chunk by chunk (the SD1.5 UNet is
 * 3.4 GB in fp32). Only the benchmarks use it; the demo set has its own (engine/demo/weights.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface RandomInit {
  /** Amplitude of 1-D tensors that are not norm weights (biases); default sqrt(3), i.e. fan_in 1. */
  vectorAmp?: number;
}

/**
 * Writes a safetensors file of random F32 tensors (xorshift32 from `seed`), creating its folder;
 * returns its size. Norm weights are uniform around 1 (+-0.1), everything else uniform with
 * std ~ 1/sqrt(fan_in): activations stay O(1) through the network, so no denormals or infinities
 * distort the timing.
 */
export function writeRandomSafetensors(file: string, shapes: Map<string, number[]>, seed: number, init: RandomInit = {}): number {
  const vectorAmp = init.vectorAmp ?? Math.sqrt(3);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, s] of shapes) {
    const bytes = s.reduce((a, d) => a * d, 1) * 4;
    header[k] = { dtype: 'F32', shape: s, data_offsets: [off, off + bytes] };
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
          s ^= s << 13; s ^= s >>> 17; s ^= s << 5; // xorshift32
          chunk[i] = center + amp * ((s >>> 0) / 2147483648 - 1);
        }
        fs.writeSync(fd, new Uint8Array(chunk.buffer, 0, m * 4));
        done += m;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return fs.statSync(file).size;
}
