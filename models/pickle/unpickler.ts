/**
 * A restricted pickle interpreter: it reads Python's pickle opcodes (protocols 0-5, see CPython's
 * Lib/pickle.py and Lib/pickletools.py for the opcode table) and builds only plain data, so no
 * code from the file ever runs.
 *
 * What it builds: None -> null, bool, int -> number (bigint beyond 2^53), float, str -> string,
 * bytes -> Uint8Array, list -> array, tuple -> frozen array, dict -> Map, set -> Set. A global
 * (GLOBAL, STACK_GLOBAL, INST) is looked up in the caller's allow-list at the moment the opcode is
 * read, and anything not listed is refused with its name before any later opcode runs. Calls
 * (REDUCE, OBJ, INST, NEWOBJ, NEWOBJ_EX) are only possible on allow-listed entries, whose behaviour
 * is our own TypeScript (e.g. building a tensor description), never Python's. BUILD is accepted on
 * dicts and on the allow-list's own objects, whose attribute state is ignored. Extension codes and
 * out-of-band buffers are refused. Nesting (MARK depth) is bounded, and the interpreter is a loop
 * over a stack, so a deeply nested file fails with a message instead of overflowing anything.
 */
import * as fs from 'node:fs';

/** A defect or refusal found while reading a pickle (the caller adds the file name). */
export class PickleError extends Error {
  constructor(
    message: string,
    readonly refusedGlobal?: string,
  ) {
    super(message);
    this.name = 'PickleError';
  }
}

/** Bytes to interpret; `pos` is the absolute position (for messages and for what follows a pickle). */
export interface ByteSource {
  readonly pos: number;
  u8(): number;
  take(n: number): Uint8Array;
}

/** One allow-listed global: `call` implements REDUCE/INST/OBJ/NEWOBJ on it; `value` is what the pickle sees. */
export interface AllowedGlobal {
  /** Called with the argument tuple; absent = the global may not be called. */
  call?: (args: readonly unknown[]) => unknown;
  /** What GLOBAL pushes when it is not called (defaults to a GlobalRef). */
  value?: unknown;
}

/** A global as the pickle names it ("collections.OrderedDict"); never resolved to anything runnable. */
export class GlobalRef {
  constructor(
    readonly qualname: string,
    readonly allowed: AllowedGlobal,
  ) {}
}

export interface UnpickleOptions {
  /** Allow-list by "module.name". */
  globals: ReadonlyMap<string, AllowedGlobal>;
  /** Resolves BINPERSID / PERSID ids (torch: tensor storages); absent = persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Refusal text for a global that is not listed (default `"m.n" is not an allowed global`). */
  refuse?: (qualname: string) => string;
  /** Largest MARK depth (default 256). */
  maxDepth?: number;
}

/** Longest str/bytes object accepted (tensor files hold short names). */
const MAX_BLOB = 256 * 1024 * 1024;
/** Longest LONG1/LONG4 integer in bytes (torch's magic number is 10). */
const MAX_LONG_BYTES = 64;
const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

/** Little-endian two's complement integer of LONG1/LONG4 (a number when safe, else a bigint). */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length > MAX_LONG_BYTES) throw new PickleError(`a ${b.length}-byte integer, larger than any tensor file holds`);
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b.length && b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return toNumber(v);
}

function toNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Short description of a value for messages. */
export function describe(v: unknown): string {
  if (v instanceof GlobalRef) return v.qualname;
  if (v === null) return 'None';
  if (v instanceof Map) return 'a dict';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'a tuple' : 'a list';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return `a ${v.constructor?.name ?? 'object'}`;
  return `a ${typeof v}`;
}

/**
 * Interprets one pickle from `src` (up to its STOP opcode) and returns the object it builds.
 * Throws PickleError for malformed input and for every refused global or operation.
 */
