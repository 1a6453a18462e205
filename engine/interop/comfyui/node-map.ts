/**
 * ComfyUI node -> our nodes, one translator per ComfyUI class (engine/interop/comfyui/import.ts
 * runs them). A translator reads the node's widgets and inputs, adds our nodes (one or a few:
 * ComfyUI_IPAdapter_plus' IPAdapter encodes, projects and applies in one node, which are three
 * nodes here) and returns a Value per ComfyUI output. Whatever differs from what ComfyUI would
 * compute is said with `approx`; a node with no counterpart throws through `unsupported` and
 * becomes a placeholder. The table is also what export.ts maps back.
 *
 *   core         CheckpointLoaderSimple, CheckpointLoader, CLIPTextEncode, CLIPSetLastLayer, KSampler,
 *                KSamplerAdvanced, EmptyLatentImage, VAEEncode, VAEEncodeForInpaint, VAEDecode, VAELoader,
 *                LoraLoader, LoadImage, SaveImage, PreviewImage, ImageScale, SetLatentNoiseMask,
 *                ControlNetLoader, ControlNetApply, ControlNetApplyAdvanced, Canny, CLIPVisionLoader,
 *                Primitive{Int,Float,String,StringMultiline,Boolean}
 *   IPAdapter    IPAdapterUnifiedLoader, IPAdapterUnifiedLoaderCommunity (Composition), IPAdapterModelLoader,
 *                IPAdapter, IPAdapterAdvanced, IPAdapterBatch, IPAdapterTiled(Batch), IPAdapterMS,
 *                IPAdapterPreciseStyleTransfer, IPAdapterPreciseComposition, IPAdapterClipVisionEnhancer,
 *                IPAdapterEncoder, IPAdapterCombineEmbeds, IPAdapterEmbeds(Batch), IPAdapterNoise,
 *                PrepImageForClipVision
 * Pure.
 */
import { blocksForLayerWeights, blocksForWeightType, type BlocksMapping } from './layers.js';
import type { ModelPattern } from './models.js';
import type { PortVal, TranslateContext, Translator, Value } from './types.js';

const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const s = (v: unknown, d = '') => (typeof v === 'string' ? v : v === undefined || v === null ? d : String(v));

/** Our node types and ports a translator uses, in one place. */
const T = {
  checkpoint: 'load-checkpoint',
  text: 'text-encode',
  ddim: 'ddim-sampler',
  ksampler: 'ksampler',
  ksamplerAdvanced: 'ksampler-advanced',
  latent: 'empty-latent-image',
  vaeEncode: 'vae-encode',
  vaeDecode: 'vae-decode',
  vae: 'load-vae',
  lora: 'load-lora',
  image: 'load-image',
  save: 'save-image',
  preview: 'preview-image',
  resize: 'image-resize',
  noiseMask: 'set-latent-noise-mask',
  controlnet: 'load-controlnet',
  applyControlnet: 'apply-controlnet',
  canny: 'canny',
  clipVision: 'load-clip-vision',
  encode: 'clip-vision-encode',
  ipAdapter: 'load-ip-adapter',
  projection: 'ip-adapter-projection',
  apply: 'apply-ip-adapter',
  ipEncoder: 'ip-adapter-encoder',
  combineEmbeds: 'ip-adapter-combine-embeds',
  applyEmbeds: 'apply-ip-adapter-embeds',
  noise: 'ip-adapter-noise',
  tiled: 'ip-adapter-tiled',
  imageBatch: 'image-batch',
  saveEmbeds: 'save-embeds',
} as const;

const portsOf = (c: TranslateContext, id: string, ...ports: string[]): Value[] => ports.map((p) => c.port(id, p));

/** One ComfyUI node -> one of ours: params by name, link inputs to ports (renamed where ours differ). */
function direct(
  type: string,
  widgets: string[],
  inputs: Record<string, string>,
  outputs: string[],
  derived?: Record<string, string | number | boolean>,
): Translator {
  return (c) => {
    const params: Record<string, unknown> = {};
    for (const w of widgets) params[w] = c.widget(w);
    const id = c.add('', type, { params, ...(derived ? { derived } : {}) });
    for (const [from, to] of Object.entries(inputs)) c.connect(c.input(from), id, to);
    return portsOf(c, id, ...outputs);
  };
}

// ---- prompts -----------------------------------------------------------------------------

/** ComfyUI's prompt weighting: (word), (word:1.2), [word] with unescaped brackets. */
const WEIGHTING = /(^|[^\\])[()]/;

const clipTextEncode: Translator = (c) => {
  const text = s(c.widget('text'));
  const id = c.add('', T.text, { params: { text } });
  c.connect(c.input('clip'), id, 'clip');
  if (WEIGHTING.test(text)) c.approx("the prompt uses ComfyUI's (word:weight) emphasis; it is encoded here as plain text, brackets included");
  return [c.port(id, 'conditioning')];
};

