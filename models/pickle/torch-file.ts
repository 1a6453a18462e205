/**
 * torch.save files, read without running them (torch/serialization.py is the reference):
 *
 * - zip format (torch >= 1.6, `_save`): `<folder>/data.pkl` is the pickled object (protocol 2),
 *   tensors `<folder>/data/<key>` are the raw little-endian storage bytes, stored uncompressed;
 *   newer torch adds `<folder>/byteorder` ("little") and `<folder>/.data/serialization_id`. The folder
 *   name is not fixed (the file's stem in torch 1.13, `archive` later). A storage is the persistent id
 *   `('storage', torch.FloatStorage, key, location, numel)`.
 * - legacy format (`_legacy_save`): five pickles back to back, magic number 0x1950a86a20f9469cfc6c,
 *   protocol version 1001, sys_info, the object (persistent ids `('storage', type, key, location,
 *   numel, view_metadata)`), the list of storage keys; then per key an int64 element count and the
 *   raw little-endian bytes.
 *
 * A tensor is `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks)` (`_rebuild_parameter(tensor, ...)` for nn.Parameter). Every offset, extent and
 * record length is checked; a contiguous tensor becomes a byte range of the file itself (used in
 * place, like a safetensors tensor); a strided one is gathered into a copy file.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../fs-atomic.js';
import { openRegularFileSync } from '../regular-file.js';
import { DTYPE_BYTES, type SafeDType, type TensorRef } from '../safetensors.js';
import { ALLOW_BUILD, type AllowedGlobal, BufferSource, FdSource, GlobalRef, PickleError, describe, unpickle } from './unpickler.js';
import { type ZipEntry, entryDataOffset, readAt, readEntry, readZipEntries } from './zip.js';

/** torch storage classes and the safetensors dtype of their elements. */
const STORAGE_DTYPES: Record<string, SafeDType> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};
/** Storage classes torch knows but no Stable Diffusion file uses: refused with their dtype rather than misread. */
const UNSUPPORTED_STORAGES: Record<string, string> = {
  ComplexFloatStorage: 'complex64',
  ComplexDoubleStorage: 'complex128',
  ComplexHalfStorage: 'complex32',
  QInt8Storage: 'qint8 (quantized)',
  QUInt8Storage: 'quint8 (quantized)',
  QInt32Storage: 'qint32 (quantized)',
  QUInt4x2Storage: 'quint4x2 (quantized)',
  QUInt2x4Storage: 'quint2x4 (quantized)',
  UntypedStorage: 'untyped bytes',
};
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** Largest data.pkl read (real SD checkpoints have a few hundred KiB). */
const MAX_PICKLE_BYTES = 512 * 1024 * 1024;

/** A storage as a pickle refers to it: its record key, element type and element count. */
class StorageRef {
  readonly [ALLOW_BUILD] = true;
  constructor(
    readonly key: string,
    readonly dtype: SafeDType,
    readonly numel: number,
    readonly rootKey = key,
    readonly elementOffset = 0,
  ) {}
}

/** A tensor description (nothing is read until it is resolved against the file). */
export class TensorValue {
  readonly [ALLOW_BUILD] = true;
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const counts = (v: unknown, what: string): number[] => {
  if (!Array.isArray(v) || !v.every(isCount)) throw new PickleError(`tensor ${what} ${describe(v)} is not a tuple of non-negative integers`);
  return [...v];
};

function rebuildTensor(args: readonly unknown[]): TensorValue {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new PickleError(`_rebuild_tensor_v2 on ${describe(storage)} instead of a storage`);
  if (!isCount(offset)) throw new PickleError(`tensor storage offset ${String(offset)} is not a non-negative integer`);
  const shape = counts(size, 'size'),
    strides = counts(stride, 'stride');
  if (shape.length !== strides.length) throw new PickleError(`tensor size [${shape}] and stride [${strides}] differ in length`);
  return new TensorValue(storage, offset, shape, strides);
}

function rebuildParameter(args: readonly unknown[]): TensorValue {
  if (!(args[0] instanceof TensorValue)) throw new PickleError(`_rebuild_parameter on ${describe(args[0])} instead of a tensor`);
  return args[0];
}

/** The globals a tensor file uses; everything else is refused by name. */
function tensorFileGlobals(): Map<string, AllowedGlobal> {
  const g = new Map<string, AllowedGlobal>([
    // OrderedDict(): REDUCE with () then SETITEMS; OrderedDict([(k, v), ...]) also accepted.
    ['collections.OrderedDict', { call: (args) => new Map(args.length ? pairs(args[0]) : []) }],
    ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
    ['torch._utils._rebuild_tensor', { call: rebuildTensor }],
    ['torch._utils._rebuild_parameter', { call: rebuildParameter }],
    ['torch._utils._rebuild_parameter_with_state', { call: rebuildParameter }],
    // Protocol-2 pickles of Python 3 bytes: _codecs.encode(str, "latin1").
    [
      '_codecs.encode',
      {
        call: ([s, enc]) => {
          if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) throw new PickleError('_codecs.encode is only read for latin1 bytes');
          return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
        },
      },
    ],
  ]);
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) g.set(`torch.${name}`, { value: dtype });
  return g;
}

