/**
 * LoRA files: which module of the base model each key belongs to, the low-rank pair (down = A,
 * up = B) and its factor alpha / rank, in the layouts people have:
 *
 *   kohya-ss sd-scripts (civitai):   lora_unet_<module with _>.lora_down.weight / .lora_up.weight / .alpha,
 *                                    lora_te_<module with _>... for the text encoder; conv modules
 *                                    (LoCon / conv_dim) have a conv down (the base kernel) and a 1x1 up;
 *   diffusers / PEFT:                unet.<module>.lora_A.weight / .lora_B.weight, text_encoder.<module>...;
 *   older diffusers:                 <module>.lora.down.weight / .lora.up.weight, text encoder
 *                                    <module>.lora_linear_layer.down / .up, attention processors'
 *                                    <attn>.processor.to_q_lora.down.weight (to_out_lora = to_out.0).
 *
 * kohya names are the diffusers module path with every `.` replaced by `_`; splitting them back
 * is ambiguous (to_out_0, ff_net_0_proj, transformer_blocks, conv_shortcut), so the map goes the
 * other way: every module of the base model, name.replace('.', '_'), looked up (as ComfyUI does).
 * Single-file LDM names (lora_unet_input_blocks_1_1_proj_in) are looked up the same way.
 *
 * A LoRA's tensors stay in its file (graphs take them as external data, models/lora-graph.ts);
 * fp16 / bf16 ones are cast to float32 in the graph. Keys that name no module of the model are
 * returned by name (`unmatched`), never dropped; a LoRA whose pairs do not fit the model's weight
 * shapes (made for SDXL or SD2.x) is refused naming both files.
 */
import * as path from 'node:path';
import { type TensorRef, type SafetensorsFile, readTensorF32 } from './safetensors.js';
import type { WeightMap } from './onnx/graph.js';
import { unetParameterShapes } from './unet.js';
import type { UNetConfig } from './unet-config.js';
import { ldmUnetName } from './keymaps/ldm-unet.js';

/** The base model a LoRA key belongs to. */
export type LoraPart = 'unet' | 'text_encoder';

/** The base model's modules a LoRA may change: module name -> its weight's shape (linear (out, in), conv (out, in, kh, kw)). */
export interface LoraTargets {
  part: LoraPart;
  /** The file holding the base weights, for messages. */
  file: string;
  modules: Map<string, number[]>;
  /** kohya names of other layouts of the same modules (LDM names) -> module name. */
  aliases?: Map<string, string>;
}

/** One module's low-rank pair: ΔW = (alpha / rank) · up @ down. */
export interface LoraModule {
  part: LoraPart;
  /** diffusers / transformers module name (down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q). */
  module: string;
  /** (rank, in) or (rank, in, kh, kw). */
  down: TensorRef;
  /** (out, rank) or (out, rank, 1, 1). */
  up: TensorRef;
  rank: number;
  /** The stored alpha, or rank when the file has none (factor 1). */
  alpha: number;
}

export interface LoraMatch {
  file: string;
  /** kohya, peft, diffusers (older layout), or several. */
  formats: string[];
  modules: LoraModule[];
  /** Keys that name no module of the model (or an incomplete pair), by name. */
  unmatched: string[];
  /** Number of keys in the file. */
  keys: number;
}