const clipSetLastLayer: Translator = (c) => {
  const layer = num(c.widget('stop_at_clip_layer'), -1);
  if (layer !== -1) c.approx(`CLIP skip (stop at layer ${layer}) is not available here: the text encoder's last layer is used`);
  else c.info('stop at layer -1 is the text encoder as it is: passed through');
  return [c.input('clip')];
};

// ---- samplers -----------------------------------------------------------------------------

const SAMPLER_INPUTS = { model: 'model', positive: 'positive', negative: 'negative', latent_image: 'latent' };

const kSampler: Translator = (c) => {
  if (c.hasType(T.ksampler) && c.storedType('') !== T.ddim) {
    return direct(T.ksampler, ['seed', 'control_after_generate', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise'], SAMPLER_INPUTS, ['latent'], {
      noise: 'torch',
    })(c);
  }
  const sampler = s(c.widget('sampler_name'));
  const scheduler = s(c.widget('scheduler'));
  const id = c.add('', T.ddim, {
    params: {
      seed: c.widget('seed'),
      control_after_generate: c.widget('control_after_generate'),
      steps: c.widget('steps'),
      cfg: c.widget('cfg'),
      denoise: c.widget('denoise'),
    },
    derived: { eta: 0, noise: 'torch' },
  });
  for (const [from, to] of Object.entries(SAMPLER_INPUTS)) c.connect(c.input(from), id, to);
  c.approx(
    sampler === 'ddim' && scheduler === 'ddim_uniform'
      ? 'KSampler ddim / ddim_uniform as the DDIM Sampler: the same timesteps; the last step ends at t = 0 here, at sigma 0 in ComfyUI'
      : `KSampler ${sampler} / ${scheduler} ${c.hasType(T.ksampler) ? 'was exported from a DDIM Sampler here' : 'is not available in this build'}: the DDIM Sampler is used with the same seed, steps, cfg and denoise`,
  );
  if (num(c.widget('denoise'), 1) < 1)
    c.approx('denoise < 1: DDIM here runs steps × denoise of its steps; ComfyUI runs all `steps` over the lower part of the schedule');
  return [c.port(id, 'latent')];
};

const kSamplerAdvanced: Translator = (c) => {
  if (c.hasType(T.ksamplerAdvanced)) {
    return direct(
      T.ksamplerAdvanced,
      [
        'add_noise',
        'noise_seed',
        'control_after_generate',
        'steps',
        'cfg',
        'sampler_name',
        'scheduler',
        'start_at_step',
        'end_at_step',
        'return_with_leftover_noise',
      ],
      SAMPLER_INPUTS,
      ['latent'],
      { noise: 'torch' },
    )(c);
  }
  const steps = num(c.widget('steps'), 20);
  const start = Math.max(0, Math.min(steps, num(c.widget('start_at_step'), 0)));
  const end = num(c.widget('end_at_step'), 10000);
  const id = c.add('', T.ddim, {
    params: {
      seed: c.widget('noise_seed'),
      control_after_generate: c.widget('control_after_generate'),
      steps,
      cfg: c.widget('cfg'),
      denoise: steps > 0 ? (steps - start) / steps : 1,
    },
    derived: { eta: 0, noise: 'torch' },
  });
  for (const [from, to] of Object.entries(SAMPLER_INPUTS)) c.connect(c.input(from), id, to);
  c.approx(
    `KSampler (Advanced) ${s(c.widget('sampler_name'))} / ${s(c.widget('scheduler'))} is not available in this build: the DDIM Sampler runs steps ${start}..${steps} (denoise ${fmt((steps - start) / Math.max(1, steps))})`,
  );
  if (end < steps) c.approx(`end_at_step ${end} (stopping early with leftover noise) is not available here: the sampler runs to the end`);
  if (c.widget('add_noise') === 'disable') c.approx('add_noise disable is not available here: noise is added');
  return [c.port(id, 'latent')];
};

const fmt = (v: number) => String(Number(v.toPrecision(4)));

// ---- latents, VAE, images ---------------------------------------------------------------

const vaeEncode: Translator = (c) => {
  const id = c.add('', T.vaeEncode, { derived: { mode: 'mean' } });
  c.connect(c.input('pixels'), id, 'pixels');
  c.connect(c.input('vae'), id, 'vae');
  return [c.port(id, 'latent')];
};

const vaeEncodeForInpaint: Translator = (c) => {
  const id = c.add('', T.vaeEncode, { derived: { mode: 'mean' } });
  c.connect(c.input('pixels'), id, 'pixels');
  c.connect(c.input('vae'), id, 'vae');
  c.connect(c.input('mask'), id, 'mask');
  const grow = num(c.widget('grow_mask_by'), 6);
  if (grow !== 0) c.approx(`grow_mask_by ${grow} is not applied: the mask is used as it is (binarized at 0.5)`);
  return [c.port(id, 'latent')];
};

const vaeLoader: Translator = (c) => {
  const name = s(c.widget('vae_name'));
  if (/^taesd/.test(name) || name === 'pixel_space') c.unsupported(`${name} (a tiny or pixel-space VAE) is not available here; load a full VAE`);
  return direct(T.vae, ['vae_name'], {}, ['vae'])(c);
};

