/**
 * `npx tsx scripts/bench/fp16-probe.ts [--size 64] [--out FILE]`: the overflow probe behind the fp16 profile's
 * islands (models/onnx/fp16.ts). Runs the float32 SD1.5-size UNet (IP-Adapter, batch 2 = CFG) and VAE decoder with
 * random weights (scripts/bench/random-weights.ts: activations O(1), as the benchmark's) on the CPU, with every
 * float value's max |x| as an extra output, and reports per graph:
 * - the largest |x| among the values the fp16 profile stores as fp16 (fp16's largest finite is 65504), the 5
 *   largest with their producers, and how many exceed 65504 / 6550;
 * - the same for the values kept in float32 islands;
 * - GroupNorm statistics: the largest sum of squares over one group (what an fp16 accumulator would hold);
 * - the timestep projection: the largest error of sin/cos(t·freq) when t·freq is rounded to fp16 (t in 0..999).
 * Random weights are not trained ones: this shows the graph's structure keeps O(1) values in fp16, not that every
 * checkpoint does (the NaN guard covers the rest).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inferTypes, islandNodes, ISLANDS } from '../../models/onnx/fp16.js';
import { type BuiltModel, DataType, type NodeSpec } from '../../models/onnx/graph.js';
import { createSession, ort } from '../../models/onnx/session.js';
import { SafetensorsFile } from '../../models/safetensors.js';
import { buildUNet, unetParameterShapes } from '../../models/unet.js';
import { crossAttnLayers } from '../../models/unet-config.js';
import { unetFeeds } from '../../models/unet-call.js';
import { timestepFrequencies } from '../../models/unet-blocks.js';
import { buildVaeDecoder, vaeParameterShapes } from '../../models/vae.js';
import { SD15_UNET, SD15_VAE } from '../../test/helpers/profile-graphs.js';
import { writeRandomSafetensors } from './random-weights.js';

const FP16_MAX = 65504;

/** The model with, for every float value, `probe/<value>` = max |value| (and for InstanceNorm inputs the group sum of squares). */
function withProbes(m: BuiltModel): { model: BuiltModel; values: string[]; groupSums: string[] } {
  const types = inferTypes(m.spec);
  const nodes: NodeSpec[] = [...m.spec.nodes];
  const outputs = [...m.spec.outputs];
  const values: string[] = [];
  const groupSums: string[] = [];
  const node = (opType: string, inputs: string[], out: string, attrs: NodeSpec['attrs'] = {}) =>
    nodes.push({ opType, inputs, outputs: [out], name: out, attrs });
  for (const n of m.spec.nodes) {
    for (const v of n.outputs) {
      if (!v || types.get(v) !== DataType.FLOAT) continue;
      node('Abs', [v], `${v}/abs`);
      node('ReduceMax', [`${v}/abs`], `probe/${v}`, { keepdims: { kind: 'int', v: 0 } });
      outputs.push({ name: `probe/${v}`, type: DataType.FLOAT, dims: [] });
      values.push(v);
    }
    if (n.opType === 'InstanceNormalization') {
      const r = n.inputs[0]!; // (N, G, C/G*H*W)
      node('Mul', [r, r], `${r}/sq`);
      node('ReduceSum', [`${r}/sq`, 'probe_axis2'], `${r}/gsum`, { keepdims: { kind: 'int', v: 0 } });
      node('ReduceMax', [`${r}/gsum`], `probe_gsum/${r}`, { keepdims: { kind: 'int', v: 0 } });
      outputs.push({ name: `probe_gsum/${r}`, type: DataType.FLOAT, dims: [] });
      groupSums.push(r);
    }
  }
  const axis = { name: 'probe_axis2', dataType: DataType.INT64, dims: [1], raw: new Uint8Array(BigInt64Array.from([2n]).buffer) };
  return { model: m.withSpec({ ...m.spec, nodes, outputs, initializers: [...m.spec.initializers, axis] }, { name: `${m.name}-probe` }), values, groupSums };
}

