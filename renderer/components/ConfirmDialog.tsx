/** "Replace unsaved work?" (renderer/confirm.ts): Discard changes, or Keep editing. */
import { useEffect, useRef } from 'react';
import { useEditor } from '../editor.js';
import './panels.css';

export function DiscardDialog() {
  const ask = useEditor((s) => s.discardAsk);
  const keep = useRef<HTMLButtonElement>(null);
  useEffect(() => keep.current?.focus(), [ask]);
  if (!ask) return null;
  return (
    <div className="modal-backdrop confirm-backdrop">
      <div
        className="modal small"
        role="alertdialog"
        aria-modal="true"
        aria-label="Replace unsaved work?"
        onKeyDown={(e) => e.key === 'Escape' && ask.resolve(false)}
      >
        <h2>Replace unsaved work?</h2>
        <p>{ask.action} replaces the open workflow, which has changes you have not saved. Discarding loses them; Keep editing, then Save, to keep them.</p>
        <div className="modal-buttons">
          <button type="button" ref={keep} onClick={() => ask.resolve(false)}>
            Keep editing
          </button>
          <button type="button" className="danger" onClick={() => ask.resolve(true)}>
            Discard changes
          </button>
        </div>
      </div>
    </div>
  );
}
