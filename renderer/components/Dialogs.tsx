/**
 * Small dialogs: Settings (models folder, provider, output folder), the file-name prompt of
 * Save As in the browser, and the notices bar.
 */
import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import type { EngineSettings } from '../../engine/api.js';
import { PROVIDERS } from '../../engine/protocol.js';
import { MODEL_KINDS } from '../../nodes/spec.js';
import { editor, host, useEditor } from '../editor.js';
import type { FolderPurpose } from '../host.js';

/**
 * A folder setting: its text field, and in the desktop app a Browse… button (the native folder
 * dialog fills the field; Apply sends it). A browser has no folder picker: the path is typed.
 */
function FolderField({ label, purpose, value, onChange, children }: {
  label: string; purpose: FolderPurpose; value: string; onChange(v: string): void; children?: ReactNode;
}) {
  const id = useId();
  const h = host();
  const browse = async () => {
    try {
      const dir = await h.pickFolder!(purpose, value);
      if (dir) onChange(dir);
    } catch (e) {
      editor.getState().notify('error', (e as Error).message);
    }
  };
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <div className="row">
        <input id={id} type="text" value={value} onChange={(e) => onChange(e.target.value)} />
        {h.pickFolder && <button type="button" onClick={() => void browse()} aria-label={`Browse for the ${label.toLowerCase()}`}>Browse…</button>}
      </div>
      {children}
    </div>
  );
}

export function SettingsDialog({ onClose }: { onClose(): void }) {
  const current = useEditor((s) => s.settings);
  const info = useEditor((s) => s.hostInfo);
  const [draft, setDraft] = useState<EngineSettings | null>(current);
  const [busy, setBusy] = useState(false);
  // The settings may arrive after the dialog opened: adopt them once (React's "adjust state on a prop change").
  if (draft === null && current !== null) setDraft(current);
  if (!draft) return null;
  const providers = info?.providers ?? ['cpu'];
  const apply = async () => {
    setBusy(true);
    try {
      const s = await host().call('updateSettings', draft);
      const models = await host().call('listModels', {});
      editor.setState({ settings: s, models });
      editor.getState().notify('info', 'Settings saved.');
      onClose();
    } catch (e) {
      editor.getState().notify('error', (e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="modal-backdrop">
      <form className="modal" role="dialog" aria-label="Settings" onSubmit={(e) => {
        e.preventDefault();
        void apply();
      }}>
        <h2>Settings</h2>
        <FolderField label="Models folder" purpose="models" value={draft.modelsDir} onChange={(v) => setDraft((d) => d && { ...d, modelsDir: v })}>
          <small>Subfolders {MODEL_KINDS.join(', ')} — point it at a ComfyUI <code>models</code> folder.</small>
        </FolderField>
        <label>
          Execution provider
          <select value={draft.provider} onChange={(e) => setDraft({ ...draft, provider: e.target.value as EngineSettings['provider'] })}>
            {PROVIDERS.map((p) => (
              <option key={p} value={p} disabled={!providers.includes(p)}>{p}{providers.includes(p) ? '' : ' (not on this machine)'}</option>
            ))}
          </select>
          <small>If the chosen provider fails to start, runs fall back to the CPU and a notice says so.</small>
        </label>
        <FolderField label="Output folder" purpose="output" value={draft.outputDir} onChange={(v) => setDraft((d) => d && { ...d, outputDir: v })} />
        <div className="modal-buttons">
          <button type="button" onClick={onClose}>Close</button>
          <button type="submit" className="primary" disabled={busy}>Apply</button>
        </div>
      </form>
    </div>
  );
}

export function NameDialog({ suggested, onDone }: { suggested: string; onDone(name: string | null): void }) {
  const [name, setName] = useState(suggested);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.select(), []);
  return (
    <div className="modal-backdrop">
      <form className="modal small" role="dialog" aria-label="Save workflow as" onSubmit={(e) => {
        e.preventDefault();
        onDone(name.trim() || null);
      }} onKeyDown={(e) => e.key === 'Escape' && onDone(null)}>
        <h2>Save workflow as</h2>
        <label>
          File name
          <input ref={input} type="text" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <div className="modal-buttons">
          <button type="button" onClick={() => onDone(null)}>Close</button>
          <button type="submit" className="primary">Download</button>
        </div>
      </form>
    </div>
  );
}

/** How long a notice stays (errors stay until dismissed). */
const NOTICE_MS = { info: 5000, warn: 12000 } as const;

export function Notices() {
  const notices = useEditor((s) => s.notices);
  useEffect(() => {
    const timers = notices.filter((n) => n.level !== 'error').map((n) =>
      setTimeout(() => editor.getState().dismiss(n.id), NOTICE_MS[n.level as 'info' | 'warn']));
    return () => timers.forEach(clearTimeout);
  }, [notices]);
  return (
    <div className="notices" aria-live="polite">
      {notices.map((n) => (
        <div key={n.id} className={`notice notice-${n.level}`} role={n.level === 'error' ? 'alert' : 'status'}>
          <span>{n.text}</span>
          <button type="button" className="icon" aria-label="Dismiss notice" onClick={() => editor.getState().dismiss(n.id)}>×</button>
        </div>
      ))}
    </div>
  );
}
