/**
 * ComfyUI node (not supported): the placeholder an imported ComfyUI workflow keeps for a node this
 * app has no counterpart for (engine/interop/comfyui/). It keeps the node's class, title, widget
 * values and sockets, and its links stay edges of the workflow, so nothing of the original is
 * lost and the canvas shows what to replace. Its ports are its own (the `inputs` / `outputs`
 * params, JSON lists of {name, type}): validation does not check the ports of its edges, and it
 * refuses to run the workflow while the placeholder is in it, saying which ComfyUI node it is
 * and why it is not supported.
 */
import { dynamicPortsOf } from './spec.js';
import type { NodeDef } from './types.js';

export const COMFYUI_NODE_TYPE = 'comfyui-node';

/** A placeholder's ports, from its `inputs` / `outputs` params (JSON lists of {name, type}). */
export const placeholderPorts = dynamicPortsOf;

export const comfyuiNode: NodeDef = {
  type: COMFYUI_NODE_TYPE,
  title: 'ComfyUI node (not supported)',
  category: 'ComfyUI',
  description:
    "A node of an imported ComfyUI workflow that has no counterpart here. It keeps the original node's values and links so nothing is lost; replace it with nodes of this app (or remove it) before running.",
  inputs: [],
  outputs: [],
  dynamicPorts: true,
  params: [
    { name: 'class_type', label: 'ComfyUI node', kind: 'string', default: '' },
    { name: 'title', kind: 'string', default: '' },
    { name: 'reason', label: 'why not supported', kind: 'string', default: '', multiline: true },
    { name: 'widgets', label: 'values (JSON)', kind: 'string', default: '{}', multiline: true },
    { name: 'inputs', label: 'inputs (JSON)', kind: 'string', default: '[]' },
    { name: 'outputs', label: 'outputs (JSON)', kind: 'string', default: '[]' },
  ],
  check(params) {
    const cls = String(params.class_type || 'unknown');
    const title = params.title && params.title !== cls ? ` "${params.title}"` : '';
    return [
      {
        param: 'class_type',
        message: `ComfyUI node ${cls}${title} is not supported here: ${params.reason || 'no equivalent node'}. Replace it with nodes of this app, or remove it, to run the workflow`,
      },
    ];
  },
  async execute(_inputs, params) {
    throw new Error(`ComfyUI node ${String(params.class_type)} is not supported here: ${String(params.reason)}`);
  },
};