/** "name.png [input]" (ComfyUI's annotated names) -> "name.png". */
const stripAnnotation = (n: string) => n.replace(/\s*\[(input|output|temp)\]$/, '');

const loadImage: Translator = (c) => {
  const raw = s(c.widget('image'));
  const image = stripAnnotation(raw).replace(/\\/g, '/');
  const id = c.add('', T.image, { params: { image } });
  if (image !== raw) c.info(`"${raw}" read as "${image}" (relative to the workflow's folder)`);
  return portsOf(c, id, 'image', 'mask');
};

const saveImage: Translator = (c) => {
  const prefix = s(c.widget('filename_prefix'), 'ComfyUI');
  const id = c.add('', T.save, { params: { filename_prefix: prefix } });
  c.connect(c.input('images'), id, 'images');
  if (/%[^%]+%/.test(prefix)) c.approx(`ComfyUI's %...% placeholders in "${prefix}" are not filled in here; they stay in the file name`);
  return [];
};

const UPSCALE_FILTERS: Record<string, { filter: string; note?: string }> = {
  lanczos: { filter: 'lanczos' },
  bilinear: { filter: 'bilinear', note: "bilinear: ComfyUI resamples with torch (no antialiasing), here with Pillow's filter" },
  'nearest-exact': { filter: 'nearest', note: "nearest-exact: torch's nearest there, Pillow's here" },
  area: { filter: 'bilinear', note: 'area (box) resampling is not available: bilinear is used' },
  bicubic: { filter: 'lanczos', note: 'bicubic resampling is not available: lanczos is used' },
};

const imageScale: Translator = (c) => {
  let w = num(c.widget('width'), 512);
  let h = num(c.widget('height'), 512);
  if (w === 0 && h === 0) {
    c.info('width and height 0: ComfyUI passes the image through unchanged, and so does this import');
    return [c.input('image')];
  }
  if (w === 0 || h === 0) {
    c.approx(`${w === 0 ? 'width' : 'height'} 0 (keep the aspect ratio) needs the image's size, which is not known here: ${w || h}x${w || h} is used`);
    w = w || h;
    h = h || w;
  }
  const method = s(c.widget('upscale_method'), 'nearest-exact');
  const f = UPSCALE_FILTERS[method] ?? { filter: 'lanczos', note: `upscale method "${method}" is not known: lanczos is used` };
  if (f.note) c.approx(f.note);
  const crop = s(c.widget('crop'), 'disabled');
  const id = c.add('', T.resize, { params: { width: w, height: h, mode: crop === 'center' ? 'crop' : 'stretch', filter: f.filter } });
  c.connect(c.input('image'), id, 'image');
  return [c.port(id, 'image')];
};

// ---- ControlNet ---------------------------------------------------------------------------

const controlNetApply: Translator = (c) => {
  const id = c.add('', T.applyControlnet, { params: { strength: c.widget('strength') }, derived: { start: 0, end: 1 } });
  c.connect(c.input('conditioning'), id, 'conditioning');
  c.connect(c.input('control_net'), id, 'control_net');
  c.connect(c.input('image'), id, 'image');
  c.approx(
    "this (old) Apply ControlNet also acts on the negative prompt in ComfyUI; here it acts on the conditioning it is wired to (use the Advanced node's wiring for both)",
  );
  return [c.port(id, 'conditioning')];
};

const controlNetApplyAdvanced: Translator = (c) => {
  const params = { strength: c.widget('strength'), start: c.widget('start_percent'), end: c.widget('end_percent') };
  const pos = c.add('', T.applyControlnet, { params });
  const neg = c.add('neg', T.applyControlnet, { params });
  c.connect(c.input('positive'), pos, 'conditioning');
  c.connect(c.input('negative'), neg, 'conditioning');
  for (const id of [pos, neg]) {
    c.connect(c.input('control_net'), id, 'control_net');
    c.connect(c.input('image'), id, 'image');
  }
  if (c.linked('vae')) c.info('the vae input (for ControlNets that encode their image) is not needed here; left unconnected');
  c.info('as two Apply ControlNet nodes, one on the positive and one on the negative conditioning');
  return [c.port(pos, 'conditioning'), c.port(neg, 'conditioning')];
};

const comfyCanny: Translator = (c) => {
  // kornia.filters.canny on [0, 1] grey with a 5x5 Gaussian (sigma 1) and L2 magnitudes, thresholds
  // in [0, 1]; cv2's magnitudes on 8-bit pixels are 255 times as large.
  const low = num(c.widget('low_threshold'), 0.4);
  const high = num(c.widget('high_threshold'), 0.8);
  const id = c.add('', T.canny, {
    params: { low_threshold: round3(low * 255), high_threshold: round3(high * 255) },
    derived: { blur: 1, l2_gradient: true, channels: 'gray' },
  });
  c.connect(c.input('image'), id, 'image');
  c.approx(
    `ComfyUI's Canny (kornia, thresholds ${low} / ${high} on a 0..1 scale) as OpenCV's Canny: thresholds × 255, 5x5 blur sigma 1, L2 gradient; edges differ slightly`,
  );
  return [c.port(id, 'image')];
};
const round3 = (v: number) => Math.round(v * 1000) / 1000;

