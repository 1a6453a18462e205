/**
 * Port types and the one `canConnect` rule, shared by the editor (while dragging) and the
 * engine (validation). Pure data: no imports, safe for the renderer bundle.
 */

/** The closed union of port types (upper case, as in ComfyUI). */
export const PORT_TYPES = [
  'MODEL',
  'CLIP',
  'VAE',
  'IMAGE',
  'MASK',
  'CLIP_VISION',
  'IMAGE_EMBEDS',
  'IP_ADAPTER',
  'IP_TOKENS',
  'IP_EMBEDS',
  'CONDITIONING',
  'LATENT',
  'CONTROL_NET',
] as const;
export type PortType = (typeof PORT_TYPES)[number];

/** Colours of port handles and edges, by type. */
export const PORT_COLORS: Record<PortType, string> = {
  MODEL: '#b39ddb',
  CLIP: '#ffd54f',
  VAE: '#ef9a9a',
  IMAGE: '#64b5f6',
  MASK: '#81c784',
  CLIP_VISION: '#a1887f',
  IMAGE_EMBEDS: '#4db6ac',
  IP_ADAPTER: '#f06292',
  IP_TOKENS: '#ff8a65',
  IP_EMBEDS: '#26a69a',
  CONDITIONING: '#ffb74d',
  LATENT: '#e57373',
  CONTROL_NET: '#90a4ae',
};

export interface Endpoint {
  node: string;
  port: string;
  type: PortType;
}

export type ConnectVerdict = { ok: true } | { ok: false; reason: string };

/**
 * Decides whether an output may feed an input: self-link, then cycle, then type.
 * `reaches(a, b)` tells whether node b is already reachable downstream from node a.
 */
export function canConnect(from: Endpoint, to: Endpoint, reaches: (a: string, b: string) => boolean): ConnectVerdict {
  if (from.node === to.node) return { ok: false, reason: 'a node cannot feed itself' };
  if (reaches(to.node, from.node)) return { ok: false, reason: `connecting ${from.node} to ${to.node} would make a cycle` };
  if (from.type !== to.type) return { ok: false, reason: `${from.type} output cannot feed a ${to.type} input` };
  return { ok: true };
}
