/**
 * What flows between ComfyUI nodes while a workflow is translated (engine/interop/comfyui/import.ts),
 * and the context a node's translator (node-map.ts) works with. A ComfyUI output becomes a Value:
 * usually an output port of one of our nodes; ComfyUI_IPAdapter_plus' IPADAPTER pipeline (adapter
 * and CLIP vision together) and EMBEDS (encoder outputs, possibly combined) are bundles resolved
 * where they are used, and a primitive is its value. Pure types.
 */
import type { ParamValue } from '../../../nodes/spec.js';
import type { CNode } from './read.js';
import type { InputDef, NodeDefC } from './defs.js';
import type { ModelPattern } from './models.js';

/** An output port of one of our nodes (or of a placeholder, whose port types are ComfyUI's). */
export interface PortVal {
  kind: 'port';
  node: string;
  port: string;
  type: string;
}

export type Value =
  | PortVal
  /** ComfyUI_IPAdapter_plus' IPADAPTER: the adapter, and the CLIP vision model when the loader gave one. */
  | { kind: 'ipadapter'; adapter: PortVal; clipVision?: PortVal }
  /** EMBEDS: CLIP vision outputs (IMAGE_EMBEDS ports) and how they are combined; weight as IPAdapterEncoder scaled them. */
  | { kind: 'embeds'; list: PortVal[]; method: string; weight: number }
  /** IPAdapterEncoder's neg_embed: the unconditional embeds Apply IP-Adapter uses by itself. */
  | { kind: 'uncond' }
  /** IPAdapter Noise's image: a negative image prompt made of noise. */
  | { kind: 'noise'; from: string }
  /** A primitive's value (PrimitiveNode, PrimitiveInt, ...). */
  | { kind: 'const'; value: unknown; from: string; control?: string }
  /** Nothing: unconnected, muted, or a link to a node that is not in the file. */
  | { kind: 'none'; why?: string };

export interface AddOptions {
  /** Params that come from ComfyUI's widgets (authoritative). */
  params?: Record<string, unknown>;
  /** Params chosen here where ComfyUI has no widget (an export's stored params override them). */
  derived?: Record<string, ParamValue>;
  /** File params chosen by pattern (IPAdapterUnifiedLoader's presets). */
  patterns?: Record<string, ModelPattern>;
}

/** What a translator sees of the node it translates and of the workflow being built. */
export interface TranslateContext {
  readonly node: CNode;
  readonly def: NodeDefC | undefined;
  /** The spec types this build has (a translator picks e.g. KSampler over DDIM when it exists). */
  hasType(type: string): boolean;
  /** The type an export from here stored for one of this node's roles (a DDIM Sampler exported as KSampler). */
  storedType(role: string): string | undefined;
  /** The value reaching a link input (through reroutes, bypassed nodes and primitives). */
  input(name: string): Value;
  linked(name: string): boolean;
  /** A widget's value: the primitive feeding it, else the saved value, else ComfyUI's default. */
  widget(name: string): unknown;
  widgetDef(name: string): InputDef | undefined;
  /** Adds one of our nodes for this ComfyUI node; `role` '' is the main one. Returns its id. */
  add(role: string, type: string, o?: AddOptions): string;
  port(id: string, port: string): PortVal;
  /** Connects a value to an input of one of our nodes (a bundle gives the part that input takes). */
  connect(v: Value, node: string, port: string): void;
  /** Something differs from ComfyUI: the node is approximated. */
  approx(note: string): void;
  /** A remark that does not change the status. */
  info(note: string): void;
  /** The node cannot be translated: it becomes a placeholder (throws). */
  unsupported(reason: string): never;
  /** Who reads output `slot` of this node: [ComfyUI node, input name]. */
  consumers(slot: number): { node: CNode; input: string }[];
  /** Marks the node as not running in ComfyUI either (kept in meta). */
  skip(note: string): void;
}

export type Translator = (c: TranslateContext) => Value[];
