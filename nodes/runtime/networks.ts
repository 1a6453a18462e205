/** nodes/runtime: what node implementations share at run time — networks loaded through the model store, the sampler's UNet call and ControlNets, image files and pixels, A1111 parameters text. */
/**
 * The heavy side of model values: loading networks through the model store, keyed by what
 * they are, so each graph is built and each session created once per engine until unloaded.
 *
 * Keys: `ckpt|<path>|<configDir>`, `unet|<path>|<configDir>|ip=<adapter files in order, or ->|cn=<0/1>`,
 * `clip-text|<path>|<configDir>`, `tokenizer|<dir>`, `vae|<path>|<configDir>`, `vae|file=<path>|<config>`
 * (Load VAE; its headers under `vae-parts|<path>|<config>`),
 * `clip-vision|<path>`, `clip-vision-zeros|<path>`, `image-proj|<path>`.
 * With LoRAs the UNet and text encoder keys end in `|lora=<file>,<file>...` (the distinct files in
 * chain order: the graph depends on the files, the strengths are its lora_scale input); a LoRA
 * file's match against a checkpoint (headers only) is under `lora-match|<file>|<unet ckpt>|<clip ckpt>`.
 * Every file or folder in a key is written `<path>@<identity>` (store.fileKey: device, inode, size, mtime), so a
 * file replaced in place is loaded again. `unload(prefix)` on the store releases them (e.g. `unload('unet|')`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCheckpoint, type LoadedCheckpoint } from '../../models/checkpoint.js';
import { ClipTextEncoder, loadClipTextConfig, SD15_TEXT_CONFIG } from '../../models/clip-text.js';
import { ClipVision } from '../../models/clip-vision.js';
import { DDIMScheduler, loadSchedulerConfig, parseSchedulerConfig, SD15_SCHEDULER } from '../../models/ddim.js';
import { ImageProjector, IpAdapterModel } from '../../models/ip-adapter.js';
import { clipTextWeights } from '../../models/keymaps/clip-text.js';
import { vaeWeightsFromFile } from '../../models/keymaps/ldm-vae.js';
import { openTensorFile } from '../../models/pickle.js';
import { ClipTokenizer, type TextCleaning } from '../../models/tokenizer.js';
import { buildUNet, MAX_IP_ADAPTERS, UNET_SESSION_OPTIONS } from '../../models/unet.js';
import { crossAttnLayers, type UNetConfig } from '../../models/unet-config.js';
import { loadVaeConfig, Vae, vaeConfigFromWeights } from '../../models/vae.js';
import { checkIpAdapterLayers, namingFile, weightsFileOf } from '../../models/shape-check.js';
import { type LoadedVae, loadVaeFile } from '../../models/vae-load.js';
import type { ort } from '../../models/onnx/session.js';
import type { BuiltModel } from '../../models/onnx/graph.js';
import { type LoraMatch, type LoraTargets, clipTextLoraTargets, loraStrengths, matchLora, unetLoraTargets } from '../../models/lora.js';
import { loraModuleHook, unetReferenceRows } from '../../models/lora-graph.js';
import type { AppliedLora, CheckpointRef, ClipValue, ModelValue, VaeValue } from '../values.js';
import type { ModelStore } from '../../engine/model-store.js';

/** A checkpoint in a key: its files' identities (engine/model-store.ts fileKey), so a file replaced in place is loaded again. */
const ckptKey = (store: ModelStore, r: CheckpointRef) => `${store.fileKey(r.path)}|${store.fileKey(r.configDir)}`;

/** The checkpoint's parts (headers only: cheap, but opened once). */
export function checkpointParts(store: ModelStore, ref: CheckpointRef): Promise<LoadedCheckpoint> {
  return store.get(`ckpt|${ckptKey(store, ref)}`, () => loadCheckpoint(ref.path, ref.configDir ? { configDir: ref.configDir } : {}));
}

export interface UNetRuntime {
  session: ort.InferenceSession;
  config: UNetConfig;
  /** Number of cross-attention layers = length of each ip_adapter_scale_<k> input (0 without an adapter). */
  ipLayers: number;
  /** Number of IP-Adapters the graph takes (its ip_tokens_<k> inputs). */
  ipAdapters: number;
  /** The model's LoRA strengths in the graph's order (its lora_scale input); absent without LoRAs. */
  loraScale?: number[];
}

