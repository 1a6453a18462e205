/**
 * The canvas's right-click menu: on the canvas (add node, note, reroute, group, paste, tidy), on a
 * node (bypass, mute, collapse, colour, params to inputs and back, group, duplicate, delete), on a
 * wire (add reroute, delete) and on a group (rename, colour, remove). Every item is a store action,
 * so each is one undo step. Keyboard: arrows move, Enter picks, Escape closes.
 */
import { useEffect, useRef, type ReactNode } from 'react';
import { editor } from '../editor.js';
import { GROUP_COLORS } from '../store/document.js';

export type MenuTarget =
  | { kind: 'pane'; x: number; y: number; flow: { x: number; y: number } }
  | { kind: 'node'; id: string; x: number; y: number; flow: { x: number; y: number } }
  | { kind: 'edge'; id: string; x: number; y: number; flow: { x: number; y: number } }
  | { kind: 'group'; id: string; x: number; y: number; flow: { x: number; y: number } };

interface Props {
  target: MenuTarget;
  onClose(): void;
  onAddNode(at: { x: number; y: number }, flow: { x: number; y: number }): void;
  onTidy(): void;
  onRenameGroup(id: string): void;
}

/** Card tints offered for nodes (the header's background). */
export const NODE_COLORS = ['#5a3a3a', '#3a5a3a', '#3a4a6a', '#5a4a2a', '#4a3a5a', '#2a5a5a'];

function Item({ label, onPick, shortcut, checked }: { label: string; onPick(): void; shortcut?: string; checked?: boolean }) {
  return (
    <button type="button" role={checked === undefined ? 'menuitem' : 'menuitemcheckbox'} aria-checked={checked} className="ctx-item" onClick={onPick}>
      <span>{label}</span>
      {shortcut && <kbd>{shortcut}</kbd>}
    </button>
  );
}

function Swatches({ label, colors, onPick }: { label: string; colors: string[]; onPick(c: string | null): void }) {
  return (
    <div className="ctx-swatches" role="group" aria-label={label}>
      <span className="ctx-label">{label}</span>
      {colors.map((c) => (
        <button key={c} type="button" role="menuitem" aria-label={`${label} ${c}`} className="ctx-swatch" style={{ background: c }} onClick={() => onPick(c)} />
      ))}
      <button type="button" role="menuitem" aria-label={`${label}: none`} className="ctx-swatch none" onClick={() => onPick(null)}>
        ×
      </button>
    </div>
  );
}

