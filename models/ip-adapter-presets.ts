/**
 * The unified loader's presets (ComfyUI_IPAdapter_plus' IPAdapterUnifiedLoader: light, standard, plus,
 * plus face, full face, vit-G), found in a models folder BY TENSOR SHAPES: every adapter file's header is
 * classified (models/ip-adapter.ts IpAdapterModel.load reads the keys and shapes, never the weights), and
 * the CLIP vision model is the one whose width the adapter takes. File names are never looked at, so a
 * renamed or misnamed file is found for what it is, and a file that only looks right by its name is not.
 *
 * What shapes can and cannot tell (h94's SD1.5 files):
 *   standard / light   base projection (4 tokens) from a ViT-H image embedding (1024 wide)  - the same shapes
 *   plus / plus face   Resampler (16 tokens) over ViT-H hidden states (1280 wide)           - the same shapes
 *   full face          MLP over every ViT-H hidden state (257 tokens)
 *   vit-G              base projection from a ViT-bigG image embedding (1280 wide)
 * so "light" and "standard" (and "plus" and "plus face") are the same family: one file of the family is
 * taken; several are listed and one must be chosen. A width that is neither ViT-H's nor bigG's (a tiny
 * test model) counts as ViT-H's family, the default of SD1.5.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IpAdapterModel, type IpAdapterKind } from './ip-adapter.js';
import { resolveClipVision, type ClipVisionConfig } from './clip-vision.js';

export const IPADAPTER_PRESETS = ['light', 'standard', 'plus', 'plus face', 'full face', 'vit-G'] as const;
export type IpAdapterPreset = (typeof IPADAPTER_PRESETS)[number];

/** ViT-bigG/14's widths: projection_dim (base adapters' input) and hidden_size (Plus'). */
const BIGG = { projection: 1280, hidden: 1664 };

type Family = 'base ViT-H' | 'base ViT-bigG' | 'plus ViT-H' | 'full face ViT-H';

/** The shape family a preset needs, and which presets share it. */
const FAMILY: Record<IpAdapterPreset, Family> = {
  light: 'base ViT-H',
  standard: 'base ViT-H',
  plus: 'plus ViT-H',
  'plus face': 'plus ViT-H',
  'full face': 'full face ViT-H',
  'vit-G': 'base ViT-bigG',
};

/** An adapter's family by its shapes (null: one no preset names, e.g. a Plus for bigG). */
export function adapterFamily(kind: IpAdapterKind, embedDim: number): Family | null {
  if (kind === 'base') return embedDim === BIGG.projection ? 'base ViT-bigG' : 'base ViT-H';
  if (embedDim === BIGG.hidden) return null;
  return kind === 'plus' ? 'plus ViT-H' : 'full face ViT-H';
}

/** What one adapter file is, from its header. */
export interface AdapterCandidate {
  file: string;
  kind: IpAdapterKind;
  tokens: number;
  embedDim: number;
  crossDim: number;
  family: Family | null;
}

/** What one CLIP vision model is, from its header (and config.json beside it, if any). */
export interface VisionCandidate {
  file: string;
  hiddenSize: number;
  projectionDim: number | null;
}

