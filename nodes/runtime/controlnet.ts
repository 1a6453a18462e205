/**
 * The ControlNets of a sampler run (nodes/ddim-sampler.ts): Apply ControlNet (nodes/apply-controlnet.ts)
 * only records an AppliedControl on a CONDITIONING; this runtime loads the ControlNets through the
 * model store and gives the UNet its residuals at each step.
 *
 * For each control active at step i (diffusers' rule: i/n >= start and (i+1)/n <= end) it runs
 * the ControlNet on the latents, the timestep and the TEXT embeddings of the CFG branches carrying
 * it (never the image tokens), scales the 12 down + 1 mid residuals by the strength, sums them
 * over controls (MultiControlNetModel), and returns them in batch order for the UNet's residual
 * inputs (zeros for branches or steps without control).
 * Prepared `inUNet` (GPU providers: models/unet-controlnet.ts), it makes no sessions: it gives the merged graph's
 * ControlNet graphs and keys, and per step each one's control image (every batch row) and strength per row
 * (0 outside its window and on the branches it is not applied to).
 */
import { ControlNet, type ControlResiduals, buildControlNet, sumResiduals, zeroResiduals } from '../../models/controlnet.js';
import { type LoadedControlNet, checkControlNetFitsUNet, loadControlNet as loadControlNetFile } from '../../models/controlnet-load.js';
import { resizeTo } from '../../models/preprocessors/resize.js';
import { UNET_SESSION_OPTIONS } from '../../models/unet.js';
import type { BuiltModel } from '../../models/onnx/graph.js';
import type { ControlNetFeed } from '../../models/unet-call.js';
import type { UNetConfig } from '../../models/unet-config.js';
import type { ExecContext } from '../../engine/context.js';
import type { ModelStore } from '../../engine/model-store.js';
import type { AppliedControl, ConditioningValue, ControlNetValue, ImageValue } from '../values.js';
import { imageToPixels } from './pixels.js';

/** Parsed headers and config of a ControlNet (cheap; cached in the store). */
export function controlNetParts(store: ModelStore, v: ControlNetValue): Promise<LoadedControlNet> {
  return store.get(`controlnet-parts|${store.fileKey(v.path)}|${store.fileKey(v.configPath)}`, () =>
    loadControlNetFile(v.path, v.configPath ? { configPath: v.configPath } : {}),
  );
}

/** The controls attached to a conditioning. */
export function controlsOf(c: ConditioningValue): AppliedControl[] {
  return (c.controls ?? []).filter((x): x is AppliedControl => !!x && (x as AppliedControl).kind === 'CONTROL');
}

/** diffusers' controlnet_keep: the control acts at step i of n iff i/n >= start and (i+1)/n <= end. */
export function controlActive(c: Pick<AppliedControl, 'start' | 'end'>, i: number, n: number): boolean {
  return !(i / n < c.start || (i + 1) / n > c.end);
}

function sameImage(a: ImageValue, b: ImageValue): boolean {
  if (a === b) return true;
  if (a.batch !== b.batch || a.width !== b.width || a.height !== b.height) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}

function sameControl(a: AppliedControl, b: AppliedControl): boolean {
  return (
    a.controlnet.path === b.controlnet.path &&
    a.controlnet.configPath === b.controlnet.configPath &&
    a.strength === b.strength &&
    a.start === b.start &&
    a.end === b.end &&
    sameImage(a.image, b.image)
  );
}

/**
 * The control image as the ControlNet's input, (batch, 3, H, W) in [0, 1]. An image of another
 * size is stretched to H x W with Lanczos, as diffusers' control image processor does; an image
 * batch of 1 is repeated for every latent.
 */
export function controlCondTensor(img: ImageValue, batch: number, H: number, W: number): Float32Array {
  if (img.batch !== 1 && img.batch !== batch)
    throw new Error(`the control image batch has ${img.batch} images for ${batch} latents; use 1 image or one per latent`);
  const plane = H * W;
  const out = new Float32Array(batch * 3 * plane);
  for (let b = 0; b < batch; b++) {
    const k = img.batch === 1 ? 0 : b;
    let src: Float32Array;
    if (img.width === W && img.height === H) {
      src = img.data.subarray(k * plane * 3, (k + 1) * plane * 3);
    } else {
      const p = resizeTo(imageToPixels(img, k), W, H, { mode: 'stretch', filter: 'lanczos' });
      src = Float32Array.from(p.data, (v) => v / 255);
    }
    for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[(b * 3 + c) * plane + i] = src[i * 3 + c];
  }
  return out;
}

