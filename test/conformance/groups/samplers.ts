/**
 * The `samplers` folder's sampler groups (diffusers 0.30.3 schedulers on the tiny set-A pipeline
 * with the image prompt), each run through the executor from workflow JSON with a KSampler node
 * in place of the DDIM Sampler (../pipeline-runner.ts buildWorkflow / runCase): Load Checkpoint
 * (the model_dir's diffusers folder), the image prompt through CLIP Vision Encode, IP-Adapter
 * Projection and Apply IP-Adapter (λ = ip_adapter_scale), Text Encode x2, Empty Latent Image or
 * Load Image -> VAE Encode, KSampler, VAE Decode, Preview Image.
 *
 * SAMPLER_CASES maps each group to the KSampler settings that equal its diffusers scheduler (the
 * README's table), and to the scheduler config that equality holds for: the case's recorded
 * scheduler_config is checked against it (and against the checkpoint's own config for the betas
 * and steps_offset), so a passing group says "this sampler x scheduler is that diffusers config".
 * img2img cases run ComfyUI's denoise rule: steps = init_timestep, denoise = strength, which
 * schedules trunc(steps / denoise) = num_inference_steps steps and runs the last `steps`.
 *
 * Noise: the case's `latents` are the text-to-image draw; `noise` holds every other draw in
 * order (noise_draws): the VAE posterior and add_noise draws of img2img first, then the
 * scheduler's per-step draws, which the node's sampler noise stream (draw k) takes in order.
 * Euler's unused draws (s_churn 0) are never requested, nor the draw diffusers' Euler a / DDPM
 * make at their last step (sigma_up = 0; DDPM: 1e-10 z), which ComfyUI skips.
 *
 * Latents: diffusers' Euler-family schedulers hold sigma-space latents like ours; the VP ones
 * (DPM++, UniPC, DDPM, LCM) hold x / sqrt(sigma^2 + 1), so our per-step latents are mapped with
 * the sigma each step reached (the node's `sigmas` trace) before the comparison; diffusers' DDIM
 * (the diffusers_* + ddim path) runs in VP itself.
 */
import type { NoiseRequest, NoiseSource } from '../../../engine/context.js';
import { schedulerFor } from '../../../nodes/runtime/networks.js';
import type { SamplerName, SchedulerName } from '../../../models/sampling/plan.js';
import { diffusersInitNoiseScale } from '../../../models/sampling/schedulers.js';
import { type CaseHandler, type CaseSpec, type Ctx, type Row, compare, toleranceFor } from '../context.js';
import { type Captured, type ModelChoice, buildWorkflow, getEngine, runCase, unknownFieldRows } from '../pipeline-runner.js';
import * as path from 'node:path';

interface SamplerCase {
  sampler: SamplerName;
  scheduler: SchedulerName;
  /** The diffusers class this equals and the keys of its config that the equality needs. */
  cls: string;
  config: Record<string, unknown>;
}

const NO_EXTRAS = { thresholding: false, rescale_betas_zero_snr: false, trained_betas: null, prediction_type: 'epsilon' };
const DPM = {
  ...NO_EXTRAS,
  algorithm_type: 'dpmsolver++',
  solver_order: 2,
  solver_type: 'midpoint',
  lower_order_final: true,
  euler_at_final: false,
  use_lu_lambdas: false,
  final_sigmas_type: 'zero',
  variance_type: null,
};
const EULER = {
  ...NO_EXTRAS,
  timestep_spacing: 'leading',
  use_karras_sigmas: false,
  interpolation_type: 'linear',
  final_sigmas_type: 'zero',
  timestep_type: 'discrete',
  sigma_min: null,
  sigma_max: null,
};

