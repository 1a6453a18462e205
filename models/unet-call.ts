/**
 * The one place a UNet is called: named inputs (latents, timestep, text embeddings, each
 * IP-Adapter's image tokens, scales, mask and routing, ControlNet residuals, LoRA strengths) -> the feeds of a models/unet.ts
 * graph -> its noise prediction. The sampler's model call (nodes/ddim-sampler.ts) and the
 * `unet_step` conformance group both go through `callUNet`, so the reference cases check the
 * inputs a user's run feeds; UNetModel.run is the same call.
 *
 * Which optional inputs a call must carry is read from the session's own input names (a graph
 * built with an adapter takes ip_tokens, one built for ControlNets the residual inputs), so the
 * caller cannot feed a variant the inputs of another.
 */
import { type EmbedsScaling, embedsScalingCoefficients } from './ip-adapter.js';
import { downsampleIpMask } from './ip-adapter-mask.js';
import { residentFeeds, unetPerStepInput } from './onnx/device-tensors.js';
import { ort, runWithNaNGuard } from './onnx/session.js';
import { type UNetConfig, crossAttnLayers, crossAttnLevels, levelGrid, numDownResiduals } from './unet-config.js';

/** A float32 tensor with its dims. */
export interface F32Tensor {
  data: Float32Array;
  dims: number[];
}

/** A UNet evaluation's output: `notice` says when a reduced-precision step was re-run in fp32 (onnx/session.ts NaN guard). */
export interface UNetOutput extends F32Tensor {
  notice?: string;
}

export interface UNetInputs {
  sample: F32Tensor; // (B, Cin, H, W)
  /** One timestep for the whole batch, or one per sample. */
  timestep: number | Float32Array;
  encoderHiddenStates: F32Tensor; // (B, T, Cctx)
  /** The IP-Adapter's inputs, for a graph built with one adapter (= ipAdapters: [ipAdapter]). */
  ipAdapter?: IpAdapterInputs;
  /** Each adapter's inputs, in the graph's adapter order (ip_tokens_0, ...): one entry per adapter it was built with. */
  ipAdapters?: IpAdapterInputs[];
  /** ControlNet residuals (already scaled by the conditioning scale). */
  downResiduals?: F32Tensor[];
  midResidual?: F32Tensor;
  /**
   * For a graph with its ControlNets inside (models/unet-controlnet.ts): each ControlNet's control image and
   * strength per batch row (0 outside its window and on the rows it does not act on), in the graph's order.
   */
  controlNets?: ControlNetFeed[];
  /** One strength per LoRA of a graph built with LoRAs (models/lora-graph.ts lora_scale, in the graph's order). */
  loraScale?: ArrayLike<number>;
}

/** One ControlNet's inputs to a UNet graph that holds it (models/unet-controlnet.ts controlnet_cond_<j>, controlnet_scale_<j>). */
export interface ControlNetFeed {
  /** The control image in [0, 1], (B, 3, 8h, 8w): one per batch row. */
  cond: F32Tensor;
  /** (B,) strength per batch row. */
  scale: Float32Array;
}

/** One adapter's inputs for a UNet call. Only `tokens` is required; the defaults are diffusers' plain IP-Adapter. */
export interface IpAdapterInputs {
  /**
   * Image tokens (B, N, Cctx), or (B, I, N, Cctx) for I images: concatenated into one softmax over
   * I * N tokens (diffusers without masks), or with `perImage` one softmax per image.
   */
  tokens: F32Tensor;
  /** Each image of (B, I, N, Cctx) tokens attended separately (diffusers with masks; a mask per image). */
  perImage?: boolean;
  /** λ for every cross-attention layer, or one per layer (crossAttnLayers order). Default 1. */
  scale?: number | ArrayLike<number>;
  /** ComfyUI_IPAdapter_plus's embeds_scaling (models/ip-adapter.ts EMBEDS_SCALING); default 'V only' (diffusers). */
  embedsScaling?: EmbedsScaling;
  /** Precise routing per layer (crossAttnLayers order): a flagged layer attends to `routedTokens` instead. */
  route?: ArrayLike<boolean>;
  /** The tokens of the routed layers, the same dims as `tokens` (required when a route flag is set). */
  routedTokens?: F32Tensor;
  /**
   * Attention mask (Bm, G, h, w), Bm = 1 or B, G = 1 or the number of images (with perImage), at any
   * size: downsampled to each level's query grid as diffusers' IPAdapterMaskProcessor.downsample
   * (models/ip-adapter-mask.ts); it multiplies that image's attention output. Absent = ones.
   */
  mask?: F32Tensor;
}

