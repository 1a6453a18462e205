/**
 * Applies a graph profile (onnx/profile.ts) to a built float32 model: plumbing removal for GPU providers, the
 * profile's fused ops (onnx/fusions.ts), then its precision pass (onnx/fp16.ts; int8: issue 17). The result is a
 * model with its own name (`<name>-<profile id>`) and key, so each profile has its own cache folder.
 * The CPU fp32 profile returns the model unchanged (today's graph, bytes and key).
 */
import { type BuiltModel, type ModelSpec } from './graph.js';
import { float16Spec } from './fp16.js';
import { applyFusions } from './fusions.js';
import type { GraphProfile } from './profile.js';
import { type Int8Context, int8Spec } from './quantize.js';
import { opSupport } from './provider-ops.js';

/**
 * Drops the Identity nodes that only rename a value to a graph output name (Graph.output): the producer writes
 * the output directly. (WebGPU has no Identity kernel, so each would run on the CPU, a copy out and back.)
 */
export function withoutOutputIdentities(spec: ModelSpec): ModelSpec {
  const outputs = new Set(spec.outputs.map((o) => o.name));
  const inputs = new Set([...spec.inputs.map((i) => i.name), ...spec.initializers.map((t) => t.name)]);
  const uses = new Map<string, number>();
  for (const n of spec.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  const rename = new Map<string, string>();
  const drop = new Set<string>();
  for (const n of spec.nodes) {
    const src = n.inputs[0];
    const dst = n.outputs[0];
    if (n.opType !== 'Identity' || !src || !dst || !outputs.has(dst) || outputs.has(src) || inputs.has(src) || rename.has(src)) continue;
    rename.set(src, dst);
    drop.add(n.name);
  }
  if (!drop.size) return spec;
  const r = (x: string) => rename.get(x) ?? x;
  return {
    ...spec,
    nodes: spec.nodes.filter((n) => !drop.has(n.name)).map((n) => ({ ...n, inputs: n.inputs.map(r), outputs: n.outputs.map(r) })),
  };
}

/**
 * `model` under `profile` (see the file header). `ctx`: where the int8 pass keeps its weight copies (without it, an
 * int8 graph is made for its structure only, its int8 weights unwritten).
 */
export function applyProfile(model: BuiltModel, profile: GraphProfile, ctx?: Int8Context): BuiltModel {
  const plain = profile.fusions.every((f) => f === 'mha');
  if (profile.provider === 'cpu' && profile.precision === 'fp32' && plain) return model;
  let spec = model.spec;
  let files: Record<string, string> = {};
  if (profile.provider !== 'cpu') spec = withoutOutputIdentities(spec);
  spec = applyFusions(spec, profile);
  switch (profile.precision) {
    case 'fp32':
      break;
    case 'fp16':
      spec = float16Spec(spec, model.fp32Nodes, { supportsFp16: (op, domain) => opSupport(profile.provider, op, domain)?.fp16 ?? false });
      break;
    case 'int8':
      ({ spec, files } = int8Spec(spec, model.externalFiles, model.name, ctx));
      break;
  }
  return model.withSpec(spec, { name: `${model.name}-${profile.id}`, salt: profile.id, files });
}
