/**
 * model-files `lora` group: the IP-Adapter pipeline with LoRA files (diffusers load_lora_weights,
 * PEFT backend), run through the executor as a user wires it: Load Checkpoint -> Load LoRA (one
 * per `lora` model of the case, chained) -> Apply IP-Adapter / Text Encode -> DDIM Sampler -> VAE
 * Decode (pipeline-runner.ts, with its explicit latents).
 *
 * Strengths (the fixture README's "LoRA scale semantics"): diffusers' lora_scale m scales the UNet
 * AND the text encoder LoRA layers, times the adapter weights of set_adapters, so for LoRA i
 * strength_model = m · adapters[i].unet and strength_clip = m · adapters[i].text_encoder (1 each
 * without `adapters`). The case's `lora_unet_multiplier` / `lora_te_multiplier` and its `comfyui`
 * strengths (LoraLoader strength_model / strength_clip) must agree with that: a failing row
 * otherwise. kohya_scale0 must equal no_lora; the reference outputs say so, and the rows compare
 * with them at the case's tolerance (the bit-for-bit check is nodes/load-lora.test.ts').
 */
import * as path from 'node:path';
import type { CaseHandler, CaseSpec, Ctx, Row } from '../context.js';
import { pipelineRows, specOf } from '../pipeline-runner.js';

/** The params this group reads itself; the others go to the pipeline runner. */
const LORA_PARAMS = ['lora_scale', 'lora_unet_multiplier', 'lora_te_multiplier', 'adapters', 'comfyui'];

interface Strengths {
  file: string;
  strengthModel: number;
  strengthClip: number;
}

/** The case's LoRA models (role 'lora', in order) with their strengths, and rows for any disagreement. */
function caseLoras(ctx: Ctx, group: string, c: CaseSpec): { loras: Strengths[]; rows: Row[] } {
  const p = (c.params ?? {}) as Record<string, unknown>;
  const rows: Row[] = [];
  const fail = (what: string, detail: string) => rows.push({ group, case: `${c.name} ${what}`, status: 'fail', detail });
  const entries = ((c.models ?? []) as { role?: string; path?: string }[]).filter((e) => e.role === 'lora');
  const m = p.lora_scale === undefined ? 1 : Number(p.lora_scale);
  if (!Number.isFinite(m)) fail('params.lora_scale', `not a number: ${JSON.stringify(p.lora_scale)}`);
  const adapters = p.adapters as { file: string; unet: number; text_encoder: number }[] | undefined;
  const loras = entries.map((e) => {
    const a = adapters?.find((x) => x.file === e.path);
    if (adapters && !a) fail('params.adapters', `no adapter weights for ${e.path}`);
    return {
      file: ctx.resolve(e, `case ${c.name} lora ${e.path}`),
      entry: e.path!,
      strengthModel: m * (a?.unet ?? 1),
      strengthClip: m * (a?.text_encoder ?? 1),
    };
  });
  if (entries.length && p.lora_scale === undefined && !adapters) fail('params', 'a LoRA case without lora_scale or adapters');
  for (const [k, part] of [
    ['lora_unet_multiplier', 'strengthModel'],
    ['lora_te_multiplier', 'strengthClip'],
  ] as const) {
    if (p[k] === undefined) continue;
    for (const l of loras) if (l[part] !== p[k]) fail(`params.${k}`, `${p[k]} but lora_scale x adapter weight gives ${l[part]} for ${l.entry}`);
  }
  if (p.comfyui !== undefined) {
    const list = (Array.isArray(p.comfyui) ? p.comfyui : [p.comfyui]) as { lora?: string; strength_model: number; strength_clip: number }[];
    if (list.length !== loras.length) fail('params.comfyui', `${list.length} LoraLoader entries for ${loras.length} LoRA models`);
    list.forEach((x, i) => {
      const l = x.lora ? loras.find((y) => y.entry === x.lora) : loras[i];
      if (!l) {
        fail('params.comfyui', `${x.lora} is not among the case's LoRA models`);
        return;
      }
      if (x.strength_model !== l.strengthModel || x.strength_clip !== l.strengthClip) {
        fail(
          'params.comfyui',
          `LoraLoader(${x.strength_model}, ${x.strength_clip}) for ${path.basename(l.file)}, but the diffusers scales give (${l.strengthModel}, ${l.strengthClip})`,
        );
      }
    });
  }
  return { loras: loras.map(({ file, strengthModel, strengthClip }) => ({ file, strengthModel, strengthClip })), rows };
}

/** The case without the params read here (the others still count as read only when the runner reads them). */
function withoutLoraParams(c: CaseSpec): CaseSpec {
  const src = (c.params ?? {}) as Record<string, unknown>;
  const params: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    if (LORA_PARAMS.includes(k)) continue;
    Object.defineProperty(params, k, { get: () => src[k], enumerable: true });
  }
  return new Proxy(c, { get: (t, k, r) => (k === 'params' ? params : Reflect.get(t, k, r)) });
}

export const loraGroup: CaseHandler = async (ctx, group, c) => {
  const { loras, rows } = caseLoras(ctx, group, c);
  const inner = withoutLoraParams(c);
  const out = await pipelineRows(ctx, group, inner, specOf(inner, { loras }), { latents: (c.inputs as Record<string, unknown>).latents });
  return [...rows, ...out];
};
