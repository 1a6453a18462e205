/**
 * ControlNet (Zhang et al. 2023) of the SD1.5 family as an ONNX graph: a trainable copy of the
 * UNet's encoder and mid block, a small conditioning encoder for the control image, and zero
 * convolutions that turn each skip tensor into a residual for the UNet.
 * Mirrors diffusers 0.30 `ControlNetModel.forward` (diffusers/models/controlnet.py).
 *
 * Graph inputs:  sample (B, 4, h, w), timestep (B,) float32, encoder_hidden_states (B, T, Cctx) —
 *                TEXT embeddings only (diffusers never gives the ControlNet the IP tokens),
 *                controlnet_cond (B, 3, 8h, 8w) in [0, 1], conditioning_scale () float32.
 * Graph outputs: down_block_res_00 .. down_block_res_<n-1> (one per UNet skip, 12 for SD1.5)
 *                and mid_block_res, already multiplied by conditioning_scale.
 */
import * as path from 'node:path';
import { DataType, Graph, Module, type WeightMap, conv2d, silu } from './onnx/graph.js';
import { type SessionConfig, createSession, ort } from './onnx/session.js';
import { type AttentionImpl, type BlockOptions, downBlock, midBlockCrossAttn, timestepEmbedding, timestepProjection } from './unet-blocks.js';
import { type UNetConfig, downBlockSpecs, numDownResiduals } from './unet-config.js';
import { unetParameterShapes } from './unet.js';
import { checkShapes } from './shape-check.js';
import { type ControlNetConfig, ControlNetError, type LoadedControlNet } from './controlnet-load.js';

const base = (f: string) => path.basename(f);

// ---------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------

export interface BuildControlNetOptions {
  attention?: AttentionImpl;
  /** Model name in the cache (default "controlnet"). */
  name?: string;
}

/** Output name of the i-th down residual (two digits, as the reference case names them). */
export const downResidualName = (i: number) => `down_block_res_${String(i).padStart(2, '0')}`;
export const MID_RESIDUAL = 'mid_block_res';

/** ControlNetConditioningEmbedding: conv_in, SiLU, (conv, SiLU) x blocks, conv_out. (B, 3, 8h, 8w) -> (B, C0, h, w). */
function conditioningEmbedding(m: Module, cond: string): string {
  const g = m.g;
  let h = silu(g, conv2d(m.child('conv_in'), cond));
  for (let k = 0; m.has(`blocks.${k}.weight`); k++) {
    // Odd blocks step down the resolution (stride 2); even ones keep it.
    h = silu(g, conv2d(m.child('blocks').child(k), h, { stride: k % 2 === 1 ? 2 : 1, padding: 1 }));
  }
  return conv2d(m.child('conv_out'), h);
}

/** Builds the ControlNet graph from a config and a diffusers-named weight map. */
export function buildControlNet(cfg: ControlNetConfig, w: WeightMap, opts: BuildControlNetOptions = {}): Graph {
  checkShapes('ControlNet', w, controlNetParameterShapes(cfg)); // models/shape-check.ts
  const g = new Graph(opts.name ?? 'controlnet');
  const m = new Module(g, w);
  const sample = g.input('sample', DataType.FLOAT, ['batch', cfg.inChannels, 'height', 'width']);
  const timestep = g.input('timestep', DataType.FLOAT, ['batch']);
  const context = g.input('encoder_hidden_states', DataType.FLOAT, ['batch', 'text_tokens', cfg.crossAttentionDim]);
  let cond = g.input('controlnet_cond', DataType.FLOAT, ['batch', cfg.conditioningChannels, 'image_height', 'image_width']);
  const scale = g.input('conditioning_scale', DataType.FLOAT, []);
  if (cfg.channelOrder === 'bgr') cond = g.op('Slice', [cond, g.constI([-1]), g.constI([-(2 ** 62)]), g.constI([1]), g.constI([-1])]); // flip channels
  const o: BlockOptions = { groups: cfg.normNumGroups, eps: cfg.normEps, attention: opts.attention ?? 'mha' };

  // 1. time
  const tProj = timestepProjection(g, timestep, cfg.blockOutChannels[0]!, cfg.flipSinToCos, cfg.freqShift); // (B, C0)
  const embAct = silu(g, timestepEmbedding(m.child('time_embedding'), tProj)); // (B, 4*C0)

  // 2. pre-process: the control image's embedding is added right after conv_in
  let h = conv2d(m.child('conv_in'), sample); // (B, C0, h, w)
  h = g.op('Add', [h, conditioningEmbedding(m.child('controlnet_cond_embedding'), cond)]);

  // 3. down
  const skips: string[] = [h];
  downBlockSpecs(cfg).forEach((spec, i) => {
    const r = downBlock(m.child('down_blocks').child(i), h, embAct, context, spec, o);
    h = r.out;
    skips.push(...r.skips);
  });

  // 4. mid
  const last = cfg.blockOutChannels.length - 1;
  h = midBlockCrossAttn(m.child('mid_block'), h, embAct, context, cfg.numAttentionHeads[last]!, o, cfg.midBlockScaleFactor);

  // 5. zero convs, 6. scaling (guess_mode off) and optional global pooling
  const finish = (x: string) => {
    const y = g.op('Mul', [x, scale]);
    return cfg.globalPoolConditions ? g.op('ReduceMean', [y, g.constI([2, 3])], { keepdims: 1 }) : y;
  };
  if (skips.length !== numDownResiduals(cfg)) throw new Error(`controlnet: ${skips.length} skips, expected ${numDownResiduals(cfg)}`);
  skips.forEach((s, i) => {
    g.output(downResidualName(i), finish(conv2d(m.child('controlnet_down_blocks').child(i), s, { padding: 0 })), DataType.FLOAT, null);
  });
  g.output(MID_RESIDUAL, finish(conv2d(m.child('controlnet_mid_block'), h, { padding: 0 })), DataType.FLOAT, null);
  return g;
}