// ---------------------------------------------------------------------------------------
// LoRA: a file matched against the modules of a checkpoint's UNet and text encoder
// ---------------------------------------------------------------------------------------

/** The modules a LoRA may change in a checkpoint's UNet (diffusers names and shapes). */
async function unetTargets(store: ModelStore, ref: CheckpointRef): Promise<LoraTargets> {
  const ck = await checkpointParts(store, ref);
  return store.get(`lora-targets|unet|${ckptKey(store, ref)}`, () => unetLoraTargets(ck.unet.config, ck.unet.weights, ref.path));
}

/** The modules a LoRA may change in a checkpoint's text encoder (transformers names), or null without one. */
async function textTargets(store: ModelStore, ref: CheckpointRef): Promise<LoraTargets | null> {
  const ck = await checkpointParts(store, ref);
  const te = ck.textEncoder;
  if (!te) return null;
  return store.get(`lora-targets|text|${ckptKey(store, ref)}`, () => {
    const cfg = te.configPath ? loadClipTextConfig(te.configPath) : { ...SD15_TEXT_CONFIG };
    return clipTextLoraTargets(cfg.num_hidden_layers, clipTextWeights(openTensorFile(te.weightsFile)), ref.path);
  });
}

/**
 * A LoRA file matched against the UNet of `unet` and the text encoder of `text` (either may be
 * null): its pairs per module, and the keys that name no module of either (models/lora.ts).
 * Refused (with both files named) when a pair does not fit, or when no key names a module.
 */
export async function loraMatch(store: ModelStore, file: string, unet: CheckpointRef | null, text: CheckpointRef | null): Promise<LoraMatch> {
  const targets: LoraTargets[] = [];
  if (unet) targets.push(await unetTargets(store, unet));
  const t = text ? await textTargets(store, text) : null;
  if (t) targets.push(t);
  // Matched against one part only (a network's graph), a LoRA may have nothing for it: not an error there.
  const onePart = !unet || !text;
  return store.get(`lora-match|${store.fileKey(file)}|${unet ? ckptKey(store, unet) : '-'}|${text ? ckptKey(store, text) : '-'}`, () =>
    matchLora(openTensorFile(file), targets, { allowEmpty: onePart }),
  );
}

/**
 * The LoRAs of one network (the UNet of `unet` or the text encoder of `text`): the distinct files
 * that change some module of it, their matches, their summed strengths and the graph-key suffix.
 */
async function loraSet(store: ModelStore, loras: AppliedLora[] | undefined, unet: CheckpointRef | null, text: CheckpointRef | null) {
  const { files, strengths } = loraStrengths(loras ?? []);
  const all = await Promise.all(files.map((f) => loraMatch(store, f, unet, text)));
  const used = all.map((m, i) => ({ m, i })).filter((x) => x.m.modules.length > 0);
  return {
    matches: used.map((x) => x.m),
    strengths: used.map((x) => strengths[x.i]),
    key: used.length ? `|lora=${used.map((x) => store.fileKey(files[x.i]!)).join(',')}` : '',
  };
}

/** A UNet graph to build for a model: its store key and builder (no session yet), and what its inputs take. */
export interface UNetGraph extends Omit<UNetRuntime, 'session'> {
  /** The model store key of its session (the merged UNet + ControlNets graph's key starts from it). */
  key: string;
  build: () => BuiltModel;
}

/**
 * The UNet graph for a model: one per (checkpoint, adapter files in order, ControlNet inputs, LoRA files).
 * λ, windows, masks, embeds_scaling, routing and the image tokens are graph inputs, so applying or
 * changing an adapter of the same files never rebuilds it.
 */
