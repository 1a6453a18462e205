/**
 * The values that flow on edges, one interface per port type. Model values are lightweight
 * references (paths and options); the heavy parts (sessions, weights) live in the engine's
 * model store under keys derived from these references, so a value can be cached, copied and
 * compared cheaply, and Apply IP-Adapter costs nothing.
 */
import type { WeightType } from '../models/ip-adapter-layer-scales.js';
import type { EmbedsScaling, IpAdapterKind } from '../models/ip-adapter.js';

/** A checkpoint: a diffusers folder or a single file, with an optional diffusers config folder. */
export interface CheckpointRef {
  path: string;
  /** Diffusers folder whose configs describe a single-file checkpoint ('' = SD1.5 standard values). */
  configDir: string;
}

/** One Apply IP-Adapter on a model: adapter file, its image tokens and when/how strongly it acts. */
export interface AppliedAdapter {
  adapter: IpAdapterValue;
  tokens: IpTokensValue;
  /** Tokens for the unconditional branch instead of the projection of a zero image (negative image prompt). */
  negative?: IpTokensValue;
  /**
   * The adapter's scale: λ of the decoupled cross-attention (Apply IP-Adapter's param `weight`;
   * diffusers' `scale`, the one name it has from here to the UNet's ip_adapter_scale input).
   */
  scale: number;
  /** Active while the step's fraction of the schedule, i / steps, is in [start, end]. */
  start: number;
  end: number;
  /** ComfyUI_IPAdapter_plus' weight type: λ per layer (models/ip-adapter-layer-scales.ts weightTypeLayers); absent = linear. */
  weightType?: WeightType;
  /** weight_composition of 'style and composition': λ of its composition layers. */
  weightComposition?: number;
  /** 'style and composition': the tokens its composition layers attend to (absent = `tokens`). */
  composition?: IpTokensValue;
  /** Per-layer factors of λ that replace the type's (param layer_weights; '' = the type's own). */
  layerWeights?: string;
  /** ComfyUI_IPAdapter_plus's embeds_scaling (models/ip-adapter.ts EMBEDS_SCALING); absent = 'V only'. */
  embedsScaling?: EmbedsScaling;
  /**
   * Attention mask (1 = the image prompt acts there): batch 1 for the whole adapter, or one mask per
   * image of `tokens` (each image then gets its own softmax). Resized to the latent's aspect by the sampler.
   */
  mask?: MaskValue;
  /** The node that applied it, for messages ("Apply IP-Adapter (apply_2)"). */
  from?: { node: string; title: string };
}

/**
 * One Load LoRA on a MODEL or CLIP: the file and its strength for that model part. The network's
 * graph depends on the files only (models/lora-graph.ts); the strengths are fed at run time.
 */
export interface AppliedLora {
  /** A LoRA file from <models>/loras (absolute path). */
  path: string;
  /** strength_model on a MODEL, strength_clip on a CLIP; may be negative. */
  strength: number;
}

/** MODEL: the UNet of a checkpoint plus the adapters and LoRAs applied to it. */
export interface ModelValue {
  kind: 'MODEL';
  checkpoint: CheckpointRef;
  adapters: AppliedAdapter[];
  /** Load LoRA nodes in chain order (absent = none). */
  loras?: AppliedLora[];
}

/** CLIP: the checkpoint's text encoder and the tokenizer folder, plus the LoRAs applied to it. */
export interface ClipValue {
  kind: 'CLIP';
  checkpoint: CheckpointRef;
  tokenizerDir: string;
  /** Load LoRA nodes in chain order (absent = none). */
  loras?: AppliedLora[];
}

/** VAE: where its weights are (a checkpoint's, or a separate VAE file). */
export interface VaeValue {
  kind: 'VAE';
  /** A checkpoint (its VAE) or a standalone VAE file or diffusers folder from <models>/vae (Load VAE). */
  checkpoint?: CheckpointRef;
  file?: string;
  /** The config.json describing a standalone file ('' or absent = read from shapes, SD1.5 group count and scale). */
  configPath?: string;
  /** Id of the node that made the value, so a missing VAE names it ("Load Checkpoint (ckpt)"). */
  from?: { node: string; title: string };
}

/** IMAGE: a batch of RGB images, float32 (B, H, W, 3) in [0, 1] (ComfyUI's layout). */
export interface ImageValue {
  kind: 'IMAGE';
  batch: number;
  width: number;
  height: number;
  data: Float32Array;
}

/** MASK: (B, H, W) in [0, 1]; 1 where the source image was transparent (ComfyUI's rule, 1 - alpha). */
export interface MaskValue {
  kind: 'MASK';
  batch: number;
  width: number;
  height: number;
  data: Float32Array;
}