// ---- IP-Adapter ----------------------------------------------------------------------------

/** IPAdapterUnifiedLoader's presets: the adapter and CLIP vision files it looks for (after IPAdapterPlus' utils.py). */
const pattern = (re: RegExp, name: string, what: string): ModelPattern => ({ re, name, what: `${name} (${what})` });
const VIT_H = pattern(
  /(ViT.H.14.*s32B.b79K|ipadapter.*sd15|sd1.?5.*model)(\.(bin|safetensors))?$/i,
  'CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors',
  'the ViT-H CLIP vision model',
);
const VIT_G = pattern(
  /(ViT.bigG.14.*39B.b160k|ipadapter.*sdxl|sdxl.*model)(\.(bin|safetensors))?$/i,
  'CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors',
  'the ViT-bigG CLIP vision model',
);
const PRESETS: { prefix: string; adapter: ModelPattern; vision: ModelPattern }[] = [
  { prefix: 'light', adapter: pattern(/sd15.light(.v11)?\.(safetensors|bin)$/i, 'ip-adapter_sd15_light_v11.bin', 'LIGHT preset'), vision: VIT_H },
  { prefix: 'standard', adapter: pattern(/ip.adapter.sd15\.(safetensors|bin)$/i, 'ip-adapter_sd15.safetensors', 'STANDARD preset'), vision: VIT_H },
  { prefix: 'vit-g', adapter: pattern(/sd15.vit.g\.(safetensors|bin)$/i, 'ip-adapter_sd15_vit-G.safetensors', 'VIT-G preset'), vision: VIT_G },
  { prefix: 'plus (', adapter: pattern(/ip.adapter.plus.sd15\.(safetensors|bin)$/i, 'ip-adapter-plus_sd15.safetensors', 'PLUS preset'), vision: VIT_H },
  { prefix: 'plus face', adapter: pattern(/plus.face.sd15\.(safetensors|bin)$/i, 'ip-adapter-plus-face_sd15.safetensors', 'PLUS FACE preset'), vision: VIT_H },
  { prefix: 'full', adapter: pattern(/full.face.sd15\.(safetensors|bin)$/i, 'ip-adapter-full-face_sd15.safetensors', 'FULL FACE preset'), vision: VIT_H },
  {
    prefix: 'composition',
    adapter: pattern(/plus.composition.sd15\.(safetensors|bin)$/i, 'ip_plus_composition_sd15.safetensors', 'Composition preset'),
    vision: VIT_H,
  },
];

function unifiedLoader(c: TranslateContext): Value[] {
  const preset = s(c.widget('preset'));
  const p = PRESETS.find((x) => preset.toLowerCase().startsWith(x.prefix));
  if (!p) c.unsupported(`preset "${preset}" is not an SD1.5 IP-Adapter preset known here`);
  const adapter = c.add('', T.ipAdapter, { patterns: { ipadapter_file: p.adapter } });
  const vision = c.add('vision', T.clipVision, { patterns: { clip_name: p.vision } });
  if (c.linked('ipadapter')) c.info('the ipadapter input (a pipeline to reuse) is not needed here');
  c.info(`preset "${preset}": a Load IP-Adapter and a Load CLIP Vision; the model passes through`);
  return [c.input('model'), { kind: 'ipadapter', adapter: c.port(adapter, 'ip_adapter'), clipVision: c.port(vision, 'clip_vision') }];
}

const ipAdapterModelLoader: Translator = (c) => {
  const id = c.add('', T.ipAdapter, { params: { ipadapter_file: c.widget('ipadapter_file') } });
  return [{ kind: 'ipadapter', adapter: c.port(id, 'ip_adapter') }];
};

/** The adapter and CLIP vision of an IPADAPTER input (a loader's pipeline, or whatever feeds it). */
function pipelineOf(v: Value): { adapter: Value; clipVision?: PortVal } {
  if (v.kind === 'ipadapter') return { adapter: v.adapter, ...(v.clipVision ? { clipVision: v.clipVision } : {}) };
  return { adapter: v };
}

/** The CLIP vision model for a node: its clip_vision input, the pipeline's, or (ComfyUI would fail) one of the models folder. */
function visionFor(c: TranslateContext, pipe: { clipVision?: PortVal }): Value {
  if (c.linked('clip_vision')) return c.input('clip_vision');
  if (pipe.clipVision) return pipe.clipVision;
  const id = c.add('vision', T.clipVision, { patterns: { clip_name: VIT_H } });
  c.approx('no CLIP vision model reaches this node (ComfyUI would stop: "Missing CLIPVision model"); a Load CLIP Vision was added');
  return c.port(id, 'clip_vision');
}

const COMBINE: Record<string, string> = { concat: 'concat', average: 'average' };
function combineOf(c: TranslateContext, method: string, what: string): string {
  if (COMBINE[method]) return COMBINE[method];
  c.approx(`${what} "${method}" is not available here: "average" is used`);
  return 'average';
}

