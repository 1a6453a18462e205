/**
 * LoRA in a network graph without touching the base weights: a ModuleHook (onnx/graph.ts) that
 * gives each module a LoRA changes (models/lora.ts matchLora) its low-rank term, with the
 * strengths a graph input (`lora_scale`, one float per LoRA file), so changing a strength never
 * rebuilds or reloads the network. The base weights stay the user's file in place; the LoRA
 * tensors are external data in place too (fp16 / bf16 ones cast to float32 in the graph).
 *
 * Two equivalent ways per module, s = strength · alpha / rank:
 *   side:  y = x·Wᵀ + (x·Aᵀ)·(s·B)ᵀ          (conv: conv(x, W) + conv1x1(conv(x, A), s·B), A with W's kernel, stride, padding)
 *   merge: y = x·(W + (s·B)·A)ᵀ               (ΔW recomputed in the graph on each call, never stored)
 * `side` costs N·rank·(in + out) per call (N = rows: tokens or pixels times batch), `merge`
 * out·in·rank whatever N is, so 'auto' merges where N·(in + out) > in·out at the reference
 * workload (`rowsFor`: the UNet's full- and half-resolution layers at 512x512) and adds side
 * branches elsewhere (the text encoder, the UNet's low-resolution layers, attn2's to_k / to_v on
 * 77 text tokens). Several LoRAs on one module add their terms. With s = 0 the term is exactly
 * ±0, and W + 0 = W, y + 0 = y: strength 0 gives the plain network's output bit for bit.
 */
import { DataType, dimOf, type Graph, type HookedWeight, type Module, type ModuleHook } from './onnx/graph.js';
import type { LoraMatch, LoraModule, LoraPart } from './lora.js';

/** The graph input with one strength per LoRA file (float32 [L], in the order the graph was built with). */
export const LORA_SCALE_INPUT = 'lora_scale';

export type LoraMode = 'side' | 'merge' | 'auto';

export interface LoraGraphOptions {
  part: LoraPart;
  /** 'auto' (default) picks per module by cost at the reference workload (rowsFor). */
  mode?: LoraMode;
  /** Rows a module sees per call at the reference workload (tokens or output pixels times batch). */
  rowsFor?: (module: string) => number;
}

/**
 * Rows each UNet module sees at 512x512 (64x64 latent) with CFG (batch 2): a module at level l
 * (0 = full resolution) sees 2 · (64 / 2^l)² positions; attn2's to_k / to_v 2 · 77 text tokens;
 * time_emb_proj and the time embedding 2. Only used to pick side or merge (results agree).
 */
export function unetReferenceRows(levels: number): (module: string) => number {
  const at = (l: number) => 2 * (64 / 2 ** l) ** 2;
  return (name) => {
    if (/attn2\.to_[kv]$/.test(name)) return 2 * 77;
    if (name.startsWith('time_embedding') || name.endsWith('time_emb_proj')) return 2;
    let m = /^down_blocks\.(\d+)\.(\w+)/.exec(name);
    if (m) return at(Number(m[1]) + (m[2] === 'downsamplers' ? 1 : 0));
    m = /^up_blocks\.(\d+)\.(\w+)/.exec(name);
    if (m) return at(Math.max(0, levels - 1 - Number(m[1]) - (m[2] === 'upsamplers' ? 1 : 0)));
    return name.startsWith('mid_block') ? at(levels - 1) : at(0);
  };
}

interface Branch {
  lora: number;
  m: LoraModule;
}

/**
 * A hook factory for a builder (buildUNet / buildClipTextEncoder `moduleHook`): declares the
 * `lora_scale` input and changes every module of `part` that one of `loras` names.
 * Returns undefined when no LoRA touches that part (the plain graph).
 */
