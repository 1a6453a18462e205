/**
 * Node search for the palette: titles, type ids, ComfyUI class names and the words people type
 * (`ksampler`, `CLIPTextEncode`, `IPAdapter Advanced`, `lora`, `upscale`), ranked by relevance:
 * a whole-word title match before a prefix, before a substring, before an alias, before the
 * description; ties keep the palette's order. Spaces, dashes and case are ignored when matching
 * ("ipadapter" finds "IP-Adapter Projection").
 */
import type { NodeSpec } from '../nodes/types.js';

/** ComfyUI class names and common words for each node type (ComfyUI_IPAdapter_plus names included). */
export const NODE_ALIASES: Record<string, string[]> = {
  'load-checkpoint': ['CheckpointLoaderSimple', 'CheckpointLoader', 'checkpoint', 'model loader', 'ckpt'],
  'load-vae': ['VAELoader', 'vae'],
  'load-lora': ['LoraLoader', 'LoraLoaderModelOnly', 'lora', 'lycoris', 'locon'],
  'load-image': ['LoadImage', 'image loader', 'open image', 'input image'],
  'load-clip-vision': ['CLIPVisionLoader', 'clip vision', 'image encoder'],
  'clip-vision-encode': ['CLIPVisionEncode', 'clip vision', 'image embeds'],
  'load-ip-adapter': ['IPAdapterModelLoader', 'ipadapter loader', 'ipadapter model'],
  'ip-adapter-unified-loader': ['IPAdapterUnifiedLoader', 'IPAdapterUnifiedLoaderCommunity', 'unified loader', 'ipadapter preset'],
  'ip-adapter-projection': ['ipadapter projection', 'image proj', 'resampler', 'image tokens'],
  'ip-adapter-encoder': ['IPAdapterEncoder', 'ipadapter encoder', 'ipadapter embeds'],
  'apply-ip-adapter': ['IPAdapter', 'IPAdapterAdvanced', 'IPAdapter Advanced', 'IPAdapterApply', 'ipadapter', 'image prompt'],
  'apply-ip-adapter-embeds': ['IPAdapterEmbeds', 'ipadapter embeds'],
  'ip-adapter-combine-embeds': ['IPAdapterCombineEmbeds', 'combine embeds'],
  'ip-adapter-tiled': ['IPAdapterTiled', 'tiled'],
  'ip-adapter-noise': ['IPAdapterNoise', 'noise'],
  'save-embeds': ['IPAdapterSaveEmbeds', 'save embeds'],
  'load-embeds': ['IPAdapterLoadEmbeds', 'load embeds'],
  'image-batch': ['ImageBatch', 'batch', 'several images'],
  'text-encode': ['CLIPTextEncode', 'prompt', 'text', 'conditioning', 'negative'],
  'empty-latent-image': ['EmptyLatentImage', 'latent', 'size', 'resolution'],
  'ddim-sampler': ['sampler', 'ddim', 'KSampler', 'denoise'],
  ksampler: ['KSampler', 'sampler', 'euler', 'dpm'],
  'ksampler-advanced': ['KSamplerAdvanced', 'sampler', 'steps range'],
  'vae-decode': ['VAEDecode', 'decode', 'latent to image'],
  'vae-encode': ['VAEEncode', 'encode', 'img2img', 'image to latent'],
  'set-latent-noise-mask': ['SetLatentNoiseMask', 'inpaint', 'mask'],
  'image-to-mask': ['ImageToMask', 'mask', 'channel'],
  'save-image': ['SaveImage', 'save', 'output', 'export'],
  'preview-image': ['PreviewImage', 'preview', 'show'],
  'load-controlnet': ['ControlNetLoader', 'controlnet', 'control net'],
  'apply-controlnet': ['ControlNetApply', 'ControlNetApplyAdvanced', 'controlnet', 'control net'],
  canny: ['Canny', 'edges', 'preprocessor'],
  lineart: ['LineArtPreprocessor', 'lineart', 'line art', 'preprocessor'],
  scribble: ['ScribblePreprocessor', 'scribble', 'sketch', 'preprocessor'],
  'image-resize': ['ImageScale', 'ImageScaleBy', 'ImageUpscale', 'upscale', 'resize', 'scale', 'downscale'],
  reroute: ['Reroute', 'route', 'wire', 'dot'],
  note: ['Note', 'MarkdownNote', 'comment', 'text', 'label'],
  primitive: ['PrimitiveNode', 'primitive', 'value', 'constant', 'widget to input', 'seed', 'int', 'float', 'string'],
  sweep: ['XY Plot', 'XYPlot', 'grid', 'sweep', 'batch'],
};

const norm = (s: string) => s.toLowerCase().replace(/[\s_\-()/.]+/g, '');
const words = (s: string) =>
  s
    .toLowerCase()
    .split(/[\s_\-()/.]+/)
    .filter(Boolean);

/** How well `spec` matches the query: higher is better, 0 = no match. */
export function searchScore(spec: NodeSpec, query: string): number {
  const q = query.trim();
  if (!q) return 1;
  const nq = norm(q);
  const title = norm(spec.title);
  const aliases = (NODE_ALIASES[spec.type] ?? []).map(norm);
  const qWords = words(q);
  let score = 0;
  if (title === nq) score = 100;
  else if (aliases.includes(nq)) score = 90;
  else if (words(spec.title).some((w) => w === nq)) score = 80;
  else if (title.startsWith(nq)) score = 70;
  else if (title.includes(nq) || norm(spec.type).includes(nq)) score = 60;
  else if (aliases.some((a) => a.startsWith(nq))) score = 50;
  else if (aliases.some((a) => a.includes(nq))) score = 40;
  else {
    // Every word somewhere: title, type, aliases, category, then the description.
    const hay = norm(`${spec.title} ${spec.type} ${(NODE_ALIASES[spec.type] ?? []).join(' ')} ${spec.category}`);
    if (qWords.every((w) => hay.includes(norm(w)))) score = 30;
    else if (qWords.every((w) => norm(`${spec.title} ${spec.type} ${spec.category} ${spec.description}`).includes(norm(w)))) score = 10;
  }
  return score;
}

/** The specs matching `query`, best first (stable: equal scores keep the given order). */
export function searchNodes(specs: readonly NodeSpec[], query: string): NodeSpec[] {
  return specs
    .map((s, i) => ({ s, i, score: searchScore(s, query) }))
    .filter((x) => x.score > 0)
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .map((x) => x.s);
}
