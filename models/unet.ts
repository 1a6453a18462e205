/**
 * UNet2DConditionModel of the SD1.5 family as an ONNX graph, with IP-Adapter decoupled
 * cross-attention in every attn2 layer and optional ControlNet residual inputs.
 * Mirrors diffusers 0.30 `UNet2DConditionModel.forward` (diffusers/models/unets/unet_2d_condition.py).
 *
 * Graph inputs:  sample (B, Cin, H, W), timestep (B,) float32, encoder_hidden_states (B, T, Cctx);
 *                per adapter k = 0 .. K-1 (K <= MAX_IP_ADAPTERS; L = attn2 layers):
 *                  ip_tokens_<k> (B, S, N, Cctx)        S token groups (own softmax each) of N tokens
 *                  ip_tokens_routed_<k> (B, S, N, Cctx) the tokens of layers whose route flag is set
 *                  ip_route_<k> (L,) bool               precise routing per layer
 *                  ip_adapter_scale_<k> (L,)            output scale per layer (λ for 'V only')
 *                  ip_kv_scale_<k> (L, 3)               a, b, c per layer: K' = aK, V' = bV + c mean(V)
 *                  ip_mask_<k>_<level> (Bm, S, Q or 1)  attention mask per group on that level's grid
 *                (models/unet-call.ts builds all of them from λ, the mode, masks and flags);
 *                with controlnet: down_block_additional_residual_<i>, mid_block_additional_residual.
 * Graph output:  noise_pred (B, Cout, H, W).
 */
import type { TensorRef } from './safetensors.js';
import { checkShapes } from './shape-check.js';
import { DataType, Graph, Module, type ModuleHook, type WeightMap, conv2d, groupNorm, silu } from './onnx/graph.js';
import { IN_PLACE_SESSION_OPTIONS, type SessionConfig, createSession, ort } from './onnx/session.js';
import {
  type AttentionImpl,
  type BlockOptions,
  type IpLayer,
  downBlock,
  midBlockCrossAttn,
  timestepEmbedding,
  timestepProjection,
  upBlock,
} from './unet-blocks.js';
import { type AttnProcessorInfo, type UNetConfig, crossAttnLayers, crossAttnLevel, crossAttnLevels, downBlockSpecs, upBlockSpecs } from './unet-config.js';
import { type F32Tensor, type UNetInputs, callUNet } from './unet-call.js';

/**
 * IP-Adapter image-branch weights, by attention-processor index (the h94 `ip_adapter.<index>`
 * number, 1, 3, ..., 31 for SD1.5). models/ip-adapter.ts `IpAdapterModel` satisfies this.
 */
export interface IpAdapterWeights {
  /** The adapter file, for error messages. */
  readonly file?: string;
  /** Processor indices present in the adapter, to refuse an adapter made for another UNet. */
  readonly layers?: ReadonlyMap<number, unknown>;
  layerWeights(index: number): { toK: TensorRef; toV: TensorRef };
}

/** The most adapters one UNet graph takes (Apply IP-Adapter refuses a fifth, naming the node). */
export const MAX_IP_ADAPTERS = 4;

export interface BuildUNetOptions {
  /** One adapter: the same as ipAdapters: [ipAdapter]. */
  ipAdapter?: IpAdapterWeights;
  /**
   * The adapters, one image branch each, in input order (ip_tokens_0, ...); at most MAX_IP_ADAPTERS.
   * The same file may appear twice (two image prompts with their own λ and mask): its weights are shared.
   */
  ipAdapters?: IpAdapterWeights[];
  controlnet?: boolean;
  attention?: AttentionImpl;
  /** Model name in the cache (default "unet"). */
  name?: string;
  /** Changes modules by name, declaring its own graph inputs (LoRA: models/lora-graph.ts, input lora_scale). */
  moduleHook?: (g: Graph) => ModuleHook;
}

