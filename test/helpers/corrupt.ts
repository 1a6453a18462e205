/** test/helpers: safetensors files with one thing changed (a tensor's shape, dtype or values), for the hardening tests and the fuzz run. */
import * as fs from 'node:fs';

interface Header {
  [key: string]: { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>;
}

/** The header and the data section of a safetensors file's bytes. */
export function splitSafetensors(bytes: Buffer): { header: Header; data: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Header, data: bytes.subarray(8 + n) };
}

/** Safetensors bytes from a header and a data section (offsets are relative to the data section). */
export function joinSafetensors(header: Header, data: Buffer): Buffer {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), data]);
}

/** A tensor entry of a header (not __metadata__). */
export function tensorEntry(header: Header, key: string): { dtype: string; shape: number[]; data_offsets: [number, number] } {
  const e = header[key];
  if (!e || key === '__metadata__' || !('shape' in e)) throw new Error(`no tensor ${key}`);
  return e as { dtype: string; shape: number[]; data_offsets: [number, number] };
}

/** Rewrites `file` with tensor `key`'s shape replaced by `shape` (same element count: the bytes stay valid). */
export function reshapeTensor(file: string, key: string, shape: number[]): void {
  const { header, data } = splitSafetensors(fs.readFileSync(file));
  tensorEntry(header, key).shape = shape;
  fs.writeFileSync(file, joinSafetensors(header, data));
}

/** Another shape of the same element count: the first two axes swapped (a transposed weight), or halved and doubled when they are equal. */
export function misshaped(shape: number[]): number[] {
  const [a, b] = shape;
  if (shape.length < 2 || a === undefined || b === undefined || (a === b && a % 2)) throw new Error(`[${shape}] has no other shape of two leading axes`);
  return a !== b ? [b, a, ...shape.slice(2)] : [a / 2, b * 2, ...shape.slice(2)];
}

/** Overwrites every float32 value of tensor `key` in `file` with `value` (e.g. NaN). */
export function fillTensor(file: string, key: string, value: number): void {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const e = tensorEntry(splitSafetensors(bytes).header, key);
  if (e.dtype !== 'F32') throw new Error(`${key} is ${e.dtype}, not F32`);
  for (let o = 8 + n + e.data_offsets[0]; o < 8 + n + e.data_offsets[1]; o += 4) bytes.writeFloatLE(value, o);
  fs.writeFileSync(file, bytes);
}