interface ApplyOptions {
  blocks: BlocksMapping;
  /** The image input's name (absent: embeds). */
  image?: string;
  combine?: string;
}

/** Encode (CLIP vision) -> projection -> Apply IP-Adapter, for the IPAdapter nodes that take images. */
function applyWithImage(c: TranslateContext, o: ApplyOptions): string {
  const pipe = pipelineOf(c.input('ipadapter'));
  const vision = visionFor(c, pipe);
  const main = c.add('', T.apply, {
    params: { weight: c.widget('weight'), start_at: c.widget('start_at'), end_at: c.widget('end_at'), ...o.blocks.params, ...scalingParams(c) },
  });
  const encode = c.add('encode', T.encode, { derived: { crop: 'center' } });
  const proj = c.add('proj', T.projection, { params: { combine: combineOf(c, o.combine ?? 'concat', 'combine_embeds') } });
  c.connect(vision, encode, 'clip_vision');
  c.connect(c.input(o.image ?? 'image'), encode, 'image');
  c.connect(pipe.adapter, proj, 'ip_adapter');
  c.connect(c.port(encode, 'embeds'), proj, 'embeds');
  c.connect(c.input('model'), main, 'model');
  c.connect(pipe.adapter, main, 'ip_adapter');
  c.connect(c.port(proj, 'tokens'), main, 'tokens');
  if (c.linked('image_negative')) {
    const neg = c.input('image_negative');
    if (neg.kind === 'noise') c.info('its negative image comes from IPAdapter Noise: the default negative (projection of a zero image) is used');
    else {
      const nenc = c.add('neg_encode', T.encode, { derived: { crop: 'center' } });
      const nproj = c.add('neg_proj', T.projection, { params: { combine: 'concat' } });
      c.connect(vision, nenc, 'clip_vision');
      c.connect(neg, nenc, 'image');
      c.connect(pipe.adapter, nproj, 'ip_adapter');
      c.connect(c.port(nenc, 'embeds'), nproj, 'embeds');
      c.connect(c.port(nproj, 'tokens'), main, 'negative');
    }
  }
  commonIpNotes(c, o.blocks, main);
  return main;
}

/** embeds_scaling as it is (Apply IP-Adapter has ComfyUI's four modes); nodes without the widget use 'V only'. */
const scalingParams = (c: TranslateContext) => ({ embeds_scaling: c.widgetDef('embeds_scaling') ? s(c.widget('embeds_scaling'), 'V only') : 'V only' });

function commonIpNotes(c: TranslateContext, b: BlocksMapping, main: string): void {
  if (b.approx) c.approx(b.approx);
  if (b.info) c.info(b.info);
  // attn_mask: Apply IP-Adapter's attention mask (resized per layer as diffusers does; ComfyUI resizes bilinearly).
  if (c.linked('attn_mask')) c.connect(c.input('attn_mask'), main, 'mask');
}

const ipAdapterSimple: Translator = (c) => {
  const wt = s(c.widget('weight_type'), 'standard');
  // IPAdapterSimple: style* -> style transfer, "prompt is more important" -> ease out, else linear.
  const type = wt.startsWith('style') ? 'style transfer' : wt === 'prompt is more important' ? 'ease out' : 'linear';
  return [c.port(applyWithImage(c, { blocks: blocksForWeightType(type, num(c.widget('weight'), 1)) }), 'model')];
};

function ipAdapterAdvanced(extra?: (c: TranslateContext) => void): Translator {
  return (c) => {
    const b = blocksForWeightType(s(c.widget('weight_type'), 'linear'), num(c.widget('weight'), 1));
    const main = applyWithImage(c, { blocks: b, combine: c.widgetDef('combine_embeds') ? s(c.widget('combine_embeds'), 'concat') : 'concat' });
    extra?.(c);
    return [c.port(main, 'model')];
  };
}

const ipAdapterMS: Translator = (c) => {
  const lw = s(c.widget('layer_weights'));
  const b = lw.trim() ? blocksForLayerWeights(lw) : blocksForWeightType(s(c.widget('weight_type'), 'linear'), num(c.widget('weight'), 1));
  if (c.linked('insightface')) c.unsupported('IPAdapterMS with an InsightFace input is a FaceID setup, which needs InsightFace, not supported');
  const main = applyWithImage(c, { blocks: b, combine: s(c.widget('combine_embeds'), 'concat') });
  return [c.port(main, 'model')];
};

const ipAdapterPrecise =
  (type: 'style transfer precise' | 'composition precise', boost: string): Translator =>
  (c) => {
    const b = blocksForWeightType(type, num(c.widget('weight'), 1));
    const main = applyWithImage(c, { blocks: b, combine: s(c.widget('combine_embeds'), 'concat') });
    const v = num(c.widget(boost), type === 'style transfer precise' ? 1 : 0);
    if (v !== (type === 'style transfer precise' ? 1 : 0)) c.approx(`${boost} ${v} is not applied`);
    return [c.port(main, 'model')];
  };

