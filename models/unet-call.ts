/**
 * The one place a UNet is called: named inputs (latents, timestep, text embeddings, the
 * IP-Adapter's image tokens and scale, ControlNet residuals, LoRA strengths) -> the feeds of a models/unet.ts
 * graph -> its noise prediction. The sampler's model call (nodes/ddim-sampler.ts) and the
 * `unet_step` conformance group both go through `callUNet`, so the reference cases check the
 * inputs a user's run feeds; UNetModel.run is the same call.
 *
 * Which optional inputs a call must carry is read from the session's own input names (a graph
 * built with an adapter takes ip_tokens, one built for ControlNets the residual inputs), so the
 * caller cannot feed a variant the inputs of another.
 */
import { ort } from './onnx/session.js';
import { type UNetConfig, crossAttnLayers, numDownResiduals } from './unet-config.js';

/** A float32 tensor with its dims. */
export interface F32Tensor {
  data: Float32Array;
  dims: number[];
}

export interface UNetInputs {
  sample: F32Tensor; // (B, Cin, H, W)
  /** One timestep for the whole batch, or one per sample. */
  timestep: number | Float32Array;
  encoderHiddenStates: F32Tensor; // (B, T, Cctx)
  /** The IP-Adapter's inputs, for a graph built with an adapter. */
  ipAdapter?: {
    /** Image tokens (B, N, Cctx); a (B, images, tokens, Cctx) tensor is flattened to N = images * tokens. */
    tokens: F32Tensor;
    /** The adapter's scale (λ) for every cross-attention layer, or one per layer (crossAttnLayers order). Default 1. */
    scale?: number | ArrayLike<number>;
  };
  /** ControlNet residuals (already scaled by the conditioning scale). */
  downResiduals?: F32Tensor[];
  midResidual?: F32Tensor;
  /** One strength per LoRA of a graph built with LoRAs (models/lora-graph.ts lora_scale, in the graph's order). */
  loraScale?: ArrayLike<number>;
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
  if (names.includes('ip_tokens')) {
    if (!inp.ipAdapter) throw new Error('UNet: this graph has an IP-Adapter; its image tokens are required');
    const d = inp.ipAdapter.tokens.dims;
    const dims = d.length === 4 ? [d[0]!, d[1]! * d[2]!, d[3]!] : d; // images concatenated along the sequence
    feeds.ip_tokens = new ort.Tensor('float32', inp.ipAdapter.tokens.data, dims);
    const n = crossAttnLayers(unet.config).length;
    const scale = inp.ipAdapter.scale ?? 1;
    const scales = typeof scale === 'number' ? new Float32Array(n).fill(scale) : Float32Array.from(scale);
    if (scales.length !== n) throw new Error(`UNet: ${scales.length} IP-Adapter scales for ${n} cross-attention layers`);
    feeds.ip_adapter_scale = new ort.Tensor('float32', scales, [n]);
  }
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
  if (names.includes('lora_scale')) {
    if (!inp.loraScale) throw new Error('UNet: this graph has LoRAs; their strengths (loraScale) are required');
    feeds.lora_scale = new ort.Tensor('float32', Float32Array.from(inp.loraScale), [inp.loraScale.length]);
  }
  return feeds;
}

/** One UNet evaluation: the noise prediction (B, Cout, H, W). */
export async function callUNet(unet: UNetSession, inp: UNetInputs): Promise<F32Tensor> {
  const out = await unet.session.run(unetFeeds(unet, inp));
  const y = out.noise_pred;
  if (!y) throw new Error('UNet: the session returned no noise_pred output');
  return { data: y.data as Float32Array, dims: [...y.dims] };
}
