/** engine/demo: the built-in demo model set — tiny random-weight models in the real file layouts, their parameter lists and tokenizer. */
/**
 * The demo model set: tiny random-weight models in the real file layouts (ComfyUI models
 * folder), generated deterministically, so every example runs end to end in seconds on a CPU
 * without downloading anything. The weights are random: the images are noise.
 *
 *   checkpoints/stable-diffusion-v1-5/          diffusers folder (unet, vae, text_encoder,
 *                                               tokenizer, scheduler, model_index.json)
 *   clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K/ transformers CLIPVisionModelWithProjection
 *   ipadapter/ip-adapter_sd15.safetensors       h94 layout, 4 tokens
 *   controlnet/control_v11p_sd15_canny/         diffusers ControlNetModel folders (the demo
 *   controlnet/control_v11p_sd15_lineart/       UNet's encoder widths; a small hint encoder)
 *   tokenizers/clip-vit-large-patch14/          vocab.json + merges.txt
 *   vae/vae-ft-mse-840000-ema-pruned.safetensors a standalone VAE in the original layout (no prefix),
 *                                               SD1.5's group count, so it loads without a config
 *   loras/add_detail.safetensors                a kohya LoRA (lora_unet_ / lora_te_, rank 4, alpha 2,
 *                                               LoCon conv layers) for the demo UNet and text encoder
 *
 * The names are the usual ones of the real models, so the examples open unchanged against a
 * real models folder. The architecture is SD1.5's with tiny widths, one attention head, and no
 * attention in the full-resolution blocks (see DEMO_UNET_CONFIG).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { controlNetParameterShapes } from '../../models/controlnet.js';
import { parseControlNetConfig } from '../../models/controlnet-load.js';
import { writeFileAtomicSync } from '../../models/fs-atomic.js';
import { unetParameterShapes } from '../../models/unet.js';
import { parseVaeConfig, vaeParameterShapes } from '../../models/vae.js';
import { crossAttnLayers, parseUNetConfig } from '../../models/unet-config.js';
import { clipTextShapes, clipVisionShapes, ipAdapterShapes, ldmVaeShapes, randomSafetensors, randomTensors } from './weights.js';
import { clipTextLoraTargets, loraParameterShapes, unetLoraTargets } from '../../models/lora.js';
import { encodeSafetensors } from '../../models/safetensors.js';
import type { UNetConfig } from '../../models/unet-config.js';
import { SD15_SCHEDULER } from '../../models/ddim.js';
import { demoTokenizer } from './tokenizer.js';

export const DEMO_NOTICE =
  'Demo mode: using the built-in demo models (tiny random weights). They draw noise, not pictures; point the models folder at real SD1.5 / IP-Adapter models for images.';

/** Bump when the generated files change, so old demo folders are regenerated. */
const DEMO_VERSION = 6;
const SEED = 1234;

export const DEMO_NAMES = {
  checkpoint: 'stable-diffusion-v1-5',
  clipVision: 'CLIP-ViT-H-14-laion2B-s32B-b79K',
  ipAdapter: 'ip-adapter_sd15.safetensors',
  tokenizer: 'clip-vit-large-patch14',
  controlnetCanny: 'control_v11p_sd15_canny',
  controlnetLineart: 'control_v11p_sd15_lineart',
  vae: 'vae-ft-mse-840000-ema-pruned.safetensors',
  lora: 'add_detail.safetensors',
} as const;

const CROSS = 32;

export const DEMO_UNET_CONFIG = {
  _class_name: 'UNet2DConditionModel',
  _diffusers_version: '0.30.3',
  sample_size: 64,
  in_channels: 4,
  out_channels: 4,
  center_input_sample: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  // SD1.5's blocks, except that the full-resolution blocks have no attention: a 64x64 latent
  // (512x512 image) would otherwise spend 7x longer in 4096-token self-attention. So the demo
  // UNet has 11 cross-attention layers (SD1.5: 16); the adapter file matches it.
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  block_out_channels: [16, 32, 32, 32],
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  act_fn: 'silu',
  norm_num_groups: 8,
  norm_eps: 1e-5,
  cross_attention_dim: CROSS,
  attention_head_dim: 1,
  use_linear_projection: false,
  upcast_attention: false,
};

/**
 * ControlNetModel config matching the demo UNet (its encoder half, same widths), with a small
 * conditioning encoder: 3 stride-2 steps like SD1.5's (control image at 8x the latent size),
 * narrower (SD1.5: 16, 32, 96, 256).
 */
