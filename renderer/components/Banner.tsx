/**
 * The models banner under the toolbar: says, for as long as it is true, that the demo models are in
 * use (tiny random weights: every image is noise; started with --demo, or chosen), or that the models
 * folder is missing or has no models — with the way out (Use demo models, Use my models folder,
 * Choose models folder…, which opens Settings). The demo models are never used without one of those two choices.
 */
import { editor, host, useEditor } from '../editor.js';
import { applySettings } from '../settings.js';
import './panels.css';

export function ModelsBanner({ onSettings }: { onSettings(): void }) {
  const demo = useEditor((s) => s.hostInfo?.demo ?? false);
  const settings = useEditor((s) => s.settings);
  const report = useEditor((s) => s.modelsReport);
  const set = (demoModels: boolean) =>
    void applySettings(editor, host(), { demoModels })
      .then(() => editor.getState().notify('info', demoModels ? 'Using the demo models.' : 'Using your models folder.'))
      .catch((e: Error) => editor.getState().notify('error', e.message));
  if (!settings) return null;
  if (demo) {
    const chosen = settings.demoModels === true;
    return (
      <div className="banner banner-demo" role="status" aria-label="Models">
        <strong>Demo models</strong>
        <span>
          Tiny random weights, so every image is noise.{' '}
          {chosen ? 'You chose them in Settings.' : `Started with --demo: the models folder ${settings.modelsDir} is not used this session.`}
        </span>
        <span className="spacer" />
        {chosen && (
          <button type="button" onClick={() => set(false)}>
            Use my models folder
          </button>
        )}
        <button type="button" onClick={onSettings}>
          Choose models folder…
        </button>
      </div>
    );
  }
  if (!report) return null;
  const none = report.problem !== null || Object.values(report.counts).every((n) => n === 0);
  if (!none) return null;
  return (
    <div className="banner banner-empty" role="alert" aria-label="Models">
      <strong>No models</strong>
      <span>
        {report.problem
          ? `${report.problem[0].toUpperCase()}${report.problem.slice(1)}.`
          : `The models folder ${report.dir} has no models (checkpoints/, ipadapter/, clip_vision/, …).`}{' '}
        Add SD1.5 files there, choose another folder, or try the app on the demo models.
      </span>
      <span className="spacer" />
      <button type="button" className="primary" onClick={() => set(true)}>
        Use demo models
      </button>
      <button type="button" onClick={onSettings}>
        Choose models folder…
      </button>
    </div>
  );
}