/** A control shared by one or more CFG branches: run once on those branches' rows. */
interface ControlGroup {
  control: AppliedControl;
  branches: number[];
  loaded: LoadedControlNet;
  /** The model store key of its ControlNet graph and the graph's builder. */
  key: string;
  build: () => BuiltModel;
  /** Its own session (separate sessions only). */
  net: ControlNet | null;
  /** Separate sessions: (branches.length * batch, 3, H, W), its rows; inside the UNet: (all branches * batch, 3, H, W). */
  cond: { data: Float32Array; dims: number[] };
  /** Inside the UNet: its strength per batch row inside its window (0 on the rows of the other branches), and zeros. */
  scales: [Float32Array, Float32Array] | null;
}

export interface SamplerControlOptions {
  /** The UNet the residuals feed (its widths must match the ControlNets'). */
  unet: UNetConfig;
  /** Checkpoint path, for error messages. */
  checkpointPath: string;
  /** The conditioning of each CFG branch in batch order: [negative, positive], or [positive] without guidance. */
  branches: ConditioningValue[];
  /** Latent batch, height and width (one branch). */
  batch: number;
  height: number;
  width: number;
  /** The ControlNets go inside the UNet's session (models/unet-controlnet.ts): no sessions of their own. */
  inUNet?: boolean;
}

/** True when any branch carries a control: the sampler then needs the UNet built with residual inputs. */
export function hasControls(branches: ConditioningValue[]): boolean {
  return branches.some((c) => controlsOf(c).length > 0);
}

/**
 * Refuses a ControlNet made for another base model before any UNet or ControlNet graph is built:
 * only cached file headers and configs are read, so a wrong file fails in milliseconds.
 */
export async function checkControlsFit(ctx: ExecContext, branches: ConditioningValue[], unet: UNetConfig, checkpointPath: string): Promise<void> {
  for (const c of branches) {
    for (const control of controlsOf(c)) checkControlNetFitsUNet(await controlNetParts(ctx.models, control.controlnet), unet, checkpointPath);
  }
}

/** The ControlNets of one sampler run, ready to give the UNet's residual feeds at each step. */
export class SamplerControl {
  private zeros: ControlResiduals | null = null;

  private constructor(
    private readonly groups: ControlGroup[],
    private readonly o: SamplerControlOptions,
  ) {}

  /** Loads the ControlNets (sessions cached in the model store) and prepares the control images. */
  static async prepare(ctx: ExecContext, o: SamplerControlOptions): Promise<SamplerControl> {
    const found: { control: AppliedControl; branches: number[] }[] = [];
    o.branches.forEach((c, k) => {
      for (const control of controlsOf(c)) {
        const g = found.find((x) => !x.branches.includes(k) && sameControl(x.control, control));
        if (g) g.branches.push(k);
        else found.push({ control, branches: [k] });
      }
    });
    const groups: ControlGroup[] = [];
    const nb = o.branches.length;
    for (const g of found) {
      const v = g.control.controlnet;
      const loaded = await controlNetParts(ctx.models, v);
      checkControlNetFitsUNet(loaded, o.unet, o.checkpointPath);
      const key = `controlnet|${ctx.models.fileKey(v.path)}|${ctx.models.fileKey(v.configPath)}`;
      const build = () => buildControlNet(loaded.config, loaded.weights).build();
      // Same options as the UNet (weights used in place, no prepacked copies): the bench's ControlNet figures.
      const session = o.inUNet ? null : await ctx.models.session(key, build, UNET_SESSION_OPTIONS);
      const f = 2 ** (loaded.config.conditioningEmbeddingOutChannels.length - 1);
      const H = o.height * f;
      const W = o.width * f;
      const one = controlCondTensor(g.control.image, o.batch, H, W);
      // Inside the UNet every ControlNet sees every row; the rows of branches without it get strength 0.
      const rows = o.inUNet ? nb : g.branches.length;
      const data = new Float32Array(one.length * rows);
      for (let j = 0; j < rows; j++) data.set(one, j * one.length);
      let scales: ControlGroup['scales'] = null;
      if (o.inUNet) {
        const on = new Float32Array(nb * o.batch);
        for (const k of g.branches) on.fill(g.control.strength, k * o.batch, (k + 1) * o.batch);
        scales = [on, new Float32Array(nb * o.batch)];
      }
      groups.push({
        ...g,
        loaded,
        key,
        build,
        net: session ? ControlNet.fromSession(loaded, session) : null,
        cond: { data, dims: [rows * o.batch, 3, H, W] },
        scales,
      });
    }
    return new SamplerControl(groups, o);
  }

