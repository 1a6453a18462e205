/**
 * A minimal protobuf writer for the parts of onnx.proto we emit (ModelProto, GraphProto,
 * NodeProto, AttributeProto, TensorProto, ValueInfoProto). Field numbers follow
 * https://github.com/onnx/onnx/blob/main/onnx/onnx.proto3. We only ever write, never parse,
 * so a hand-written encoder (~150 lines) is simpler than a protobuf dependency.
 */

/** ONNX TensorProto.DataType values. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;
export type DataTypeId = (typeof DataType)[keyof typeof DataType];

/** Growable byte buffer with protobuf primitives. */
class Writer {
  private buf = new Uint8Array(256);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

const enc = new TextEncoder();

/** Message builder: each method appends one field. */
export class Msg {
  private w = new Writer();

  int(field: number, v: number | bigint): this {
    this.w.tag(field, 0);
    this.w.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.w.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.w.bytes(b);
    return this;
  }

  raw(field: number, data: Uint8Array): this {
    this.w.tag(field, 2);
    this.w.varint(data.length);
    this.w.bytes(data);
    return this;
  }

  str(field: number, s: string): this {
    return this.raw(field, enc.encode(s));
  }

  msg(field: number, m: Msg): this {
    return this.raw(field, m.finish());
  }

  /** Packed repeated varints (int64/int32). */
  packedInts(field: number, values: readonly (number | bigint)[]): this {
    const inner = new Writer();
    for (const v of values) inner.varint(v);
    return this.raw(field, inner.finish());
  }

  /** Packed repeated float32. */
  packedFloats(field: number, values: readonly number[]): this {
    const b = new Uint8Array(values.length * 4);
    const dv = new DataView(b.buffer);
    values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    return this.raw(field, b);
  }

  finish(): Uint8Array {
    return this.w.finish();
  }
}

/** Attribute values as the graph builder passes them. */
export type AttrValue =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'string'; v: string }
  | { kind: 'ints'; v: number[] }
  | { kind: 'floats'; v: number[] }
  | { kind: 'tensor'; v: TensorSpec };

/** A TensorProto: inline raw data, or external data (location/offset/length). */
export interface TensorSpec {
  name: string;
  dataType: DataTypeId;
  dims: number[];
  raw?: Uint8Array;
  external?: { location: string; offset: number; length: number };
}

export function encodeTensor(t: TensorSpec): Msg {
  const m = new Msg();
  m.packedInts(1, t.dims);
  m.int(2, t.dataType);
  m.str(8, t.name);
  if (t.raw) m.raw(9, t.raw);
  if (t.external) {
    const kv = (k: string, v: string) => new Msg().str(1, k).str(2, v);
    m.msg(13, kv('location', t.external.location));
    m.msg(13, kv('offset', String(t.external.offset)));
    m.msg(13, kv('length', String(t.external.length)));
    m.int(14, 1); // data_location = EXTERNAL
  }
  return m;
}

export function encodeAttribute(name: string, a: AttrValue): Msg {
  const m = new Msg().str(1, name);
  switch (a.kind) {
    case 'float':
      m.float(2, a.v).int(20, 1);
      break;
    case 'int':
      m.int(3, a.v).int(20, 2);
      break;
    case 'string':
      m.str(4, a.v).int(20, 3);
      break;
    case 'tensor':
      m.msg(5, encodeTensor(a.v)).int(20, 4);
      break;
    case 'floats':
      m.packedFloats(7, a.v).int(20, 6);
      break;
    case 'ints':
      m.packedInts(8, a.v).int(20, 7);
      break;
  }
  return m;
}

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  domain?: string;
  attrs: Record<string, AttrValue>;
}

export function encodeNode(n: NodeSpec): Msg {
  const m = new Msg();
  for (const i of n.inputs) m.str(1, i);
  for (const o of n.outputs) m.str(2, o);
  m.str(3, n.name);
  m.str(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs)) m.msg(5, encodeAttribute(k, v));
  if (n.domain) m.str(7, n.domain);
  return m;
}

/** ValueInfoProto with a tensor type; a string dim is symbolic (dim_param). */
export function encodeValueInfo(name: string, elemType: DataTypeId, dims: (number | string)[] | null): Msg {
  const tensorType = new Msg().int(1, elemType);
  if (dims) {
    const shape = new Msg();
    for (const d of dims) shape.msg(1, typeof d === 'number' ? new Msg().int(1, d) : new Msg().str(2, d));
    tensorType.msg(2, shape);
  }
  return new Msg().str(1, name).msg(2, new Msg().msg(1, tensorType));
}

export interface GraphSpec {
  name: string;
  nodes: NodeSpec[];
  initializers: TensorSpec[];
  inputs: { name: string; type: DataTypeId; dims: (number | string)[] }[];
  outputs: { name: string; type: DataTypeId; dims: (number | string)[] | null }[];
}

export function encodeModel(g: GraphSpec, opsets: Record<string, number>, producer = 'ipadapter-studio'): Uint8Array {
  const graph = new Msg();
  for (const n of g.nodes) graph.msg(1, encodeNode(n));
  graph.str(2, g.name);
  for (const t of g.initializers) graph.msg(5, encodeTensor(t));
  for (const i of g.inputs) graph.msg(11, encodeValueInfo(i.name, i.type, i.dims));
  for (const o of g.outputs) graph.msg(12, encodeValueInfo(o.name, o.type, o.dims));
  const model = new Msg().int(1, 9).str(2, producer).str(3, '0.1.0');
  for (const [domain, version] of Object.entries(opsets)) model.msg(8, new Msg().str(1, domain).int(2, version));
  model.msg(7, graph);
  return model.finish();
}