/** Files and model folders one level under `dir` (hidden files and atomic temporaries skipped), sorted. */
function entries(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Every IP-Adapter in `dir` by its header; files that are not adapters are skipped, with why. */
export function scanAdapters(dir: string): { found: AdapterCandidate[]; skipped: { file: string; why: string }[] } {
  const found: AdapterCandidate[] = [];
  const skipped: { file: string; why: string }[] = [];
  for (const file of entries(dir)) {
    if (!/\.(safetensors|bin|pt|pth|ckpt)$/i.test(file) || !fs.statSync(file).isFile()) continue;
    try {
      const a = IpAdapterModel.load(file);
      found.push({ file, kind: a.kind, tokens: a.numTokens, embedDim: a.embedDim, crossDim: a.crossAttentionDim, family: adapterFamily(a.kind, a.embedDim) });
    } catch (e) {
      skipped.push({ file, why: (e as Error).message });
    }
  }
  return { found, skipped };
}

/** Every CLIP vision model in `dir` (single files and transformers folders) by its header. */
export function scanVisionModels(dir: string): VisionCandidate[] {
  const out: VisionCandidate[] = [];
  for (const p of entries(dir)) {
    if (fs.statSync(p).isFile() && !p.endsWith('.safetensors')) continue;
    try {
      const c: ClipVisionConfig = resolveClipVision(p).config;
      out.push({ file: p, hiddenSize: c.hiddenSize, projectionDim: c.projectionDim });
    } catch {
      /* not a CLIP vision model: not a candidate */
    }
  }
  return out;
}

/** The vision width an adapter takes: image_embeds (projection_dim) for base, hidden states (hidden_size) otherwise. */
const visionWidth = (v: VisionCandidate, kind: IpAdapterKind) => (kind === 'base' ? v.projectionDim : v.hiddenSize);

export interface PresetChoice {
  adapter: AdapterCandidate;
  vision: VisionCandidate;
  /** How it was found, as a sentence for the log. */
  how: string;
}

const rel = (root: string, f: string) => path.relative(root, f) || f;

/**
 * Finds the preset's adapter in `<models>/ipadapter` and its CLIP vision model in `<models>/clip_vision` by
 * shapes. `crossDim` is the UNet's cross_attention_dim (768 for SD1.5): adapters for another width (SDXL) are
 * not candidates. `chosen` picks among several files of the family (or names the file to use), checked by
 * shape too. Throws a sentence naming what was found and what is missing.
 */
export function findPreset(modelsDir: string, preset: IpAdapterPreset, crossDim: number, chosen: { adapter?: string; vision?: string } = {}): PresetChoice {
  const family = FAMILY[preset];
  if (!family) throw new Error(`unknown preset "${preset}" (known: ${IPADAPTER_PRESETS.join(', ')})`);
  const twins = IPADAPTER_PRESETS.filter((p) => FAMILY[p] === family);
  const adDir = path.join(modelsDir, 'ipadapter');
  const { found } = scanAdapters(adDir);
  const describe = (a: AdapterCandidate) =>
    `${rel(modelsDir, a.file)} (${a.family ?? `${a.kind}, ${a.embedDim} wide`}, ${a.tokens} tokens, cross ${a.crossDim})`;
  const fit = found.filter((a) => a.family === family && a.crossDim === crossDim);
  let adapter: AdapterCandidate | undefined;
  if (chosen.adapter) {
    adapter = found.find((a) => path.resolve(a.file) === path.resolve(chosen.adapter!));
    if (!adapter) throw new Error(`the chosen adapter ${chosen.adapter} is not an IP-Adapter file in ${adDir}`);
    if (!fit.includes(adapter))
      throw new Error(`the chosen adapter ${describe(adapter)} does not have the shapes of the "${preset}" preset (${family}, cross-attention ${crossDim})`);
  } else if (fit.length === 1) {
    adapter = fit[0];
  } else if (fit.length > 1) {
    throw new Error(
      `${fit.length} files in ${adDir} have the shapes of the "${preset}" preset (${family}): ${fit.map((a) => rel(modelsDir, a.file)).join(', ')}` +
        (twins.length > 1 ? `; ${twins.join(' and ')} share these shapes, so they cannot be told apart by them` : '') +
        '; choose one in "ipadapter_file"',
    );
  } else {
    throw new Error(
      `no IP-Adapter in ${adDir} has the shapes of the "${preset}" preset (${family}, cross-attention ${crossDim}: ` +
        `${family.startsWith('base') ? 'a base projection, 4 tokens' : family.startsWith('plus') ? 'a Resampler, 16 tokens' : 'an MLP over all vision tokens'}); ` +
        (found.length ? `found: ${found.map(describe).join('; ')}` : 'the folder holds no IP-Adapter file'),
    );
  }
  const a = adapter!;
  const vDir = path.join(modelsDir, 'clip_vision');
  const visions = scanVisionModels(vDir);
  const vfit = visions.filter((v) => visionWidth(v, a.kind) === a.embedDim);
  const vdesc = (v: VisionCandidate) => `${rel(modelsDir, v.file)} (hidden ${v.hiddenSize}, projection ${v.projectionDim ?? 'none'})`;
  let vision: VisionCandidate | undefined;
  if (chosen.vision) {
    vision = visions.find((v) => path.resolve(v.file) === path.resolve(chosen.vision!));
    if (!vision) throw new Error(`the chosen CLIP vision model ${chosen.vision} is not a CLIP vision model in ${vDir}`);
    if (!vfit.includes(vision))
      throw new Error(`the chosen CLIP vision model ${vdesc(vision)} does not give the ${a.embedDim}-wide input ${rel(modelsDir, a.file)} takes`);
  } else if (vfit.length === 1) {
    vision = vfit[0];
  } else if (vfit.length > 1) {
    throw new Error(
      `${vfit.length} CLIP vision models in ${vDir} give the ${a.embedDim}-wide input ${rel(modelsDir, a.file)} takes: ${vfit.map((v) => rel(modelsDir, v.file)).join(', ')}; choose one in "clip_name"`,
    );
  } else {
    const want = a.kind === 'base' ? `image embeddings (projection_dim) ${a.embedDim} wide` : `hidden states (hidden_size) ${a.embedDim} wide`;
    throw new Error(
      `found the adapter ${describe(a)} for "${preset}", but no CLIP vision model in ${vDir} gives ${want} (${family.endsWith('bigG') ? 'OpenCLIP ViT-bigG/14' : 'OpenCLIP ViT-H/14'}); ` +
        (visions.length ? `found: ${visions.map(vdesc).join('; ')}` : 'the folder holds no CLIP vision model'),
    );
  }
  const v = vision!;
  const how = `"${preset}": ${describe(a)}${twins.length > 1 ? ` (by shape one of ${twins.join(' / ')})` : ''} and the CLIP vision model ${vdesc(v)}, found by their tensor shapes`;
  return { adapter: a, vision: v, how };
}
