import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileAtomicStreamed, writeFileAtomicSync } from './fs-atomic.js';

let dir: string;
beforeEach(() => void (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-atomic-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('atomic writes', () => {
  it('replace an existing file and leave no temporary behind (async and sync)', async () => {
    const f = path.join(dir, 'w.json');
    fs.writeFileSync(f, 'old');
    await writeFileAtomic(f, 'new');
    expect(fs.readFileSync(f, 'utf8')).toBe('new');
    writeFileAtomicSync(f, new Uint8Array([65, 66]));
    expect(fs.readFileSync(f, 'utf8')).toBe('AB');
    expect(fs.readdirSync(dir)).toEqual(['w.json']);
  });

  it('create the folder, or fail naming the file and leave nothing behind', async () => {
    writeFileAtomicSync(path.join(dir, 'a', 'b', 'x.bin'), 'x');
    expect(fs.readFileSync(path.join(dir, 'a', 'b', 'x.bin'), 'utf8')).toBe('x');
    fs.writeFileSync(path.join(dir, 'file'), '');
    await expect(writeFileAtomic(path.join(dir, 'file', 'x.json'), 'x')).rejects.toThrow(/could not write .*x\.json/);
    expect(() => writeFileAtomicSync(path.join(dir, 'file', 'x.json'), 'x')).toThrow(/could not write/);
    await expect(writeFileAtomic(path.join(dir, 'missing', 'x.json'), 'x', { mkdir: false })).rejects.toThrow(/could not write/);
    expect(fs.readdirSync(dir).sort()).toEqual(['a', 'file']);
  });

  it('a write that fails midway keeps the old content under the name', async () => {
    const f = path.join(dir, 'keep.txt');
    fs.writeFileSync(f, 'old');
    // A data argument the write rejects after the temporary file was opened.
    await expect(writeFileAtomic(f, 42 as unknown as string)).rejects.toThrow(/could not write/);
    expect(fs.readFileSync(f, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
  });

  it('streamed: the target appears only complete; a writer that fails midway leaves the old file and no temporary', async () => {
    const f = path.join(dir, 'big.bin');
    fs.writeFileSync(f, 'old');
    await writeFileAtomicStreamed(f, async (fh) => {
      await fh.write(Buffer.from('ab'));
      expect(fs.readFileSync(f, 'utf8')).toBe('old'); // not yet renamed
      await fh.write(Buffer.from('cd'));
    });
    expect(fs.readFileSync(f, 'utf8')).toBe('abcd');
    await expect(
      writeFileAtomicStreamed(f, async (fh) => {
        await fh.write(Buffer.from('partial'));
        throw new Error('disk full');
      }),
    ).rejects.toThrow(/could not write .*big\.bin: disk full/);
    expect(fs.readFileSync(f, 'utf8')).toBe('abcd');
    expect(fs.readdirSync(dir)).toEqual(['big.bin']);
  });
});