const KOHYA = /^(lora_unet|lora_te\d?)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha)$/;
const PEFT = /^(unet|text_encoder)\.(.+)\.(lora_A|lora_B)\.weight$/;
const OLD = /^(?:(unet|text_encoder)\.)?(.+)\.(lora\.down|lora\.up|lora_linear_layer\.down|lora_linear_layer\.up)\.weight$/;
const PROCESSOR = /^(?:(unet)\.)?(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;
const ALPHA = /^(unet|text_encoder)\.(.+)\.alpha$/;

type Role = 'down' | 'up' | 'alpha';
interface Slot {
  part: LoraPart;
  module: string;
  keys: string[];
  down?: TensorRef;
  up?: TensorRef;
  alpha?: TensorRef;
}

const underscore = (name: string) => name.replace(/\./g, '_');

/** The kohya name -> (part, module) map of the targets (lora_unet_ / lora_te_ + name.replace('.', '_')). */
function kohyaNames(targets: LoraTargets[]): Map<string, { part: LoraPart; module: string }> {
  const map = new Map<string, { part: LoraPart; module: string }>();
  for (const t of targets) {
    const prefix = t.part === 'unet' ? 'lora_unet_' : 'lora_te_';
    for (const module of t.modules.keys()) map.set(prefix + underscore(module), { part: t.part, module });
    for (const [alias, module] of t.aliases ?? []) if (!map.has(prefix + alias)) map.set(prefix + alias, { part: t.part, module });
  }
  return map;
}

/**
 * Reads the LoRA pairs of `lora` for the modules of `targets` (the UNet's and/or the text
 * encoder's). Throws when a pair does not fit its module's shape (another model family) or, unless
 * `allowEmpty` (one model part of a LoRA that may change only the other), when no key names a
 * module of the model; keys that fit nothing are returned in `unmatched`.
 */
export function matchLora(lora: SafetensorsFile, targets: LoraTargets[], opts: { allowEmpty?: boolean } = {}): LoraMatch {
  const kohya = kohyaNames(targets);
  const byPart = new Map(targets.map((t) => [t.part, t]));
  const slots = new Map<string, Slot>();
  const unmatched: string[] = [];
  const formats = new Set<string>();
  const put = (part: LoraPart, module: string, role: Role, key: string, format: string): boolean => {
    const t = byPart.get(part);
    if (!t?.modules.has(module)) return false;
    const id = `${part}:${module}`;
    let s = slots.get(id);
    if (!s) {
      s = { part, module, keys: [] };
      slots.set(id, s);
    }
    if (s[role]) throw new Error(`${path.basename(lora.file)}: ${key} repeats the ${role} of ${module} (also ${s.keys.join(', ')})`);
    s[role] = lora.get(key);
    s.keys.push(key);
    formats.add(format);
    return true;
  };
  for (const key of lora.keys()) {
    let m: RegExpExecArray | null;
    let ok = false;
    if ((m = KOHYA.exec(key))) {
      const hit = kohya.get(`${m[1]}_${m[2]}`);
      const role: Role = m[3] === 'alpha' ? 'alpha' : m[3] === 'lora_down.weight' ? 'down' : 'up';
      ok = !!hit && put(hit.part, hit.module, role, key, 'kohya');
    } else if ((m = PEFT.exec(key))) {
      ok = put(m[1] as LoraPart, m[2]!, m[3] === 'lora_A' ? 'down' : 'up', key, 'peft');
    } else if ((m = PROCESSOR.exec(key))) {
      ok = put('unet', `${m[2]}.${m[3] === 'to_out' ? 'to_out.0' : m[3]}`, m[4] as Role, key, 'diffusers');
    } else if ((m = OLD.exec(key))) {
      const module = m[2]!; // groups 2 and 3 are not optional in OLD
      const part = (m[1] ?? (byPart.get('unet')?.modules.has(module) ? 'unet' : 'text_encoder')) as LoraPart;
      ok = put(part, module, m[3]!.endsWith('down') ? 'down' : 'up', key, 'diffusers');
    } else if ((m = ALPHA.exec(key))) {
      ok = put(m[1] as LoraPart, m[2]!, 'alpha', key, 'diffusers');
    }
    if (!ok) unmatched.push(key);
  }

  const modules: LoraModule[] = [];
  const misfits: { module: string; message: string }[] = [];
  for (const s of slots.values()) {
    if (!s.down || !s.up) {
      unmatched.push(...s.keys);
      continue;
    } // half a pair changes nothing: reported
    const base = byPart.get(s.part)!;
    const shape = base.modules.get(s.module)!;
    const misfit = checkFits(lora.file, base, s.module, shape, s.down, s.up);
    if (misfit) {
      misfits.push({ module: s.module, message: misfit });
      continue;
    }
    const rank = s.down.shape[0]!; // checkFits: down is (rank, in) or (rank, in, k, k)
    let alpha = rank;
    if (s.alpha) {
      const [a0, ...rest] = readTensorF32(s.alpha);
      if (a0 === undefined || rest.length || !Number.isFinite(a0))
        throw new Error(`${path.basename(lora.file)}: ${s.alpha.key} must be one finite number, found [${s.alpha.shape}]`);
      alpha = a0;
    }
    modules.push({ part: s.part, module: s.module, down: s.down, up: s.up, rank, alpha });
  }
  if (misfits.length) {
    // The cross-attention width tells the model family best: name that module when one does not fit.
    const first = misfits.find((x) => /attn2\.to_[kv]$/.test(x.module)) ?? misfits[0]!;
    throw new Error(`${first.message}${misfits.length > 1 ? ` (${misfits.length} modules of the LoRA do not fit)` : ''}`);
  }
  if (!modules.length && !opts.allowEmpty) {
    const sdxl = unmatched.some((k) => /^lora_te[12]_|^lora_unet_(input|output)_blocks_\d+_\d+_transformer_blocks_[1-9]/.test(k));
    throw new Error(
      `${path.basename(lora.file)}: none of its ${lora.keys().length} keys names a module of ${targets.map((t) => path.basename(t.file)).join(' / ')}` +
        `${sdxl ? ' (lora_te1_ / lora_te2_ keys: this is an SDXL LoRA; only SD1.x LoRAs are supported)' : ''}; first keys: ${unmatched.slice(0, 5).join(', ')} (file: ${lora.file})`,
    );
  }
  return { file: lora.file, formats: [...formats].sort(), modules, unmatched, keys: lora.keys().length };
}

/** The model family a cross-attention width points to, for the refusal. */
function familyHint(up: TensorRef, down: TensorRef, module: string): string {
  if (/attn2\.to_[kv]$/.test(module)) {
    const w = down.shape[1];
    if (w === 2048) return ' (cross-attention width 2048: an SDXL LoRA)';
    if (w === 1024) return ' (cross-attention width 1024: an SD2.x LoRA)';
  }
  if (up.shape[0] === 1024 && /text_model/.test(module)) return ' (text width 1024: an SD2.x LoRA)';
  if (up.shape[0] === 1280 && /text_model/.test(module)) return ' (text width 1280: an SDXL LoRA)';
  return ' (made for another model: SDXL or SD2.x?)';
}

/** Why a pair does not fit its module (up @ down must have the weight's (out, in[, kh, kw])), or null when it fits. */
function checkFits(loraFile: string, base: LoraTargets, module: string, shape: number[], down: TensorRef, up: TensorRef): string | null {
  const d = down.shape;
  const u = up.shape;
  const conv = shape.length === 4;
  const kernel = conv ? shape.slice(2) : [1, 1];
  const downKernel = d.length === 4 ? d.slice(2) : [1, 1];
  const upKernel = u.length === 4 ? u.slice(2) : [1, 1];
  const ok =
    (d.length === 2 || d.length === 4) &&
    (u.length === 2 || u.length === 4) &&
    u[0] === shape[0] &&
    d[1] === shape[1] &&
    u[1] === d[0] &&
    downKernel.join() === kernel.join() &&
    upKernel.join() === '1,1';
  if (ok) return null;
  return (
    `the LoRA ${path.basename(loraFile)} does not fit ${path.basename(base.file)}: ${module} is [${shape}] in the model, ` +
    `but the LoRA's ${down.key} is [${d}] and ${up.key} is [${u}]${familyHint(up, down, module)}; ` +
    `choose a LoRA made for Stable Diffusion 1.x (LoRA: ${loraFile}; model: ${base.file})`
  );
}

// ---------------------------------------------------------------------------------------
// The modules of the base models, from their own names (diffusers UNet, transformers CLIP text)
// ---------------------------------------------------------------------------------------

/** Where module weights' shapes come from: a checkpoint's weight map, or a parameter list (generated files). */
export type ShapeSource = WeightMap | ReadonlyMap<string, number[]>;
const shapeIn = (w: ShapeSource, name: string): number[] | undefined =>
  w instanceof Map ? w.get(name) : (w as WeightMap).has(name) ? (w as WeightMap).get(name).shape : undefined;

/** Every linear / conv of a UNet (diffusers names) with its weight's shape, as the weight map has it. */
export function unetLoraTargets(cfg: UNetConfig, w: ShapeSource, file: string): LoraTargets {
  const modules = new Map<string, number[]>();
  const aliases = new Map<string, string>();
  for (const [name, shape] of unetParameterShapes(cfg)) {
    if (!name.endsWith('.weight') || (shape.length !== 2 && shape.length !== 4)) continue;
    const actual = shapeIn(w, name);
    if (!actual) continue;
    const module = name.slice(0, -'.weight'.length);
    modules.set(module, actual);
    try {
      aliases.set(underscore(ldmUnetName(cfg, name).slice(0, -'.weight'.length)), module);
    } catch {
      /* no LDM name for this module */
    }
  }
  return { part: 'unet', file, modules, aliases };
}

/** The linears of a CLIP text encoder (transformers names) with their shapes. */
export function clipTextLoraTargets(layers: number, w: ShapeSource, file: string): LoraTargets {
  const modules = new Map<string, number[]>();
  for (let i = 0; i < layers; i++) {
    const l = `text_model.encoder.layers.${i}`;
    for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'mlp.fc1', 'mlp.fc2']) {
      const shape = shapeIn(w, `${l}.${m}.weight`);
      if (shape) modules.set(`${l}.${m}`, shape);
    }
  }
  return { part: 'text_encoder', file, modules };
}

