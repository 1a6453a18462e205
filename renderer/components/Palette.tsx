/**
 * The node palette: a search box (`Search nodes`) over every node spec, grouped by category.
 * Opens at the pointer on a double-click on the canvas, or from the toolbar / Shift+A.
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import type { NodeSpec } from '../../nodes/types.js';
import { useEditor } from '../editor.js';

interface Props {
  at: { x: number; y: number };
  onPick(type: string): void;
  onClose(): void;
}

function matches(spec: NodeSpec, q: string): boolean {
  if (!q) return true;
  const hay = `${spec.title} ${spec.type} ${spec.category} ${spec.description}`.toLowerCase();
  return q
    .toLowerCase()
    .split(/\s+/)
    .every((w) => hay.includes(w));
}

export function Palette({ at, onPick, onClose }: Props) {
  const specs = useEditor((s) => s.specList);
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

  const found = useMemo(() => {
    // The ComfyUI placeholder (dynamicPorts) is made by imports only.
    const list = specs.filter((s) => !s.dynamicPorts && matches(s, q));
    // Title matches first when searching, then by category order of appearance.
    if (q) list.sort((a, b) => Number(!a.title.toLowerCase().startsWith(q.toLowerCase())) - Number(!b.title.toLowerCase().startsWith(q.toLowerCase())));
    return list;
  }, [specs, q]);
  const groups = useMemo(() => {
    const m = new Map<string, NodeSpec[]>();
    for (const s of found) m.set(s.category, [...(m.get(s.category) ?? []), s]);
    return [...m];
  }, [found]);
  const flat = groups.flatMap(([, l]) => l);

  const style = {
    left: Math.max(8, Math.min(at.x, window.innerWidth - 320)),
    top: Math.max(8, Math.min(at.y, window.innerHeight - 440)),
  };
  return (
    <div className="palette" ref={root} style={style} role="dialog" aria-label="Add node">
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
