/**
 * Primitive: one value for several params (ComfyUI's PrimitiveNode and widget-to-input). Turn a
 * param of a node into an input (its card's menu), wire the primitive's `value` output to it, and
 * every param it feeds takes the primitive's value; its widget is the first fed param's. Its value
 * is the `value` param (a number, string or boolean). Canvas only: engine/graph-modes.ts writes the
 * value into the params it feeds before validation, so they are checked against their own ranges and
 * the nodes' signatures are what they would be with the value typed in.
 */
import type { NodeDef } from './types.js';

export const PRIMITIVE_TYPE = 'primitive';
/** The output port a primitive feeds params from. */
export const PRIMITIVE_PORT = 'value';

export const primitive: NodeDef = {
  type: PRIMITIVE_TYPE,
  title: 'Primitive',
  category: 'Utilities',
  description: "One value for several params: turn a node's param into an input (right-click the node) and wire this node's value to it.",
  inputs: [],
  outputs: [],
  params: [],
  virtual: 'primitive',
  async execute() {
    throw new Error('internal: a primitive gives its value to the params it feeds before the run (engine/graph-modes.ts)');
  },
};