function pairs(v: unknown): [unknown, unknown][] {
  if (!Array.isArray(v) || !v.every((p) => Array.isArray(p) && p.length === 2))
    throw new PickleError('OrderedDict(...) with something other than (key, value) pairs');
  return v as [unknown, unknown][];
}

const GLOBALS = tensorFileGlobals();

function refuseGlobal(q: string): string {
  const storage = /^torch\.(\w+Storage)$/.exec(q)?.[1];
  if (storage && UNSUPPORTED_STORAGES[storage]) {
    return `it holds ${UNSUPPORTED_STORAGES[storage]} tensors (${q}), a dtype no Stable Diffusion file uses; refusing rather than misreading its bytes (readable: ${Object.values(STORAGE_DTYPES).join(', ')})`;
  }
  return `refused: "${q}" is not a tensor-file global; loading it with plain torch.load could run code, and nothing in it was run here (only plain data and tensors are read from PyTorch files)`;
}

/** Parses a storage persistent id (5 items in zip files, 6 in legacy ones) into a StorageRef. */
function storageFromPid(pid: unknown, legacy: boolean, seen: Map<string, StorageRef>): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage') {
    const what = Array.isArray(pid) && pid[0] === 'module' ? 'a pickled module (whole-model file with source code)' : describe(pid);
    throw new PickleError(`persistent id ${what} is not a tensor storage`);
  }
  const [, type, key, , numel, view] = pid;
  const dtype = type instanceof GlobalRef ? type.allowed.value : undefined;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw new PickleError(`storage type ${describe(type)} is not a torch storage class`);
  if (typeof key !== 'string' || !isCount(numel)) throw new PickleError(`malformed storage id (key ${describe(key)}, numel ${String(numel)})`);
  const root = seen.get(key) ?? new StorageRef(key, dtype as SafeDType, numel);
  if (root.numel !== numel || root.dtype !== dtype)
    throw new PickleError(`storage "${key}" is referred to as ${root.numel} ${root.dtype} and as ${numel} ${dtype}`);
  seen.set(key, root);
  if (!legacy || view === null || view === undefined) return root;
  const [viewKey, off, size] = Array.isArray(view) ? view : [];
  if (typeof viewKey !== 'string' || !isCount(off) || !isCount(size) || off + size > numel)
    throw new PickleError(`storage view ${describe(view)} of "${key}" lies outside its ${numel} elements`);
  return new StorageRef(viewKey, root.dtype, size, key, off);
}

/** Where each root storage's bytes are in the file. */
type StorageBytes = (root: StorageRef) => { offset: number; length: number; where: string };

/** Turns a tensor description into a TensorRef: in place when contiguous, else a gathered copy. */
function resolveTensor(file: string, name: string, t: TensorValue, bytesOf: StorageBytes): TensorRef {
  const s = t.storage,
    item = DTYPE_BYTES[s.dtype];
  const rec = bytesOf(s);
  const rootNumel = rec.length / item;
  const numel = t.shape.reduce((a, d) => a * d, 1);
  const extent = numel === 0 ? 0 : 1 + t.shape.reduce((a, d, i) => a + (d - 1) * t.stride[i]!, 0);
  if (t.offset + extent > s.numel) {
    throw new PickleError(
      `tensor "${name}": storage offset ${t.offset} + extent ${extent} elements (size [${t.shape}], stride [${t.stride}]) reaches past its storage of ${s.numel} elements (${rec.where}); the file is corrupt or malicious`,
    );
  }
  if (s.elementOffset + s.numel > rootNumel) throw new PickleError(`tensor "${name}": storage view past its root storage (${rec.where})`);
  const first = rec.offset + (s.elementOffset + t.offset) * item;
  let expect = 1,
    contiguous = true;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expect) contiguous = false;
    expect *= t.shape[i]!;
  }
  if (contiguous) return { file, key: name, dtype: s.dtype, shape: t.shape, offset: first, length: numel * item };
  return gatherCopy(file, name, t, first, extent, item);
}