/** A one-line summary of a match: how many modules per part, which keys matched nothing. */
export function describeLoraMatch(m: LoraMatch, limit = 8): string {
  const n = (p: LoraPart) => m.modules.filter((x) => x.part === p).length;
  const head = `${path.basename(m.file)} (${m.formats.join(' + ')}): ${m.keys - m.unmatched.length} of ${m.keys} keys matched, ${n('unet')} UNet and ${n('text_encoder')} text encoder modules`;
  if (!m.unmatched.length) return head;
  const shown = m.unmatched.slice(0, limit).join(', ');
  return `${head}; ${m.unmatched.length} key(s) match no module of the model and are not applied: ${shown}${m.unmatched.length > limit ? `, and ${m.unmatched.length - limit} more` : ''}`;
}

/** A LoRA set as a graph sees it: the distinct files in order, each with the sum of its strengths. */
export function loraStrengths(loras: readonly { path: string; strength: number }[]): { files: string[]; strengths: number[] } {
  const files: string[] = [];
  const strengths: number[] = [];
  for (const l of loras) {
    const i = files.indexOf(l.path);
    if (i >= 0) strengths[i]! += l.strength;
    else {
      files.push(l.path);
      strengths.push(l.strength);
    }
  }
  return { files, strengths };
}

// ---------------------------------------------------------------------------------------
// Parameter lists of LoRA files (for generated demo / test / bench files)
// ---------------------------------------------------------------------------------------

