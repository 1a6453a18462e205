import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsError, SafetensorsFile, encodeSafetensors, halfToFloat, readTensorBytes, readTensorF32, readTensorI64 } from './safetensors.js';

/** A safetensors file written by hand: 8-byte length, header text, data; `len` overrides the length field. */
function raw(header: unknown, data: Buffer = Buffer.alloc(0), len?: bigint): Buffer {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const l = Buffer.alloc(8);
  l.writeBigUInt64LE(len ?? BigInt(text.length));
  return Buffer.concat([l, text, data]);
}

const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

/** Open descriptors of this process (Linux), to show failed opens leak none. */
const openFds = () => (fs.existsSync('/proc/self/fd') ? fs.readdirSync('/proc/self/fd').length : 0);

describe('SafetensorsFile.open on bad files', () => {
  let dir: string;
  const write = (name: string, bytes: Buffer) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st-test-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The error of opening `file`: a SafetensorsError naming the file (name and full path) and matching `defect`. */
  const expectDefect = (file: string, defect: RegExp) => {
    let err: unknown;
    try {
      SafetensorsFile.open(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SafetensorsError);
    const msg = (err as Error).message;
    expect(msg.startsWith(`${path.basename(file)}: `)).toBe(true);
    expect(msg).toContain(`(file: ${file})`);
    expect(msg).toMatch(defect);
    expect((err as SafetensorsError).file).toBe(file);
  };

  it('reports each defect, naming the file, and stays usable afterwards', () => {
    const fdsBefore = openFds();
    const good = encodeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) } });

    // Truncated: shorter than the length field itself, and a good file cut inside its data area.
    expectDefect(write('tiny.safetensors', Buffer.from([1, 2, 3])), /truncated: 3 bytes, shorter than the 8-byte header length/);
    expectDefect(
      write('cut.safetensors', good.subarray(0, good.length - 4)),
      /tensor "w": data_offsets \[0, 16\] reach past the end of the data area \(12 bytes\); the file is truncated/,
    );

    // Header length larger than the file (e.g. a pickle or any other file renamed).
    expectDefect(
      write('long-header.safetensors', raw({}, Buffer.alloc(0), 1000n)),
      /header length 1000 is larger than the file allows \(2 bytes after the length field\)/,
    );

    // Garbled JSON header.
    expectDefect(write('garbled.safetensors', raw('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', Buffer.alloc(4))), /header is not valid JSON/);
    expectDefect(write('array.safetensors', raw('[1, 2]')), /header is not a JSON object/);

    // Unknown dtype.
    expectDefect(
      write('dtype.safetensors', raw({ w: entry('F12', [1], 0, 4) }, Buffer.alloc(4))),
      /tensor "w": unknown dtype "F12" \(known: F64, F32, F16, BF16/,
    );

    // data_offsets past the end of the data area, and not an ordered pair.
    expectDefect(
      write('past-end.safetensors', raw({ a: entry('F32', [1], 0, 4), b: entry('F32', [2], 4, 12) }, Buffer.alloc(8))),
      /tensor "b": data_offsets \[4, 12\] reach past the end of the data area \(8 bytes\)/,
    );
    expectDefect(
      write('reversed.safetensors', raw({ w: entry('F32', [1], 4, 0) }, Buffer.alloc(4))),
      /tensor "w": data_offsets \[4,0\] is not an ordered pair of byte offsets/,
    );

    // Overlapping tensors.
    expectDefect(
      write('overlap.safetensors', raw({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 4, 12) }, Buffer.alloc(12))),
      /tensors "a" and "b" overlap in the data area \(bytes 4\.\.8\)/,
    );

    // A byte count that does not fit the shape and dtype.
    expectDefect(
      write('count.safetensors', raw({ w: entry('F32', [2, 3], 0, 20) }, Buffer.alloc(20))),
      /tensor "w": 20 bytes for shape \[2,3\] of F32, expected 24/,
    );
    expectDefect(
      write('shape.safetensors', raw({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, Buffer.alloc(8))),
      /tensor "w": shape \[2,-1\] is not a list of non-negative integers/,
    );

    // Missing file.
    expectDefect(path.join(dir, 'absent.safetensors'), /cannot open: ENOENT/);

    // The process is still usable: a good file opens and reads, and no descriptor leaked.
    const ok = SafetensorsFile.open(write('good.safetensors', good));
    expect(Array.from(readTensorF32(ok.get('w')))).toEqual([1, 2, 3, 4]);
    expect(openFds()).toBe(fdsBefore);
  });

  it('names a missing tensor and the file', () => {
    const f = SafetensorsFile.open(write('one.safetensors', encodeSafetensors({ a: { dtype: 'U8', shape: [1], data: Uint8Array.from([7]) } })));
    expect(() => f.get('b')).toThrow(/one\.safetensors: missing tensor "b" \(file: .*one\.safetensors\)/);
  });
});