/** Copies a strided tensor into a contiguous file under the temp folder (named by content source). */
function gatherCopy(file: string, name: string, t: TensorValue, first: number, extent: number, item: number): TensorRef {
  const st = fs.statSync(file);
  const id = crypto.createHash('sha256').update(`${file}\0${st.size}\0${st.mtimeMs}\0${name}\0${first}\0${t.shape}\0${t.stride}`).digest('hex').slice(0, 32);
  const out = path.join(os.tmpdir(), 'ipas-tensor-copies', `${id}.bin`);
  const numel = t.shape.reduce((a, d) => a * d, 1);
  if (!fs.existsSync(out) || fs.statSync(out).size !== numel * item) {
    const fd = openRegularFileSync(file);
    let src: Buffer;
    try {
      src = readAt(fd, first, extent * item, `tensor "${name}"`);
    } finally {
      fs.closeSync(fd);
    }
    const dst = Buffer.alloc(numel * item);
    const idx = new Array<number>(t.shape.length).fill(0);
    for (let n = 0; n < numel; n++) {
      let e = 0;
      for (let d = 0; d < idx.length; d++) e += idx[d]! * t.stride[d]!;
      src.copy(dst, n * item, e * item, e * item + item);
      for (let d = idx.length - 1; d >= 0 && ++idx[d]! === t.shape[d]; d--) idx[d] = 0;
    }
    writeFileAtomicSync(out, dst);
  }
  return { file: out, key: name, dtype: t.storage.dtype, shape: t.shape, offset: 0, length: numel * item };
}

/** The unpickled object and how to find its storages' bytes. */
export interface TorchObject {
  root: unknown;
  bytesOf: StorageBytes;
  format: 'zip' | 'legacy';
}

/** Reads a torch.save zip archive's object. */
export function readTorchZip(fd: number, size: number): TorchObject {
  const entries = readZipEntries(fd, size);
  const pkls = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  const [pkl] = pkls;
  if (pkls.length !== 1 || !pkl) {
    throw new PickleError(
      pkls.length
        ? `the archive has ${pkls.length} */data.pkl records; a torch.save file has one`
        : `a zip archive without a <folder>/data.pkl record, so not a torch.save file (records: ${
            entries
              .slice(0, 5)
              .map((e) => e.name)
              .join(', ') || 'none'
          })`,
    );
  }
  const folder = pkl.name.slice(0, -'/data.pkl'.length);
  const byName = new Map(entries.map((e) => [e.name, e] as [string, ZipEntry]));
  const order = byName.get(`${folder}/byteorder`);
  if (order) {
    const v = readEntry(fd, size, order, 16).toString('latin1').trim();
    if (v !== 'little') throw new PickleError(`the tensors are stored ${v}-endian; only little-endian files are read`);
  }
  const seen = new Map<string, StorageRef>();
  const root = unpickle(new BufferSource(readEntry(fd, size, pkl, MAX_PICKLE_BYTES)), {
    globals: GLOBALS,
    refuse: refuseGlobal,
    persistentLoad: (pid) => storageFromPid(pid, false, seen),
  });
  const bytesOf: StorageBytes = (s) => {
    const where = `record ${folder}/data/${s.rootKey}`;
    const e = byName.get(`${folder}/data/${s.rootKey}`);
    if (!e) throw new PickleError(`storage "${s.rootKey}" has no ${where} in the archive`);
    if (e.method !== 0)
      throw new PickleError(
        `${where} is compressed (method ${e.method}); torch.save stores tensors uncompressed, so the file was repacked: unzip and re-zip it with "zip -0", or re-save it`,
      );
    const root = seen.get(s.rootKey)!;
    const need = root.numel * DTYPE_BYTES[root.dtype];
    if (e.size !== need)
      throw new PickleError(`storage "${s.rootKey}" holds ${root.numel} ${root.dtype} elements = ${need} bytes, but its ${where} has ${e.size} bytes`);
    return { offset: entryDataOffset(fd, size, e), length: e.size, where };
  };
  return { root, bytesOf, format: 'zip' };
}

