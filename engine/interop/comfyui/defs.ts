/**
 * ComfyUI's node definitions as the importer needs them: each node's inputs in INPUT_TYPES order
 * (required, then optional), which of them are widgets (their values sit positionally in a UI
 * workflow's `widgets_values`), their defaults, and the outputs in RETURN_TYPES order. Written
 * from ComfyUI's nodes.py / comfy_extras and ComfyUI_IPAdapter_plus' IPAdapterPlus.py.
 *
 * The frontend adds widgets of its own to `widgets_values`: a `control_after_generate` combo
 * right after every INT widget named seed / noise_seed (or declared with control_after_generate),
 * and an `upload` button (value "image") after an image picker with image_upload. They are
 * "pseudo" widgets here: the positional reader takes them when they are there and does not
 * miss them when an older or newer frontend left them out.
 *
 * Pure data: the editor bundle imports this file (eslint.config.js RENDERER_SHARED).
 */
import { WEIGHT_TYPES } from '../../../models/ip-adapter-weight-types.js';

export type WidgetType = 'INT' | 'FLOAT' | 'STRING' | 'BOOLEAN' | 'COMBO';

export interface InputDef {
  name: string;
  /** The socket type (MODEL, IMAGE, ...) of a link input; the widget type of a widget. */
  type: string;
  widget?: WidgetType;
  default?: string | number | boolean;
  options?: readonly string[];
  optional?: boolean;
  /** The frontend adds a control_after_generate widget after this one (seeds). */
  control?: boolean;
  /** An image picker: the frontend adds an `upload` widget after it. */
  upload?: boolean;
}

export interface NodeDefC {
  classType: string;
  /** ComfyUI's display name (NODE_DISPLAY_NAME_MAPPINGS). */
  display: string;
  inputs: InputDef[];
  outputs: { name: string; type: string }[];
}

/** One entry of a node's widget list: a declared widget, or one the frontend adds. */
export interface WidgetSlot {
  name: string;
  input?: InputDef;
  pseudo?: 'control_after_generate' | 'upload';
}

export const SEED_CONTROLS = ['fixed', 'increment', 'decrement', 'randomize'] as const;

const link = (name: string, type: string, optional = false): InputDef => ({ name, type, ...(optional ? { optional } : {}) });
const int = (name: string, def: number, extra: Partial<InputDef> = {}): InputDef => ({ name, type: 'INT', widget: 'INT', default: def, ...extra });
const float = (name: string, def: number): InputDef => ({ name, type: 'FLOAT', widget: 'FLOAT', default: def });
const str = (name: string, def: string): InputDef => ({ name, type: 'STRING', widget: 'STRING', default: def });
const bool = (name: string, def: boolean): InputDef => ({ name, type: 'BOOLEAN', widget: 'BOOLEAN', default: def });
/** A combo; its default is the first option unless given. A file list (options unknown here) has none. */
const combo = (name: string, options: readonly string[] = [], def?: string, extra: Partial<InputDef> = {}): InputDef => {
  const d = def ?? options[0];
  return { name, type: 'COMBO', widget: 'COMBO', options, ...(d === undefined ? {} : { default: d }), ...extra };
};
const out = (...types: string[]) => types.map((t) => ({ name: t, type: t }));
const named = (...pairs: [string, string][]) => pairs.map(([name, type]) => ({ name, type }));
const opt = (i: InputDef): InputDef => ({ ...i, optional: true });