/** Builds the UNet graph from a config and a diffusers-named weight map. */
export function buildUNet(cfg: UNetConfig, w: WeightMap, opts: BuildUNetOptions = {}): Graph {
  checkShapes('UNet', w, unetParameterShapes(cfg)); // models/shape-check.ts
  const g = new Graph(opts.name ?? 'unet');
  const sample = g.input('sample', DataType.FLOAT, ['batch', cfg.inChannels, 'height', 'width']);
  const timestep = g.input('timestep', DataType.FLOAT, ['batch']);
  const context = g.input('encoder_hidden_states', DataType.FLOAT, ['batch', 'text_tokens', cfg.crossAttentionDim]);
  const m = new Module(g, w, '', opts.moduleHook?.(g));

  // Decoupled cross-attention: per adapter, one image branch in every attn2 layer; all its inputs are graph inputs.
  const cross = crossAttnLayers(cfg);
  const adapters = opts.ipAdapters ?? (opts.ipAdapter ? [opts.ipAdapter] : []);
  if (adapters.length > MAX_IP_ADAPTERS) {
    throw new Error(
      `a UNet graph takes at most ${MAX_IP_ADAPTERS} IP-Adapters, ${adapters.length} were given (${adapters.map((a) => a.file ?? '?').join(', ')})`,
    );
  }
  const ipByName = new Map<string, IpLayer[]>(cross.map((p) => [p.name, []]));
  adapters.forEach((ip, k) => {
    const want = cross.map((p) => p.index);
    if (ip.layers && (ip.layers.size !== want.length || !want.every((i) => ip.layers!.has(i)))) {
      throw new Error(
        `IP-Adapter ${ip.file ?? ''} has image layers ${[...ip.layers.keys()].join(', ')}, but this UNet's cross-attention processors are ${want.join(', ')}; the adapter was made for another UNet`,
      );
    }
    // λ is `scale` everywhere inside (diffusers' IPAdapterAttnProcessor.scale, per layer `scales`);
    // the graph input says whose scale it is, ip_adapter_scale_<k>, because a graph's inputs share one
    // flat namespace (the ControlNet graph has conditioning_scale).
    const tokenDims = ['batch', `ip_groups_${k}`, `ip_token_count_${k}`, cfg.crossAttentionDim];
    const tokens = g.input(`ip_tokens_${k}`, DataType.FLOAT, tokenDims);
    const routedTokens = g.input(`ip_tokens_routed_${k}`, DataType.FLOAT, tokenDims);
    const routes = g.input(`ip_route_${k}`, DataType.BOOL, [cross.length]);
    const scales = g.input(`ip_adapter_scale_${k}`, DataType.FLOAT, [cross.length]);
    const kvScales = g.input(`ip_kv_scale_${k}`, DataType.FLOAT, [cross.length, 3]);
    const masks = new Map(
      crossAttnLevels(cfg).map((lv) => [
        lv,
        g.input(`ip_mask_${k}_${lv}`, DataType.FLOAT, [`ip_mask_batch_${k}_${lv}`, `ip_mask_groups_${k}_${lv}`, `ip_mask_q_${k}_${lv}`]),
      ]),
    );
    cross.forEach((p, n) => {
      const { toK, toV } = ip.layerWeights(p.index);
      for (const [what, ref] of [
        ['to_k_ip', toK],
        ['to_v_ip', toV],
      ] as const) {
        if (ref.shape.length !== 2 || ref.shape[0] !== p.hiddenSize || ref.shape[1] !== cfg.crossAttentionDim) {
          throw new Error(
            `IP-Adapter ${ref.key} in ${ref.file} has shape [${ref.shape}], but ${p.name} needs [${p.hiddenSize}, ${cfg.crossAttentionDim}] (${what})`,
          );
        }
      }
      const at = (vec: string, what: string) => g.op('Gather', [vec, g.constI([n], [])], { axis: 0 }, `${what}_${k}_${n}`);
      ipByName.get(p.name)!.push({
        index: p.index,
        toK,
        toV,
        tokens,
        routedTokens,
        route: at(routes, 'ip_route'),
        kvScale: at(kvScales, 'ip_kv_scale'),
        scale: at(scales, 'ip_adapter_scale'),
        mask: masks.get(crossAttnLevel(cfg, p.name))!,
      });
    });
  });
  const o: BlockOptions = {
    groups: cfg.normNumGroups,
    eps: cfg.normEps,
    attention: opts.attention ?? 'mha',
    ipFor: adapters.length ? (name) => ipByName.get(name) : undefined,
  };

  // 1. time
  const tProj = timestepProjection(g, timestep, cfg.blockOutChannels[0]!, cfg.flipSinToCos, cfg.freqShift); // (B, C0)
  const emb = timestepEmbedding(m.child('time_embedding'), tProj); // (B, 4*C0)
  const embAct = silu(g, emb); // every resnet applies SiLU to temb first

  // 2. pre-process
  let h = conv2d(m.child('conv_in'), sample); // (B, C0, H, W)

  // 3. down
  let skips: string[] = [h];
  downBlockSpecs(cfg).forEach((spec, i) => {
    const r = downBlock(m.child('down_blocks').child(i), h, embAct, context, spec, o);
    h = r.out;
    skips.push(...r.skips);
  });
  if (opts.controlnet) {
    skips = skips.map((s, i) =>
      g.op('Add', [s, g.input(`down_block_additional_residual_${i}`, DataType.FLOAT, ['batch', `res${i}_c`, `res${i}_h`, `res${i}_w`])]),
    );
  }

  // 4. mid
  if (cfg.midBlockType) {
    const last = cfg.blockOutChannels.length - 1;
    h = midBlockCrossAttn(m.child('mid_block'), h, embAct, context, cfg.numAttentionHeads[last]!, o, cfg.midBlockScaleFactor);
  }
  if (opts.controlnet) h = g.op('Add', [h, g.input('mid_block_additional_residual', DataType.FLOAT, ['batch', 'mid_c', 'mid_h', 'mid_w'])]);

  // 5. up
  upBlockSpecs(cfg).forEach((spec, i) => {
    const mine = skips.splice(skips.length - spec.layers, spec.layers);
    h = upBlock(m.child('up_blocks').child(i), h, mine, embAct, context, spec, o, skips[skips.length - 1]);
  });

  // 6. post-process
  h = silu(g, groupNorm(m.child('conv_norm_out'), h, cfg.normNumGroups, cfg.normEps));
  h = conv2d(m.child('conv_out'), h);
  g.output('noise_pred', h, DataType.FLOAT, ['batch', cfg.outChannels, 'height', 'width']);
  return g;
}

