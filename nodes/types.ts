/**
 * Node definitions. A node is declared once (ports, params, category, execute); the palette,
 * the editor's cards, validation and the executor all read the same declaration. The
 * serialisable part (`NodeSpec`) goes to the renderer over the API; `execute` stays in the engine.
 */
import type { PortType } from './ports.js';

export interface PortSpec {
  name: string;
  type: PortType;
  label?: string;
  /** Optional inputs may stay unconnected. */
  optional?: boolean;
}

/** Model folders under <models> (ComfyUI names). */
export type ModelKind = 'checkpoints' | 'ipadapter' | 'clip_vision' | 'controlnet' | 'vae' | 'tokenizers';

export type ParamSpec =
  | { name: string; label?: string; kind: 'number'; default: number; min?: number; max?: number; step?: number; integer?: boolean; widget?: 'slider' | 'number' | 'seed' }
  | { name: string; label?: string; kind: 'string'; default: string; multiline?: boolean }
  | { name: string; label?: string; kind: 'enum'; default: string; options: string[] }
  | { name: string; label?: string; kind: 'boolean'; default: boolean }
  | { name: string; label?: string; kind: 'file'; default: string; modelKind: ModelKind; /** May stay empty (''). */ optional?: boolean }
  | { name: string; label?: string; kind: 'image'; default: string; /** May stay empty (''). */ optional?: boolean };

export type ParamValue = number | string | boolean;

/** What the renderer receives for each node type. */
export interface NodeSpec {
  type: string;
  title: string;
  category: string;
  description: string;
  inputs: PortSpec[];
  outputs: PortSpec[];
  params: ParamSpec[];
  /** Output nodes (Save/Preview Image) are always executed and never cached. */
  output?: boolean;
}

// ---------------------------------------------------------------------------------------
// Engine side. `NodeDef` = the serialisable NodeSpec + `execute`. Only type imports here, so
// the renderer can keep importing this file (type imports vanish at build time).
// ---------------------------------------------------------------------------------------
import type { ExecContext } from '../engine/context.js';

/** Values flowing on edges, keyed by port name. Their shapes are in nodes/values.ts. */
export type PortValues = Record<string, unknown>;

/**
 * A node type as the engine runs it. `execute` receives the connected inputs (absent when an
 * optional input is unconnected) and the params with defaults filled in; params of kind
 * `file` and `image` arrive as absolute paths, already resolved by the executor.
 */
export interface NodeDef extends NodeSpec {
  execute(inputs: PortValues, params: Record<string, ParamValue>, ctx: ExecContext): Promise<PortValues>;
  /** Checks across params beyond ranges (e.g. multiples of 8); each problem as a sentence. */
  check?(params: Record<string, ParamValue>): { param?: string; message: string }[];
}