/** ComfyUI's sampler names (comfy/samplers.py KSAMPLER_NAMES + ddim, uni_pc, uni_pc_bh2). */
export const COMFY_SAMPLERS = [
  'euler',
  'euler_cfg_pp',
  'euler_ancestral',
  'euler_ancestral_cfg_pp',
  'heun',
  'heunpp2',
  'dpm_2',
  'dpm_2_ancestral',
  'lms',
  'dpm_fast',
  'dpm_adaptive',
  'dpmpp_2s_ancestral',
  'dpmpp_2s_ancestral_cfg_pp',
  'dpmpp_sde',
  'dpmpp_sde_gpu',
  'dpmpp_2m',
  'dpmpp_2m_cfg_pp',
  'dpmpp_2m_sde',
  'dpmpp_2m_sde_gpu',
  'dpmpp_3m_sde',
  'dpmpp_3m_sde_gpu',
  'ddpm',
  'lcm',
  'ipndm',
  'ipndm_v',
  'deis',
  'res_multistep',
  'res_multistep_cfg_pp',
  'gradient_estimation',
  'er_sde',
  'seeds_2',
  'seeds_3',
  'ddim',
  'uni_pc',
  'uni_pc_bh2',
] as const;
export const COMFY_SCHEDULERS = ['simple', 'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal'] as const;

/** IPAdapterPlus.py WEIGHT_TYPES. */
const IPA_WEIGHT_TYPES = WEIGHT_TYPES;
const COMBINE = ['concat', 'add', 'subtract', 'average', 'norm average'] as const;
const EMBEDS_SCALING = ['V only', 'K+V', 'K+V w/ C penalty', 'K+mean(V) w/ C penalty'] as const;
export const UNIFIED_PRESETS = [
  'LIGHT - SD1.5 only (low strength)',
  'STANDARD (medium strength)',
  'VIT-G (medium strength)',
  'PLUS (high strength)',
  'PLUS FACE (portraits)',
  'FULL FACE - SD1.5 only (portraits stronger)',
] as const;
export const FACEID_PRESETS = [
  'FACEID',
  'FACEID PLUS - SD1.5 only',
  'FACEID PLUS V2',
  'FACEID PORTRAIT (style transfer)',
  'FACEID PORTRAIT UNNORM - SDXL only (strong)',
] as const;

const weight = (max = 3) => ({ ...float('weight', 1), max });
const startAt = float('start_at', 0);
const endAt = float('end_at', 1);
const ipaOptional = [opt(link('image_negative', 'IMAGE')), opt(link('attn_mask', 'MASK')), opt(link('clip_vision', 'CLIP_VISION'))];