const ipAdapterTiled: Translator = (c) => {
  const pipe = pipelineOf(c.input('ipadapter'));
  const b = blocksForWeightType(s(c.widget('weight_type'), 'linear'), num(c.widget('weight'), 1));
  const id = c.add('', T.tiled, {
    params: { weight: c.widget('weight'), start_at: c.widget('start_at'), end_at: c.widget('end_at'), ...b.params, ...scalingParams(c) },
  });
  c.connect(c.input('model'), id, 'model');
  c.connect(pipe.adapter, id, 'ip_adapter');
  c.connect(visionFor(c, pipe), id, 'clip_vision');
  c.connect(c.input('image'), id, 'image');
  if (c.linked('image_negative')) c.connect(c.input('image_negative'), id, 'negative_image');
  if (c.linked('attn_mask')) c.connect(c.input('attn_mask'), id, 'attn_mask');
  if (b.approx) c.approx(b.approx);
  if (b.info) c.info(b.info);
  if (num(c.widget('sharpening'), 0) > 0) c.approx(`sharpening ${c.widget('sharpening')} is not applied`);
  const combine = c.widgetDef('combine_embeds') ? s(c.widget('combine_embeds'), 'concat') : 'concat';
  if (combine !== 'concat') c.approx(`combine_embeds "${combine}" of the tiles' batches is not applied: each image of a tile is its own image prompt`);
  return [c.port(id, 'model'), c.port(id, 'tiles'), c.port(id, 'masks')];
};

// Legacy: an export from here of CLIP Vision Encode -> Projection -> Apply IP-Adapter (its stored types say so) comes back as it was.

const legacyEncoder: Translator = (c) => {
  const pipe = pipelineOf(c.input('ipadapter'));
  const vision = visionFor(c, pipe);
  const id = c.add('', T.encode, { derived: { crop: 'center' } });
  c.connect(vision, id, 'clip_vision');
  c.connect(c.input('image'), id, 'image');
  const weight = num(c.widget('weight'), 1);
  if (weight !== 1) c.approx(`weight ${weight} on the embeds is not applied here (set the weight of the IPAdapter Embeds it feeds instead)`);
  if (c.linked('mask')) c.approx('the mask on the image is not applied: the whole image is encoded');
  return [{ kind: 'embeds', list: [c.port(id, 'embeds')], method: 'concat', weight }, { kind: 'uncond' }];
};

const MAX_EMBEDS = 4;

const legacyCombine: Translator = (c) => {
  const list: PortVal[] = [];
  for (const name of ['embed1', 'embed2', 'embed3', 'embed4', 'embed5']) {
    if (!c.linked(name)) continue;
    const v = c.input(name);
    if (v.kind === 'embeds') {
      if (v.list.length > 1 && v.method !== 'concat')
        c.approx(`${name} is itself a "${v.method}" combination; here its embeds are combined with the others by this node's method`);
      list.push(...v.list);
    } else if (v.kind === 'port') list.push(v);
    else if (v.kind === 'uncond')
      c.approx(`${name} is an IPAdapter Encoder's neg_embed (the unconditional embeds); it cannot be combined here and is left out`);
  }
  const method = s(c.widget('method'), 'concat');
  if (!COMBINE[method]) c.approx(`method "${method}" is not available here: the projection it feeds averages (or concatenates) the embeds`);
  if (list.length > MAX_EMBEDS) c.approx(`${list.length} embeds: the projection here takes at most ${MAX_EMBEDS}; the others are left out`);
  c.info('combined in the projection of the IPAdapter Embeds it feeds');
  return [{ kind: 'embeds', list: list.slice(0, MAX_EMBEDS), method, weight: 1 }];
};

const EMBED_PORTS = ['embeds', 'embeds_2', 'embeds_3', 'embeds_4'];

function projectEmbeds(c: TranslateContext, role: string, v: Value, adapter: Value): string {
  const list = v.kind === 'embeds' ? v.list : v.kind === 'port' ? [v] : [];
  const method = v.kind === 'embeds' && list.length > 1 ? combineOf(c, v.method, 'combine method') : 'concat';
  const id = c.add(role, T.projection, { params: { combine: method } });
  c.connect(adapter, id, 'ip_adapter');
  list.slice(0, MAX_EMBEDS).forEach((p, i) => c.connect(p, id, EMBED_PORTS[i]!));
  return id;
}

const legacyEmbeds: Translator = (c) => {
  const pipe = pipelineOf(c.input('ipadapter'));
  const b = blocksForWeightType(s(c.widget('weight_type'), 'linear'), num(c.widget('weight'), 1));
  const main = c.add('', T.apply, {
    params: { weight: c.widget('weight'), start_at: c.widget('start_at'), end_at: c.widget('end_at'), ...b.params, ...scalingParams(c) },
  });
  const proj = projectEmbeds(c, 'proj', c.input('pos_embed'), pipe.adapter);
  c.connect(c.input('model'), main, 'model');
  c.connect(pipe.adapter, main, 'ip_adapter');
  c.connect(c.port(proj, 'tokens'), main, 'tokens');
  if (c.linked('neg_embed')) {
    const neg = c.input('neg_embed');
    if (neg.kind === 'uncond') c.info("neg_embed is the encoder's unconditional embeds, which Apply IP-Adapter uses by itself");
    else if (neg.kind === 'embeds' || neg.kind === 'port') c.connect(c.port(projectEmbeds(c, 'neg_proj', neg, pipe.adapter), 'tokens'), main, 'negative');
  }
  commonIpNotes(c, b, main);
  return [c.port(main, 'model')];
};