export async function unetGraph(store: ModelStore, model: ModelValue, controlnet = false): Promise<UNetGraph> {
  if (model.adapters.length > MAX_IP_ADAPTERS) {
    const who = model.adapters.map((a) => (a.from ? `${a.from.title} "${a.from.node}"` : a.adapter.path)).join(', ');
    throw new Error(`the model has ${model.adapters.length} IP-Adapters (${who}); one UNet takes at most ${MAX_IP_ADAPTERS}`);
  }
  const ck = await checkpointParts(store, model.checkpoint);
  const adapterPaths = model.adapters.map((a) => a.adapter.path);
  const lora = await loraSet(store, model.loras, model.checkpoint, null);
  const ipKey = adapterPaths.length ? adapterPaths.map((p) => store.fileKey(p)).join(',') : '-';
  const key = `unet|${ckptKey(store, model.checkpoint)}|ip=${ipKey}|cn=${controlnet ? 1 : 0}${lora.key}`;
  const cross = crossAttnLayers(ck.unet.config);
  const build = () => {
    // One loaded file per distinct path: two applications of one file share its weights in the graph.
    const loaded = new Map<string, IpAdapterModel>();
    for (const adapterPath of new Set(adapterPaths)) {
      const ad = namingFile(adapterPath, () => IpAdapterModel.load(adapterPath));
      if (ad.crossAttentionDim !== ck.unet.config.crossAttentionDim) {
        throw new Error(
          `the IP-Adapter ${adapterPath} makes tokens of width ${ad.crossAttentionDim}, but the checkpoint ${model.checkpoint.path} has cross-attention width ${ck.unet.config.crossAttentionDim}`,
        );
      }
      checkIpAdapterLayers(ad.layers, ad.crossAttentionDim, ck.unet.config, model.checkpoint.path); // models/shape-check.ts
      loaded.set(adapterPath, ad); // layerWeights(processor index), as buildUNet asks
    }
    // LoRAs: ΔW merged in the graph for the high-resolution layers, side branches elsewhere (models/lora-graph.ts).
    const moduleHook = loraModuleHook(lora.matches, { part: 'unet', rowsFor: unetReferenceRows(ck.unet.config.blockOutChannels.length) });
    const name = `${adapterPaths.length ? `unet_ip${adapterPaths.length}` : 'unet'}${lora.matches.length ? '_lora' : ''}`;
    const ipAdapters = adapterPaths.map((p) => loaded.get(p)!);
    const unetFile = weightsFileOf(ck.unet.weights, 'conv_in.weight', model.checkpoint.path); // named in a builder's error
    return namingFile(unetFile, () => buildUNet(ck.unet.config, ck.unet.weights, { ipAdapters, controlnet, name, moduleHook }).build());
  };
  return {
    key,
    build,
    config: ck.unet.config,
    ipLayers: adapterPaths.length ? cross.length : 0,
    ipAdapters: adapterPaths.length,
    ...(lora.matches.length ? { loraScale: lora.strengths } : {}),
  };
}

/** The UNet session of `graph` (cached in the store under its key). */
export async function unetSession(store: ModelStore, graph: UNetGraph): Promise<UNetRuntime> {
  const { key, build, ...rest } = graph;
  return { ...rest, session: await store.session(key, build, UNET_SESSION_OPTIONS) };
}

/** The UNet session for a model (unetGraph's graph, built once and cached). */
export async function unetRuntime(store: ModelStore, model: ModelValue, controlnet = false): Promise<UNetRuntime> {
  return unetSession(store, await unetGraph(store, model, controlnet));
}

/** DDIM with the checkpoint's scheduler config (diffusers folder), else SD1.5's standard one. */
export async function schedulerFor(store: ModelStore, ref: CheckpointRef): Promise<DDIMScheduler> {
  const dirs = [ref.path, ref.configDir].filter((d) => d && fs.existsSync(d) && fs.statSync(d).isDirectory());
  for (const d of dirs) {
    const f = path.join(d, 'scheduler', 'scheduler_config.json');
    if (fs.existsSync(f)) return new DDIMScheduler(loadSchedulerConfig(f));
  }
  return new DDIMScheduler(parseSchedulerConfig(SD15_SCHEDULER, 'SD1.5 standard scheduler config'));
}

/** The checkpoint's text encoder and the tokenizer. */
export async function textRuntime(
  store: ModelStore,
  clip: ClipValue,
  cleaning: TextCleaning = 'transformers',
): Promise<{ encoder: ClipTextEncoder; tokenizer: ClipTokenizer; loraScale?: number[] }> {
  const ck = await checkpointParts(store, clip.checkpoint);
  const te = ck.textEncoder;
  if (!te) throw new Error(`${clip.checkpoint.path} has no text encoder (no text_encoder/ folder or cond_stage_model.* weights)`);
  const lora = await loraSet(store, clip.loras, null, clip.checkpoint);
  const encoder = await store.get(
    `clip-text|${ckptKey(store, clip.checkpoint)}${lora.key}`,
    () => {
      const weights = clipTextWeights(openTensorFile(te.weightsFile)); // safetensors, or a .ckpt checkpoint's pickle
      const cfg = te.configPath ? loadClipTextConfig(te.configPath) : { ...SD15_TEXT_CONFIG };
      return ClipTextEncoder.load(weights, cfg, { ...store.sessionConfig(), moduleHook: loraModuleHook(lora.matches, { part: 'text_encoder' }) });
    },
    (e) => e.release(),
  );
  const tokenizer = await store.get(`tokenizer|${store.fileKey(clip.tokenizerDir)}|${cleaning}`, () => ClipTokenizer.fromDir(clip.tokenizerDir, { cleaning }));
  return { encoder, tokenizer, ...(lora.matches.length ? { loraScale: lora.strengths } : {}) };
}