export function loraModuleHook(loras: readonly LoraMatch[], o: LoraGraphOptions): ((g: Graph) => ModuleHook) | undefined {
  const byModule = new Map<string, Branch[]>();
  loras.forEach((l, lora) => {
    for (const m of l.modules) if (m.part === o.part) byModule.set(m.module, [...(byModule.get(m.module) ?? []), { lora, m }]);
  });
  if (!loras.length) return undefined;
  const mode = o.mode ?? 'auto';
  return (g: Graph): ModuleHook => {
    const scales = g.input(LORA_SCALE_INPUT, DataType.FLOAT, [loras.length]);
    const strength = new Map<number, string>();
    const strengthOf = (i: number) => {
      let s = strength.get(i);
      if (!s) {
        s = g.op('Gather', [scales, g.constI([i], [])], { axis: 0 }, `lora_scale_${i}`);
        strength.set(i, s);
      }
      return s;
    };
    /** s · B as (out, rank) [or its 4-d view]: the factor alpha / rank folds into the strength. */
    const scaledUp = (b: Branch, dims: number[]) => {
      const f = b.m.alpha / b.m.rank;
      const s = f === 1 ? strengthOf(b.lora) : g.op('Mul', [strengthOf(b.lora), g.scalar(f)]);
      return g.op('Mul', [g.weight(`lora${b.lora}.${b.m.module}.up`, b.m.up, dims), s]);
    };
    const down = (b: Branch, dims: number[]) => g.weight(`lora${b.lora}.${b.m.module}.down`, b.m.down, dims);
    const merge = (module: string, rows: number, inF: number, outF: number) => mode === 'merge' || (mode === 'auto' && rows * (inF + outF) > inF * outF);
    const sum = (terms: string[]) => terms.reduce((a, t) => g.op('Add', [a, t]));
    /** The module's (out, in) from the first branch's up (out, r) and down (r, in); a byModule list is never empty. */
    const outIn = (list: Branch[]): [number, number] => {
      const { up, down: d } = list[0]!.m;
      return [dimOf(up.shape, 0, up.key), dimOf(d.shape, 1, d.key)];
    };
    return {
      linear(m: Module, w: string, x: string): HookedWeight {
        const list = byModule.get(m.prefix);
        if (!list) return { weight: w };
        const [outF, inF] = outIn(list);
        const rows = o.rowsFor?.(m.prefix) ?? 0;
        if (merge(m.prefix, rows, inF, outF)) {
          return { weight: list.reduce((acc, b) => g.op('Add', [acc, g.op('MatMul', [scaledUp(b, [outF, b.m.rank]), down(b, [b.m.rank, inF])])]), w) };
        }
        const terms = list.map((b) => g.op('Gemm', [g.op('Gemm', [x, down(b, [b.m.rank, inF])], { transB: 1 }), scaledUp(b, [outF, b.m.rank])], { transB: 1 }));
        return { weight: w, add: sum(terms) };
      },
      conv(m: Module, w: string, x: string, a): HookedWeight {
        const list = byModule.get(m.prefix);
        if (!list) return { weight: w };
        const [kh, kw] = a.kernel;
        const [outF, inF] = outIn(list);
        const rows = o.rowsFor?.(m.prefix) ?? 0;
        if (merge(m.prefix, rows, inF * kh * kw, outF)) {
          const shape = g.constI([outF, inF, kh, kw]);
          return {
            weight: list.reduce(
              (acc, b) => g.op('Add', [acc, g.op('Reshape', [g.op('MatMul', [scaledUp(b, [outF, b.m.rank]), down(b, [b.m.rank, inF * kh * kw])]), shape])]),
              w,
            ),
          };
        }
        const p = a.padding;
        const terms = list.map((b) => {
          const h = g.op('Conv', [x, down(b, [b.m.rank, inF, kh, kw])], { kernel_shape: [kh, kw], pads: [p, p, p, p], strides: [a.stride, a.stride] }); // (N, r, H', W')
          return g.op('Conv', [h, scaledUp(b, [outF, b.m.rank, 1, 1])], { kernel_shape: [1, 1] }); // (N, out, H', W')
        });
        return { weight: w, add: sum(terms) };
      },
    };
  };
}
