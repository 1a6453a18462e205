/**
 * The top bar: menus generated from the registered actions (with their shortcuts), the main
 * buttons (Open, Save, Export, Run, Cancel) with shortcut tooltips, the queue and sampler progress.
 */
import { useEffect, useRef, useState } from 'react';
import { ACTIONS, actionByName, tooltip, type ActionContext, type Menu } from '../actions.js';
import { useEditor } from '../editor.js';
import { runLabel, useJobCount } from './FarmStatus.js';
import { isDirty, queueLength } from '../store/index.js';

/** One menu per action group, as in Electron's application menu (a Record: a new group cannot be left out). */
const MENU_LABELS: Record<Menu, string> = { file: 'File', edit: 'Edit', view: 'View', run: 'Run' };
const MENUS = (Object.keys(MENU_LABELS) as Menu[]).map((menu) => ({ menu, label: MENU_LABELS[menu] }));

/** The open menu's items; subscribes to the whole state only while a menu is open. */
function MenuItems({ menu, label, ctx, close }: { menu: Menu; label: string; ctx: ActionContext; close(): void }) {
  const state = useEditor((s) => s);
  return (
    <div className="menu-list" role="menu" aria-label={label}>
      {ACTIONS.filter((a) => a.menu === menu).map((a) => (
        <button
          key={a.name}
          type="button"
          role="menuitem"
          disabled={a.enabled ? !a.enabled(state) : false}
          onClick={() => {
            close();
            void a.perform(ctx);
          }}
        >
          <span>{a.label}</span>
          {a.shortcut && <kbd>{a.shortcut}</kbd>}
        </button>
      ))}
    </div>
  );
}

/** A drop-down's open state; a pointer press outside `root` (attach it to the wrapper) closes it. */
function useDropdown() {
  const [open, setOpen] = useState(false);
  const root = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const away = (e: PointerEvent) => !root.current?.contains(e.target as Node) && setOpen(false);
    window.addEventListener('pointerdown', away, true);
    return () => window.removeEventListener('pointerdown', away, true);
  }, [open]);
  return { open, setOpen, root };
}

function MenuButton({ menu, label, ctx }: { menu: Menu; label: string; ctx: ActionContext }) {
  const { open, setOpen, root } = useDropdown();
  return (
    <div className="menu" ref={root}>
      {/* Named "<label> menu": the Run menu and the Run button must not share a name. */}
      <button type="button" className="menu-button" aria-haspopup="menu" aria-expanded={open} aria-label={`${label} menu`} onClick={() => setOpen(!open)}>
        {label}
      </button>
      {open && <MenuItems menu={menu} label={label} ctx={ctx} close={() => setOpen(false)} />}
    </div>
  );
}

function Examples({ ctx }: { ctx: ActionContext & { openExample(name: string): void } }) {
  const examples = useEditor((s) => s.examples);
  const { open, setOpen, root } = useDropdown();
  return (
    <div className="menu" ref={root}>
      <button type="button" className="menu-button" aria-haspopup="menu" aria-expanded={open} onClick={() => setOpen(!open)} title="Ready-made workflows">
        Examples
      </button>
      {open && (
        <div className="menu-list" role="menu" aria-label="Examples">
          {examples.length === 0 && <div className="menu-empty">No examples found</div>}
          {examples.map((ex) => (
            <button
              key={ex.name}
              type="button"
              role="menuitem"
              onClick={() => {
                setOpen(false);
                ctx.openExample(ex.name);
              }}
            >
              {ex.title}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}

function RunStatus() {
  const queue = useEditor(queueLength);
  const progress = useEditor((s) => s.progress);
  const running = useEditor((s) => s.activeRun !== null);
  return (
    <div className="run-status">
      <span className={`queue ${queue ? 'busy' : ''}`} role="status" aria-label="Queue" title="Runs queued or running">
        Queue: {queue}
      </span>
      {running && progress && (
        <div
          className="progress"
          role="progressbar"
          aria-label="Sampler progress"
          aria-valuemin={0}
          aria-valuemax={progress.total}
          aria-valuenow={progress.step}
        >
          <div className="bar" style={{ width: `${(100 * progress.step) / Math.max(1, progress.total)}%` }} />
          <span>
            step {progress.step}/{progress.total}
          </span>
        </div>
      )}
      {running && !progress && <span className="running-dot">running…</span>}
    </div>
  );
}

export function Toolbar({ ctx }: { ctx: ActionContext & { openExample(name: string): void } }) {
  const jobs = useJobCount();
  const dirty = useEditor(isDirty);
  const fileName = useEditor((s) => s.fileName);
  const canCancel = useEditor((s) => queueLength(s) > 0);
  const hasOutputs = useEditor((s) => s.outputs.length > 0);
  const connected = useEditor((s) => s.connected);
  const demo = useEditor((s) => s.hostInfo?.demo ?? false);
  const act = (name: string) => () => void actionByName(name).perform(ctx);
  return (
    <header className="toolbar">
      <div className="brand" title="IP-Adapter Studio">
        IP-Adapter Studio
      </div>
      <nav className="menus" aria-label="Menus">
        {MENUS.map((m) => (
          <MenuButton key={m.menu} {...m} ctx={ctx} />
        ))}
        <Examples ctx={ctx} />
      </nav>
      <div className="group">
        <button type="button" onClick={act('open')} title={tooltip('open')}>
          Open
        </button>
        <button type="button" onClick={act('save')} title={tooltip('save')}>
          Save
        </button>
        <button type="button" onClick={act('export')} title={tooltip('export')} disabled={!hasOutputs}>
          Export
        </button>
        <button type="button" onClick={act('addNode')} title={tooltip('addNode')}>
          Add node
        </button>
      </div>
      <div className="doc-name" title={dirty ? 'Unsaved changes (autosaved for recovery)' : 'Saved'}>
        {fileName ?? 'untitled'}
        {dirty && (
          <span className="dirty" aria-label="unsaved changes">
            {' '}
            ●
          </span>
        )}
      </div>
      <div className="spacer" />
      {!connected && (
        <span className="offline" role="status">
          engine disconnected…
        </span>
      )}
      {demo && (
        <span className="demo-badge" title="The demo models are tiny random weights: images are noise. Settings → Models folder points at real models.">
          demo models
        </span>
      )}
      <RunStatus />
      <div className="group">
        <button type="button" className="primary" onClick={act('run')} title={tooltip('run')}>
          {runLabel(jobs)}
        </button>
        <button type="button" onClick={act('cancel')} title={tooltip('cancel')} disabled={!canCancel}>
          Cancel
        </button>
      </div>
      <button type="button" className="icon" onClick={act('settings')} title={tooltip('settings')} aria-label="Settings">
        ⚙
      </button>
    </header>
  );
}