const DEFS: NodeDefC[] = [
  // ---- ComfyUI core (nodes.py) ----
  { classType: 'CheckpointLoaderSimple', display: 'Load Checkpoint', inputs: [combo('ckpt_name')], outputs: out('MODEL', 'CLIP', 'VAE') },
  {
    classType: 'CheckpointLoader',
    display: 'Load Checkpoint With Config (DEPRECATED)',
    inputs: [combo('config_name'), combo('ckpt_name')],
    outputs: out('MODEL', 'CLIP', 'VAE'),
  },
  { classType: 'CLIPTextEncode', display: 'CLIP Text Encode (Prompt)', inputs: [str('text', ''), link('clip', 'CLIP')], outputs: out('CONDITIONING') },
  { classType: 'CLIPSetLastLayer', display: 'CLIP Set Last Layer', inputs: [link('clip', 'CLIP'), int('stop_at_clip_layer', -1)], outputs: out('CLIP') },
  {
    classType: 'KSampler',
    display: 'KSampler',
    inputs: [
      link('model', 'MODEL'),
      int('seed', 0, { control: true }),
      int('steps', 20),
      float('cfg', 8),
      combo('sampler_name', COMFY_SAMPLERS, 'euler'),
      combo('scheduler', COMFY_SCHEDULERS, 'normal'),
      link('positive', 'CONDITIONING'),
      link('negative', 'CONDITIONING'),
      link('latent_image', 'LATENT'),
      float('denoise', 1),
    ],
    outputs: out('LATENT'),
  },
  {
    classType: 'KSamplerAdvanced',
    display: 'KSampler (Advanced)',
    inputs: [
      link('model', 'MODEL'),
      combo('add_noise', ['enable', 'disable']),
      int('noise_seed', 0, { control: true }),
      int('steps', 20),
      float('cfg', 8),
      combo('sampler_name', COMFY_SAMPLERS, 'euler'),
      combo('scheduler', COMFY_SCHEDULERS, 'normal'),
      link('positive', 'CONDITIONING'),
      link('negative', 'CONDITIONING'),
      link('latent_image', 'LATENT'),
      int('start_at_step', 0),
      int('end_at_step', 10000),
      combo('return_with_leftover_noise', ['disable', 'enable']),
    ],
    outputs: out('LATENT'),
  },
  {
    classType: 'EmptyLatentImage',
    display: 'Empty Latent Image',
    inputs: [int('width', 512), int('height', 512), int('batch_size', 1)],
    outputs: out('LATENT'),
  },
  { classType: 'VAEEncode', display: 'VAE Encode', inputs: [link('pixels', 'IMAGE'), link('vae', 'VAE')], outputs: out('LATENT') },
  {
    classType: 'VAEEncodeForInpaint',
    display: 'VAE Encode (for Inpainting)',
    inputs: [link('pixels', 'IMAGE'), link('vae', 'VAE'), link('mask', 'MASK'), int('grow_mask_by', 6)],
    outputs: out('LATENT'),
  },
  { classType: 'VAEDecode', display: 'VAE Decode', inputs: [link('samples', 'LATENT'), link('vae', 'VAE')], outputs: out('IMAGE') },
  { classType: 'VAELoader', display: 'Load VAE', inputs: [combo('vae_name')], outputs: out('VAE') },
  {
    classType: 'LoraLoader',
    display: 'Load LoRA',
    inputs: [link('model', 'MODEL'), link('clip', 'CLIP'), combo('lora_name'), float('strength_model', 1), float('strength_clip', 1)],
    outputs: out('MODEL', 'CLIP'),
  },
  {
    classType: 'LoraLoaderModelOnly',
    display: 'LoraLoaderModelOnly',
    inputs: [link('model', 'MODEL'), combo('lora_name'), float('strength_model', 1)],
    outputs: out('MODEL'),
  },
  { classType: 'LoadImage', display: 'Load Image', inputs: [combo('image', [], undefined, { upload: true })], outputs: out('IMAGE', 'MASK') },
  {
    classType: 'LoadImageMask',
    display: 'Load Image (as Mask)',
    inputs: [combo('image', [], undefined, { upload: true }), combo('channel', ['alpha', 'red', 'green', 'blue'])],
    outputs: out('MASK'),
  },
  { classType: 'SaveImage', display: 'Save Image', inputs: [link('images', 'IMAGE'), str('filename_prefix', 'ComfyUI')], outputs: [] },
  { classType: 'PreviewImage', display: 'Preview Image', inputs: [link('images', 'IMAGE')], outputs: [] },
  {
    classType: 'ImageScale',
    display: 'Upscale Image',
    inputs: [
      link('image', 'IMAGE'),
      combo('upscale_method', ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']),
      int('width', 512),
      int('height', 512),
      combo('crop', ['disabled', 'center']),
    ],
    outputs: out('IMAGE'),
  },
  { classType: 'SetLatentNoiseMask', display: 'Set Latent Noise Mask', inputs: [link('samples', 'LATENT'), link('mask', 'MASK')], outputs: out('LATENT') },
  { classType: 'ControlNetLoader', display: 'Load ControlNet Model', inputs: [combo('control_net_name')], outputs: out('CONTROL_NET') },
  {
    classType: 'ControlNetApply',
    display: 'Apply ControlNet',
    inputs: [link('conditioning', 'CONDITIONING'), link('control_net', 'CONTROL_NET'), link('image', 'IMAGE'), float('strength', 1)],
    outputs: out('CONDITIONING'),
  },
  {
    classType: 'ControlNetApplyAdvanced',
    display: 'Apply ControlNet (Advanced)',
    inputs: [
      link('positive', 'CONDITIONING'),
      link('negative', 'CONDITIONING'),
      link('control_net', 'CONTROL_NET'),
      link('image', 'IMAGE'),
      float('strength', 1),
      float('start_percent', 0),
      float('end_percent', 1),
      opt(link('vae', 'VAE')),
    ],
    outputs: named(['positive', 'CONDITIONING'], ['negative', 'CONDITIONING']),
  },
  { classType: 'Canny', display: 'Canny', inputs: [link('image', 'IMAGE'), float('low_threshold', 0.4), float('high_threshold', 0.8)], outputs: out('IMAGE') },
  { classType: 'CLIPVisionLoader', display: 'Load CLIP Vision', inputs: [combo('clip_name')], outputs: out('CLIP_VISION') },
  {
    classType: 'CLIPVisionEncode',
    display: 'CLIP Vision Encode',
    inputs: [link('clip_vision', 'CLIP_VISION'), link('image', 'IMAGE'), combo('crop', ['center', 'none'])],
    outputs: out('CLIP_VISION_OUTPUT'),
  },
  // comfy_extras/nodes_mask.py
  {
    classType: 'ImageToMask',
    display: 'Convert Image to Mask',
    inputs: [link('image', 'IMAGE'), combo('channel', ['red', 'green', 'blue', 'alpha'])],
    outputs: out('MASK'),
  },
  { classType: 'ImageBatch', display: 'Batch Images', inputs: [link('image1', 'IMAGE'), link('image2', 'IMAGE')], outputs: out('IMAGE') },
  // comfy_extras/nodes_primitive.py: backend primitives (their one output is their value).
  { classType: 'PrimitiveInt', display: 'Int', inputs: [int('value', 0, { control: true })], outputs: out('INT') },
  { classType: 'PrimitiveFloat', display: 'Float', inputs: [float('value', 0)], outputs: out('FLOAT') },
  { classType: 'PrimitiveString', display: 'String', inputs: [str('value', '')], outputs: out('STRING') },
  { classType: 'PrimitiveStringMultiline', display: 'String (Multiline)', inputs: [str('value', '')], outputs: out('STRING') },
  { classType: 'PrimitiveBoolean', display: 'Boolean', inputs: [bool('value', false)], outputs: out('BOOLEAN') },

  // ---- ComfyUI_IPAdapter_plus (IPAdapterPlus.py) ----
  {
    classType: 'IPAdapterUnifiedLoader',
    display: 'IPAdapter Unified Loader',
    inputs: [link('model', 'MODEL'), combo('preset', UNIFIED_PRESETS), opt(link('ipadapter', 'IPADAPTER'))],
    outputs: named(['model', 'MODEL'], ['ipadapter', 'IPADAPTER']),
  },
  {
    classType: 'IPAdapterUnifiedLoaderCommunity',
    display: 'IPAdapter Unified Loader Community',
    inputs: [link('model', 'MODEL'), combo('preset', ['Composition', 'Kolors']), opt(link('ipadapter', 'IPADAPTER'))],
    outputs: named(['model', 'MODEL'], ['ipadapter', 'IPADAPTER']),
  },
  {
    classType: 'IPAdapterUnifiedLoaderFaceID',
    display: 'IPAdapter Unified Loader FaceID',
    inputs: [
      link('model', 'MODEL'),
      combo('preset', FACEID_PRESETS),
      float('lora_strength', 0.6),
      combo('provider', ['CPU', 'CUDA', 'ROCM', 'DirectML', 'OpenVINO', 'CoreML']),
      opt(link('ipadapter', 'IPADAPTER')),
    ],
    outputs: named(['MODEL', 'MODEL'], ['ipadapter', 'IPADAPTER']),
  },
  { classType: 'IPAdapterModelLoader', display: 'IPAdapter Model Loader', inputs: [combo('ipadapter_file')], outputs: out('IPADAPTER') },
  {
    classType: 'IPAdapterInsightFaceLoader',
    display: 'IPAdapter InsightFace Loader',
    inputs: [combo('provider', ['CPU', 'CUDA', 'ROCM']), combo('model_name', ['buffalo_l', 'antelopev2'])],
    outputs: out('INSIGHTFACE'),
  },
  {
    classType: 'IPAdapter',
    display: 'IPAdapter',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(),
      startAt,
      endAt,
      combo('weight_type', ['standard', 'prompt is more important', 'style transfer']),
      opt(link('attn_mask', 'MASK')),
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterAdvanced',
    display: 'IPAdapter Advanced',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(5),
      combo('weight_type', IPA_WEIGHT_TYPES),
      combo('combine_embeds', COMBINE),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      ...ipaOptional,
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterBatch',
    display: 'IPAdapter Batch (Adv.)',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(5),
      combo('weight_type', IPA_WEIGHT_TYPES),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      int('encode_batch_size', 0),
      ...ipaOptional,
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterTiled',
    display: 'IPAdapter Tiled',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(),
      combo('weight_type', IPA_WEIGHT_TYPES),
      combo('combine_embeds', COMBINE),
      startAt,
      endAt,
      float('sharpening', 0),
      combo('embeds_scaling', EMBEDS_SCALING),
      ...ipaOptional,
    ],
    outputs: named(['MODEL', 'MODEL'], ['tiles', 'IMAGE'], ['masks', 'MASK']),
  },
  {
    classType: 'IPAdapterTiledBatch',
    display: 'IPAdapter Tiled Batch',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(),
      combo('weight_type', IPA_WEIGHT_TYPES),
      startAt,
      endAt,
      float('sharpening', 0),
      combo('embeds_scaling', EMBEDS_SCALING),
      int('encode_batch_size', 0),
      ...ipaOptional,
    ],
    outputs: named(['MODEL', 'MODEL'], ['tiles', 'IMAGE'], ['masks', 'MASK']),
  },
  // IPAdapterEmbedsBatch takes the same inputs as IPAdapterEmbeds (it applies each embed to its own batch item).
  ...(
    [
      ['IPAdapterEmbeds', 'IPAdapter Embeds'],
      ['IPAdapterEmbedsBatch', 'IPAdapter Embeds Batch'],
    ] as const
  ).map(([classType, display]) => ({
    classType,
    display,
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('pos_embed', 'EMBEDS'),
      weight(),
      combo('weight_type', IPA_WEIGHT_TYPES),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      opt(link('neg_embed', 'EMBEDS')),
      opt(link('attn_mask', 'MASK')),
      opt(link('clip_vision', 'CLIP_VISION')),
    ],
    outputs: out('MODEL'),
  })),
  {
    classType: 'IPAdapterMS',
    display: 'IPAdapter Mad Scientist',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(5),
      float('weight_faceidv2', 1),
      combo('weight_type', IPA_WEIGHT_TYPES),
      combo('combine_embeds', COMBINE),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      str('layer_weights', ''),
      ...ipaOptional,
      opt(link('insightface', 'INSIGHTFACE')),
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterPreciseStyleTransfer',
    display: 'IPAdapter Precise Style Transfer',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(5),
      float('style_boost', 1),
      combo('combine_embeds', COMBINE),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      ...ipaOptional,
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterPreciseComposition',
    display: 'IPAdapter Precise Composition',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(5),
      float('composition_boost', 0),
      combo('combine_embeds', COMBINE),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      ...ipaOptional,
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterClipVisionEnhancer',
    display: 'IPAdapter ClipVision Enhancer',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(5),
      combo('weight_type', IPA_WEIGHT_TYPES),
      combo('combine_embeds', COMBINE),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      int('enhance_tiles', 2),
      float('enhance_ratio', 1),
      ...ipaOptional,
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterFaceID',
    display: 'IPAdapter FaceID',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image', 'IMAGE'),
      weight(),
      float('weight_faceidv2', 1),
      combo('weight_type', IPA_WEIGHT_TYPES),
      combo('combine_embeds', COMBINE),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      ...ipaOptional,
      opt(link('insightface', 'INSIGHTFACE')),
    ],
    outputs: named(['MODEL', 'MODEL'], ['face_image', 'IMAGE']),
  },
  {
    classType: 'IPAdapterStyleComposition',
    display: 'IPAdapter Style & Composition SDXL',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('image_style', 'IMAGE'),
      link('image_composition', 'IMAGE'),
      float('weight_style', 1),
      float('weight_composition', 1),
      bool('expand_style', false),
      combo('combine_embeds', COMBINE, 'average'),
      startAt,
      endAt,
      combo('embeds_scaling', EMBEDS_SCALING),
      ...ipaOptional,
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterEncoder',
    display: 'IPAdapter Encoder',
    inputs: [link('ipadapter', 'IPADAPTER'), link('image', 'IMAGE'), float('weight', 1), opt(link('mask', 'MASK')), opt(link('clip_vision', 'CLIP_VISION'))],
    outputs: named(['pos_embed', 'EMBEDS'], ['neg_embed', 'EMBEDS']),
  },
  {
    classType: 'IPAdapterCombineEmbeds',
    display: 'IPAdapter Combine Embeds',
    inputs: [
      link('embed1', 'EMBEDS'),
      combo('method', [...COMBINE, 'max', 'min']),
      opt(link('embed2', 'EMBEDS')),
      opt(link('embed3', 'EMBEDS')),
      opt(link('embed4', 'EMBEDS')),
      opt(link('embed5', 'EMBEDS')),
    ],
    outputs: out('EMBEDS'),
  },
  { classType: 'IPAdapterSaveEmbeds', display: 'IPAdapter Save Embeds', inputs: [link('embeds', 'EMBEDS'), str('filename_prefix', 'IP_embeds')], outputs: [] },
  {
    classType: 'IPAdapterNoise',
    display: 'IPAdapter Noise',
    inputs: [combo('type', ['fade', 'dissolve', 'gaussian', 'shuffle']), float('strength', 1), int('blur', 0), opt(link('image_optional', 'IMAGE'))],
    outputs: out('IMAGE'),
  },
  {
    classType: 'PrepImageForClipVision',
    display: 'Prep Image For ClipVision',
    inputs: [
      link('image', 'IMAGE'),
      combo('interpolation', ['LANCZOS', 'BICUBIC', 'HAMMING', 'BILINEAR', 'BOX', 'NEAREST']),
      combo('crop_position', ['top', 'bottom', 'left', 'right', 'center', 'pad']),
      float('sharpening', 0),
    ],
    outputs: out('IMAGE'),
  },
  {
    classType: 'IPAdapterRegionalConditioning',
    display: 'IPAdapter Regional Conditioning',
    inputs: [
      link('image', 'IMAGE'),
      float('image_weight', 1),
      float('prompt_weight', 1),
      combo('weight_type', IPA_WEIGHT_TYPES),
      startAt,
      endAt,
      opt(link('mask', 'MASK')),
      opt(link('positive', 'CONDITIONING')),
      opt(link('negative', 'CONDITIONING')),
    ],
    outputs: named(['IPADAPTER_PARAMS', 'IPADAPTER_PARAMS'], ['POSITIVE', 'CONDITIONING'], ['NEGATIVE', 'CONDITIONING']),
  },
  {
    classType: 'IPAdapterWeights',
    display: 'IPAdapter Weights',
    inputs: [
      str('weights', '1.0, 0.0'),
      combo('timing', ['custom', 'linear', 'ease_in_out', 'ease_in', 'ease_out', 'random'], 'linear'),
      int('frames', 0),
      int('start_frame', 0),
      int('end_frame', 9999),
      int('add_starting_frames', 0),
      int('add_ending_frames', 0),
      combo('method', ['full batch', 'shift batches', 'alternate batches'], 'full batch'),
      opt(link('image', 'IMAGE')),
    ],
    outputs: named(
      ['weights', 'FLOAT'],
      ['weights_invert', 'FLOAT'],
      ['total_frames', 'INT'],
      ['image_1', 'IMAGE'],
      ['image_2', 'IMAGE'],
      ['weights_strategy', 'WEIGHTS_STRATEGY'],
    ),
  },
  {
    classType: 'IPAdapterFromParams',
    display: 'IPAdapter from Params',
    inputs: [
      link('model', 'MODEL'),
      link('ipadapter', 'IPADAPTER'),
      link('ipadapter_params', 'IPADAPTER_PARAMS'),
      combo('combine_embeds', COMBINE),
      combo('embeds_scaling', EMBEDS_SCALING),
      opt(link('image_negative', 'IMAGE')),
      opt(link('clip_vision', 'CLIP_VISION')),
    ],
    outputs: out('MODEL'),
  },
  {
    classType: 'IPAdapterCombineParams',
    display: 'IPAdapter Combine Params',
    inputs: [
      link('params_1', 'IPADAPTER_PARAMS'),
      link('params_2', 'IPADAPTER_PARAMS'),
      opt(link('params_3', 'IPADAPTER_PARAMS')),
      opt(link('params_4', 'IPADAPTER_PARAMS')),
      opt(link('params_5', 'IPADAPTER_PARAMS')),
    ],
    outputs: out('IPADAPTER_PARAMS'),
  },
];

