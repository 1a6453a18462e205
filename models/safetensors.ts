/**
 * safetensors reading, by reference.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header, then the data area.
 * Each header entry is `{dtype, shape, data_offsets: [begin, end]}` relative to the data area.
 * We validate everything before any tensor is used, and never read tensor bytes unless asked:
 * graph builders turn a tensor into ONNX external data (file, offset, length).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NotRegularFileError, openRegularFileSync } from './regular-file.js';

/** dtypes of the safetensors format and their element sizes in bytes. */
export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;
export type SafeDType = keyof typeof DTYPE_BYTES;

/** One tensor of a safetensors file: where its bytes are, never the bytes themselves. */
export interface TensorRef {
  /** Absolute path of the file holding the bytes. */
  file: string;
  /** Key in the file's header. */
  key: string;
  dtype: SafeDType;
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number;
  /** Byte length (= product(shape) * element size). */
  length: number;
}

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    defect: string,
  ) {
    super(`${path.basename(file)}: ${defect} (file: ${file})`);
    this.name = 'SafetensorsError';
  }
}

/** Upper bound on the JSON header, as in the reference implementation (100 MB). */
const MAX_HEADER = 100 * 1024 * 1024;

/** An opened safetensors file: its header, validated, and lazy access to tensor bytes. */
export class SafetensorsFile {
  private constructor(
    readonly file: string,
    readonly tensors: ReadonlyMap<string, TensorRef>,
    readonly metadata: Record<string, string>,
    readonly byteLength: number,
  ) {}