/** Group -> the KSampler settings equal to its diffusers scheduler (README: Samplers and schedulers). */
export const SAMPLER_CASES: Record<string, SamplerCase> = {
  sampler_euler: { sampler: 'euler', scheduler: 'diffusers_leading', cls: 'EulerDiscreteScheduler', config: EULER },
  sampler_euler_ancestral: {
    sampler: 'euler_ancestral',
    scheduler: 'diffusers_leading',
    cls: 'EulerAncestralDiscreteScheduler',
    config: { ...NO_EXTRAS, timestep_spacing: 'leading' },
  },
  sampler_dpmpp_2m: {
    sampler: 'dpmpp_2m',
    scheduler: 'diffusers_leading',
    cls: 'DPMSolverMultistepScheduler',
    config: { ...DPM, use_karras_sigmas: false, timestep_spacing: 'leading' },
  },
  // ComfyUI's karras (its own table, k-diffusion's ramp): the spacing is ignored with Karras sigmas.
  sampler_dpmpp_2m_karras: { sampler: 'dpmpp_2m', scheduler: 'karras', cls: 'DPMSolverMultistepScheduler', config: { ...DPM, use_karras_sigmas: true } },
  sampler_ddim_trailing: {
    sampler: 'ddim',
    scheduler: 'diffusers_trailing',
    cls: 'DDIMScheduler',
    config: { ...NO_EXTRAS, timestep_spacing: 'trailing', clip_sample: false },
  },
  sampler_ddim_linspace: {
    sampler: 'ddim',
    scheduler: 'diffusers_linspace',
    cls: 'DDIMScheduler',
    config: { ...NO_EXTRAS, timestep_spacing: 'linspace', clip_sample: false },
  },
  sampler_heun: {
    sampler: 'heun',
    scheduler: 'diffusers_leading',
    cls: 'HeunDiscreteScheduler',
    config: { ...NO_EXTRAS, timestep_spacing: 'leading', use_karras_sigmas: false },
  },
  // LCM's timesteps ignore the spacing: any diffusers_* scheduler gives them.
  sampler_lcm: {
    sampler: 'lcm',
    scheduler: 'diffusers_leading',
    cls: 'LCMScheduler',
    config: { ...NO_EXTRAS, original_inference_steps: 50, timestep_scaling: 10, clip_sample: false },
  },
  sampler_unipc: {
    sampler: 'uni_pc',
    scheduler: 'diffusers_leading',
    cls: 'UniPCMultistepScheduler',
    config: {
      ...NO_EXTRAS,
      solver_order: 2,
      predict_x0: true,
      solver_type: 'bh2',
      lower_order_final: true,
      disable_corrector: [],
      solver_p: null,
      use_karras_sigmas: false,
      final_sigmas_type: 'zero',
      timestep_spacing: 'leading',
    },
  },
  sampler_lms: {
    sampler: 'lms',
    scheduler: 'diffusers_leading',
    cls: 'LMSDiscreteScheduler',
    config: { ...NO_EXTRAS, timestep_spacing: 'leading', use_karras_sigmas: false },
  },
  sampler_ddpm: {
    sampler: 'ddpm',
    scheduler: 'diffusers_leading',
    cls: 'DDPMScheduler',
    config: { ...NO_EXTRAS, timestep_spacing: 'leading', variance_type: 'fixed_small', clip_sample: false },
  },
  // ComfyUI's ddim_uniform at denoise 0.6: the leading schedule's sigmas; img2img starts at sigma_0 either way.
  sampler_img2img_euler: { sampler: 'euler', scheduler: 'ddim_uniform', cls: 'EulerDiscreteScheduler', config: EULER },
  sampler_img2img_dpmpp_2m_karras: {
    sampler: 'dpmpp_2m',
    scheduler: 'karras',
    cls: 'DPMSolverMultistepScheduler',
    config: { ...DPM, use_karras_sigmas: true },
  },
};

const VP_CLASSES = new Set(['DPMSolverMultistepScheduler', 'UniPCMultistepScheduler', 'DDPMScheduler', 'LCMScheduler', 'DDIMScheduler']);

