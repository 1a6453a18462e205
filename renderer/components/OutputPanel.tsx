/**
 * The right panel: live latent preview and progress of the running sampler, then the images of
 * the last runs (select them for Export, copy one to the clipboard, open it larger).
 */
import { useState } from 'react';
import { editor, useEditor } from '../editor.js';
import { copyOutput } from '../files.js';
import type { OutputImage } from '../store/index.js';

function Live() {
  const progress = useEditor((s) => s.progress);
  const running = useEditor((s) => s.activeRun !== null);
  if (!running && !progress) return null;
  return (
    <section className="live" aria-label="Live preview">
      <h2>Running</h2>
      {progress?.preview ? (
        <img className="preview" src={progress.preview} alt="Live preview of the sampler" />
      ) : (
        <div className="preview empty">waiting for the sampler…</div>
      )}
      {progress && (
        <div
          className="progress wide"
          role="progressbar"
          aria-label="Sampler steps"
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
    </section>
  );
}

function Lightbox({ out, onClose }: { out: OutputImage; onClose(): void }) {
  return (
    <div className="lightbox" role="dialog" aria-label="Image" onClick={onClose}>
      <img src={out.url} alt={`Output ${out.path.split(/[\\/]/).pop()} (large)`} />
      <div className="caption">
        {out.path} — {out.width}×{out.height}
      </div>
    </div>
  );
}

export function OutputPanel() {
  const outputs = useEditor((s) => s.outputs);
  const selected = useEditor((s) => s.selectedOutputs);
  const [big, setBig] = useState<OutputImage | null>(null);
  return (
    <aside className="outputs" aria-label="Outputs">
      <Live />
      <section>
        <h2>Outputs</h2>
        {outputs.length === 0 && <p className="muted">Images of your runs appear here. Select some and press Export to save them with their workflow.</p>}
        <div className="output-grid">
          {outputs.map((o, i) => {
            const name = o.path.split(/[\\/]/).pop() ?? o.id;
            const isSel = selected.includes(o.id);
            return (
              <figure key={o.id} className={`${isSel ? 'selected' : ''} ${i === 0 ? 'newest' : ''}`}>
                <img src={o.url} alt={`Output ${i + 1}: ${name}`} width={o.width} height={o.height} onClick={() => setBig(o)} title="Click to enlarge" />
                <figcaption>
                  <label title="Select for export">
                    <input type="checkbox" checked={isSel} onChange={() => editor.getState().toggleOutput(o.id)} aria-label={`Select ${name} for export`} />
                    {name}
                  </label>
                  <button
                    type="button"
                    className="icon"
                    onClick={() => void copyOutput(editor, o)}
                    aria-label={`Copy ${name} to clipboard`}
                    title="Copy to clipboard"
                  >
                    <svg width="13" height="13" viewBox="0 0 16 16" aria-hidden="true">
                      <rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" strokeWidth="1.4" />
                      <path d="M3 11V3.5A1.5 1.5 0 0 1 4.5 2H11" fill="none" stroke="currentColor" strokeWidth="1.4" />
                    </svg>
                  </button>
                </figcaption>
              </figure>
            );
          })}
        </div>
      </section>
      {big && <Lightbox out={big} onClose={() => setBig(null)} />}
    </aside>
  );
}