/** Reads a legacy (pre-1.6, non-zip) torch.save stream's object and locates its storages. */
export function readTorchLegacy(fd: number, size: number): TorchObject {
  const src = new FdSource(fd, size);
  const header = (what: string) =>
    unpickle(src, {
      globals: GLOBALS,
      refuse: refuseGlobal,
      persistentLoad: () => {
        throw new PickleError(`a persistent id in the ${what} pickle`);
      },
    });
  const magic = header('magic number');
  if (magic !== LEGACY_MAGIC) throw new PickleError(`a pickle that is not a torch.save file (first value ${describe(magic)}, expected torch's magic number)`);
  const protocol = header('protocol version');
  if (protocol !== LEGACY_PROTOCOL) throw new PickleError(`legacy torch.save protocol ${String(protocol)}; only ${LEGACY_PROTOCOL} is read`);
  const sysInfo = header('sys_info');
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false)
    throw new PickleError('the tensors were saved on a big-endian machine; only little-endian files are read');
  const seen = new Map<string, StorageRef>();
  const root = unpickle(src, { globals: GLOBALS, refuse: refuseGlobal, persistentLoad: (pid) => storageFromPid(pid, true, seen) });
  const keys = header('storage keys');
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string'))
    throw new PickleError(`the storage key list is ${describe(keys)}, not a list of strings`);
  const located = new Map<string, { offset: number; length: number }>();
  let pos = src.pos;
  for (const key of keys as string[]) {
    const s = seen.get(key);
    if (!s) throw new PickleError(`storage "${key}" is listed but no tensor uses it, so its element size is unknown`);
    const n = Number(readAt(fd, pos, 8, `the element count of storage "${key}"`).readBigInt64LE(0));
    if (n !== s.numel) throw new PickleError(`storage "${key}" has ${n} elements in the data but ${s.numel} in the pickle`);
    const length = n * DTYPE_BYTES[s.dtype];
    if (pos + 8 + length > size)
      throw new PickleError(`the file is truncated: storage "${key}" (${length} bytes at ${pos + 8}) reaches past its end (${size} bytes)`);
    located.set(key, { offset: pos + 8, length });
    pos += 8 + length;
  }
  const bytesOf: StorageBytes = (s) => {
    const r = located.get(s.rootKey);
    if (!r) throw new PickleError(`storage "${s.rootKey}" is not in the file's storage list`);
    return { ...r, where: `legacy storage "${s.rootKey}"` };
  };
  return { root, bytesOf, format: 'legacy' };
}

/** Largest nesting of dicts walked when collecting tensors (also bounds cycles made with the memo). */
const MAX_DICT_DEPTH = 64;

/**
 * The state dict's tensors by name: `state_dict` is unwrapped repeatedly (as diffusers does), other
 * top-level entries (`global_step`, `epoch`, ...) are ignored, nested dicts are joined with "." (an
 * h94 `{"image_proj": {...}, "ip_adapter": {...}}` file gives the `image_proj.*` / `ip_adapter.*`
 * names of its safetensors twin), and non-tensor leaves are skipped.
 */
export function stateDictTensors(file: string, obj: TorchObject): Map<string, TensorRef> {
  let sd = obj.root;
  for (let i = 0; sd instanceof Map && sd.get('state_dict') instanceof Map; i++) {
    if (i > MAX_DICT_DEPTH) throw new PickleError(`"state_dict" nested deeper than ${MAX_DICT_DEPTH} levels`);
    sd = sd.get('state_dict');
  }
  if (!(sd instanceof Map)) throw new PickleError(`the file holds ${describe(sd)}, not a dict of tensors (a state dict)`);
  const out = new Map<string, TensorRef>();
  const walk = (d: Map<unknown, unknown>, prefix: string, depth: number) => {
    if (depth > MAX_DICT_DEPTH) throw new PickleError(`dicts nested deeper than ${MAX_DICT_DEPTH} levels; refusing the file`);
    for (const [k, v] of d) {
      if (typeof k !== 'string' && typeof k !== 'number') continue;
      const name = prefix ? `${prefix}.${k}` : String(k);
      if (v instanceof TensorValue) {
        if (out.has(name)) throw new PickleError(`two tensors are named "${name}"`);
        out.set(name, resolveTensor(file, name, v, obj.bytesOf));
      } else if (v instanceof Map) walk(v, name, depth + 1);
    }
  };
  walk(sd, '', 0);
  if (out.size === 0) {
    const keys = [...sd.keys()]
      .slice(0, 8)
      .map((k) => JSON.stringify(typeof k === 'bigint' ? String(k) : k))
      .join(', ');
    throw new PickleError(`no tensors found (top-level keys: ${keys || 'none'})`);
  }
  return out;
}