export function unpickle(src: ByteSource, opts: UnpickleOptions): unknown {
  const maxDepth = opts.maxDepth ?? 256;
  const refuse = opts.refuse ?? ((q: string) => `"${q}" is not an allowed global`);
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let at = 0;
  const fail = (why: string): never => {
    throw new PickleError(`${why} (pickle byte ${at})`);
  };

  // Arguments are evaluated before `stack` is read, so push(popMark()) pushes onto the outer stack.
  const push = (v: unknown) => {
    stack.push(v);
  };
  const pop = (): unknown => (stack.length ? stack.pop() : fail('stack underflow: the pickle is corrupt'));
  const top = (): unknown => (stack.length ? stack[stack.length - 1] : fail('stack underflow: the pickle is corrupt'));
  const popMark = (): unknown[] => {
    const items = stack;
    stack = metastack.pop() ?? fail('no MARK to pop: the pickle is corrupt');
    return items;
  };
  const u16 = () => {
    const b = src.take(2);
    return b[0]! | (b[1]! << 8);
  };
  const u32 = () => {
    const b = src.take(4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16)) + b[3]! * 0x1000000;
  };
  const u64 = () => {
    const lo = u32(),
      hi = u32();
    return hi * 0x100000000 + lo;
  };
  const blob = (n: number) => (n > MAX_BLOB ? fail(`a ${n}-byte string, longer than any tensor file holds`) : src.take(n));
  const line = (): string => {
    const out: number[] = [];
    for (let b = src.u8(); b !== 0x0a; b = src.u8()) {
      if (out.length > 65536) fail('a text line longer than 64 KiB');
      out.push(b);
    }
    return latin1.decode(Uint8Array.from(out));
  };
  const global = (module: string, name: string): GlobalRef => {
    const q = `${module}.${name}`;
    const allowed = opts.globals.get(q);
    if (!allowed) throw new PickleError(refuse(q), q);
    return new GlobalRef(q, allowed);
  };
  const call = (fn: unknown, args: unknown, how: string): unknown => {
    if (!(fn instanceof GlobalRef)) return fail(`${how} on ${describe(fn)} is not allowed`);
    if (!fn.allowed.call) throw new PickleError(`${how} on "${fn.qualname}" is not allowed: it is a tensor-file global that is never called`, fn.qualname);
    if (!Array.isArray(args)) return fail(`${how} on "${fn.qualname}" with ${describe(args)} instead of an argument tuple`);
    return fn.allowed.call(args);
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof Map)) fail(`SETITEM(S) on ${describe(d)} instead of a dict`);
    if (kv.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < kv.length; i += 2) (d as Map<unknown, unknown>).set(kv[i], kv[i + 1]);
  };
  const appendTo = (l: unknown, items: unknown[]) => {
    if (!Array.isArray(l) || Object.isFrozen(l)) fail(`APPEND(S) on ${describe(l)} instead of a list`);
    for (const x of items) (l as unknown[]).push(x);
  };
  const persistent = (pid: unknown) => (opts.persistentLoad ? opts.persistentLoad(pid) : fail('a persistent id where none is expected'));
  const int = (s: string): number | bigint => {
    if (!/^[+-]?\d+$/.test(s)) fail(`malformed integer ${JSON.stringify(s.slice(0, 40))}`);
    return toNumber(BigInt(s));
  };

  for (;;) {
    at = src.pos;
    const op = src.u8();
    switch (op) {
      case 0x80: {
        const p = src.u8();
        if (p > 5) fail(`pickle protocol ${p} is newer than 5`);
        break;
      } // PROTO
      case 0x95:
        u64();
        break; // FRAME: a length hint only
      case 0x2e:
        return stack.length === 1 && metastack.length === 0 ? stack[0] : fail('STOP with a malformed stack'); // STOP '.'
      case 0x28: // MARK '('
        if (metastack.length >= maxDepth) fail(`nesting deeper than ${maxDepth} levels; refusing the file (a recursion bomb or a corrupt pickle)`);
        metastack.push(stack);
        stack = [];
        break;
      case 0x30:
        if (stack.length) stack.pop();
        else popMark();
        break; // POP '0'
      case 0x31:
        popMark();
        break; // POP_MARK '1'
      case 0x32:
        push(top());
        break; // DUP '2'
      // Constants and numbers.
      case 0x4e:
        push(null);
        break; // NONE 'N'
      case 0x88:
        push(true);
        break; // NEWTRUE
      case 0x89:
        push(false);
        break; // NEWFALSE
      case 0x4b:
        push(src.u8());
        break; // BININT1 'K'
      case 0x4d:
        push(u16());
        break; // BININT2 'M'
      case 0x4a:
        push(u32() | 0);
        break; // BININT 'J' (signed)
      case 0x8a:
        push(decodeLong(src.take(src.u8())));
        break; // LONG1
      case 0x8b: {
        const n = u32();
        push(n > MAX_LONG_BYTES ? fail(`a ${n}-byte integer`) : decodeLong(src.take(n)));
        break;
      } // LONG4
      case 0x49: {
        const s = line();
        push(s === '01' ? true : s === '00' ? false : int(s));
        break;
      } // INT 'I'
      case 0x4c:
        push(int(line().replace(/L$/, '')));
        break; // LONG 'L'
      case 0x46:
        push(Number.parseFloat(line()));
        break; // FLOAT 'F'
      case 0x47: {
        const b = src.take(8);
        push(new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, false));
        break;
      } // BINFLOAT 'G'
      // Strings and bytes.
      case 0x58:
        push(utf8.decode(blob(u32())));
        break; // BINUNICODE 'X'
      case 0x8c:
        push(utf8.decode(blob(src.u8())));
        break; // SHORT_BINUNICODE
      case 0x8d:
        push(utf8.decode(blob(u64())));
        break; // BINUNICODE8
      case 0x56:
        push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
        break; // UNICODE 'V'
      case 0x54:
        push(utf8.decode(blob(u32())));
        break; // BINSTRING 'T' (Python 2 str, decoded as torch.load does: utf-8)
      case 0x55:
        push(utf8.decode(blob(src.u8())));
        break; // SHORT_BINSTRING 'U'
      case 0x53: {
        // STRING 'S': a quoted repr; escapes beyond \\ \' \" \n \t \xNN are not in tensor files
        const s = line();
        if (s.length < 2 || (s[0] !== "'" && s[0] !== '"') || s[s.length - 1] !== s[0]) fail('malformed STRING');
        push(
          s
            .slice(1, -1)
            .replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) =>
              e[0] === 'x' ? String.fromCharCode(parseInt(e.slice(1), 16)) : e === 'n' ? '\n' : e === 't' ? '\t' : e,
            ),
        );
        break;
      }
      case 0x42:
        push(Uint8Array.from(blob(u32())));
        break; // BINBYTES 'B'
      case 0x43:
        push(Uint8Array.from(blob(src.u8())));
        break; // SHORT_BINBYTES 'C'
      case 0x8e:
        push(Uint8Array.from(blob(u64())));
        break; // BINBYTES8
      case 0x96:
        push(Uint8Array.from(blob(u64())));
        break; // BYTEARRAY8
      case 0x97:
      case 0x98:
        fail('out-of-band buffers (protocol 5 NEXT_BUFFER / READONLY_BUFFER) are not used by tensor files');
        break;
      // Containers.
      case 0x7d:
        push(new Map());
        break; // EMPTY_DICT '}'
      case 0x5d:
        push([]);
        break; // EMPTY_LIST ']'
      case 0x29:
        push(Object.freeze([]));
        break; // EMPTY_TUPLE ')'
      case 0x8f:
        push(new Set());
        break; // EMPTY_SET
      case 0x64: {
        const d = new Map();
        setItems(d, popMark());
        push(d);
        break;
      } // DICT 'd'
      case 0x6c:
        push(popMark());
        break; // LIST 'l'
      case 0x74:
        push(Object.freeze(popMark()));
        break; // TUPLE 't'
      case 0x85:
        push(Object.freeze([pop()]));
        break; // TUPLE1
      case 0x86: {
        const b = pop(),
          a = pop();
        push(Object.freeze([a, b]));
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop(),
          b = pop(),
          a = pop();
        push(Object.freeze([a, b, c]));
        break;
      } // TUPLE3
      case 0x91:
        push(new Set(popMark()));
        break; // FROZENSET
      case 0x61: {
        const x = pop();
        appendTo(top(), [x]);
        break;
      } // APPEND 'a'
      case 0x65: {
        const items = popMark();
        appendTo(top(), items);
        break;
      } // APPENDS 'e'
      case 0x73: {
        const v = pop(),
          k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM 's'
      case 0x75: {
        const kv = popMark();
        setItems(top(), kv);
        break;
      } // SETITEMS 'u'
      case 0x90: {
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail(`ADDITEMS on ${describe(s)}`);
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      } // ADDITEMS
      // Memo.
      case 0x70:
        memo.set(Number(int(line())), top());
        break; // PUT 'p'
      case 0x71:
        memo.set(src.u8(), top());
        break; // BINPUT 'q'
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT 'r'
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x67:
      case 0x68:
      case 0x6a: {
        // GET 'g', BINGET 'h', LONG_BINGET 'j'
        const i = op === 0x67 ? Number(int(line())) : op === 0x68 ? src.u8() : u32();
        push(memo.has(i) ? memo.get(i) : fail(`memo entry ${i} is read before it is written`));
        break;
      }
      // Globals and calls: every global is checked against the allow-list here, when it is named.
      case 0x63: {
        const m = line();
        push(global(m, line()));
        break;
      } // GLOBAL 'c'
      case 0x93: {
        // STACK_GLOBAL
        const name = pop(),
          m = pop();
        if (typeof m !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without two strings');
        push(global(m as string, name as string));
        break;
      }
      case 0x69: {
        const m = line();
        const g = global(m, line());
        push(call(g, popMark(), 'INST'));
        break;
      } // INST 'i'
      case 0x6f: {
        const items = popMark();
        push(call(items[0], items.slice(1), 'OBJ'));
        break;
      } // OBJ 'o'
      case 0x52: {
        const args = pop();
        push(call(pop(), args, 'REDUCE'));
        break;
      } // REDUCE 'R'
      case 0x81: {
        const args = pop();
        push(call(pop(), args, 'NEWOBJ'));
        break;
      } // NEWOBJ
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop(),
          args = pop(),
          cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size) fail('NEWOBJ_EX with keyword arguments');
        push(call(cls, args, 'NEWOBJ_EX'));
        break;
      }
      case 0x62: {
        // BUILD 'b': only dicts (OrderedDict attributes such as _metadata) and allow-listed objects
        pop();
        const inst = top();
        if (!(inst instanceof Map) && !isAllowListed(inst)) fail(`BUILD on ${describe(inst)} is not allowed`);
        break;
      }
      case 0x51: {
        const pid = pop();
        push(persistent(pid));
        break;
      } // BINPERSID 'Q'
      case 0x50:
        push(persistent(line()));
        break; // PERSID 'P'
      case 0x82:
      case 0x83:
      case 0x84:
        fail('extension-registry globals (EXT1/EXT2/EXT4) are not allowed');
        break;
      default:
        fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}: the file is corrupt or not a pickle`);
    }
  }
}

/** Objects made by allow-listed calls mark themselves so BUILD on them is accepted (and ignored). */
export const ALLOW_BUILD: unique symbol = Symbol('allow-build');
function isAllowListed(v: unknown): boolean {
  return typeof v === 'object' && v !== null && ALLOW_BUILD in v;
}

/** Reads from an in-memory pickle (a zip archive's data.pkl). */
export class BufferSource implements ByteSource {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  u8(): number {
    if (this.pos >= this.buf.length) throw new PickleError(`the pickle ends early at byte ${this.pos}: the file is truncated`);
    return this.buf[this.pos++]!;
  }
  take(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) throw new PickleError(`the pickle ends early at byte ${this.pos} (wanted ${n} more bytes): the file is truncated`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** Reads pickles straight from a file, buffered (the legacy torch.save format: pickles, then raw storages). */
export class FdSource implements ByteSource {
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  constructor(
    private readonly fd: number,
    private readonly size: number,
    public pos = 0,
  ) {}
  u8(): number {
    return this.take(1)[0]!;
  }
  take(n: number): Uint8Array {
    if (this.pos + n > this.size)
      throw new PickleError(`the file ends early at byte ${this.size} (a pickle wants ${n} bytes at ${this.pos}): the file is truncated`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, 1 << 16), this.size - this.pos);
      this.buf = Buffer.alloc(len);
      let got = 0;
      while (got < len) {
        const r = fs.readSync(this.fd, this.buf, got, len - got, this.pos + got);
        if (r === 0) throw new PickleError(`unexpected end of file at byte ${this.pos + got}`);
        got += r;
      }
      this.bufStart = this.pos;
    }
    const off = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(off, off + n);
  }
}
