/**
 * Test helpers: writes small torch.save-style zip archives (protocol-2 data.pkl + stored
 * `<folder>/data/<key>` records, as torch/serialization.py `_save` does), so tests can craft
 * files the fixtures do not have: strided tensors, shared storages, bad lengths, raw opcodes.
 * Used by tests only.
 */
import * as zlib from 'node:zlib';
import type { SafeDType } from '../safetensors.js';

const STORAGE_CLASS: Partial<Record<SafeDType, string>> = {
  F32: 'FloatStorage',
  F16: 'HalfStorage',
  BF16: 'BFloat16Storage',
  F64: 'DoubleStorage',
  I64: 'LongStorage',
  I32: 'IntStorage',
  U8: 'ByteStorage',
  BOOL: 'BoolStorage',
};

/** A tensor in a crafted pickle: a view of storage `storage` (key of the storages table). */
export class TensorSpec {
  constructor(
    readonly storage: string,
    readonly shape: number[],
    readonly stride?: number[],
    readonly offset = 0,
  ) {}
}

export interface StorageSpec {
  dtype: SafeDType;
  bytes: Uint8Array;
  /** Element count written in the persistent id (default bytes / element size). */
  numel?: number;
}

const ITEM: Partial<Record<SafeDType, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1, BOOL: 1 };

/** Protocol-2 pickle of plain objects (dicts), strings, ints, booleans, null and TensorSpecs. */
export function pickleObject(obj: unknown, storages: Record<string, StorageSpec>): Buffer {
  const out: Buffer[] = [Buffer.from([0x80, 2])];
  const op = (...b: number[]) => out.push(Buffer.from(b));
  const str = (s: string) => {
    const u = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(4);
    n.writeUInt32LE(u.length);
    out.push(Buffer.from('X'), n, u);
  };
  const int = (v: number) => {
    if (v >= 0 && v < 256) op(0x4b, v);
    else {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      out.push(Buffer.from('J'), b);
    }
  };
  const global = (m: string, n: string) => out.push(Buffer.from(`c${m}\n${n}\n`, 'latin1'));
  const tuple = (items: number[]) => {
    op(0x28);
    items.forEach(int);
    op(0x74);
  };
  const value = (v: unknown): void => {
    if (v === null) op(0x4e);
    else if (v === true || v === false) op(v ? 0x88 : 0x89);
    else if (typeof v === 'number') int(v);
    else if (typeof v === 'string') str(v);
    else if (v instanceof TensorSpec) {
      const s = storages[v.storage];
      const item = ITEM[s.dtype]!;
      const stride = v.stride ?? v.shape.map((_, i) => v.shape.slice(i + 1).reduce((a, d) => a * d, 1));
      global('torch._utils', '_rebuild_tensor_v2');
      op(0x28, 0x28);
      str('storage');
      global('torch', STORAGE_CLASS[s.dtype]!);
      str(v.storage);
      str('cpu');
      int(s.numel ?? s.bytes.length / item);
      op(0x74, 0x51); // TUPLE, BINPERSID
      int(v.offset);
      tuple(v.shape);
      tuple(stride);
      op(0x89);
      global('collections', 'OrderedDict');
      op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
      op(0x74, 0x52); // TUPLE, REDUCE
    } else if (typeof v === 'object') {
      op(0x7d, 0x28);
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        str(k);
        value(x);
      }
      op(0x75);
    } else throw new Error(`cannot pickle ${typeof v}`);
  };
  value(obj);
  op(0x2e);
  return Buffer.concat(out);
}

/** A stored (uncompressed) zip archive of `entries`, with a valid central directory. */
export function zipStored(entries: [string, Uint8Array][]): Buffer {
  const parts: Buffer[] = [],
    cd: Buffer[] = [];
  let off = 0;
  for (const [name, data] of entries) {
    const n = Buffer.from(name, 'utf8'),
      crc = zlib.crc32(data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(n.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(data.length, 20);
    ch.writeUInt32LE(data.length, 24);
    ch.writeUInt16LE(n.length, 28);
    ch.writeUInt32LE(off, 42);
    parts.push(lh, n, Buffer.from(data));
    cd.push(ch, n);
    off += 30 + n.length + data.length;
  }
  const dir = Buffer.concat(cd),
    end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(off, 16);
  return Buffer.concat([...parts, dir, end]);
}

/** A torch.save-like zip file: `<folder>/data.pkl` (from `obj`, or raw pickle bytes) and its storages. */
export function torchZip(obj: unknown, storages: Record<string, StorageSpec> = {}, folder = 'archive'): Buffer {
  const pkl = obj instanceof Uint8Array ? obj : pickleObject(obj, storages);
  return zipStored([
    [`${folder}/data.pkl`, pkl],
    [`${folder}/byteorder`, Buffer.from('little')],
    ...Object.entries(storages).map(([k, s]) => [`${folder}/data/${k}`, s.bytes] as [string, Uint8Array]),
    [`${folder}/version`, Buffer.from('3\n')],
  ]);
}

/** Float32 bytes of `values`. */
export function f32(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
