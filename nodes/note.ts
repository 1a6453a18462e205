/** Note: text on the canvas (ComfyUI's Note). No ports; it never runs and is saved with the workflow. */
import type { NodeDef } from './types.js';

export const NOTE_TYPE = 'note';

export const note: NodeDef = {
  type: NOTE_TYPE,
  title: 'Note',
  category: 'Utilities',
  description: 'Text on the canvas, saved with the workflow; it does not run.',
  inputs: [],
  outputs: [],
  params: [{ name: 'text', kind: 'string', default: '', multiline: true }],
  virtual: 'note',
  async execute() {
    throw new Error('internal: a note never runs (engine/graph-modes.ts leaves it out)');
  },
};