  /** Opens and validates the header of `file`. Throws SafetensorsError naming the defect. */
  static open(file: string): SafetensorsFile {
    const abs = path.resolve(file);
    let fd: number;
    try {
      fd = openRegularFileSync(abs);
    } catch (e) {
      if (e instanceof NotRegularFileError) throw new SafetensorsError(abs, `not a regular file (${e.kind})`);
      throw new SafetensorsError(abs, `cannot open: ${(e as Error).message}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(abs, `truncated: ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > size - 8) {
        throw new SafetensorsError(
          abs,
          `header length ${headerLen} is larger than the file allows (${size - 8} bytes after the length field); the file is truncated or not safetensors`,
        );
      }
      if (headerLen > MAX_HEADER) throw new SafetensorsError(abs, `header length ${headerLen} exceeds ${MAX_HEADER} bytes`);
      const hbuf = Buffer.alloc(headerLen);
      fs.readSync(fd, hbuf, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(hbuf.toString('utf8'));
      } catch (e) {
        throw new SafetensorsError(abs, `header is not valid JSON (${(e as Error).message}); the file is garbled or not safetensors`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw new SafetensorsError(abs, 'header is not a JSON object');
      }
      const dataStart = 8 + headerLen;
      const dataLen = size - dataStart;
      const tensors = new Map<string, TensorRef>();
      let metadata: Record<string, string> = {};
      const ranges: [number, number, string][] = [];
      for (const [key, raw] of Object.entries(header as Record<string, unknown>)) {
        if (key === '__metadata__') {
          metadata = (raw ?? {}) as Record<string, string>;
          continue;
        }
        const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        if (typeof e !== 'object' || e === null) throw new SafetensorsError(abs, `tensor "${key}": entry is not an object`);
        if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) {
          throw new SafetensorsError(abs, `tensor "${key}": unknown dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
        }
        if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
          throw new SafetensorsError(abs, `tensor "${key}": shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
        }
        const off = e.data_offsets;
        if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
          throw new SafetensorsError(abs, `tensor "${key}": data_offsets ${JSON.stringify(off)} is not an ordered pair of byte offsets`);
        }
        const [b, en] = off as [number, number];
        if (en > dataLen) {
          throw new SafetensorsError(
            abs,
            `tensor "${key}": data_offsets [${b}, ${en}] reach past the end of the data area (${dataLen} bytes); the file is truncated`,
          );
        }
        const dtype = e.dtype as SafeDType;
        const shape = e.shape as number[];
        const expected = shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
        if (en - b !== expected) {
          throw new SafetensorsError(abs, `tensor "${key}": ${en - b} bytes for shape [${shape}] of ${dtype}, expected ${expected}`);
        }
        ranges.push([b, en, key]);
        tensors.set(key, { file: abs, key, dtype, shape, offset: dataStart + b, length: en - b });
      }
      ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      for (let i = 1; i < ranges.length; i++) {
        const [pb, pe, pk] = ranges[i - 1]!;
        const [b, , k] = ranges[i]!;
        if (b < pe && pe > pb) {
          throw new SafetensorsError(abs, `tensors "${pk}" and "${k}" overlap in the data area (bytes ${b}..${pe})`);
        }
      }
      return new SafetensorsFile(abs, tensors, metadata, size);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * A tensor table of another container whose tensors are byte ranges of files, already
   * validated (PyTorch pickles, models/pickle.ts), so loaders see one kind of object.
   */
  static fromRefs(file: string, tensors: ReadonlyMap<string, TensorRef>, metadata: Record<string, string>, byteLength: number): SafetensorsFile {
    return new SafetensorsFile(file, tensors, metadata, byteLength);
  }

  get(key: string): TensorRef {
    const t = this.tensors.get(key);
    if (!t) throw new SafetensorsError(this.file, `missing tensor "${key}"`);
    return t;
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }
}

/** Reads a tensor's bytes and converts them to float32 (F32, F16, BF16, F64 and integer types). */
export function readTensorF32(ref: TensorRef): Float32Array {
  const buf = readTensorBytes(ref);
  const n = ref.length / DTYPE_BYTES[ref.dtype];
  const out = new Float32Array(n);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  switch (ref.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      break;
    case 'BF16': {
      const tmp = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < n; i++) {
        tmp.setUint32(0, dv.getUint16(i * 2, true) << 16);
        out[i] = tmp.getFloat32(0);
      }
      break;
    }
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'U8':
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
      break;
    default:
      throw new SafetensorsError(ref.file, `tensor "${ref.key}": cannot convert ${ref.dtype} to float32`);
  }
  return out;
}

/** Reads a tensor's int64 values as bigint (for token-id fixtures). */
export function readTensorI64(ref: TensorRef): BigInt64Array {
  if (ref.dtype !== 'I64') throw new SafetensorsError(ref.file, `tensor "${ref.key}": expected I64, found ${ref.dtype}`);
  const buf = readTensorBytes(ref);
  return new BigInt64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

export function readTensorBytes(ref: TensorRef): Buffer {
  const fd = openRegularFileSync(ref.file);
  try {
    const buf = Buffer.alloc(ref.length);
    let got = 0;
    while (got < ref.length) {
      const n = fs.readSync(fd, buf, got, ref.length - got, ref.offset + got);
      if (n === 0) throw new SafetensorsError(ref.file, `tensor "${ref.key}": unexpected end of file`);
      got += n;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** F16 bits of the float32 with bit pattern `u`, rounding to nearest even (as torch's .half()); overflow gives +-Infinity. */
function halfBitsOf(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let man = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0); // Inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflows to zero
    man |= 0x800000; // subnormal: the implicit bit shifted in
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = man >>> shift;
    const rest = man & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = man >>> 13;
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** BF16 bits of the float32 with bit pattern `u`, rounding to nearest even (as torch's .bfloat16()). */
function bf16BitsOf(u: number): number {
  if ((u & 0x7f800000) === 0x7f800000 && u & 0x7fffff) return ((u >>> 16) | 0x40) & 0xffff; // NaN stays NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 -> F16 bits, rounding to nearest even (as torch's .half()). */
export function floatToHalf(x: number): number {
  scratchF32[0] = x;
  return halfBitsOf(scratchU32[0]!);
}

/** float32 -> BF16 bits, rounding to nearest even (as torch's .bfloat16()). */
export function floatToBf16(x: number): number {
  scratchF32[0] = x;
  return bf16BitsOf(scratchU32[0]!);
}

/** Rounds float32 values to F16 or BF16 bits (`dst[i]` from `src[i]`), as floatToHalf / floatToBf16. */
export function roundToHalf(src: Float32Array, dtype: 'F16' | 'BF16', dst: Uint16Array): void {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  if (dtype === 'F16') for (let i = 0; i < u.length; i++) dst[i] = halfBitsOf(u[i]!);
  else for (let i = 0; i < u.length; i++) dst[i] = bf16BitsOf(u[i]!);
}

/** A tensor to write: dtype F32 (Float32Array), I64 (BigInt64Array) or U8 (Uint8Array). */
export interface TensorToWrite {
  dtype: 'F32' | 'I64' | 'U8' | 'F16' | 'BF16';
  shape: number[];
  /** The raw little-endian values (F16 / BF16 as their 16-bit patterns). */
  data: Float32Array | BigInt64Array | Uint8Array | Uint16Array;
}

/** Serialises tensors to safetensors bytes (8-byte aligned data, as the reference writer does). */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  const parts: Buffer[] = [];
  for (const [k, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes.length] };
    parts.push(bytes);
    off += bytes.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...parts]);
}