export const COMFY_DEFS: ReadonlyMap<string, NodeDefC> = new Map(DEFS.map((d) => [d.classType, d]));

/** Node types that exist only in ComfyUI's frontend (never in an API prompt). */
export const FRONTEND_ONLY = { reroute: 'Reroute', primitive: 'PrimitiveNode', notes: ['Note', 'MarkdownNote'] } as const;
export const BACKEND_PRIMITIVES = ['PrimitiveInt', 'PrimitiveFloat', 'PrimitiveString', 'PrimitiveStringMultiline', 'PrimitiveBoolean'] as const;

/** The widget list of a node as the frontend writes `widgets_values`: declared widgets in input order, pseudo widgets after their owner. */
export function widgetSlots(def: NodeDefC): WidgetSlot[] {
  const slots: WidgetSlot[] = [];
  for (const i of def.inputs) {
    if (!i.widget) continue;
    slots.push({ name: i.name, input: i });
    if (i.control || (i.widget === 'INT' && (i.name === 'seed' || i.name === 'noise_seed')))
      slots.push({ name: 'control_after_generate', pseudo: 'control_after_generate' });
    if (i.upload) slots.push({ name: 'upload', pseudo: 'upload' });
  }
  return slots;
}

/**
 * Why a ComfyUI node with no counterpart here is unsupported, for the ones people meet in
 * IP-Adapter workflows; any other node is "a custom node or a ComfyUI node this app does not have".
 */
