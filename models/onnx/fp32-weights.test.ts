import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededUniform } from '../../test/helpers/random.js';
import { SafetensorsFile, encodeSafetensors, floatToBf16, floatToHalf, halfToFloat } from '../safetensors.js';
import { DataType, Graph, Module, linear } from './graph.js';
import { halfToFloat32 } from './fp32-weights.js';
import { type HalfWeightsMode, createSession, ort } from './session.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fp32-weights-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const IN = 24;
const OUT = 40;

/** A linear layer's file: an F16 weight, a BF16 bias, an F32 scale (seeded values). */
function writeLinear(file: string, seed: number, extraRows = 0): void {
  const u = seededUniform(seed);
  const bits = (n: number, to: (x: number) => number) => Uint16Array.from({ length: n }, () => to(u()));
  fs.writeFileSync(
    file,
    encodeSafetensors({
      'fc.weight': { dtype: 'F16', shape: [OUT, IN], data: bits(OUT * IN, floatToHalf) },
      'fc.bias': { dtype: 'BF16', shape: [OUT], data: bits(OUT, floatToBf16) },
      ...(extraRows ? { pad: { dtype: 'F32', shape: [extraRows], data: new Float32Array(extraRows) } } : {}),
    }),
  );
}

function build(file: string) {
  const g = new Graph('fp32_weights_test');
  const x = g.input('x', DataType.FLOAT, ['N', IN]);
  g.output('y', linear(new Module(g, SafetensorsFile.open(file), 'fc'), x), DataType.FLOAT, ['N', OUT]);
  return g.build();
}

const X = Float32Array.from({ length: 3 * IN }, (_, i) => Math.sin(i * 0.3));

async function run(file: string, cacheDir: string, halfWeights?: HalfWeightsMode) {
  const logs: string[] = [];
  const s = await createSession(build(file), { cacheDir, halfWeights, log: (m) => logs.push(m) });
  const y = (await s.run({ x: new ort.Tensor('float32', X, [3, IN]) })).y.data as Float32Array;
  await s.release();
  return { y: Float32Array.from(y), logs: logs.filter((l) => l.startsWith('fp16/bf16')) };
}

const copies = (cacheDir: string) => fs.readdirSync(path.join(cacheDir, 'fp32-weights')).sort();

