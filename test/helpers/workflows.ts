/** test/helpers: code shared by tests and benches — workflows built in code. */
/**
 * A standard IP-Adapter workflow builder for tests, benches and hosts that need one in code
 * (the examples/ folder holds the same graphs as files). Names default to the demo model set.
 */
import type { Workflow, WorkflowEdge, WorkflowNode } from '../../engine/api.js';
import { DEMO_NAMES } from '../../engine/demo/demo.js';

export interface IpWorkflowOptions {
  image: string;
  prompt?: string;
  negative?: string;
  weight?: number;
  steps?: number;
  cfg?: number;
  seed?: number;
  width?: number;
  height?: number;
  checkpoint?: string;
  /** The checkpoint's `config` param (a diffusers folder describing a single file). */
  checkpointConfig?: string;
  /** A Load VAE node (file or folder, optional config) feeding VAE Decode instead of the checkpoint's VAE. */
  vae?: { file: string; config?: string };
  clipVision?: string;
  ipAdapter?: string;
  /** Load LoRA nodes (lora_1, lora_2, ...) chained between the checkpoint and its MODEL / CLIP users. */
  loras?: { file: string; strengthModel?: number; strengthClip?: number }[];
  /** 'save' writes into the output folder, 'preview' into the temp folder. */
  output?: 'save' | 'preview';
  prefix?: string;
  /** Another sampler node in place of the DDIM Sampler (e.g. `ksampler` with its params); same ports. */
  sampler?: { type: string; params: WorkflowNode['params'] };
}

/** image -> CLIP Vision Encode -> Projection -> Apply IP-Adapter (λ) -> DDIM -> VAE Decode (checkpoint's VAE or Load VAE) -> output; optional Load LoRA chain on MODEL and CLIP. */
export function ipAdapterWorkflow(o: IpWorkflowOptions): Workflow {
  const nodes: WorkflowNode[] = [];
  const edges: WorkflowEdge[] = [];
  const node = (id: string, type: string, params: WorkflowNode['params'] = {}) => {
    nodes.push({ id, type, params, ui: { x: 0, y: 0 } });
  };
  const link = (a: string, ap: string, b: string, bp: string) => edges.push({ from: { node: a, port: ap }, to: { node: b, port: bp } });
  node('checkpoint', 'load-checkpoint', { ckpt_name: o.checkpoint ?? DEMO_NAMES.checkpoint, ...(o.checkpointConfig ? { config: o.checkpointConfig } : {}) });
  if (o.vae) node('vae', 'load-vae', { vae_name: o.vae.file, config: o.vae.config ?? '' });
  node('image', 'load-image', { image: o.image });
  node('clip_vision', 'load-clip-vision', { clip_name: o.clipVision ?? DEMO_NAMES.clipVision });
  node('vision_encode', 'clip-vision-encode', { crop: 'center' });
  node('ip_adapter', 'load-ip-adapter', { ipadapter_file: o.ipAdapter ?? DEMO_NAMES.ipAdapter });
  node('projection', 'ip-adapter-projection', { combine: 'concat' });
  node('apply', 'apply-ip-adapter', { weight: o.weight ?? 1, start_at: 0, end_at: 1 });
  node('positive', 'text-encode', { text: o.prompt ?? 'best quality' });
  node('negative', 'text-encode', { text: o.negative ?? 'low quality' });
  node('latent', 'empty-latent-image', { width: o.width ?? 64, height: o.height ?? 64, batch_size: 1 });
  if (o.sampler) node('sampler', o.sampler.type, o.sampler.params);
  else node('sampler', 'ddim-sampler', { seed: o.seed ?? 1, steps: o.steps ?? 4, cfg: o.cfg ?? 7.5, eta: 0, denoise: 1 });
  node('decode', 'vae-decode');
  if ((o.output ?? 'save') === 'save') node('out', 'save-image', { filename_prefix: o.prefix ?? 'test' });
  else node('out', 'preview-image');
  link('clip_vision', 'clip_vision', 'vision_encode', 'clip_vision');
  link('image', 'image', 'vision_encode', 'image');
  link('ip_adapter', 'ip_adapter', 'projection', 'ip_adapter');
  link('vision_encode', 'embeds', 'projection', 'embeds');
  let modelFrom = 'checkpoint';
  (o.loras ?? []).forEach((l, i) => {
    const id = `lora_${i + 1}`;
    node(id, 'load-lora', { lora_name: l.file, strength_model: l.strengthModel ?? 1, strength_clip: l.strengthClip ?? 1 });
    link(modelFrom, 'model', id, 'model');
    link(modelFrom, 'clip', id, 'clip');
    modelFrom = id;
  });
  link(modelFrom, 'model', 'apply', 'model');
  link('ip_adapter', 'ip_adapter', 'apply', 'ip_adapter');
  link('projection', 'tokens', 'apply', 'tokens');
  link(modelFrom, 'clip', 'positive', 'clip');
  link(modelFrom, 'clip', 'negative', 'clip');
  link('apply', 'model', 'sampler', 'model');
  link('positive', 'conditioning', 'sampler', 'positive');
  link('negative', 'conditioning', 'sampler', 'negative');
  link('latent', 'latent', 'sampler', 'latent');
  link('sampler', 'latent', 'decode', 'samples');
  link(o.vae ? 'vae' : 'checkpoint', 'vae', 'decode', 'vae');
  link('decode', 'image', 'out', 'images');
  return { format: 'ipadapter-studio/workflow', version: 1, nodes, edges };
}