/** A UNet to call: an ONNX Runtime session of a buildUNet graph and the config it was built from. */
export interface UNetSession {
  readonly session: ort.InferenceSession;
  readonly config: UNetConfig;
}

/** The session's feeds for `inp`; throws a sentence when the graph needs an input the call lacks. */
export function unetFeeds(unet: UNetSession, inp: UNetInputs): Record<string, ort.Tensor> {
  const names = unet.session.inputNames;
  const [B] = inp.sample.dims;
  if (B === undefined) throw new Error('UNet: the sample has no batch axis (dims [])');
  const t = typeof inp.timestep === 'number' ? new Float32Array(B).fill(inp.timestep) : inp.timestep;
  if (t.length !== B) throw new Error(`UNet: ${t.length} timesteps for a batch of ${B}`);
  const T = (x: F32Tensor) => new ort.Tensor('float32', x.data, x.dims);
  const feeds: Record<string, ort.Tensor> = {
    sample: T(inp.sample),
    timestep: new ort.Tensor('float32', t, [B]),
    encoder_hidden_states: T(inp.encoderHiddenStates),
  };
  const slots = names.filter((n) => /^ip_tokens_\d+$/.test(n)).length;
  const given = inp.ipAdapters ?? (inp.ipAdapter ? [inp.ipAdapter] : []);
  if (given.length !== slots) {
    throw new Error(
      slots
        ? `UNet: this graph takes ${slots} IP-Adapter${slots > 1 ? 's' : ''}; the call gives ${given.length}`
        : `UNet: this graph has no IP-Adapter, but the call gives image tokens for ${given.length}`,
    );
  }
  const [, , H, W] = inp.sample.dims;
  given.forEach((a, k) => Object.assign(feeds, ipAdapterFeeds(unet.config, k, a, H ?? 0, W ?? 0)));
  if (names.includes('mid_block_additional_residual')) {
    const want = numDownResiduals(unet.config);
    if (!inp.downResiduals || inp.downResiduals.length !== want || !inp.midResidual) {
      throw new Error(
        `UNet: this graph takes ControlNet residuals (${want} down + 1 mid), got ${inp.downResiduals?.length ?? 0} down${inp.midResidual ? ' + mid' : ''}`,
      );
    }
    inp.downResiduals.forEach((r, i) => {
      feeds[`down_block_additional_residual_${i}`] = T(r);
    });
    feeds.mid_block_additional_residual = T(inp.midResidual);
  }
  const nets = names.filter((n) => /^controlnet_cond_\d+$/.test(n)).length;
  if (nets !== (inp.controlNets?.length ?? 0)) {
    throw new Error(`UNet: this graph holds ${nets} ControlNet${nets === 1 ? '' : 's'}; the call gives inputs for ${inp.controlNets?.length ?? 0}`);
  }
  inp.controlNets?.forEach((c, j) => {
    if (c.scale.length !== B || c.cond.dims[0] !== B) throw new Error(`UNet: ControlNet ${j}'s image and strengths must have one row per sample (${B})`);
    feeds[`controlnet_cond_${j}`] = T(c.cond);
    feeds[`controlnet_scale_${j}`] = new ort.Tensor('float32', c.scale, [B]);
  });
  if (names.includes('lora_scale')) {
    if (!inp.loraScale) throw new Error('UNet: this graph has LoRAs; their strengths (loraScale) are required');
    feeds.lora_scale = new ort.Tensor('float32', Float32Array.from(inp.loraScale), [inp.loraScale.length]);
  }
  return feeds;
}

/** Masks downsampled for a (H, W) latent, per mask tensor: a sampler's mask is reused across its steps. */
const maskCache = new WeakMap<Float32Array, Map<string, ort.Tensor[]>>();