const FACEID = 'needs InsightFace (face detection and embedding), not supported';
export const UNSUPPORTED_REASONS: Readonly<Record<string, string>> = {
  IPAdapterFaceID: `IPAdapterFaceID ${FACEID}`,
  IPAdapterFaceIDKolors: `IPAdapterFaceIDKolors ${FACEID}; Kolors is not SD1.5 either`,
  IPAAdapterFaceIDBatch: `IPAAdapterFaceIDBatch ${FACEID}`,
  IPAdapterUnifiedLoaderFaceID: `IPAdapterUnifiedLoaderFaceID loads FaceID adapters, which ${FACEID}`,
  IPAdapterInsightFaceLoader: `IPAdapterInsightFaceLoader loads InsightFace, which is not supported (FaceID adapters need it)`,
  IPAdapterRegionalConditioning:
    'IPAdapterRegionalConditioning needs per-adapter attention masks (IPADAPTER_PARAMS) and masked conditioning, not available here',
  IPAdapterCombineParams: 'IPAdapterCombineParams combines regional IPADAPTER_PARAMS, not available here',
  IPAdapterFromParams: 'IPAdapterFromParams applies regional IPADAPTER_PARAMS (attention masks per adapter), not available here',
  IPAdapterWeights: 'IPAdapterWeights schedules weights over animation frames (AnimateDiff), not available here',
  IPAdapterWeightsFromStrategy: 'IPAdapterWeightsFromStrategy schedules weights over animation frames, not available here',
  IPAdapterPromptScheduleFromWeightsStrategy: 'prompt schedules over animation frames are not available here',
  IPAdapterCombineWeights: 'IPAdapterCombineWeights combines frame weight lists, not available here',
  IPAdapterStyleComposition: 'IPAdapterStyleComposition is SDXL only (its own code refuses SD1.5)',
  IPAdapterStyleCompositionBatch: 'IPAdapterStyleCompositionBatch is SDXL only (its own code refuses SD1.5)',
  IPAdapterLoadEmbeds:
    "ComfyUI's saved embeds are torch pickles (.ipadpt), which this app never loads; save them again with Save Embeds (a .safetensors file) and use Load Embeds",
  IPAdapterFromParamsBatch: 'IPADAPTER_PARAMS are not available here',
  CLIPVisionEncode:
    "CLIPVisionEncode's CLIP_VISION_OUTPUT feeds unCLIP and style models, which this app does not have (IP-Adapter nodes encode their images themselves)",
  LoraLoaderModelOnly: 'Load LoRA here takes the MODEL and the CLIP; use LoraLoader with strength_clip 0',
  LoadImageMask: 'no node here loads one channel of an image as a mask; use Load Image and Image To Mask',
  ConditioningCombine: 'conditioning combine (several prompts at once) is not available here',
  ConditioningSetArea: 'area conditioning is not available here',
  ConditioningSetMask: 'masked conditioning is not available here',
  ConditioningSetTimestepRange: 'conditioning timestep ranges are not available here',
  ConditioningZeroOut: 'zeroed conditioning is not available here',
  ConditioningAverage: 'conditioning averages are not available here',
  ConditioningConcat: 'conditioning concatenation is not available here',
  LatentUpscale: 'latent upscaling is not available here',
  LatentUpscaleBy: 'latent upscaling is not available here',
  ImageScaleBy: 'scaling by a factor needs the image size, which the graph does not know here; use Image Resize with a width and height',
  UpscaleModelLoader: 'upscale models (ESRGAN and the like) are not available here',
  ImageUpscaleWithModel: 'upscale models (ESRGAN and the like) are not available here',
  UNETLoader: 'separate UNet files are not available here (SD1.5 checkpoints only)',
  CLIPLoader: 'separate text encoder files are not available here (SD1.5 checkpoints only)',
  DualCLIPLoader: 'dual text encoders are SDXL/SD3/Flux, not SD1.5',
  unCLIPCheckpointLoader: 'unCLIP checkpoints are not available here',
  StyleModelLoader: 'style models (T2I style adapters) are not available here',
  StyleModelApply: 'style models (T2I style adapters) are not available here',
  DiffControlNetLoader: 'diff ControlNets are not available here; load a full ControlNet with ControlNetLoader',
  VAEDecodeTiled: 'tiled VAE decoding is not available here',
  VAEEncodeTiled: 'tiled VAE encoding is not available here',
};

/**
 * A node's declared widget values as one string, in input order: what an export from here stores
 * with the node, so that an import can tell whether ComfyUI changed them since.
 */
export function widgetSignature(def: NodeDefC, value: (name: string) => unknown): string {
  return JSON.stringify(def.inputs.filter((i) => i.widget).map((i) => [i.name, value(i.name) ?? null]));
}
