/** Stale temporaries of atomic writes (a process killed between open and rename): only ours, only old ones. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { atomicTempPath, cleanStaleTemporaries, isAtomicTempName } from './fs-atomic.js';

let dir: string;
beforeEach(() => void (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-atomic-clean-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A dead pid: a child that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;
const put = (rel: string, ageMs: number) => {
  const p = path.join(dir, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, 'x'.repeat(10));
  const t = (Date.now() - ageMs) / 1000;
  fs.utimesSync(p, t, t);
  return p;
};

describe('stale temporaries', () => {
  it('are recognised by our naming only', () => {
    expect(isAtomicTempName('.settings.json.1234.0a1b2c3d.tmp')).toBe(true);
    expect(isAtomicTempName('.model.safetensors.99.ffffffff.tmp')).toBe(true);
    for (const n of ['settings.json.tmp', '.x.tmp', '.x.12.nothex00.tmp', '.x.12.0a1b2c3d.tmp.bak', 'notes.tmp']) expect(isAtomicTempName(n), n).toBe(false);
  });

  it("are removed when older than a minute and their writer is gone; fresh, foreign and live writers' files stay", async () => {
    const dead = deadPid();
    const old = put(`.a.png.${dead}.0a1b2c3d.tmp`, 5 * 60_000);
    const nested = put(`sweeps/b/.c.png.${dead}.deadbeef.tmp`, 5 * 60_000);
    const tooDeep = put(`1/2/3/.d.png.${dead}.deadbeef.tmp`, 5 * 60_000);
    const fresh = put(`.e.png.${dead}.0a1b2c3d.tmp`, 1000);
    const live = put(`.f.png.${process.ppid}.0a1b2c3d.tmp`, 5 * 60_000); // our parent is running
    const foreign = put('notes.tmp', 5 * 60_000);
    const kept = put('image_00001_.png', 5 * 60_000);
    const cacheTmp = put('cache/onnx/unet-1/weights.safetensors.tmp', 5 * 60_000);
    // A symlinked folder is not entered.
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-atomic-elsewhere-'));
    const outside = path.join(elsewhere, `.g.png.${dead}.0a1b2c3d.tmp`);
    fs.writeFileSync(outside, 'x');
    fs.utimesSync(outside, 1, 1);
    fs.symlinkSync(elsewhere, path.join(dir, 'link'));
    const removed = await cleanStaleTemporaries([
      { dir, depth: 2 },
      { dir: path.join(dir, 'cache'), depth: 3, anyTmp: true },
    ]);
    expect(removed.map((r) => r.file).sort()).toEqual([old, nested, cacheTmp].sort());
    expect(removed.every((r) => r.bytes === 10)).toBe(true);
    for (const p of [tooDeep, fresh, live, foreign, kept, outside]) expect(fs.existsSync(p), p).toBe(true);
    for (const p of [old, nested, cacheTmp]) expect(fs.existsSync(p), p).toBe(false);
    fs.rmSync(elsewhere, { recursive: true, force: true });
    // A missing folder is not an error.
    expect(await cleanStaleTemporaries([{ dir: path.join(dir, 'missing'), depth: 1 }])).toEqual([]);
  });

  it("the atomic writers' temporary names are the ones the cleaner recognises", () => {
    const t = atomicTempPath(path.join(dir, 'w.bin'));
    expect(path.dirname(t)).toBe(dir);
    expect(isAtomicTempName(path.basename(t))).toBe(true);
    expect(path.basename(t)).toContain(`.${process.pid}.`);
  });
});
