/**
 * A tiny read-only zip reader for torch.save archives (PKWARE APPNOTE.TXT: end-of-central-directory
 * record 4.3.16, zip64 records 4.3.14/4.3.15, central directory 4.3.12, local header 4.3.7, zip64
 * extra field 4.5.3). It lists the central directory and finds where each record's bytes start,
 * so tensor records (stored uncompressed by torch) are used in place, by file offset.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

export class ZipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZipError';
  }
}

/** One record of the archive, from the central directory. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  headerOffset: number;
}

const EOCD = 0x06054b50,
  ZIP64_LOCATOR = 0x07064b50,
  ZIP64_EOCD = 0x06064b50,
  CENTRAL = 0x02014b50,
  LOCAL = 0x04034b50;
const MAX_ENTRIES = 1_000_000;
const TRUNCATED = 'the zip archive is truncated or damaged';

/** Reads exactly `n` bytes at `pos`, or throws a truncation error naming `what`. */
export function readAt(fd: number, pos: number, n: number, what: string): Buffer {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const r = fs.readSync(fd, buf, got, n - got, pos + got);
    if (r === 0) throw new ZipError(`${TRUNCATED}: the file ends inside ${what} (byte ${pos + got})`);
    got += r;
  }
  return buf;
}

const u64 = (b: Buffer, at: number, what: string): number => {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(`${TRUNCATED}: ${what} ${v} is not a usable size or offset`);
  return Number(v);
};

/** Lists the archive's records from its central directory (zip64 aware). */
export function readZipEntries(fd: number, fileSize: number): ZipEntry[] {
  // The end-of-central-directory record is the last 22 bytes plus a comment of up to 64 KiB.
  const tailLen = Math.min(fileSize, 22 + 0xffff);
  const tail = readAt(fd, fileSize - tailLen, tailLen, 'the archive tail');
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new ZipError(
      `${TRUNCATED}: its end-of-central-directory record is missing (a complete torch.save file ends with one; was the download or copy cut short?)`,
    );
  }
  const eocdPos = fileSize - tailLen + eocd;
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    if (eocdPos < 20) throw new ZipError(`${TRUNCATED}: zip64 locator missing`);
    const loc = readAt(fd, eocdPos - 20, 20, 'the zip64 locator');
    if (loc.readUInt32LE(0) !== ZIP64_LOCATOR) throw new ZipError(`${TRUNCATED}: zip64 locator missing`);
    const z = readAt(fd, u64(loc, 8, 'zip64 record offset'), 56, 'the zip64 end record');
    if (z.readUInt32LE(0) !== ZIP64_EOCD) throw new ZipError(`${TRUNCATED}: bad zip64 end-of-central-directory record`);
    count = u64(z, 32, 'entry count');
    cdSize = u64(z, 40, 'central directory size');
    cdOffset = u64(z, 48, 'central directory offset');
  }
  if (count > MAX_ENTRIES) throw new ZipError(`the zip archive claims ${count} records, more than a tensor file has`);
  if (cdOffset + cdSize > eocdPos)
    throw new ZipError(`${TRUNCATED}: its central directory (bytes ${cdOffset}..${cdOffset + cdSize}) reaches past the end record at ${eocdPos}`);
  const cd = readAt(fd, cdOffset, cdSize, 'the central directory');
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) throw new ZipError(`${TRUNCATED}: central directory entry ${i} is malformed`);
    const nameLen = cd.readUInt16LE(p + 28),
      extraLen = cd.readUInt16LE(p + 30),
      commentLen = cd.readUInt16LE(p + 32);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw new ZipError(`${TRUNCATED}: central directory entry ${i} overruns the directory`);
    const e: ZipEntry = {
      name: cd.toString('utf8', p + 46, p + 46 + nameLen),
      flags: cd.readUInt16LE(p + 8),
      method: cd.readUInt16LE(p + 10),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      headerOffset: cd.readUInt32LE(p + 42),
    };
    // Zip64 extended information (header id 1): the 64-bit values of the fields set to 0xFFFFFFFF, in this order.
    for (let x = p + 46 + nameLen, end = x + extraLen; x + 4 <= end;) {
      const id = cd.readUInt16LE(x),
        len = cd.readUInt16LE(x + 2);
      if (id === 1) {
        let f = x + 4;
        const next = (what: string) => {
          if (f + 8 > x + 4 + len) throw new ZipError(`${TRUNCATED}: short zip64 field in "${e.name}"`);
          const v = u64(cd, f, what);
          f += 8;
          return v;
        };
        if (e.size === 0xffffffff) e.size = next('size');
        if (e.compressedSize === 0xffffffff) e.compressedSize = next('compressed size');
        if (e.headerOffset === 0xffffffff) e.headerOffset = next('header offset');
      }
      x += 4 + len;
    }
    entries.push(e);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Absolute offset of a record's bytes (after its local header), checked to lie within the file. */
export function entryDataOffset(fd: number, fileSize: number, e: ZipEntry): number {
  const h = readAt(fd, e.headerOffset, 30, `the local header of "${e.name}"`);
  if (h.readUInt32LE(0) !== LOCAL) throw new ZipError(`${TRUNCATED}: record "${e.name}" has no local header at byte ${e.headerOffset}`);
  const start = e.headerOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
  if (start + e.compressedSize > fileSize) {
    throw new ZipError(`${TRUNCATED}: record "${e.name}" (${e.compressedSize} bytes at ${start}) reaches past the end of the file (${fileSize} bytes)`);
  }
  return start;
}

/** Reads a whole (small) record: stored or deflated; encrypted records are refused. */
export function readEntry(fd: number, fileSize: number, e: ZipEntry, maxBytes: number): Buffer {
  if (e.flags & 1) throw new ZipError(`record "${e.name}" is encrypted`);
  if (e.size > maxBytes) throw new ZipError(`record "${e.name}" is ${e.size} bytes, more than the ${maxBytes} allowed`);
  const raw = readAt(fd, entryDataOffset(fd, fileSize, e), e.compressedSize, `record "${e.name}"`);
  if (e.method === 0) return raw;
  if (e.method === 8) return zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, maxBytes) });
  throw new ZipError(`record "${e.name}" uses zip compression method ${e.method}; only stored and deflate are read`);
}