// ---------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------

/** A float32 tensor as plain data. */
export interface F32 {
  data: Float32Array;
  dims: number[];
}

/** The residuals of one ControlNet evaluation, in the UNet's skip order. */
export interface ControlResiduals {
  down: F32[];
  mid: F32;
}

export interface ControlNetInputs {
  /** Latents as the UNet sees them (after scale_model_input), (B, 4, h, w). */
  sample: F32;
  /** (B,) timesteps. */
  timestep: Float32Array;
  /** TEXT embeddings only, (B, T, Cctx). */
  encoderHiddenStates: F32;
  /** Control image in [0, 1], (B, 3, 8h, 8w). */
  cond: F32;
  /** Strength: residuals are multiplied by it. */
  scale: number;
}

/** A ControlNet with its ONNX Runtime session. */
export class ControlNet {
  private constructor(
    readonly loaded: LoadedControlNet,
    readonly session: ort.InferenceSession,
  ) {}

  get config(): ControlNetConfig {
    return this.loaded.config;
  }

  static async load(loaded: LoadedControlNet, opts: SessionConfig & BuildControlNetOptions): Promise<ControlNet> {
    const graph = buildControlNet(loaded.config, loaded.weights, opts);
    return new ControlNet(loaded, await createSession(graph.build(), opts));
  }

  /** Wraps a session made elsewhere (e.g. by the engine's model store) from buildControlNet(loaded...). */
  static fromSession(loaded: LoadedControlNet, session: ort.InferenceSession): ControlNet {
    return new ControlNet(loaded, session);
  }

  /** Runs the ControlNet once; shapes are checked first so errors say what was expected. */
  async run(x: ControlNetInputs): Promise<ControlResiduals> {
    const [B, C, h, w] = x.sample.dims;
    const cfg = this.config;
    const name = base(this.loaded.source.path);
    if (B === undefined || h === undefined || w === undefined)
      throw new ControlNetError(this.loaded.source.path, `ControlNet ${name}: latents tensor is [${x.sample.dims}], expected (B, ${cfg.inChannels}, h, w)`);
    if (C !== cfg.inChannels) throw new ControlNetError(this.loaded.source.path, `ControlNet ${name}: latents have ${C} channels, expected ${cfg.inChannels}`);
    const [cb, cc, ch, cw] = x.cond.dims;
    const f = 2 ** (cfg.conditioningEmbeddingOutChannels.length - 1);
    if (cb !== B || cc !== cfg.conditioningChannels || ch !== h * f || cw !== w * f) {
      throw new ControlNetError(
        this.loaded.source.path,
        `ControlNet ${name}: control image tensor is [${x.cond.dims}], expected [${B}, ${cfg.conditioningChannels}, ${h * f}, ${w * f}] (${f}x the ${h}x${w} latent); resize the control image to the output size`,
      );
    }
    if (x.timestep.length !== B) throw new Error(`ControlNet ${name}: ${x.timestep.length} timesteps for a batch of ${B}`);
    const out = await this.session.run({
      sample: new ort.Tensor('float32', x.sample.data, x.sample.dims),
      timestep: new ort.Tensor('float32', x.timestep, [B]),
      encoder_hidden_states: new ort.Tensor('float32', x.encoderHiddenStates.data, x.encoderHiddenStates.dims),
      controlnet_cond: new ort.Tensor('float32', x.cond.data, x.cond.dims),
      conditioning_scale: new ort.Tensor('float32', Float32Array.of(x.scale), []),
    });
    const t = (k: string): F32 => {
      const y = out[k];
      if (!y) throw new ControlNetError(this.loaded.source.path, `ControlNet ${name}: the session returned no ${k} output`);
      return { data: y.data as Float32Array, dims: [...y.dims] };
    };
    const down: F32[] = [];
    for (let i = 0; downResidualName(i) in out; i++) down.push(t(downResidualName(i)));
    return { down, mid: t(MID_RESIDUAL) };
  }
}