const DEMO_CONTROLNET_CONFIG = {
  _class_name: 'ControlNetModel',
  _diffusers_version: '0.30.3',
  in_channels: 4,
  conditioning_channels: 3,
  flip_sin_to_cos: true,
  freq_shift: 0,
  down_block_types: DEMO_UNET_CONFIG.down_block_types,
  only_cross_attention: false,
  block_out_channels: DEMO_UNET_CONFIG.block_out_channels,
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  act_fn: 'silu',
  norm_num_groups: 8,
  norm_eps: 1e-5,
  cross_attention_dim: CROSS,
  attention_head_dim: 1,
  use_linear_projection: false,
  upcast_attention: false,
  controlnet_conditioning_channel_order: 'rgb',
  conditioning_embedding_out_channels: [8, 8, 16, 16],
  global_pool_conditions: false,
};

const DEMO_VAE_CONFIG = {
  _class_name: 'AutoencoderKL',
  _diffusers_version: '0.30.3',
  in_channels: 3,
  out_channels: 3,
  latent_channels: 4,
  sample_size: 512,
  scaling_factor: 0.18215,
  down_block_types: Array(4).fill('DownEncoderBlock2D'),
  up_block_types: Array(4).fill('UpDecoderBlock2D'),
  block_out_channels: [8, 8, 16, 16],
  layers_per_block: 1,
  norm_num_groups: 8,
  act_fn: 'silu',
};

/**
 * The standalone VAE (Load VAE): 32 channels at every level with SD1.5's 32 groups and scaling factor,
 * the values a single file without a config is read with (the checkpoint's own demo VAE is narrower).
 */
export const DEMO_STANDALONE_VAE_CONFIG = {
  in_channels: 3,
  out_channels: 3,
  latent_channels: 4,
  scaling_factor: 0.18215,
  block_out_channels: [32, 32, 32, 32],
  layers_per_block: 1,
  norm_num_groups: 32,
};

const TEXT = { hidden: CROSS, inner: 64, layers: 2, heads: 2, positions: 77 };
const VISION = { hidden: 32, inner: 64, layers: 2, heads: 2, imageSize: 224, patch: 14, projection: 32 };

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/**
 * Makes sure the demo set exists in `dir` (generating it when missing or outdated) and
 * returns `dir`. Files are written atomically; a marker written last says the set is complete.
 */