// Embeds: IPAdapterEncoder -> (IPAdapterCombineEmbeds) -> IPAdapterEmbeds, node for node.

const ipAdapterEncoder: Translator = (c) => {
  if (c.storedType('') === T.encode) return legacyEncoder(c);
  const pipe = pipelineOf(c.input('ipadapter'));
  const id = c.add('', T.ipEncoder, { params: { weight: c.widget('weight') }, derived: { image_weights: '', crop: 'center' } });
  c.connect(pipe.adapter, id, 'ip_adapter');
  c.connect(visionFor(c, pipe), id, 'clip_vision');
  c.connect(c.input('image'), id, 'image');
  if (c.linked('mask')) c.connect(c.input('mask'), id, 'mask');
  return [c.port(id, 'embeds'), c.port(id, 'negative')];
};

const combineEmbeds: Translator = (c) => {
  const names = ['embed1', 'embed2', 'embed3', 'embed4', 'embed5'].filter((n) => c.linked(n));
  if (names.some((n) => ['embeds', 'uncond'].includes(c.input(n).kind))) return legacyCombine(c);
  const id = c.add('', T.combineEmbeds, { params: { method: c.widget('method') } });
  ['embed1', 'embed2', 'embed3', 'embed4', 'embed5'].forEach((name, i) => c.linked(name) && c.connect(c.input(name), id, `embeds_${i + 1}`));
  return [c.port(id, 'embeds')];
};

const ipAdapterEmbeds: Translator = (c) => {
  if (['embeds', 'uncond'].includes(c.input('pos_embed').kind) || c.storedType('') === T.apply) return legacyEmbeds(c);
  const pipe = pipelineOf(c.input('ipadapter'));
  const b = blocksForWeightType(s(c.widget('weight_type'), 'linear'), num(c.widget('weight'), 1));
  const id = c.add('', T.applyEmbeds, {
    params: { weight: c.widget('weight'), start_at: c.widget('start_at'), end_at: c.widget('end_at'), ...b.params, ...scalingParams(c) },
  });
  c.connect(c.input('model'), id, 'model');
  c.connect(pipe.adapter, id, 'ip_adapter');
  c.connect(c.input('pos_embed'), id, 'embeds');
  if (c.linked('neg_embed')) c.connect(c.input('neg_embed'), id, 'negative');
  if (c.linked('attn_mask')) c.connect(c.input('attn_mask'), id, 'mask');
  if (c.linked('clip_vision')) c.connect(c.input('clip_vision'), id, 'clip_vision');
  else if (pipe.clipVision) c.connect(pipe.clipVision, id, 'clip_vision');
  if (b.approx) c.approx(b.approx);
  if (b.info) c.info(b.info);
  return [c.port(id, 'model')];
};

const ipAdapterNoise: Translator = (c) => {
  const id = c.add('', T.noise, { params: { type: c.widget('type'), strength: c.widget('strength'), blur: c.widget('blur') } });
  if (c.linked('image_optional')) c.connect(c.input('image_optional'), id, 'image');
  const type = s(c.widget('type'), 'fade');
  if (type === 'shuffle' || c.linked('image_optional') || num(c.widget('blur'), 0) > 0)
    c.approx("the noise draws torch's random streams as ComfyUI does, but the resize, warp and blur are this app's: the image is close, not identical");
  return [c.port(id, 'image')];
};

const imageBatch: Translator = (c) => {
  const id = c.add('', T.imageBatch, {});
  c.connect(c.input('image1'), id, 'image_1');
  c.connect(c.input('image2'), id, 'image_2');
  c.approx("images of another size than image1 are resized with Pillow's bilinear filter on 8 bits (ComfyUI: torch's bilinear)");
  return [c.port(id, 'image')];
};

const saveEmbeds: Translator = (c) => {
  const id = c.add('', T.saveEmbeds, { params: { filename_prefix: c.widget('filename_prefix') } });
  c.connect(c.input('embeds'), id, 'embeds');
  c.approx('the embeds are written as <prefix>_00001.safetensors (ComfyUI writes a .ipadpt torch pickle)');
  return [];
};

const PREP_FILTERS: Record<string, string> = { LANCZOS: 'lanczos', BILINEAR: 'bilinear', NEAREST: 'nearest' };

const prepImageForClipVision: Translator = (c) => {
  const interp = s(c.widget('interpolation'), 'LANCZOS');
  const crop = s(c.widget('crop_position'), 'top');
  const filter = PREP_FILTERS[interp] ?? 'lanczos';
  if (!PREP_FILTERS[interp]) c.approx(`interpolation ${interp} is not available here: lanczos is used`);
  let mode = 'crop';
  if (crop === 'pad') mode = 'pad';
  else if (crop !== 'center') c.approx(`crop_position "${crop}" is not available here: the centre is cropped`);
  const sharp = num(c.widget('sharpening'), 0);
  if (sharp > 0) c.approx(`sharpening ${sharp} is not applied`);
  const id = c.add('', T.resize, { params: { width: 224, height: 224, mode, filter } });
  c.connect(c.input('image'), id, 'image');
  return [c.port(id, 'image')];
};