/** The graph inputs of adapter `k` (models/unet.ts) for a (H, W) latent: tokens, routed tokens, route flags, scales, kv scales, masks per level. */
export function ipAdapterFeeds(cfg: UNetConfig, k: number, a: IpAdapterInputs, H: number, W: number): Record<string, ort.Tensor> {
  const layers = crossAttnLayers(cfg);
  const n = layers.length;
  const d = a.tokens.dims;
  if (d.length !== 3 && d.length !== 4) throw new Error(`UNet: IP-Adapter ${k}'s tokens must be (B, N, C) or (B, images, N, C), got (${d.join(', ')})`);
  // (B, S, N, C): one group of all tokens, or one group per image.
  const dims = d.length === 3 ? [d[0]!, 1, d[1]!, d[2]!] : a.perImage ? [...d] : [d[0]!, 1, d[1]! * d[2]!, d[3]!];
  const tokens = new ort.Tensor('float32', a.tokens.data, dims);
  const scale = a.scale ?? 1;
  const lambda = typeof scale === 'number' ? new Array<number>(n).fill(scale) : Array.from(scale);
  if (lambda.length !== n) throw new Error(`UNet: ${lambda.length} IP-Adapter scales for ${n} cross-attention layers`);
  const route = a.route ? Array.from(a.route, Boolean) : new Array<boolean>(n).fill(false);
  if (route.length !== n) throw new Error(`UNet: ${route.length} IP-Adapter routing flags for ${n} cross-attention layers`);
  let routed = tokens;
  if (route.some(Boolean)) {
    if (!a.routedTokens) throw new Error(`UNet: IP-Adapter ${k} routes some layers (precise weight type) but the call gives no routed tokens`);
    if (a.routedTokens.data.length !== a.tokens.data.length) throw new Error(`UNet: IP-Adapter ${k}'s routed tokens differ in size from its tokens`);
    routed = new ort.Tensor('float32', a.routedTokens.data, dims);
  }
  const { kv, out } = embedsScalingCoefficients(
    a.embedsScaling ?? 'V only',
    lambda,
    layers.map((l) => l.hiddenSize),
  );
  const feeds: Record<string, ort.Tensor> = {
    [`ip_tokens_${k}`]: tokens,
    [`ip_tokens_routed_${k}`]: routed,
    [`ip_route_${k}`]: new ort.Tensor('bool', Uint8Array.from(route, Number), [n]),
    [`ip_adapter_scale_${k}`]: new ort.Tensor('float32', out, [n]),
    [`ip_kv_scale_${k}`]: new ort.Tensor('float32', kv, [n, 3]),
  };
  const levels = crossAttnLevels(cfg);
  let masks: ort.Tensor[];
  if (!a.mask) {
    masks = levels.map(() => new ort.Tensor('float32', Float32Array.of(1), [1, 1, 1])); // ones, broadcast
  } else {
    const md = a.mask.dims;
    if (md.length !== 4) throw new Error(`UNet: IP-Adapter ${k}'s mask must be (B, groups, h, w), got (${md.join(', ')})`);
    if (md[1] !== 1 && md[1] !== dims[1]) throw new Error(`UNet: IP-Adapter ${k} has ${md[1]} masks for ${dims[1]} image groups`);
    const byLatent = maskCache.get(a.mask.data) ?? new Map<string, ort.Tensor[]>();
    maskCache.set(a.mask.data, byLatent);
    const key = `${H}x${W}|${md.join(',')}`;
    masks =
      byLatent.get(key) ??
      levels.map((lv) => {
        const [h, w] = levelGrid(H, W, lv);
        const q = downsampleIpMask({ data: a.mask!.data, dims: md as [number, number, number, number] }, h * w);
        return new ort.Tensor('float32', q, [md[0]!, md[1]!, h * w]);
      });
    byLatent.set(key, masks);
  }
  levels.forEach((lv, i) => {
    feeds[`ip_mask_${k}_${lv}`] = masks[i]!;
  });
  return feeds;
}

/**
 * One UNet evaluation: the noise prediction (B, Cout, H, W). On a reduced-precision graph a non-finite prediction
 * is computed again in fp32 on the same provider, and `notice` says so (the sampler node logs it).
 */
export async function callUNet(unet: UNetSession, inp: UNetInputs): Promise<UNetOutput> {
  // On WebGPU the constant inputs stay on the device across steps (onnx/device-tensors.ts); elsewhere the same feeds.
  const feeds = await residentFeeds(unet.session, unetFeeds(unet, inp), unetPerStepInput);
  const { out, notice } = await runWithNaNGuard(unet.session, feeds);
  const y = out.noise_pred;
  if (!y) throw new Error('UNet: the session returned no noise_pred output');
  return { data: y.data as Float32Array, dims: [...y.dims], ...(notice ? { notice } : {}) };
}