/** CLIP_VISION: an image encoder (transformers folder or single file). */
export interface ClipVisionValue {
  kind: 'CLIP_VISION';
  path: string;
}

/** IMAGE_EMBEDS: the image encoder's outputs for n images. */
export interface ImageEmbedsValue {
  kind: 'IMAGE_EMBEDS';
  count: number;
  /** image_embeds (n, D), null when the encoder has no projection. */
  imageEmbeds: Float32Array | null;
  embedDim: number;
  /** penultimate hidden states (n, T, Dh). */
  penultimate: Float32Array;
  hiddenTokens: number;
  hiddenDim: number;
  /** The encoder that made them (IP-Adapter Plus needs it for its unconditional tokens). */
  vision: ClipVisionValue;
}

/** IP_ADAPTER: an adapter file (h94 layout). */
export interface IpAdapterValue {
  kind: 'IP_ADAPTER';
  path: string;
  adapterKind: IpAdapterKind;
  tokensPerImage: number;
  crossDim: number;
}

/** IP_TOKENS: image tokens (N, C) for the conditional branch and their unconditional counterpart. */
export interface IpTokensValue {
  kind: 'IP_TOKENS';
  adapterPath: string;
  tokens: number;
  dim: number;
  cond: Float32Array;
  uncond: Float32Array;
}

/**
 * IP_EMBEDS: what an adapter's projection takes, for n images (ComfyUI_IPAdapter_plus' EMBEDS): image_embeds
 * (n, D) for a base adapter, the penultimate vision states (n, T, Dh) for Plus and full-face, already
 * multiplied by the Encoder's weights. Tied to one adapter file (its projection reads them).
 */
export interface IpEmbedsValue {
  kind: 'IP_EMBEDS';
  /** The adapter whose projection they feed (absolute path). */
  adapterPath: string;
  adapterKind: IpAdapterKind;
  /** The CLIP vision model that encoded them ('' when loaded from a file). */
  visionPath: string;
  /** Rows (images). */
  count: number;
  /** One row's shape: [D] or [T, Dh]. */
  rowDims: number[];
  /** (count, ...rowDims), float32. */
  data: Float32Array;
}

/** CONTROL_NET: a reference to a ControlNet's files; the session lives in the model store. */
export interface ControlNetValue {
  kind: 'CONTROL_NET';
  /** A diffusers folder or a single file. */
  path: string;
  /** controlnet/config.json describing a single file ('' = SD1.5 standard values from shapes). */
  configPath: string;
}

/** One structural control carried by a CONDITIONING value (its `controls` list). */
export interface AppliedControl {
  kind: 'CONTROL';
  controlnet: ControlNetValue;
  /** The control image (already preprocessed: edges, lines, ...), RGB in [0, 1]. */
  image: ImageValue;
  /** Residuals are multiplied by it (diffusers' controlnet_conditioning_scale). */
  strength: number;
  /** Fractions of the sampling schedule: active at step i of n iff i/n >= start and (i+1)/n <= end. */
  start: number;
  end: number;
}

/** CONDITIONING: the text encoder's hidden states for one prompt, (T, C). */
export interface ConditioningValue {
  kind: 'CONDITIONING';
  text: string;
  tokens: number;
  dim: number;
  embeds: Float32Array;
  /** Structural controls attached by Apply ControlNet (structural-control issue). */
  controls?: unknown[];
}

/** LATENT: scaled latents (B, 4, h, w) as the sampler sees them. */
export interface LatentValue {
  kind: 'LATENT';
  dims: [number, number, number, number];
  samples: Float32Array;
  /**
   * True for Empty Latent Image: a full-denoise sampler then starts from pure noise times
   * init_noise_sigma (diffusers text-to-image); otherwise it noises these latents (image-to-image).
   */
  empty?: boolean;
  /**
   * Inpainting (VAE Encode with a mask, Set Latent Noise Mask): where the sampler may change the
   * latents, at latent size, (batch 1 or B, h, w) in [0, 1], 1 = repaint (models/inpaint.ts).
   */
  noiseMask?: { batch: number; data: Float32Array };
  /** Scaled latents of the image with the masked area grey (B, 4, h, w), for 9-channel inpainting UNets. */
  maskedImage?: Float32Array;
}

/** Narrowing helper: throws a sentence when an input has the wrong kind of value. */
export function expectValue<T extends { kind: string }>(v: unknown, kind: T['kind'], what: string): T {
  if (!v || typeof v !== 'object' || (v as { kind?: unknown }).kind !== kind) {
    throw new Error(`${what}: expected a ${kind} value, got ${v === undefined ? 'nothing' : JSON.stringify((v as { kind?: unknown }).kind ?? typeof v)}`);
  }
  return v as T;
}