/** kohya-ss sd-scripts' default modules: every linear / conv of the attention, feed-forward and resnet blocks (conv_dim), not conv_in / conv_out / the time embedding. */
export const KOHYA_DEFAULT_MODULES = (module: string): boolean => !/^(conv_in|conv_out|time_embedding)\b/.test(module);
/** Attention (to_q/k/v/out) and feed-forward linears only: the usual diffusers training targets and the benchmark's. */
export const ATTENTION_FF_MODULES = (module: string): boolean =>
  /(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)|self_attn\.(q|k|v|out)_proj|mlp\.fc[12])$/.test(module);

/**
 * The tensors (key -> shape) of a LoRA of `rank` on the selected modules of `targets`, in the
 * kohya layout (lora_unet_ / lora_te_ + name with _, .lora_down / .lora_up / 0-d .alpha; conv
 * modules get a down conv with the base kernel and a 1x1 up) or the PEFT one (unet. / text_encoder.
 * + name, .lora_A / .lora_B, no alpha).
 */
export function loraParameterShapes(
  targets: LoraTargets[],
  format: 'kohya' | 'peft',
  rank: number,
  select: (module: string) => boolean = KOHYA_DEFAULT_MODULES,
): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const t of targets) {
    for (const [module, shape] of t.modules) {
      if (!select(module)) continue;
      const [outC, inC, kh, kw] = shape as [number, number, number?, number?]; // a linear (out, in) or a conv (out, in, k, k)
      const down = shape.length === 4 ? [rank, inC, kh!, kw!] : [rank, inC];
      const up = shape.length === 4 ? [outC, rank, 1, 1] : [outC, rank];
      if (format === 'kohya') {
        const base = `${t.part === 'unet' ? 'lora_unet_' : 'lora_te_'}${underscore(module)}`;
        out.set(`${base}.alpha`, []);
        out.set(`${base}.lora_down.weight`, down);
        out.set(`${base}.lora_up.weight`, up);
      } else {
        const base = `${t.part}.${module}`;
        out.set(`${base}.lora_A.weight`, down);
        out.set(`${base}.lora_B.weight`, up);
      }
    }
  }
  return out;
}