/** A standalone VAE's weights and config (Load VAE; headers only, opened once). */
export function vaeFileParts(store: ModelStore, file: string, configPath = ''): Promise<LoadedVae> {
  return store.get(`vae-parts|${store.fileKey(file)}|${store.fileKey(configPath)}`, () => loadVaeFile(file, configPath ? { configPath } : {}));
}

/** The sentence for a VAE input fed by a checkpoint that has none. */
export function missingVaeMessage(v: VaeValue): string {
  const by = v.from ? ` (loaded by ${v.from.title} "${v.from.node}")` : '';
  return (
    `the checkpoint ${path.basename(v.checkpoint!.path)}${by} has no VAE (no vae/ folder or first_stage_model.* weights): ` +
    "add a Load VAE node with a VAE from <models>/vae (e.g. vae-ft-mse-840000-ema-pruned.safetensors) and connect its VAE output here instead of the checkpoint's"
  );
}

/** The VAE of a checkpoint, or a standalone VAE file/folder. Sessions are created on first use. */
export async function vaeRuntime(store: ModelStore, v: VaeValue): Promise<Vae> {
  if (v.checkpoint) {
    const ref = v.checkpoint;
    const ck = await checkpointParts(store, ref);
    const loc = ck.vae;
    if (!loc) throw new Error(missingVaeMessage(v));
    return store.get(
      `vae|${ckptKey(store, ref)}`,
      () => {
        const w = vaeWeightsFromFile(loc.weightsFile);
        const cfg = loc.configPath ? loadVaeConfig(loc.configPath) : vaeConfigFromWeights(w, {}, loc.weightsFile);
        return Vae.load(w, cfg, { ...store.sessionConfig(), parts: [] });
      },
      (x) => x.release(),
    );
  }
  if (!v.file) throw new Error('internal: a VAE value names neither a checkpoint nor a file');
  const file = v.file;
  const configPath = v.configPath ?? '';
  const parts = await vaeFileParts(store, file, configPath);
  return store.get(
    `vae|file=${store.fileKey(file)}|${store.fileKey(configPath)}`,
    () => Vae.load(parts.weights, parts.config, { ...store.sessionConfig(), parts: [] }),
    (x) => x.release(),
  );
}

export function clipVisionRuntime(store: ModelStore, p: string): Promise<ClipVision> {
  return store.get(
    `clip-vision|${store.fileKey(p)}`,
    () => ClipVision.load(p, store.sessionConfig()),
    (x) => x.release(),
  );
}

export function projectorRuntime(store: ModelStore, adapterPath: string): Promise<ImageProjector> {
  return store.get(
    `image-proj|${store.fileKey(adapterPath)}`,
    () => namingFile(adapterPath, () => ImageProjector.load(adapterPath, store.sessionConfig())),
    (x) => x.release(),
  );
}

/** The tokenizer folder for a checkpoint: its own tokenizer/, the config folder's, or the param. */
export async function tokenizerDirFor(store: ModelStore, ref: CheckpointRef, explicit: string, tokenizersDir: string): Promise<string> {
  if (explicit) return explicit;
  const ck = await checkpointParts(store, ref);
  if (ck.tokenizerDir) return ck.tokenizerDir;
  // A single-file checkpoint has no tokenizer: take the only one in <models>/tokenizers.
  const found = fs.existsSync(tokenizersDir) ? fs.readdirSync(tokenizersDir).filter((n) => fs.existsSync(path.join(tokenizersDir, n, 'vocab.json'))) : [];
  if (found.length >= 1) return path.join(tokenizersDir, found.sort()[0]);
  throw new Error(
    `${path.basename(ref.path)} is a single-file checkpoint without a tokenizer: put the CLIP tokenizer (vocab.json and merges.txt of openai/clip-vit-large-patch14) in ${path.join(tokenizersDir, '<name>')}/ or choose one in the node's "tokenizer" param`,
  );
}
