/**
 * ControlNet inside the UNet session (issue 15): one graph made of a models/unet.ts UNet built with ControlNet
 * residual inputs and k models/controlnet.ts ControlNets, where each ControlNet's residuals are scaled, summed
 * over the ControlNets (diffusers MultiControlNetModel) and added to the UNet's skips in the same forward. On a GPU
 * provider the 12 down + 1 mid residuals of every ControlNet then stay on the device (separate sessions hand each
 * of them back to the CPU and up again, per ControlNet and step).
 *
 * Graph inputs:  the UNet's (sample (B, Cin, h, w), timestep (B,), encoder_hidden_states (B, T, Cctx), the
 *                IP-Adapter and LoRA inputs) except down_block_additional_residual_<i> / mid_block_additional_residual,
 *                and per ControlNet j = 0 .. k-1:
 *                  controlnet_cond_<j> (B, 3, 8h, 8w)  its control image in [0, 1], one per UNet batch row
 *                  controlnet_scale_<j> (B,)           its strength per row: 0 outside its start/end window and on
 *                                                      the CFG rows it is not applied to (so windows never rebuild)
 * Graph output:  noise_pred (B, Cout, h, w), the UNet's.
 * ControlNet j reads the UNet's sample (its first C channels when the UNet takes more, a 9-channel inpainting UNet),
 * timestep and encoder_hidden_states (the TEXT embeddings: the image tokens are separate inputs, which no ControlNet
 * reads). Its nodes, values and initializers are prefixed `controlnet_<j>/`; the weight files of every part stay
 * external data by reference (one location per file), and their F16 / BF16 weights stay listed as half weights.
 */
import { DataType, type BuiltModel, type HalfCast, type NodeSpec, type TensorSpec } from './onnx/graph.js';
import { MID_RESIDUAL, downResidualName } from './controlnet.js';

/** The UNet's residual inputs (models/unet.ts, controlnet: true). */
export const downResidualInput = (i: number) => `down_block_additional_residual_${i}`;
export const MID_RESIDUAL_INPUT = 'mid_block_additional_residual';

/** The merged graph's inputs of ControlNet j. */
export const controlNetCondInput = (j: number) => `controlnet_cond_${j}`;
export const controlNetScaleInput = (j: number) => `controlnet_scale_${j}`;

/** The model store key of a merged graph: the UNet's key, the ControlNets' keys in input order, and their number. */
export function unetControlNetKey(unetKey: string, controlNetKeys: string[]): string {
  return `unet-cn|${unetKey}|${controlNetKeys.map((k) => `[${k}]`).join('')}|k=${controlNetKeys.length}`;
}

const input = (m: BuiltModel, name: string) => m.spec.inputs.find((i) => i.name === name);

/** Every name a graph uses: nodes, values, initializers, inputs. */
function namesOf(m: BuiltModel): Set<string> {
  const s = new Set<string>();
  for (const n of m.spec.nodes) {
    s.add(n.name);
    for (const v of [...n.inputs, ...n.outputs]) if (v) s.add(v);
  }
  for (const t of m.spec.initializers) s.add(t.name);
  for (const i of m.spec.inputs) s.add(i.name);
  return s;
}

/** A float32 model's half weights as Graph.weight makes them: an F16 / BF16 external initializer and its Cast `<init>/cast`. */
function halfCastsOf(m: BuiltModel): HalfCast[] {
  const inits = new Map(m.spec.initializers.map((t) => [t.name, t]));
  const out: HalfCast[] = [];
  for (const n of m.spec.nodes) {
    const t = n.opType === 'Cast' ? inits.get(n.inputs[0] ?? '') : undefined;
    if (!t?.external || n.name !== `${t.name}/cast` || n.outputs[0] !== n.name) continue;
    const dtype = t.dataType === DataType.FLOAT16 ? 'F16' : t.dataType === DataType.BFLOAT16 ? 'BF16' : null;
    const file = m.externalFiles[t.external.location];
    if (!dtype || !file) continue;
    out.push({ init: t.name, cast: n.name, source: { file, offset: t.external.offset, length: t.external.length, dtype } });
  }
  return out;
}

export interface UNetControlNetOptions {
  /** Model name in the cache (default `<unet name>_cn<k>`). */
  name?: string;
}

/**
 * The UNet and its ControlNets as one graph (see the file header). `unet` must have been built with
 * `controlnet: true`; each ControlNet must give as many down residuals as the UNet takes.
 */
