/**
 * The node palette: a search box (`Search nodes`) over every node spec, grouped by category, or,
 * while searching, one list ranked by relevance (renderer/search.ts: titles, ComfyUI class names,
 * aliases). Opens at the pointer on a double-click on the canvas, or from the toolbar / Shift+A;
 * a wire dropped on empty canvas opens it listing only the nodes with a port that can take it.
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import type { NodeSpec } from '../../nodes/types.js';
import { editor, useEditor } from '../editor.js';
import { portsOf, wireColor, type WireType } from '../graph.js';
import { searchNodes } from '../search.js';
import type { WireDrop } from './Canvas.js';

interface Props {
  at: { x: number; y: number };
  /** A wire dropped on empty canvas: only nodes with a port of its type on the other side. */
  wire?: WireDrop;
  onPick(type: string): void;
  onClose(): void;
}

/** The type of the wire being dropped (a reroute's may be any). */
function wireType(wire: WireDrop): WireType | '*' | null {
  const s = editor.getState();
  const n = s.nodes.find((x) => x.id === wire.node);
  if (!n) return null;
  const ports = portsOf(n, s.specs, s.nodes, s.edges);
  return (wire.side === 'source' ? ports.outputs : ports.inputs).find((p) => p.name === wire.port)?.type ?? null;
}

/** Whether a new node of `spec` can take the wire: a port of that type on the other side (a reroute takes any). */
export function takesWire(spec: NodeSpec, side: WireDrop['side'], type: WireType | '*'): boolean {
  if (type === 'VALUE') return false;
  if (spec.virtual === 'reroute') return true;
  const ports = side === 'source' ? spec.inputs : spec.outputs;
  return ports.some((p) => type === '*' || p.type === type);
}

export function Palette({ at, wire, onPick, onClose }: Props) {
  const all = useEditor((s) => s.specList);
  const type = useMemo(() => (wire ? wireType(wire) : null), [wire]);
  const specs = useMemo(() => (wire && type ? all.filter((s) => takesWire(s, wire.side, type)) : all), [all, wire, type]);
  const [q, setQ] = useState('');
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  const root = useRef<HTMLDivElement>(null);
  useEffect(() => input.current?.focus(), []);
  useEffect(() => {
    const away = (e: PointerEvent) => {
      if (!root.current?.contains(e.target as Node)) onClose();
    };
    window.addEventListener('pointerdown', away, true);
    return () => window.removeEventListener('pointerdown', away, true);
  }, [onClose]);

  // The ComfyUI placeholder (dynamicPorts) is made by imports only.
  const found = useMemo(
    () =>
      searchNodes(
        specs.filter((s) => !s.dynamicPorts),
        q,
      ),
    [specs, q],
  );
  const groups = useMemo(() => {
    // Searching: one list, best match first; browsing: by category.
    if (q.trim()) return [['Best matches', found] as [string, NodeSpec[]]];
    const m = new Map<string, NodeSpec[]>();
    for (const s of found) m.set(s.category, [...(m.get(s.category) ?? []), s]);
    return [...m];
  }, [found, q]);
  const flat = groups.flatMap(([, l]) => l);

  const style = {
    left: Math.max(8, Math.min(at.x, window.innerWidth - 320)),
    top: Math.max(8, Math.min(at.y, window.innerHeight - 440)),
  };
  return (
    <div className="palette" ref={root} style={style} role="dialog" aria-label={wire ? 'Add node for the wire' : 'Add node'}>
      {wire && type && (
        <div className="palette-wire">
          Nodes with {wire.side === 'source' ? 'an input' : 'an output'} of type <b style={{ color: wireColor(type) }}>{type === '*' ? 'any' : type}</b>
        </div>
      )}
      <input
        ref={input}
        type="search"
        aria-label="Search nodes"
        placeholder="Search nodes…"
        value={q}
        onChange={(e) => {
          setQ(e.target.value);
          setActive(0);
        }}
        onKeyDown={(e) => {
          if (e.key === 'Escape') onClose();
          else if (e.key === 'ArrowDown') setActive((a) => Math.min(a + 1, flat.length - 1));
          else if (e.key === 'ArrowUp') setActive((a) => Math.max(a - 1, 0));
          else if (e.key === 'Enter' && flat[active]) onPick(flat[active].type);
          else return;
          e.preventDefault();
        }}
      />
      <div className="palette-list" role="listbox" aria-label="Node types">
        {groups.map(([cat, list]) => (
          <div key={cat} className="palette-group">
            <div className="palette-cat">{cat}</div>
            {list.map((s) => (
              <button
                key={s.type}
                type="button"
                role="option"
                aria-selected={flat[active] === s}
                className={flat[active] === s ? 'active' : undefined}
                title={s.description}
                onClick={() => onPick(s.type)}
                onMouseEnter={() => setActive(flat.indexOf(s))}
              >
                {s.title}
              </button>
            ))}
          </div>
        ))}
        {flat.length === 0 && <div className="palette-empty">No node matches “{q}”.</div>}
      </div>
    </div>
  );
}