const imageToMask: Translator = (c) => {
  let channel = s(c.widget('channel'), 'red');
  if (channel === 'alpha') {
    c.approx('channel alpha is not available here (Load Image gives the alpha as its mask output): red is used');
    channel = 'red';
  }
  const id = c.add('', 'image-to-mask', { params: { channel }, derived: { invert: false } });
  c.connect(c.input('image'), id, 'image');
  return [c.port(id, 'mask')];
};

const primitive: Translator = (c) => {
  c.info('a value: passed into the widgets it feeds');
  return [{ kind: 'const', value: c.widget('value'), from: c.node.id }];
};

export const NODE_MAP: Readonly<Record<string, Translator>> = {
  CheckpointLoaderSimple: direct(T.checkpoint, ['ckpt_name'], {}, ['model', 'clip', 'vae']),
  CheckpointLoader: (c) => {
    c.approx(`config_name "${s(c.widget('config_name'))}" is not used: SD1.5 checkpoints need no config here`);
    return direct(T.checkpoint, ['ckpt_name'], {}, ['model', 'clip', 'vae'])(c);
  },
  CLIPTextEncode: clipTextEncode,
  CLIPSetLastLayer: clipSetLastLayer,
  KSampler: kSampler,
  KSamplerAdvanced: kSamplerAdvanced,
  EmptyLatentImage: direct(T.latent, ['width', 'height', 'batch_size'], {}, ['latent']),
  VAEEncode: vaeEncode,
  VAEEncodeForInpaint: vaeEncodeForInpaint,
  VAEDecode: direct(T.vaeDecode, [], { samples: 'samples', vae: 'vae' }, ['image']),
  VAELoader: vaeLoader,
  LoraLoader: direct(T.lora, ['lora_name', 'strength_model', 'strength_clip'], { model: 'model', clip: 'clip' }, ['model', 'clip']),
  LoadImage: loadImage,
  SaveImage: saveImage,
  PreviewImage: direct(T.preview, [], { images: 'images' }, []),
  ImageScale: imageScale,
  SetLatentNoiseMask: direct(T.noiseMask, [], { samples: 'samples', mask: 'mask' }, ['latent'], { binarize: false }),
  ControlNetLoader: direct(T.controlnet, ['control_net_name'], {}, ['control_net']),
  ControlNetApply: controlNetApply,
  ControlNetApplyAdvanced: controlNetApplyAdvanced,
  Canny: comfyCanny,
  CLIPVisionLoader: direct(T.clipVision, ['clip_name'], {}, ['clip_vision']),
  ImageToMask: imageToMask,
  PrimitiveInt: primitive,
  PrimitiveFloat: primitive,
  PrimitiveString: primitive,
  PrimitiveStringMultiline: primitive,
  PrimitiveBoolean: primitive,

  IPAdapterUnifiedLoader: unifiedLoader,
  IPAdapterUnifiedLoaderCommunity: (c) => {
    if (s(c.widget('preset')) === 'Kolors') c.unsupported('the Kolors preset is for Kolors models, not SD1.5');
    return unifiedLoader(c);
  },
  IPAdapterModelLoader: ipAdapterModelLoader,
  IPAdapter: ipAdapterSimple,
  IPAdapterAdvanced: ipAdapterAdvanced(),
  IPAdapterBatch: ipAdapterAdvanced((c) =>
    c.approx('batch mode (one image of the batch per latent of the batch) is not available here: every image prompt applies to every latent'),
  ),
  IPAdapterTiled: ipAdapterTiled,
  IPAdapterTiledBatch: ipAdapterTiled,
  IPAdapterMS: ipAdapterMS,
  IPAdapterPreciseStyleTransfer: ipAdapterPrecise('style transfer precise', 'style_boost'),
  IPAdapterPreciseComposition: ipAdapterPrecise('composition precise', 'composition_boost'),
  IPAdapterClipVisionEnhancer: ipAdapterAdvanced((c) =>
    c.approx(`the ClipVision enhancer (${c.widget('enhance_tiles')} tiles) is not available here: the image is encoded once`),
  ),
  IPAdapterEncoder: ipAdapterEncoder,
  IPAdapterCombineEmbeds: combineEmbeds,
  IPAdapterEmbeds: ipAdapterEmbeds,
  IPAdapterEmbedsBatch: (c) => {
    c.approx('batch mode (one embed per latent of the batch) is not available here: every embed applies to every latent');
    return ipAdapterEmbeds(c);
  },
  IPAdapterNoise: ipAdapterNoise,
  IPAdapterSaveEmbeds: saveEmbeds,
  ImageBatch: imageBatch,
  PrepImageForClipVision: prepImageForClipVision,
};