// ---------------------------------------------------------------------------------------
// Running the graph: one session per (weights, adapter, controlnet) variant.
// ---------------------------------------------------------------------------------------

export interface UNetSessionOptions extends SessionConfig, BuildUNetOptions {}

/**
 * ONNX Runtime options for the UNet, measured with scripts/bench.ts on SD1.5 (fp32, CPU):
 * fusions up to "extended" but not the NCHWc layout pass of "all" (it reorders a copy of every
 * conv weight: +13 s session creation and +2.4 GB for SD1.5), and no prepacking, so the
 * external-data weights (memory-mapped from the user's file) are used in place
 * (onnx/session.ts IN_PLACE_SESSION_OPTIONS). With Gemm(transB) linears (onnx/graph.ts
 * `linear`) nothing is copied at session creation.
 */
export const UNET_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'extended',
  ...IN_PLACE_SESSION_OPTIONS,
};

/** A UNet graph variant with its ONNX Runtime session. */
export class UNetModel {
  readonly crossLayers: AttnProcessorInfo[];

  private constructor(
    readonly config: UNetConfig,
    readonly session: ort.InferenceSession,
    /** Number of adapters the graph takes (ip_tokens_0 ...). */
    readonly adapterCount: number,
    readonly hasControlnet: boolean,
  ) {
    this.crossLayers = crossAttnLayers(config);
  }

  /** Builds the graph for `opts` (adapter / controlnet) and creates its session. */
  static async create(config: UNetConfig, weights: WeightMap, opts: UNetSessionOptions): Promise<UNetModel> {
    const built = buildUNet(config, weights, opts).build();
    const session = await createSession(built, { ...opts, sessionOptions: { ...UNET_SESSION_OPTIONS, ...opts.sessionOptions } });
    return new UNetModel(config, session, (opts.ipAdapters ?? (opts.ipAdapter ? [opts.ipAdapter] : [])).length, !!opts.controlnet);
  }