/** Several ControlNets at once: residuals are summed element-wise (diffusers MultiControlNetModel). */
export function sumResiduals(a: ControlResiduals | null, b: ControlResiduals): ControlResiduals {
  if (!a) return b;
  if (a.down.length !== b.down.length) throw new Error(`cannot sum ControlNet residuals: ${a.down.length} vs ${b.down.length} down residuals`);
  const add = (x: F32, y: F32): F32 => {
    if (x.dims.join() !== y.dims.join()) throw new Error(`cannot sum ControlNet residuals of shapes [${x.dims}] and [${y.dims}]`);
    const d = new Float32Array(x.data.length);
    for (let i = 0; i < d.length; i++) d[i] = x.data[i]! + y.data[i]!;
    return { data: d, dims: x.dims };
  };
  return { down: a.down.map((x, i) => add(x, b.down[i]!)), mid: add(a.mid, b.mid) };
}

/** All-zero residuals for a UNet built with ControlNet inputs when no ControlNet is active at a step. */
export function zeroResiduals(cfg: UNetConfig, batch: number, h: number, w: number): ControlResiduals {
  const down: F32[] = [];
  const specs = downBlockSpecs(cfg);
  const ch = (i: number) => cfg.blockOutChannels[i]!; // one per block (parseUNetConfig checks)
  const zero = (c: number, hh: number, ww: number): F32 => ({ data: new Float32Array(batch * c * hh * ww), dims: [batch, c, hh, ww] });
  down.push(zero(ch(0), h, w));
  let hh = h,
    ww = w;
  specs.forEach((s, i) => {
    for (let l = 0; l < s.layers; l++) down.push(zero(ch(i), hh, ww));
    if (s.resample) {
      hh = Math.floor((hh + 1) / 2); // conv 3x3, stride 2, padding 1
      ww = Math.floor((ww + 1) / 2);
      down.push(zero(ch(i), hh, ww));
    }
  });
  return { down, mid: zero(ch(cfg.blockOutChannels.length - 1), hh, ww) };
}

// ---------------------------------------------------------------------------------------
// Parameter list (diffusers names and shapes): for generated test / bench models.
// ---------------------------------------------------------------------------------------

/** Every ControlNet parameter (diffusers name -> shape) for `cfg`, in a stable order. */
export function controlNetParameterShapes(cfg: ControlNetConfig): Map<string, number[]> {
  const p = new Map<string, number[]>();
  const conv = (n: string, o: number, i: number, k: number) => {
    p.set(`${n}.weight`, [o, i, k, k]);
    p.set(`${n}.bias`, [o]);
  };
  // The UNet's encoder half: everything but the up blocks and the output head.
  for (const [k, shape] of unetParameterShapes(cfg)) {
    if (/^(conv_in|time_embedding|down_blocks|mid_block)\./.test(k)) p.set(k, shape);
  }
  const e = (i: number) => cfg.conditioningEmbeddingOutChannels[i]!; // at least one (parseControlNetConfig checks)
  const nE = cfg.conditioningEmbeddingOutChannels.length;
  conv('controlnet_cond_embedding.conv_in', e(0), cfg.conditioningChannels, 3);
  for (let i = 0; i < nE - 1; i++) {
    conv(`controlnet_cond_embedding.blocks.${2 * i}`, e(i), e(i), 3);
    conv(`controlnet_cond_embedding.blocks.${2 * i + 1}`, e(i + 1), e(i), 3);
  }
  conv('controlnet_cond_embedding.conv_out', cfg.blockOutChannels[0]!, e(nE - 1), 3);
  const z = zeroResiduals(cfg, 1, 8, 8);
  z.down.forEach((d, i) => conv(`controlnet_down_blocks.${i}`, d.dims[1]!, d.dims[1]!, 1)); // (1, C, h, w)
  const cm = cfg.blockOutChannels[cfg.blockOutChannels.length - 1]!;
  conv('controlnet_mid_block', cm, cm, 1);
  return p;
}
