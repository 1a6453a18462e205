/**
 * Conformance cases of the `vae` group, each run twice through the product's loaders:
 * `[diffusers]` from the diffusers folder's vae/ (weights + config.json), and `[ldm]` from the
 * single-file checkpoint (first_stage_model.*) with widths read from shapes and the group count and
 * scaling factor passed explicitly from the same diffusers config (shapes cannot give them).
 * encode runs on the stored `image_tensor` and on init_128.png decoded here with sharp.
 */
import sharp from 'sharp';
import { vaeWeightsFromFile } from '../../../models/keymaps/ldm-vae.js';
import { SafetensorsFile } from '../../../models/safetensors.js';
import { Vae, diffusersVaeFiles, loadVaeConfig, vaeConfigFromWeights } from '../../../models/vae.js';
import { type CaseHandler, type CaseSpec, type Ctx, type Row, compare, toleranceFor } from '../context.js';

const vaes = new Map<string, Promise<Vae>>();

function modelRel(ctx: Ctx, name: string): string {
  const m = ctx.cases.models[name] as unknown;
  const rel = typeof m === 'string' ? m : (m as { path?: string } | undefined)?.path;
  if (!rel) throw new Error(`cases.json: models.${name} is missing`);
  return rel;
}

function vaeFor(ctx: Ctx, variant: 'diffusers' | 'ldm'): Promise<Vae> {
  let v = vaes.get(variant);
  if (!v) {
    const files = diffusersVaeFiles(ctx.modelPath(modelRel(ctx, 'vae')));
    const cfg = loadVaeConfig(files.config);
    const file = variant === 'diffusers' ? files.weights : ctx.modelPath(modelRel(ctx, 'checkpoint_ldm'));
    const weights = vaeWeightsFromFile(SafetensorsFile.open(file));
    const config =
      variant === 'diffusers' ? cfg : vaeConfigFromWeights(weights, { norm_num_groups: cfg.norm_num_groups, scaling_factor: cfg.scaling_factor }, file);
    v = Vae.load(weights, config, ctx.session);
    vaes.set(variant, v);
  }
  return v;
}

/** A PNG as the reference's VaeImageProcessor sees it: RGB uint8 / 255 * 2 - 1, NCHW, float32. */
async function pngToTensor(file: string): Promise<{ data: Float32Array; dims: number[] }> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width: W, height: H, channels: C } = info;
  const out = new Float32Array(C * H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < C; c++) {
        const v = Math.fround(data[(y * W + x) * C + c] / 255);
        out[c * H * W + y * W + x] = Math.fround(2 * v - 1);
      }
    }
  }
  return { data: out, dims: [1, C, H, W] };
}

function nchwToNhwc(x: Float32Array, [B, C, H, W]: number[]): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let i = 0; i < H * W; i++) out[(b * H * W + i) * C + c] = x[(b * C + c) * H * W + i];
  return out;
}

/** One way of loading the VAE a case runs on, and the label its rows carry. */
export interface VaeVariant {
  label: string;
  load: () => Promise<Vae>;
}

/**
 * The rows of a `decode` or `encode` case for each variant. Tensors are read from `refGroup`'s file
 * (the case's own group, or the group whose cases a twin file must reproduce); rows carry `group`
 * and `prefix` before the case name.
 */
export async function vaeCaseRows(
  ctx: Ctx,
  group: string,
  c: CaseSpec,
  variants: VaeVariant[],
  opts: { refGroup?: string; prefix?: string } = {},
): Promise<Row[]> {
  const ref = opts.refGroup ?? group;
  const name = `${opts.prefix ?? ''}${c.name}`;
  const rows: Row[] = [];
  const inputs = (c.inputs ?? {}) as Record<string, unknown>;
  const outputs = (c.outputs ?? {}) as Record<string, unknown>;
  const png = (inputs.image as { png?: string } | undefined)?.png;
  const fromPng = c.name === 'encode' && png ? await pngToTensor(ctx.casePath(png)) : null;
  if (fromPng && inputs.image_tensor) {
    rows.push(compare(group, `${name} png -> image_tensor`, fromPng.data, ctx.f32(ref, inputs.image_tensor), { atol: 0, rtol: 0, exact: true }));
  }
  for (const { label: variant, load } of variants) {
    const model = await load();
    if (c.name === 'decode') {
      const latents = inputs.latents;
      const scaling = (c.params as Record<string, unknown> | undefined)?.scaling_factor;
      if (typeof scaling === 'number' && scaling !== model.config.scaling_factor) {
        rows.push({
          group,
          case: `${name} [${variant}] scaling_factor`,
          status: 'fail',
          detail: `config has ${model.config.scaling_factor}, case expects ${scaling}`,
        });
      }
      const { image, image01, dims } = await model.decode(ctx.f32(ref, latents), ctx.shape(ref, latents));
      for (const [out, t] of Object.entries(outputs)) {
        const got = out === 'image' ? image : out === 'image_postprocessed_nhwc' ? nchwToNhwc(image01, dims) : null;
        if (!got) {
          rows.push({ group, case: `${name} [${variant}] ${out}`, status: 'fail', detail: `unknown output ${out}` });
          continue;
        }
        rows.push(compare(group, `${name} [${variant}] ${out}`, got, ctx.f32(ref, t), toleranceFor(c, out)));
      }
    } else if (c.name === 'encode') {
      const sources: [string, Float32Array, number[]][] = [['image_tensor', ctx.f32(ref, inputs.image_tensor), ctx.shape(ref, inputs.image_tensor)]];
      if (fromPng) sources.push(['png', fromPng.data, fromPng.dims]);
      for (const [src, data, dims] of sources) {
        const { mean, std } = await model.encode(data, dims);
        for (const [out, t] of Object.entries(outputs)) {
          const got = out === 'latent_mean' ? mean : out === 'latent_std' ? std : null;
          if (!got) {
            rows.push({ group, case: `${name} [${variant}] ${out}`, status: 'fail', detail: `unknown output ${out}` });
            continue;
          }
          rows.push(compare(group, `${name} [${variant}] ${out} (${src})`, got, ctx.f32(ref, t), toleranceFor(c, out)));
        }
      }
    } else {
      throw new Error(`${group}/${c.name}: unknown VAE case (expected decode or encode)`);
    }
  }
  return rows;
}

export const vae: CaseHandler = (ctx, group, c) =>
  vaeCaseRows(
    ctx,
    group,
    c,
    (['diffusers', 'ldm'] as const).map((v) => ({ label: v, load: () => vaeFor(ctx, v) })),
  );