export function ensureDemoModels(dir: string): string {
  const marker = path.join(dir, '.demo-complete');
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === String(DEMO_VERSION)) return dir;
  const put = (rel: string, data: string | Uint8Array) => writeFileAtomicSync(path.join(dir, rel), data);
  const meta = { note: 'IP-Adapter Studio demo weights: random, they draw noise' };

  // Checkpoint (diffusers folder).
  const ck = `checkpoints/${DEMO_NAMES.checkpoint}`;
  const tok = demoTokenizer();
  put(
    `${ck}/model_index.json`,
    json({
      _class_name: 'StableDiffusionPipeline',
      _diffusers_version: '0.30.3',
      scheduler: ['diffusers', 'DDIMScheduler'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      unet: ['diffusers', 'UNet2DConditionModel'],
      vae: ['diffusers', 'AutoencoderKL'],
      safety_checker: [null, null],
      feature_extractor: [null, null],
      requires_safety_checker: false,
    }),
  );
  const unetCfg = parseUNetConfig(DEMO_UNET_CONFIG, 'demo unet config');
  put(`${ck}/unet/config.json`, json(DEMO_UNET_CONFIG));
  put(`${ck}/unet/diffusion_pytorch_model.safetensors`, randomSafetensors(unetParameterShapes(unetCfg), SEED, meta));
  put(`${ck}/vae/config.json`, json(DEMO_VAE_CONFIG));
  put(
    `${ck}/vae/diffusion_pytorch_model.safetensors`,
    randomSafetensors(vaeParameterShapes(parseVaeConfig(DEMO_VAE_CONFIG, 'demo VAE config')), SEED + 1, meta),
  );
  put(
    `${ck}/text_encoder/config.json`,
    json({
      architectures: ['CLIPTextModel'],
      model_type: 'clip_text_model',
      hidden_act: 'quick_gelu',
      hidden_size: TEXT.hidden,
      intermediate_size: TEXT.inner,
      num_hidden_layers: TEXT.layers,
      num_attention_heads: TEXT.heads,
      max_position_embeddings: TEXT.positions,
      vocab_size: tok.vocabSize,
      layer_norm_eps: 1e-5,
      bos_token_id: tok.bosId,
      eos_token_id: tok.eosId,
      pad_token_id: tok.eosId,
      projection_dim: TEXT.hidden,
    }),
  );
  put(`${ck}/text_encoder/model.safetensors`, randomSafetensors(clipTextShapes({ vocab: tok.vocabSize, ...TEXT }), SEED + 2, meta));
  put(`${ck}/scheduler/scheduler_config.json`, json({ _class_name: 'DDIMScheduler', _diffusers_version: '0.30.3', ...SD15_SCHEDULER }));
  for (const d of [`${ck}/tokenizer`, `tokenizers/${DEMO_NAMES.tokenizer}`]) {
    put(`${d}/vocab.json`, tok.vocabJson);
    put(`${d}/merges.txt`, tok.merges);
    put(
      `${d}/tokenizer_config.json`,
      json({
        bos_token: '<|startoftext|>',
        eos_token: '<|endoftext|>',
        pad_token: '<|endoftext|>',
        unk_token: '<|endoftext|>',
        model_max_length: 77,
        tokenizer_class: 'CLIPTokenizer',
      }),
    );
  }

  // CLIP vision (transformers folder).
  const cv = `clip_vision/${DEMO_NAMES.clipVision}`;
  put(
    `${cv}/config.json`,
    json({
      architectures: ['CLIPVisionModelWithProjection'],
      model_type: 'clip_vision_model',
      hidden_act: 'gelu',
      hidden_size: VISION.hidden,
      intermediate_size: VISION.inner,
      num_hidden_layers: VISION.layers,
      num_attention_heads: VISION.heads,
      image_size: VISION.imageSize,
      patch_size: VISION.patch,
      num_channels: 3,
      projection_dim: VISION.projection,
      layer_norm_eps: 1e-5,
    }),
  );
  put(
    `${cv}/preprocessor_config.json`,
    json({
      crop_size: { height: 224, width: 224 },
      do_center_crop: true,
      do_convert_rgb: true,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711],
      image_processor_type: 'CLIPImageProcessor',
      resample: 3,
      rescale_factor: 0.00392156862745098,
      size: { shortest_edge: 224 },
    }),
  );
  put(`${cv}/model.safetensors`, randomSafetensors(clipVisionShapes(VISION), SEED + 3, meta));

  // IP-Adapter (base, 4 tokens), one image branch per cross-attention layer of the UNet.
  const layers = crossAttnLayers(unetCfg).map((l) => ({ index: l.index, hidden: l.hiddenSize }));
  put(
    `ipadapter/${DEMO_NAMES.ipAdapter}`,
    randomSafetensors(ipAdapterShapes({ embedDim: VISION.projection, crossDim: CROSS, tokens: 4, layers }), SEED + 4, meta),
  );

  // ControlNets (diffusers folders), so the ControlNet examples and the editor's ControlNet slot run.
  const cnShapes = controlNetParameterShapes(parseControlNetConfig(DEMO_CONTROLNET_CONFIG, 'demo controlnet config'));
  [DEMO_NAMES.controlnetCanny, DEMO_NAMES.controlnetLineart].forEach((name, k) => {
    put(`controlnet/${name}/config.json`, json(DEMO_CONTROLNET_CONFIG));
    put(`controlnet/${name}/diffusion_pytorch_model.safetensors`, randomSafetensors(cnShapes, SEED + 5 + k, meta));
  });

  // A standalone VAE file as people download it (original keys, no first_stage_model. prefix), for Load VAE.
  put(
    `vae/${DEMO_NAMES.vae}`,
    randomSafetensors(ldmVaeShapes(vaeParameterShapes(parseVaeConfig(DEMO_STANDALONE_VAE_CONFIG, 'demo standalone VAE config'))), SEED + 7, meta),
  );
  // A LoRA as civitai has them (kohya-ss sd-scripts with conv_dim), for Load LoRA.
  put(`loras/${DEMO_NAMES.lora}`, demoLora(unetCfg, tok.vocabSize, meta));
  put('README.txt', `${DEMO_NOTICE}\n\nGenerated by IP-Adapter Studio (demo set version ${DEMO_VERSION}); safe to delete, it is regenerated when needed.\n`);
  put('.demo-complete', String(DEMO_VERSION));
  return dir;
}

/**
 * The demo LoRA: kohya layout on kohya's default modules of the demo UNet (attention, feed-forward,
 * proj_in / proj_out, resnet and resampler convs as LoCon) and text encoder, rank 4, alpha 2.
 */
export function demoLora(unetCfg: UNetConfig, vocab: number, meta: Record<string, string>): Buffer {
  const unet = unetLoraTargets(unetCfg, unetParameterShapes(unetCfg), 'demo unet');
  const text = clipTextLoraTargets(TEXT.layers, clipTextShapes({ vocab, ...TEXT }), 'demo text encoder');
  const t = randomTensors(loraParameterShapes([unet, text], 'kohya', 4), SEED + 8);
  for (const k of Object.keys(t)) if (k.endsWith('.alpha')) t[k] = { dtype: 'F32', shape: [], data: Float32Array.of(2) };
  return encodeSafetensors(t, { ...meta, ss_network_module: 'networks.lora', ss_network_dim: '4', ss_network_alpha: '2.0', ss_base_model_version: 'sd_v1' });
}