  /** The ControlNets' model store keys, in the merged graph's order (models/unet-controlnet.ts unetControlNetKey). */
  get keys(): string[] {
    return this.groups.map((g) => g.key);
  }

  /** The ControlNets' graphs, in the same order, for models/unet-controlnet.ts. */
  graphs(): BuiltModel[] {
    return this.groups.map((g) => g.build());
  }

  /** Whether any ControlNet acts at step i of n (its window holds the step). */
  activeAt(i: number, n: number): boolean {
    return this.groups.some((g) => controlActive(g.control, i, n));
  }

  /** The merged graph's ControlNet inputs at step i of n: each one's image and strength per row (0 outside its window). */
  stepFeeds(i: number, n: number): ControlNetFeed[] {
    return this.groups.map((g) => {
      if (!g.scales) throw new Error('internal: SamplerControl was prepared with separate sessions, not inside the UNet');
      return { cond: g.cond, scale: g.scales[controlActive(g.control, i, n) ? 0 : 1] };
    });
  }

  /**
   * The UNet's ControlNet residuals for step i of n at timestep t. `sample` is the latent batch the
   * UNet sees, (branches * batch, 4, h, w) in branch order (for a 9-channel inpainting UNet, the 4
   * latent channels only); `text` the TEXT embeddings in the same order, (branches * batch, T, C).
   */
  async stepResiduals(i: number, n: number, t: number, sample: Float32Array, text: Float32Array, textDims: number[]): Promise<ControlResiduals> {
    const { batch: B, height: h, width: w } = this.o;
    const nb = this.o.branches.length;
    const C = sample.length / (nb * B * h * w);
    const rowS = B * C * h * w;
    const rowT = text.length / nb;
    let acc: ControlResiduals | null = null;
    for (const g of this.groups) {
      if (!controlActive(g.control, i, n)) continue;
      const all = g.branches.length === nb;
      const pick = (x: Float32Array, row: number) => {
        if (all) return x;
        const out = new Float32Array(g.branches.length * row);
        g.branches.forEach((k, j) => out.set(x.subarray(k * row, (k + 1) * row), j * row));
        return out;
      };
      const m = g.branches.length * B;
      if (!g.net) throw new Error('internal: SamplerControl was prepared inside the UNet; it has no ControlNet sessions');
      const r = await g.net.run({
        sample: { data: pick(sample, rowS), dims: [m, C, h, w] },
        timestep: new Float32Array(m).fill(t),
        encoderHiddenStates: { data: pick(text, rowT), dims: [m, textDims[1], textDims[2]] },
        cond: g.cond,
        scale: g.control.strength,
      });
      acc = sumResiduals(acc, all ? r : this.scatter(r, g.branches));
    }
    return acc ?? this.zeroResiduals();
  }

  /** Residuals of some branches placed into the full batch (zeros elsewhere). */
  private scatter(r: ControlResiduals, branches: number[]): ControlResiduals {
    const nb = this.o.branches.length;
    const place = (x: { data: Float32Array; dims: number[] }) => {
      const row = x.data.length / branches.length;
      const data = new Float32Array(row * nb);
      branches.forEach((k, j) => data.set(x.data.subarray(j * row, (j + 1) * row), k * row));
      return { data, dims: [(x.dims[0] / branches.length) * nb, ...x.dims.slice(1)] };
    };
    return { down: r.down.map(place), mid: place(r.mid) };
  }

  private zeroResiduals(): ControlResiduals {
    this.zeros ??= zeroResiduals(this.o.unet, this.o.branches.length * this.o.batch, this.o.height, this.o.width);
    return this.zeros;
  }
}