describe('float32 copies of F16 / BF16 weights', () => {
  it('convert every F16 and BF16 bit pattern exactly', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const out = new Float32Array(65536);
    halfToFloat32(all, 'F16', out);
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++)
      if (!Object.is(out[h], Math.fround(halfToFloat(h))) && !(Number.isNaN(out[h]) && Number.isNaN(halfToFloat(h)))) wrong.push(h);
    halfToFloat32(all, 'BF16', out);
    const u = new Uint32Array(out.buffer);
    for (let h = 0; h < 65536; h++) if (u[h] !== (h << 16) >>> 0) wrong.push(h);
    expect(wrong).toEqual([]);
  });

  it('a model reads its half weights from a float32 copy: the same outputs as the in-graph Cast, no Cast left', async () => {
    const file = path.join(root, 'model.safetensors');
    writeLinear(file, 1);
    const built = build(file);
    expect(built.halfWeights.map((w) => w.dtype)).toEqual(['F16', 'BF16']);
    const cacheDir = path.join(root, 'cache-a');
    const viaCopy = await run(file, cacheDir);
    const folded = await run(file, cacheDir, 'folded');
    const perRun = await run(file, cacheDir, 'per-run');
    expect(viaCopy.y).toEqual(folded.y);
    expect(perRun.y).toEqual(folded.y);
    expect(viaCopy.logs[0]).toMatch(/wrote the float32 copy of 2 weights of .*model\.safetensors/);
    expect(folded.logs).toEqual([]);
    // The copy holds exactly the converted values.
    const [name] = copies(cacheDir);
    const copy = SafetensorsFile.open(path.join(cacheDir, 'fp32-weights', name));
    expect(copy.metadata.source).toBe(fs.realpathSync(file));
    const src = SafetensorsFile.open(file);
    const w = src.get('fc.weight');
    const cw = copy.get(`F16@${w.offset}+${w.length}`);
    const bytes = fs.readFileSync(copy.file).subarray(cw.offset, cw.offset + cw.length);
    const got = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const raw = fs.readFileSync(file).subarray(w.offset, w.offset + w.length);
    const h16 = new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    expect(Array.from(got)).toEqual(Array.from(h16, halfToFloat));
    // The rewritten model has no Cast and reads the copy (and not the source: nothing else is in it).
    const { withFloat32Copies } = await import('./fp32-weights.js');
    const moved = await withFloat32Copies(built, cacheDir);
    expect(moved.halfWeights).toEqual([]);
    expect(Object.values(moved.externalFiles)).toEqual([copy.file]);
    expect(Buffer.from(moved.bytes).includes(Buffer.from('Cast'))).toBe(false);
  });

  it('a second load reuses the copy; a replaced model file (new size, mtime) gets a new one and the stale one goes', async () => {
    const file = path.join(root, 'replaced.safetensors');
    writeLinear(file, 2);
    const cacheDir = path.join(root, 'cache-b');
    const first = await run(file, cacheDir);
    const [name] = copies(cacheDir);
    const st = fs.statSync(path.join(cacheDir, 'fp32-weights', name));
    const second = await run(file, cacheDir);
    expect(second.logs).toEqual([expect.stringMatching(/reading 2 weights of .*replaced\.safetensors from their float32 copy/)]);
    expect(second.y).toEqual(first.y);
    expect(copies(cacheDir)).toEqual([name]);
    const st2 = fs.statSync(path.join(cacheDir, 'fp32-weights', name));
    expect([st2.ino, st2.mtimeMs]).toEqual([st.ino, st.mtimeMs]);

    const staleBytes = fs.readFileSync(path.join(cacheDir, 'fp32-weights', name));

    // Replaced by other weights (another download under the same name): new values, one copy.
    writeLinear(`${file}.new`, 3, 16);
    fs.renameSync(`${file}.new`, file);
    const third = await run(file, cacheDir);
    expect(third.logs[0]).toMatch(/wrote the float32 copy/);
    expect(third.y).not.toEqual(first.y);
    expect(third.y).toEqual((await run(file, path.join(root, 'cache-fresh'), 'folded')).y);
    const after = copies(cacheDir);
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(name);
    // Nothing links the stale copy any more (a materialized model's hard link would keep it on disk). Compared by
    // content, not inode number: the file system may give the freed inode number to a new file at once.
    const linked = fs
      .readdirSync(path.join(cacheDir, 'onnx'))
      .flatMap((d) => fs.readdirSync(path.join(cacheDir, 'onnx', d)).map((f) => path.join(cacheDir, 'onnx', d, f)));
    expect(linked.filter((f) => fs.readFileSync(f).equals(staleBytes))).toEqual([]);

    // Edited in place (same inode, same size, new mtime): a new copy too.
    const fd = fs.openSync(file, 'r+');
    const h = Buffer.alloc(2);
    h.writeUInt16LE(floatToHalf(7.5));
    const w = SafetensorsFile.open(file).get('fc.weight');
    fs.writeSync(fd, h, 0, 2, w.offset);
    fs.closeSync(fd);
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const fourth = await run(file, cacheDir);
    expect(fourth.logs[0]).toMatch(/wrote the float32 copy/);
    expect(fourth.y).not.toEqual(third.y);
    expect(copies(cacheDir)).toHaveLength(1);
    // Written atomically: no temporary file is ever left beside the copies.
    expect(fs.readdirSync(path.join(cacheDir, 'fp32-weights')).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a damaged copy is not used: it is written again', async () => {
    const file = path.join(root, 'damaged.safetensors');
    writeLinear(file, 4);
    const cacheDir = path.join(root, 'cache-c');
    const first = await run(file, cacheDir);
    const [name] = copies(cacheDir);
    fs.truncateSync(path.join(cacheDir, 'fp32-weights', name), 100);
    const again = await run(file, cacheDir);
    expect(again.logs[0]).toMatch(/wrote the float32 copy/);
    expect(again.y).toEqual(first.y);
  });

  it('copies whose source was deleted or changed, and damaged ones, are swept; current ones stay', async () => {
    const cacheDir = path.join(root, 'cache-d');
    const [kept, gone, changed] = ['kept', 'gone', 'changed'].map((n) => path.join(root, `${n}.safetensors`));
    for (const [i, f] of [kept, gone, changed].entries()) {
      writeLinear(f, 10 + i);
      await run(f, cacheDir);
    }
    fs.writeFileSync(path.join(cacheDir, 'fp32-weights', 'junk.x.y.z.safetensors'), 'not a copy');
    fs.rmSync(gone);
    writeLinear(changed, 20, 8);
    const { removeStaleFloat32Copies } = await import('./fp32-weights.js');
    const removed = removeStaleFloat32Copies(cacheDir)
      .map((r) => path.basename(r.file).split('.')[0])
      .sort();
    expect(removed).toEqual(['changed', 'gone', 'junk']);
    expect(copies(cacheDir).map((n) => n.split('.')[0])).toEqual(['kept']);
    expect((await run(kept, cacheDir)).logs[0]).toMatch(/reading 2 weights/);
  });
});
