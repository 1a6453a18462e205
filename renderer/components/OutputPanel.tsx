/**
 * The right panel: live latent preview and progress of the running sampler, the queue (its jobs,
 * QueuePanel.tsx), then the gallery of the output folder's images (Gallery.tsx).
 */
import { useEditor } from '../editor.js';
import { Gallery } from './Gallery.js';
import { QueuePanel } from './QueuePanel.js';

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

export function OutputPanel() {
  return (
    <aside className="outputs" aria-label="Outputs">
      <Live />
      <QueuePanel />
      <Gallery />
    </aside>
  );
}