export function unetControlNet(unet: BuiltModel, controlnets: readonly BuiltModel[], opts: UNetControlNetOptions = {}): BuiltModel {
  const k = controlnets.length;
  if (!k) throw new Error(`unet-controlnet: no ControlNet to put into the UNet graph ${unet.name}`);
  const downIn = unet.spec.inputs.filter((i) => /^down_block_additional_residual_\d+$/.test(i.name)).length;
  if (!downIn || !input(unet, MID_RESIDUAL_INPUT)) {
    throw new Error(`unet-controlnet: the UNet graph ${unet.name} has no ControlNet residual inputs; build it with controlnet: true`);
  }
  const sample = input(unet, 'sample');
  const unetChannels = sample?.dims[1];
  if (typeof unetChannels !== 'number') throw new Error(`unet-controlnet: the UNet graph ${unet.name} has no sample input of known channels`);
  const taken = namesOf(unet);
  for (const v of taken) {
    if (/^controlnet_(\d+\/|sum\/)/.test(v))
      throw new Error(`unet-controlnet: the UNet graph ${unet.name} already has a value named ${v}, the ControlNets' prefix`);
  }

  // The ControlNets' nodes and the sums first, then the UNet's: the node list stays topologically sorted.
  const nodes: NodeSpec[] = [];
  const initializers: TensorSpec[] = [...unet.spec.initializers];
  const inputs = unet.spec.inputs.filter((i) => !/^down_block_additional_residual_\d+$/.test(i.name) && i.name !== MID_RESIDUAL_INPUT);
  // One location per weight file: the UNet's as they are, each other file a new wN.safetensors.
  const locationOf = new Map(Object.entries(unet.externalFiles).map(([loc, file]) => [file, loc]));
  const files: Record<string, string> = {};
  const locate = (file: string) => {
    let loc = locationOf.get(file);
    if (!loc) {
      loc = `w${locationOf.size}.safetensors`;
      locationOf.set(file, loc);
      files[loc] = file;
    }
    return loc;
  };
  const halfWeights: HalfCast[] = [];
  const fp32Nodes = new Set(unet.fp32Nodes);
  const down: string[][] = Array.from({ length: downIn }, () => []);
  const mid: string[] = [];

  controlnets.forEach((cn, j) => {
    const p = `controlnet_${j}/`;
    const cnSample = input(cn, 'sample');
    const cnCond = input(cn, 'controlnet_cond');
    const cnChannels = cnSample?.dims[1];
    if (typeof cnChannels !== 'number' || !cnCond || !input(cn, 'conditioning_scale')) {
      throw new Error(
        `unet-controlnet: ControlNet ${j} (${cn.name}) lacks the inputs of a models/controlnet.ts graph (sample, controlnet_cond, conditioning_scale)`,
      );
    }
    if (cnChannels > unetChannels)
      throw new Error(`unet-controlnet: ControlNet ${j} (${cn.name}) takes ${cnChannels} latent channels; the UNet's sample has ${unetChannels}`);
    const outputs = new Set(cn.spec.outputs.map((o) => o.name));
    for (let i = 0; i < downIn; i++) {
      if (!outputs.has(downResidualName(i)))
        throw new Error(`unet-controlnet: ControlNet ${j} (${cn.name}) gives no ${downResidualName(i)}, which the UNet takes`);
    }
    if (outputs.size !== downIn + 1 || !outputs.has(MID_RESIDUAL)) {
      throw new Error(`unet-controlnet: ControlNet ${j} (${cn.name}) gives ${outputs.size} residuals; the UNet takes ${downIn} down + 1 mid`);
    }

    // Its inputs: the UNet's sample (first cnChannels channels), timestep and text; its own image and per-row strength.
    let x = 'sample';
    if (cnChannels !== unetChannels) {
      x = `${p}sample`;
      const c = (name: string, v: number) => {
        initializers.push({ name: `${p}${name}`, dataType: DataType.INT64, dims: [1], raw: new Uint8Array(BigInt64Array.of(BigInt(v)).buffer) });
        return `${p}${name}`;
      };
      nodes.push({
        opType: 'Slice',
        inputs: ['sample', c('sample_start', 0), c('sample_end', cnChannels), c('sample_axis', 1)],
        outputs: [x],
        name: x,
        attrs: {},
      }); // (B, C, h, w)
    }
    const cond = controlNetCondInput(j);
    inputs.push({ name: cond, type: cnCond.type, dims: ['batch', cnCond.dims[1] ?? 3, `controlnet_image_height_${j}`, `controlnet_image_width_${j}`] });
    const scale = controlNetScaleInput(j);
    inputs.push({ name: scale, type: DataType.FLOAT, dims: ['batch'] });
    // (B,) -> (B, 1, 1, 1): the ControlNet's Mul(residual, conditioning_scale) then scales each row by its own strength.
    initializers.push({ name: `${p}scale_shape`, dataType: DataType.INT64, dims: [4], raw: new Uint8Array(BigInt64Array.of(-1n, 1n, 1n, 1n).buffer) });
    nodes.push({ opType: 'Reshape', inputs: [scale, `${p}scale_shape`], outputs: [`${p}conditioning_scale`], name: `${p}conditioning_scale`, attrs: {} });
    const rename = new Map([
      ['sample', x],
      ['timestep', 'timestep'],
      ['encoder_hidden_states', 'encoder_hidden_states'],
      ['controlnet_cond', cond],
      ['conditioning_scale', `${p}conditioning_scale`],
    ]);
    for (const i of cn.spec.inputs)
      if (!rename.has(i.name)) throw new Error(`unet-controlnet: ControlNet ${j} (${cn.name}) has an input ${i.name} the merged graph cannot feed`);
    // Its output Identities (Graph.output) go: a residual is read where it is computed (GPU providers list no Identity).
    const alias = new Map<string, string>();
    const dropped = new Set<string>();
    for (const n of cn.spec.nodes) {
      if (n.opType === 'Identity' && outputs.has(n.outputs[0] ?? '') && n.inputs[0]) {
        alias.set(n.outputs[0]!, n.inputs[0]);
        dropped.add(n.name);
      }
    }
    const r = (v: string): string => (v === '' ? v : (rename.get(v) ?? (alias.has(v) ? r(alias.get(v)!) : `${p}${v}`)));
    for (const n of cn.spec.nodes) {
      if (!dropped.has(n.name)) nodes.push({ ...n, name: `${p}${n.name}`, inputs: n.inputs.map(r), outputs: n.outputs.map(r) });
    }
    for (const t of cn.spec.initializers) {
      const file = t.external ? cn.externalFiles[t.external.location] : undefined;
      if (t.external && !file)
        throw new Error(`unet-controlnet: ControlNet ${j} (${cn.name}): weight ${t.name} reads ${t.external.location}, a file the model does not list`);
      initializers.push(
        t.external && file ? { ...t, name: `${p}${t.name}`, external: { ...t.external, location: locate(file) } } : { ...t, name: `${p}${t.name}` },
      );
    }
    for (const h of halfCastsOf(cn)) halfWeights.push({ ...h, init: `${p}${h.init}`, cast: `${p}${h.cast}` });
    for (const n of cn.fp32Nodes) fp32Nodes.add(`${p}${n}`);
    for (let i = 0; i < downIn; i++) down[i]!.push(r(downResidualName(i))); // (B, C_i, h_i, w_i)
    mid.push(r(MID_RESIDUAL)); // (B, C_last, h/8, w/8)
  });

  // Summed over the ControlNets in input order, ((r_0 + r_1) + r_2) ..., into the UNet's residual values; with one
  // ControlNet the UNet reads its residuals as they are (renamed, no Identity).
  const feed = new Map<string, string>();
  const sum = (parts: string[], into: string) => {
    if (parts.length === 1) {
      feed.set(into, parts[0]!);
      return;
    }
    let acc = parts[0]!;
    for (let j = 1; j < parts.length; j++) {
      const out = j === parts.length - 1 ? into : `controlnet_sum/${into}/${j}`;
      nodes.push({ opType: 'Add', inputs: [acc, parts[j]!], outputs: [out], name: `controlnet_sum/${into}/${j}`, attrs: {} });
      acc = out;
    }
  };
  down.forEach((parts, i) => sum(parts, downResidualInput(i)));
  sum(mid, MID_RESIDUAL_INPUT);
  for (const n of unet.spec.nodes) nodes.push(n.inputs.some((v) => feed.has(v)) ? { ...n, inputs: n.inputs.map((v) => feed.get(v) ?? v) } : n);

  return unet.withSpec(
    { nodes, initializers, inputs, outputs: unet.spec.outputs },
    { name: opts.name ?? `${unet.name}_cn${k}`, salt: `controlnet${k}`, fp32Nodes, files, halfWeights },
  );
}
