/**
 * Reroute: a dot on a wire, to route long links tidily (ComfyUI's Reroute). It has one input and
 * one output of any type, and takes the type of what feeds it. Canvas only: before validation
 * engine/graph-modes.ts joins the wire through it, so it never executes and changes no signature.
 */
import type { NodeDef } from './types.js';

export const REROUTE_TYPE = 'reroute';

export const reroute: NodeDef = {
  type: REROUTE_TYPE,
  title: 'Reroute',
  category: 'Utilities',
  description: 'A point on a wire: one input, one output of the same type (whatever feeds it). Use it to route long links; it changes nothing in the run.',
  inputs: [],
  outputs: [],
  params: [],
  virtual: 'reroute',
  async execute() {
    throw new Error('internal: a reroute is joined into the wire it carries before the run (engine/graph-modes.ts)');
  },
};
