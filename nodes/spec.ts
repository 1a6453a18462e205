/**
 * The serialisable part of a node declaration, as the renderer receives it over the API: ports,
 * params, node specs, and the model folders a file param picks from. Each shape is written once,
 * as a zod schema (the hosts validate with it), and its TypeScript type is derived from it.
 * A leaf module: zod and nodes/ports.ts only, so the engine's contract (engine/api.ts,
 * engine/protocol.ts), the node definitions (nodes/types.ts) and the renderer all import it.
 */
import { z } from 'zod';
import { PORT_TYPES } from './ports.js';

/** Model folders under <models> (ComfyUI names), in the order they are listed. */
export const MODEL_KINDS = ['checkpoints', 'ipadapter', 'clip_vision', 'controlnet', 'vae', 'loras', 'tokenizers'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export const ModelKindSchema = z.enum(MODEL_KINDS);
export const PortTypeSchema = z.enum(PORT_TYPES);

export const PortSpecSchema = z.object({
  name: z.string(),
  type: PortTypeSchema,
  label: z.string().optional(),
  /** Optional inputs may stay unconnected. */
  optional: z.boolean().optional(),
});

const ParamBase = { name: z.string(), label: z.string().optional() };
export const ParamSpecSchema = z.discriminatedUnion('kind', [
  z.object({
    ...ParamBase,
    kind: z.literal('number'),
    default: z.number(),
    min: z.number().optional(),
    max: z.number().optional(),
    step: z.number().optional(),
    integer: z.boolean().optional(),
    widget: z.enum(['slider', 'number', 'seed']).optional(),
  }),
  z.object({
    ...ParamBase,
    kind: z.literal('string'),
    default: z.string(),
    multiline: z.boolean().optional(),
    /** A filename prefix under the output folder (Save Image's): validation refuses one that leaves it. */
    outputPrefix: z.boolean().optional(),
  }),
  z.object({ ...ParamBase, kind: z.literal('enum'), default: z.string(), options: z.array(z.string()) }),
  z.object({ ...ParamBase, kind: z.literal('boolean'), default: z.boolean() }),
  z.object({
    ...ParamBase,
    kind: z.literal('file'),
    default: z.string(),
    modelKind: ModelKindSchema,
    /** May stay empty (''). */
    optional: z.boolean().optional(),
  }),
  z.object({
    ...ParamBase,
    kind: z.literal('image'),
    default: z.string(),
    /** May stay empty (''). */
    optional: z.boolean().optional(),
    /** A mask over the node's other image param (Load Image's): that image's widget paints into this one. */
    mask: z.boolean().optional(),
  }),
]);

/** What the renderer receives for each node type. */
export const NodeSpecSchema = z.object({
  type: z.string(),
  title: z.string(),
  category: z.string(),
  description: z.string(),
  inputs: z.array(PortSpecSchema),
  outputs: z.array(PortSpecSchema),
  params: z.array(ParamSpecSchema),
  /** Output nodes (Save/Preview Image) are always executed and never cached. */
  output: z.boolean().optional(),
  /**
   * The node's ports come from its own params, not from the spec (the ComfyUI placeholder,
   * nodes/comfyui-node.ts): validation does not check the ports of its edges.
   */
  dynamicPorts: z.boolean().optional(),
  /**
   * A canvas-only node (engine/graph-modes.ts resolves it away before validation and running):
   * a reroute passes one link on (its type is its source's), a note holds text, a primitive
   * gives one value to every param it is wired to (params turned into inputs).
   */
  virtual: z.enum(['reroute', 'note', 'primitive']).optional(),
});

export type PortSpec = z.infer<typeof PortSpecSchema>;
export type ParamSpec = z.infer<typeof ParamSpecSchema>;
export type NodeSpec = z.infer<typeof NodeSpecSchema>;

/** A param's value in a workflow. */
export type ParamValue = number | string | boolean;

/**
 * The ports of a node whose spec has `dynamicPorts` (the ComfyUI placeholder): its `inputs` and
 * `outputs` params, JSON lists of {name, type}; the types are ComfyUI's where we have no port
 * type of that name. Anything unreadable gives no ports.
 */
export function dynamicPortsOf(params: Record<string, ParamValue | undefined>): {
  inputs: { name: string; type: string }[];
  outputs: { name: string; type: string }[];
} {
  const list = (v: ParamValue | undefined) => {
    try {
      const a: unknown = JSON.parse(typeof v === 'string' && v ? v : '[]');
      return Array.isArray(a)
        ? a.filter((p): p is { name: string; type: string } => typeof p === 'object' && p !== null && typeof p.name === 'string' && typeof p.type === 'string')
        : [];
    } catch {
      return [];
    }
  };
  return { inputs: list(params.inputs), outputs: list(params.outputs) };
}