  /** One UNet evaluation: noise prediction (B, Cout, H, W) (models/unet-call.ts, as the sampler calls it). */
  run(inp: UNetInputs): Promise<F32Tensor> {
    return callUNet(this, inp);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

// ---------------------------------------------------------------------------------------
// Parameter list of a config (diffusers names and shapes): for generated test/bench models.
// ---------------------------------------------------------------------------------------

/** Every UNet parameter (diffusers name -> shape) for `cfg`, in a stable order. */
export function unetParameterShapes(cfg: UNetConfig): Map<string, number[]> {
  const p = new Map<string, number[]>();
  const add = (name: string, shape: number[]) => p.set(name, shape);
  const norm = (n: string, c: number) => {
    add(`${n}.weight`, [c]);
    add(`${n}.bias`, [c]);
  };
  const lin = (n: string, o: number, i: number, bias = true) => {
    add(`${n}.weight`, [o, i]);
    if (bias) add(`${n}.bias`, [o]);
  };
  const conv = (n: string, o: number, i: number, k: number) => {
    add(`${n}.weight`, [o, i, k, k]);
    add(`${n}.bias`, [o]);
  };
  // The per-block lists have one entry per block (parseUNetConfig checks), so the indexing below is in range.
  const c0 = cfg.blockOutChannels[0]!;
  const tdim = 4 * c0;
  const resnet = (n: string, cin: number, cout: number) => {
    norm(`${n}.norm1`, cin);
    conv(`${n}.conv1`, cout, cin, 3);
    lin(`${n}.time_emb_proj`, cout, tdim);
    norm(`${n}.norm2`, cout);
    conv(`${n}.conv2`, cout, cout, 3);
    if (cin !== cout) conv(`${n}.conv_shortcut`, cout, cin, 1);
  };
  const transformer = (n: string, c: number, depth: number) => {
    norm(`${n}.norm`, c);
    if (cfg.useLinearProjection) lin(`${n}.proj_in`, c, c);
    else conv(`${n}.proj_in`, c, c, 1);
    for (let t = 0; t < depth; t++) {
      const b = `${n}.transformer_blocks.${t}`;
      for (const a of ['attn1', 'attn2']) {
        const kv = a === 'attn1' ? c : cfg.crossAttentionDim;
        lin(`${b}.${a}.to_q`, c, c, false);
        lin(`${b}.${a}.to_k`, c, kv, false);
        lin(`${b}.${a}.to_v`, c, kv, false);
        lin(`${b}.${a}.to_out.0`, c, c);
      }
      norm(`${b}.norm1`, c);
      norm(`${b}.norm2`, c);
      norm(`${b}.norm3`, c);
      lin(`${b}.ff.net.0.proj`, 8 * c, c);
      lin(`${b}.ff.net.2`, c, 4 * c);
    }
    if (cfg.useLinearProjection) lin(`${n}.proj_out`, c, c);
    else conv(`${n}.proj_out`, c, c, 1);
  };
  conv('conv_in', c0, cfg.inChannels, 3);
  lin('time_embedding.linear_1', tdim, c0);
  lin('time_embedding.linear_2', tdim, tdim);
  let ch = c0;
  downBlockSpecs(cfg).forEach((s, i) => {
    const out = cfg.blockOutChannels[i]!;
    for (let l = 0; l < s.layers; l++) {
      resnet(`down_blocks.${i}.resnets.${l}`, l === 0 ? ch : out, out);
      if (s.hasAttention) transformer(`down_blocks.${i}.attentions.${l}`, out, cfg.transformerLayersPerBlock[i]!);
    }
    if (s.resample) conv(`down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
    ch = out;
  });
  const last = cfg.blockOutChannels.length - 1;
  const cm = cfg.blockOutChannels[last]!;
  if (cfg.midBlockType) {
    resnet('mid_block.resnets.0', cm, cm);
    transformer('mid_block.attentions.0', cm, cfg.transformerLayersPerBlock[last]!);
    resnet('mid_block.resnets.1', cm, cm);
  }
  const rev = [...cfg.blockOutChannels].reverse();
  const revDepth = [...cfg.transformerLayersPerBlock].reverse();
  let prev = rev[0]!;
  upBlockSpecs(cfg).forEach((s, i) => {
    const out = rev[i]!;
    const inCh = rev[Math.min(i + 1, rev.length - 1)]!;
    for (let l = 0; l < s.layers; l++) {
      const skip = l === s.layers - 1 ? inCh : out;
      const rin = l === 0 ? prev : out;
      resnet(`up_blocks.${i}.resnets.${l}`, rin + skip, out);
      if (s.hasAttention) transformer(`up_blocks.${i}.attentions.${l}`, out, revDepth[i]!);
    }
    if (s.resample) conv(`up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
    prev = out;
  });
  norm('conv_norm_out', c0);
  conv('conv_out', cfg.outChannels, c0, 3);
  return p;
}
