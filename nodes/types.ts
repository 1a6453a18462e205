/**
 * Node definitions. A node is declared once (ports, params, category, execute); the palette,
 * the editor's cards, validation and the executor all read the same declaration. The
 * serialisable part (`NodeSpec`) goes to the renderer over the API; `execute` stays in the engine.
 */
import type { NodeSpec, ParamValue } from './spec.js';

// The serialisable declarations live in nodes/spec.ts (a leaf the renderer and engine/api.ts import).
export type { ModelKind, NodeSpec, ParamSpec, ParamValue, PortSpec } from './spec.js';

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
  /**
   * What each listed output depends on, when not on every param and input: the executor gives that
   * output a signature of its own from these only, so a change elsewhere does not re-run the nodes
   * it feeds (Load LoRA: strength_clip does not touch the MODEL output). Unlisted outputs depend on all.
   */
  outputDeps?: Record<string, { params: string[]; inputs: string[] }>;
}