async function probe(name: string, m: BuiltModel, feeds: Record<string, ort.Tensor>, cacheDir: string) {
  const keep = islandNodes(m.spec, ISLANDS, m.fp32Nodes);
  const producer = new Map(m.spec.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const { model, values, groupSums } = withProbes(m);
  const s = await createSession(model, { cacheDir, halfWeights: 'folded', sessionOptions: { graphOptimizationLevel: 'basic' } });
  const t0 = performance.now();
  const out = await s.run(feeds);
  const ms = performance.now() - t0;
  await s.release();
  const rows = values.map((v) => ({
    v,
    max: (out[`probe/${v}`]!.data as Float32Array)[0]!,
    op: producer.get(v)!.opType,
    island: keep.has(producer.get(v)!.name),
  }));
  const zone = (island: boolean) => {
    const r = rows.filter((x) => x.island === island).sort((a, b) => b.max - a.max);
    return {
      values: r.length,
      max_abs: r[0]?.max ?? 0,
      over_fp16_max: r.filter((x) => !(x.max <= FP16_MAX)).length,
      over_10pct_of_fp16_max: r.filter((x) => !(x.max <= FP16_MAX / 10)).length,
      top: r.slice(0, 5).map((x) => `${x.op} ${x.v}: ${x.max.toExponential(3)}`),
    };
  };
  const gs = groupSums.map((r) => (out[`probe_gsum/${r}`]!.data as Float32Array)[0]!);
  return {
    graph: name,
    run_ms: Math.round(ms),
    fp16_zone: zone(false),
    float32_islands: zone(true),
    group_norm_max_group_sum_of_squares: Math.max(...gs),
    group_norms_over_fp16_max: gs.filter((x) => x > FP16_MAX).length,
  };
}

/** sin/cos(t·f) with t·f rounded to fp16, against float64, for t in 0..999 and SD1.5's 160 frequencies. */
function timestepError(): number {
  const f = timestepFrequencies(320, 1);
  const h = new Float32Array(1);
  const u = new Uint32Array(h.buffer);
  const toHalf = (x: number) => {
    // round to 11 significant bits (fp16's mantissa) for |x| < 65504
    h[0] = x;
    const e = ((u[0]! >>> 23) & 0xff) - 127;
    const q = 2 ** (e - 10);
    return Math.round(x / q) * q;
  };
  let worst = 0;
  for (let t = 0; t < 1000; t++)
    for (const fr of f) worst = Math.max(worst, Math.abs(Math.sin(toHalf(t * fr)) - Math.sin(t * fr)), Math.abs(Math.cos(toHalf(t * fr)) - Math.cos(t * fr)));
  return worst;
}

async function main() {
  const argv = process.argv.slice(2);
  const size = Number(argv[argv.indexOf('--size') + 1] || 64) || 64;
  const outFile = argv.includes('--out') ? argv[argv.indexOf('--out') + 1]! : null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-fp16-probe-'));
  try {
    const unetFile = path.join(dir, 'unet.safetensors');
    const ipFile = path.join(dir, 'ip.safetensors');
    const vaeFile = path.join(dir, 'vae.safetensors');
    writeRandomSafetensors(unetFile, unetParameterShapes(SD15_UNET), 1, { dtype: 'F16' });
    const ipShapes = new Map<string, number[]>();
    for (const l of crossAttnLayers(SD15_UNET)) for (const k of ['to_k_ip', 'to_v_ip']) ipShapes.set(`${l.index}.${k}.weight`, [l.hiddenSize, 768]);
    writeRandomSafetensors(ipFile, ipShapes, 2, { dtype: 'F16' });
    writeRandomSafetensors(vaeFile, vaeParameterShapes(SD15_VAE, 'decoder'), 3, { dtype: 'F16' });
    const ipW = SafetensorsFile.open(ipFile);
    const layers = new Map(crossAttnLayers(SD15_UNET).map((l) => [l.index, l]));
    const ipAdapter = { layers, layerWeights: (i: number) => ({ toK: ipW.get(`${i}.to_k_ip.weight`), toV: ipW.get(`${i}.to_v_ip.weight`) }) };
    const unet = buildUNet(SD15_UNET, SafetensorsFile.open(unetFile), { ipAdapter }).build();
    const B = 2;
    const wave = (n: number, k: number) => new Float32Array(n).map((_, i) => Math.sin(i * k));
    const S = size;
    const feeds = unetFeeds(
      { session: { inputNames: unet.inputNames } as unknown as ort.InferenceSession, config: SD15_UNET },
      {
        sample: { data: wave(B * 4 * S * S, 0.37), dims: [B, 4, S, S] },
        timestep: 999,
        encoderHiddenStates: { data: wave(B * 77 * 768, 0.11).map((x) => x * 0.5), dims: [B, 77, 768] },
        ipAdapter: { tokens: { data: wave(B * 4 * 768, 0.07).map((x) => x * 0.5), dims: [B, 4, 768] } },
      },
    );
    const cacheDir = path.join(dir, 'cache');
    const report = {
      latent: `${size}x${size}`,
      unet: await probe('unet (IP-Adapter, CFG batch 2, t=999)', unet, feeds, cacheDir),
      vae_decoder: await probe(
        'vae_decoder',
        buildVaeDecoder(SD15_VAE, SafetensorsFile.open(vaeFile)).build(),
        { latents: new ort.Tensor('float32', wave(4 * size * size, 0.21), [1, 4, size, size]) },
        cacheDir,
      ),
      timestep_projection_max_error_if_fp16: timestepError(),
    };
    const text = JSON.stringify(report, null, 2);
    console.log(text);
    if (outFile) fs.writeFileSync(outFile, text);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