describe('encodeSafetensors round trip', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st-rt-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes F32 / I64 / U8 tensors and metadata that read back identically, 8-byte aligned', () => {
    const f32 = Float32Array.from([0.5, -1.25, 3e-8, 65504, -0, 1e30]);
    const i64 = BigInt64Array.from([0n, -1n, 49406n, 2n ** 62n]);
    const u8 = Uint8Array.from([0, 1, 254, 255, 9]);
    const bytes = encodeSafetensors(
      {
        'a.weight': { dtype: 'F32', shape: [2, 3], data: f32 },
        ids: { dtype: 'I64', shape: [4], data: i64 },
        mask: { dtype: 'U8', shape: [5], data: u8 },
        empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      },
      { format: 'pt', note: 'round trip' },
    );
    expect(Number(bytes.readBigUInt64LE(0)) % 8).toBe(0); // data area starts 8-byte aligned
    const file = path.join(dir, 'rt.safetensors');
    fs.writeFileSync(file, bytes);
    const st = SafetensorsFile.open(file);
    expect(st.keys()).toEqual(['a.weight', 'ids', 'mask', 'empty']);
    expect(st.metadata).toEqual({ format: 'pt', note: 'round trip' });
    expect(st.byteLength).toBe(bytes.length);
    const a = st.get('a.weight');
    expect(a).toMatchObject({ file, key: 'a.weight', dtype: 'F32', shape: [2, 3], length: 24 });
    expect(Array.from(readTensorF32(a))).toEqual(Array.from(f32));
    expect(Array.from(readTensorI64(st.get('ids')))).toEqual(Array.from(i64));
    expect(Array.from(readTensorBytes(st.get('mask')))).toEqual(Array.from(u8));
    expect(Array.from(readTensorF32(st.get('mask')))).toEqual(Array.from(u8));
    expect(st.get('empty').length).toBe(0);
    // The byte offset points at the tensor's bytes in the file (what ONNX external data uses).
    expect(bytes.subarray(a.offset, a.offset + a.length).equals(Buffer.from(f32.buffer))).toBe(true);
    expect(() => readTensorI64(a)).toThrow(/tensor "a\.weight": expected I64, found F32/);
  });

  it('converts F16 and BF16 to float32', () => {
    // 1.0, -2.0, 65504 (max half), 2^-24 (smallest subnormal), +inf as F16; 1.0 and -3.5 as BF16.
    const f16 = Buffer.alloc(10);
    [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00].forEach((h, i) => f16.writeUInt16LE(h, i * 2));
    const bf16 = Buffer.alloc(4);
    [0x3f80, 0xc060].forEach((h, i) => bf16.writeUInt16LE(h, i * 2));
    const file = path.join(dir, 'half.safetensors');
    fs.writeFileSync(file, raw({ h: entry('F16', [5], 0, 10), b: entry('BF16', [2], 10, 14) }, Buffer.concat([f16, bf16])));
    const st = SafetensorsFile.open(file);
    expect(Array.from(readTensorF32(st.get('h')))).toEqual([1, -2, 65504, 2 ** -24, Infinity]);
    expect(Array.from(readTensorF32(st.get('b')))).toEqual([1, -3.5]);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
  });
});