export function ContextMenu({ target, onClose, onAddNode, onTidy, onRenameGroup }: Props) {
  const root = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const away = (e: PointerEvent) => {
      if (!root.current?.contains(e.target as Node)) onClose();
    };
    const key = (e: KeyboardEvent) => {
      if (e.key === 'Escape') onClose();
      if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
      const items = [...(root.current?.querySelectorAll<HTMLButtonElement>('.ctx-item') ?? [])];
      const i = items.indexOf(document.activeElement as HTMLButtonElement);
      items[(i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length]?.focus();
      e.preventDefault();
    };
    window.addEventListener('pointerdown', away, true);
    window.addEventListener('keydown', key);
    root.current?.querySelector<HTMLButtonElement>('.ctx-item')?.focus();
    return () => {
      window.removeEventListener('pointerdown', away, true);
      window.removeEventListener('keydown', key);
    };
  }, [onClose]);

  const s = editor.getState();
  const act = (f: () => void) => () => {
    f();
    onClose();
  };
  let items: ReactNode;
  let label = 'Canvas menu';
  if (target.kind === 'pane') {
    items = (
      <>
        <Item label="Add node…" shortcut="Shift+A" onPick={act(() => onAddNode({ x: target.x, y: target.y }, target.flow))} />
        <Item label="Add note" onPick={act(() => void s.addNode('note', target.flow.x, target.flow.y))} />
        <Item label="Add reroute" onPick={act(() => void s.addNode('reroute', target.flow.x, target.flow.y))} />
        <Item label="Add primitive" onPick={act(() => void s.addNode('primitive', target.flow.x, target.flow.y))} />
        {s.nodes.some((n) => n.selected) && <Item label="Group selected nodes" shortcut="Ctrl+G" onPick={act(() => void groupSelected())} />}
        {s.clipboard && <Item label="Paste here" shortcut="Ctrl+V" onPick={act(() => s.paste(target.flow))} />}
        <Item label="Tidy layout" shortcut="Shift+T" onPick={act(onTidy)} />
      </>
    );
  } else if (target.kind === 'node') {
    label = 'Node menu';
    const node = s.nodes.find((n) => n.id === target.id);
    const spec = node && s.specs[node.data.type];
    if (!node) return null;
    // The menu acts on the selection when the node is part of it, else on the node alone.
    const ids = node.selected ? s.nodes.filter((n) => n.selected).map((n) => n.id) : [node.id];
    const real = !spec?.virtual;
    const converted = new Set(node.data.ui?.inputs ?? []);
    items = (
      <>
        {real && (
          <Item
            label={node.data.mode === 'bypass' ? 'Stop bypassing' : 'Bypass'}
            shortcut="Ctrl+B"
            onPick={act(() => s.setMode(ids, node.data.mode === 'bypass' ? null : 'bypass'))}
          />
        )}
        {real && (
          <Item
            label={node.data.mode === 'mute' ? 'Unmute' : 'Mute'}
            shortcut="Ctrl+M"
            onPick={act(() => s.setMode(ids, node.data.mode === 'mute' ? null : 'mute'))}
          />
        )}
        {spec?.virtual !== 'reroute' && (
          <Item
            label={node.data.ui?.collapsed ? 'Expand' : 'Collapse'}
            shortcut="Alt+C"
            onPick={act(() => s.setUi(ids, { collapsed: !node.data.ui?.collapsed }))}
          />
        )}
        {real &&
          spec?.params.map((p) => (
            <Item
              key={p.name}
              label={converted.has(p.name) ? `Convert ${p.label ?? p.name} to widget` : `Convert ${p.label ?? p.name} to input`}
              onPick={act(() => s.convertParam(node.id, p.name, !converted.has(p.name)))}
            />
          ))}
        <Item label="Group" shortcut="Ctrl+G" onPick={act(() => void s.addGroup(ids))} />
        <Item
          label="Duplicate"
          shortcut="Ctrl+D"
          onPick={act(() => {
            editor.setState({ nodes: s.nodes.map((n) => ({ ...n, selected: ids.includes(n.id) })) });
            if (editor.getState().copy()) editor.getState().paste();
          })}
        />
        <Item
          label="Delete"
          shortcut="Delete"
          onPick={act(() => {
            editor.setState({ nodes: s.nodes.map((n) => ({ ...n, selected: ids.includes(n.id) })), edges: s.edges.map((e) => ({ ...e, selected: false })) });
            editor.getState().deleteSelected();
          })}
        />
        {spec?.virtual !== 'reroute' && <Swatches label="Colour" colors={NODE_COLORS} onPick={(c) => act(() => s.setUi(ids, { color: c ?? undefined }))()} />}
      </>
    );
  } else if (target.kind === 'edge') {
    label = 'Wire menu';
    items = (
      <>
        <Item label="Add reroute" onPick={act(() => void s.addReroute(target.id, target.flow.x, target.flow.y))} />
        <Item
          label="Delete wire"
          onPick={act(() => {
            s.commit();
            editor.setState({ edges: editor.getState().edges.filter((e) => e.id !== target.id) });
          })}
        />
      </>
    );
  } else {
    label = 'Group menu';
    items = (
      <>
        <Item label="Rename group…" onPick={act(() => onRenameGroup(target.id))} />
        <Item label="Remove group (keep its nodes)" onPick={act(() => s.removeGroup(target.id))} />
        <Swatches label="Group colour" colors={GROUP_COLORS} onPick={(c) => act(() => s.updateGroup(target.id, { color: c ?? undefined }))()} />
      </>
    );
  }
  const style = { left: Math.min(target.x, window.innerWidth - 260), top: Math.min(target.y, window.innerHeight - 420) };
  return (
    <div className="ctx-menu" role="menu" aria-label={label} ref={root} style={style} onContextMenu={(e) => e.preventDefault()}>
      {items}
    </div>
  );
}

/** Ctrl+G: a group around the selected nodes; returns its id. */
export function groupSelected(): string | null {
  const s = editor.getState();
  return s.addGroup(s.nodes.filter((n) => n.selected).map((n) => n.id));
}