const KNOWN = {
  inputs: new Set(['prompt', 'negative_prompt', 'ip_adapter_image', 'latents', 'noise', 'image']),
  params: new Set([
    'scheduler_class',
    'from_config_overrides',
    'scheduler_config',
    'num_inference_steps',
    'guidance_scale',
    'do_classifier_free_guidance',
    'ip_adapter_scale',
    'eta',
    'scheduler_order',
    'timesteps',
    'timesteps_dtype',
    'unet_timesteps_per_eval',
    'num_unet_evaluations',
    'init_noise_sigma',
    'sigmas',
    'height',
    'width',
    'strength',
    'init_timestep',
    't_start',
    'begin_index',
    'latent_timestep',
    'note_timesteps',
    'note_noisy_latents',
  ]),
  outputs: new Set(['latents', 'image']),
  intermediates: new Set([
    'prompt_embeds',
    'image_embeds',
    'ip_tokens',
    'unet_model_input_per_eval',
    'unet_noise_pred_per_eval',
    'latents_after_step',
    'sigmas',
    'timesteps',
    'image_tensor',
    'init_latents',
    'noisy_latents',
  ]),
};

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The scheduler config the case recorded against the mapping's and the checkpoint's; a failing row names each difference. */
async function configRow(ctx: Ctx, group: string, c: CaseSpec, m: SamplerCase, cap: Captured, label: string): Promise<Row> {
  const p = c.params as Record<string, unknown>;
  const cfg = p.scheduler_config as Record<string, unknown>;
  const bad: string[] = [];
  if (p.scheduler_class !== m.cls || cfg._class_name !== m.cls) bad.push(`class ${String(p.scheduler_class)} (the mapping equals ${m.cls})`);
  for (const [k, v] of Object.entries(m.config)) if (!same(cfg[k], v)) bad.push(`${k} ${JSON.stringify(cfg[k])} (needs ${JSON.stringify(v)})`);
  for (const [k, v] of Object.entries((p.from_config_overrides ?? {}) as Record<string, unknown>))
    if (!same(cfg[k], v)) bad.push(`override ${k} not in the config`);
  if (cap.checkpoint) {
    const own = (await schedulerFor(getEngine(ctx).store, cap.checkpoint)).config as unknown as Record<string, unknown>;
    for (const k of ['num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'steps_offset'])
      if (!same(cfg[k], own[k])) bad.push(`${k} ${JSON.stringify(cfg[k])} but the checkpoint's is ${JSON.stringify(own[k])}`);
    if (m.cls === 'DDIMScheduler' && cfg.set_alpha_to_one !== own.set_alpha_to_one) bad.push("set_alpha_to_one differs from the checkpoint's");
  } else bad.push('the run reported no checkpoint');
  if (p.eta !== 0) bad.push(`eta ${String(p.eta)} (the KSampler has none)`);
  const cfgOn = (p.guidance_scale as number) > 1;
  if (p.do_classifier_free_guidance !== cfgOn)
    bad.push(`do_classifier_free_guidance ${String(p.do_classifier_free_guidance)} but guidance ${String(p.guidance_scale)} ${cfgOn ? 'runs' : 'skips'} CFG`);
  return { group, case: label, status: bad.length ? 'fail' : 'pass', detail: bad.length ? bad.join('; ') : `${m.sampler} + ${m.scheduler} = ${m.cls}` };
}

function stack(xs: Float32Array[] | undefined): Float32Array {
  if (!xs?.length) return new Float32Array();
  const out = new Float32Array(xs.reduce((a, x) => a + x.length, 0));
  let o = 0;
  for (const x of xs) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

const cat = (...xs: (Float32Array | undefined)[]) => (xs.some((x) => !x) ? new Float32Array() : stack(xs as Float32Array[]));

/** Per-eval rows: the first step whose values fail is named. */
function stepRows(group: string, label: string, got: Float32Array[], expected: Float32Array, tol: { atol: number; rtol: number }): Row {
  const row = compare(group, label, stack(got), expected, tol);
  if (row.status === 'fail' && got.length && expected.length === got.length * got[0]!.length) {
    const per = got[0]!.length;
    for (let i = 0; i < got.length; i++) {
      const r = compare(group, label, got[i]!, expected.subarray(i * per, (i + 1) * per), tol);
      if (r.status === 'fail') {
        row.detail = `first divergence at eval ${i} of ${got.length} (max err there ${r.maxAbsErr?.toExponential(3)})`;
        break;
      }
    }
  }
  return row;
}

export const samplerGroup: CaseHandler = async (ctx, group, c) => {
  const m = SAMPLER_CASES[group];
  if (!m) return [{ group, case: c.name, status: 'fail', detail: 'no KSampler mapping for this group' }];
  const rows: Row[] = unknownFieldRows(group, c, KNOWN);
  const inp = c.inputs as Record<string, unknown>;
  const p = c.params as Record<string, unknown>;
  const inter = c.intermediates as Record<string, unknown>;
  const outs = c.outputs as Record<string, unknown>;
  const N = p.num_inference_steps as number;
  const img2img = inp.image !== undefined;
  const strength = img2img ? (p.strength as number) : 1;
  const steps = img2img ? (p.init_timestep as number) : N;
  // One draw's size: a latent (B, 4, h, w) of the case's noise / latents tensors.
  const n = ctx
    .shape(group, inp.noise ?? inp.latents)
    .slice(inp.noise ? 1 : 0)
    .reduce((x, d) => x * d, 1);
  const label = (what: string) => `${c.name} [diffusers] ${what}`;

  // The explicit draws: latents (txt2img), then noise[] in order (noise_draws says who drew each).
  const all = inp.noise ? ctx.f32(group, inp.noise) : new Float32Array();
  const draws = (c.noise_draws ?? []) as { drawn_in: string; role: string }[];
  const firstStep = draws.findIndex((d) => d.drawn_in.includes('.schedulers.'));
  const at = (k: number) => {
    if (k < 0 || (k + 1) * n > all.length) throw new Error(`the case has no noise tensor ${k}`);
    return all.slice(k * n, (k + 1) * n);
  };
  const source: NoiseSource = (req: NoiseRequest) => {
    if (req.purpose === 'latents' && inp.latents) return ctx.f32(group, inp.latents);
    if (req.purpose === 'posterior' && img2img) return at(0);
    if (req.purpose === 'add_noise' && img2img) return at(1);
    if (req.purpose === 'sampler' && firstStep >= 0) return at(firstStep + (req.step ?? 0));
    throw new Error(`the case gives no tensor for the ${req.purpose} draw${req.step === undefined ? '' : ` ${req.step}`}`);
  };

  const root = ctx.modelDir;
  const choice: ModelChoice = {
    label: 'diffusers',
    checkpoint: { ckpt_name: path.join(root, 'diffusers') },
    clipVision: path.join(root, 'image_encoder'),
    ipAdapter: path.join(root, 'ip-adapter_sd15-tiny.safetensors'),
  };
  const one = inp.ip_adapter_image as { png?: string } | undefined;
  const wf = buildWorkflow(
    ctx,
    {
      prompt: String(inp.prompt ?? ''),
      negative: String(inp.negative_prompt ?? ''),
      ipImages: one?.png ? [one.png] : [],
      scale: p.ip_adapter_scale as number,
      steps,
      cfg: p.guidance_scale as number,
      eta: 0,
      width: (p.width ?? 128) as number,
      height: (p.height ?? 128) as number,
      init: img2img ? { png: (inp.image as { png: string }).png, strength } : undefined,
      sampler: {
        type: 'ksampler',
        params: { seed: 0, steps, cfg: p.guidance_scale as number, sampler_name: m.sampler, scheduler: m.scheduler, denoise: strength },
      },
    },
    choice,
  );
  let cap: Captured;
  try {
    cap = await runCase(ctx, wf, source);
  } catch (e) {
    return [...rows, { group, case: label('run'), status: 'fail', detail: `error: ${(e as Error).message}` }];
  }
  rows.push(await configRow(ctx, group, c, m, cap, label('scheduler config')));
  const tolL = toleranceFor(c, 'latents');
  const tolStep = toleranceFor(c, 'latents_after_step');
  const tolU = toleranceFor(c, 'unet_noise_pred_per_eval');
  const exact = { atol: 0, rtol: 0, exact: true };
  const named = (k: string) => cap.named.get(k)?.[0];
  const ourSigmas = Array.from(named('sampler.sigmas') ?? []);
  const ourTs = Array.from(named('sampler.timesteps') ?? []);
  const heun = p.scheduler_order === 2;

  // Schedule: the run's timesteps against the case's (the last `steps` of N in img2img; Heun lists its interior twice).
  const refTs = p.timesteps as number[];
  const tensorTs =
    ctx.cases.groups[group]!.cases.length && inter.timesteps
      ? Array.from(p.timesteps_dtype === 'int64' ? ctx.i64(group, inter.timesteps) : ctx.f32(group, inter.timesteps), Number)
      : [];
  const uniq = heun ? refTs.filter((t, i) => i === 0 || i % 2 === 1) : refTs;
  const begin = img2img ? (p.begin_index as number) : 0;
  const tsRow = compare(group, label('timesteps'), ourTs, uniq.slice(begin), exact);
  if (!same(tensorTs, refTs)) Object.assign(tsRow, { status: 'fail', detail: 'intermediates.timesteps differs from params.timesteps' });
  if (p.timesteps_dtype === 'int64' && ourTs.some((t) => !Number.isInteger(t)))
    Object.assign(tsRow, { status: 'fail', detail: "the case's timesteps are integers, ours are not" });
  rows.push(tsRow);
  const evalTs = (cap.steps.get('unet_timestep') ?? []).map((t) => t[0]!);
  const evRow = compare(group, label('unet_timesteps_per_eval'), evalTs, p.unet_timesteps_per_eval as number[], exact);
  const wantEvals = heun ? 2 * steps - 1 : steps;
  if (evalTs.length !== p.num_unet_evaluations || (p.num_unet_evaluations as number) !== wantEvals)
    Object.assign(evRow, {
      status: 'fail',
      detail: `${evalTs.length} evaluations, the case ${String(p.num_unet_evaluations)}, order ${String(p.scheduler_order)} needs ${wantEvals}`,
    });
  rows.push(evRow);
  if (p.sigmas) {
    // Heun: diffusers' list [s0, s1, s1, ..., s_{N-1}, s_{N-1}, 0]; img2img: from begin_index.
    const ours = heun ? ourSigmas.flatMap((s, i) => (i === 0 || i === ourSigmas.length - 1 ? [s] : [s, s])) : ourSigmas;
    const ref = (p.sigmas as number[]).slice(heun ? 2 * begin : begin);
    const sigTol = { atol: 0, rtol: 2e-5 }; // ComfyUI's float64 table vs diffusers' float32 one (karras); the diffusers_* tables match exactly
    const r = compare(group, label('sigmas'), ours, ref, sigTol);
    const t = inter.sigmas ? ctx.f32(group, inter.sigmas) : null;
    if (t && !same(Array.from(t), p.sigmas)) Object.assign(r, { status: 'fail', detail: 'intermediates.sigmas differs from params.sigmas' });
    rows.push(r);
  }

  // The sigma each evaluation's latents reached (VP classes' latents are x / sqrt(sigma^2 + 1)).
  const vp = VP_CLASSES.has(m.cls) && !(m.cls === 'DDIMScheduler');
  const reached: number[] = [];
  for (let i = 0; i + 1 < ourSigmas.length; i++) {
    if (heun && ourSigmas[i + 1]! > 0) reached.push(ourSigmas[i + 1]!);
    reached.push(ourSigmas[i + 1]!);
  }
  const toRef = (x: Float32Array, sigma: number) => (vp ? x.map((v) => v / Math.sqrt(sigma * sigma + 1)) : x);
  const start = named('sampler.start_latents');
  const s0 = ourSigmas[0] ?? 0;
  if (!img2img) {
    // diffusers: latents * init_noise_sigma (Euler family in sigma space; VP: 1).
    const want = ctx.f32(group, inp.latents).map((v) => v * (p.init_noise_sigma as number));
    rows.push(compare(group, label('start latents = latents x init_noise_sigma'), start ? toRef(start, s0) : [], want, tolL));
  } else {
    // img2img never multiplies by init_noise_sigma; it is the full schedule's, from its first sigma.
    const fam = m.cls.startsWith('DPM') ? 'dpm' : 'euler';
    const sig = p.sigmas as number[];
    const scale = diffusersInitNoiseScale(fam, 'leading', sig[0]!); // sigma space: VP classes record it divided by sqrt(sigma_0^2 + 1), i.e. 1
    rows.push(
      compare(group, label('init_noise_sigma'), [vp ? scale / Math.sqrt(sig[0]! ** 2 + 1) : scale], [p.init_noise_sigma as number], { atol: 0, rtol: 1e-6 }),
    );
    const ok = typeof p.note_timesteps === 'string' && typeof p.note_noisy_latents === 'string';
    const first = evalTs[0];
    const bad = [
      Math.trunc(steps / strength) !== N && `trunc(${steps} / ${strength}) is not ${N}`,
      (p.t_start !== N - steps || p.begin_index !== N - steps) && `t_start / begin_index ${String(p.t_start)} / ${String(p.begin_index)}, ours ${N - steps}`,
      first !== p.latent_timestep && `first timestep ${first}, latent_timestep ${String(p.latent_timestep)}`,
      !ok && 'notes missing',
    ].filter(Boolean);
    rows.push({
      group,
      case: label('img2img start (steps = init_timestep, denoise = strength)'),
      status: bad.length ? 'fail' : 'pass',
      detail: bad.join('; ') || `steps ${steps}, denoise ${strength}: ${N} scheduled, the last ${steps} run`,
    });
    rows.push(compare(group, label('image_tensor'), named('vae_encode.image_tensor') ?? [], ctx.f32(group, inter.image_tensor), tolL));
    rows.push(compare(group, label('init_latents'), named('vae_encode.init_latents') ?? [], ctx.f32(group, inter.init_latents), tolL));
    rows.push(compare(group, label('noisy_latents'), start ? toRef(start, s0) : [], ctx.f32(group, inter.noisy_latents), tolL));
  }

  // Conditioning ([uncond, cond] with CFG, cond alone without).
  const cfgOn = p.do_classifier_free_guidance === true;
  const both = (u: Float32Array | undefined, k: Float32Array | undefined) => (cfgOn ? cat(u, k) : (k ?? new Float32Array()));
  rows.push(
    compare(group, label('prompt_embeds'), both(named('negative.prompt_embeds'), named('positive.prompt_embeds')), ctx.f32(group, inter.prompt_embeds), tolL),
  );
  const imgDim = ctx.shape(group, inter.image_embeds).at(-1)!;
  rows.push(
    compare(group, label('image_embeds'), both(new Float32Array(imgDim), named('vision_encode_1.image_embeds')), ctx.f32(group, inter.image_embeds), tolL),
  );
  rows.push(
    compare(group, label('ip_tokens'), both(named('projection.ip_tokens_uncond'), named('projection.ip_tokens')), ctx.f32(group, inter.ip_tokens), tolL),
  );

  // Per evaluation: what the UNet got (the batch repeats the sample per branch), its raw output, the latents after it.
  const branches = cfgOn ? 2 : 1;
  const inputs = (cap.steps.get('unet_model_input') ?? []).map((x) => (branches === 2 ? cat(x, x) : x));
  rows.push(stepRows(group, label('unet_model_input_per_eval'), inputs, ctx.f32(group, inter.unet_model_input_per_eval), tolStep));
  rows.push(stepRows(group, label('unet_noise_pred_per_eval'), cap.steps.get('noise_pred') ?? [], ctx.f32(group, inter.unet_noise_pred_per_eval), tolU));
  const lat = (cap.steps.get('latents_after_step') ?? []).map((x, i) => toRef(x, reached[i] ?? 0));
  rows.push(stepRows(group, label('latents_after_step'), lat, ctx.f32(group, inter.latents_after_step), tolStep));
  rows.push(compare(group, label('latents'), cap.latents ? toRef(cap.latents, ourSigmas.at(-1) ?? 0) : [], ctx.f32(group, outs.latents), tolL));
  rows.push(compare(group, label('image'), cap.image ?? [], ctx.f32(group, outs.image), toleranceFor(c, 'image')));
  return rows;
};
