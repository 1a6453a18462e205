/**
 * Small dialogs: Settings (models folder, provider, output folder, whether exported PNGs carry
 * their input images), the file-name prompt of Save As in the browser, the missing-images
 * question, and the notices bar.
 */
import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import type { EngineSettings } from '../../engine/api.js';
import { PROVIDERS, type ModelsFolderReport } from '../../engine/protocol.js';
import { MODEL_KINDS } from '../../nodes/spec.js';
import { editor, host, useEditor } from '../editor.js';
import { fileBytes, missingRefs, relinkMissing } from '../files.js';
import type { FolderPurpose } from '../host.js';
import { applySettings } from '../settings.js';
import { FarmStatusLine } from './FarmStatus.js';

/** Kind folders as the report sentence names them. */
const KIND_WORDS: Record<string, string> = { checkpoints: 'checkpoints', ipadapter: 'IP-Adapters', clip_vision: 'CLIP vision models' };

/**
 * What the typed models folder holds, asked for as the path is typed (debounced): a folder that
 * does not exist is said at once with its path, and so are the kinds it has none of.
 */
function useFolderReport(dir: string): ModelsFolderReport | null {
  const [report, setReport] = useState<ModelsFolderReport | null>(null);
  useEffect(() => {
    if (!dir.trim()) return;
    let live = true;
    const t = setTimeout(() => {
      host()
        .call('checkModelsFolder', { dir })
        .then((r) => live && setReport(r))
        .catch(() => live && setReport(null));
    }, 200);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [dir]);
  return dir.trim() && report?.dir === dir ? report : null;
}

function FolderReport({ report }: { report: ModelsFolderReport | null }) {
  if (!report) return null;
  if (report.problem)
    return (
      <div className="folder-report bad" role="alert">
        {report.problem[0].toUpperCase() + report.problem.slice(1)}.
      </div>
    );
  const have = Object.entries(report.counts).filter(([, n]) => n > 0);
  if (!have.length)
    return (
      <div className="folder-report warn" role="alert">
        No models in {report.dir}: its checkpoints/, ipadapter/ and clip_vision/ folders are empty or missing.
      </div>
    );
  return (
    <div className={`folder-report ${report.missing.length ? 'warn' : 'ok'}`} role="status">
      {have.map(([k, n]) => `${n} ${n === 1 ? k.replace(/s$/, '') : k}`).join(', ')}
      {report.missing.length > 0 && ` — no ${report.missing.map((k) => KIND_WORDS[k] ?? k).join(', ')}`}
    </div>
  );
}

/** localStorage key of the "exported PNGs carry their input images" setting (a renderer preference). */
export const PNG_IMAGES_KEY = 'ipa-studio:png-carries-images';

/** Reads the renderer's own preferences into the store (on start). */
export function loadRendererPrefs(): void {
  try {
    editor.setState({ pngCarriesImages: localStorage.getItem(PNG_IMAGES_KEY) === '1' });
  } catch {
    /* storage disabled: the default (off) */
  }
}

/**
 * A folder setting: its text field, and in the desktop app a Browse… button (the native folder
 * dialog fills the field; Apply sends it). A browser has no folder picker: the path is typed.
 */
function FolderField({
  label,
  purpose,
  value,
  onChange,
  children,
}: {
  label: string;
  purpose: FolderPurpose;
  value: string;
  onChange(v: string): void;
  children?: ReactNode;
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
        {h.pickFolder && (
          <button type="button" onClick={() => void browse()} aria-label={`Browse for the ${label.toLowerCase()}`}>
            Browse…
          </button>
        )}
      </div>
      {children}
    </div>
  );
}

export function SettingsDialog({ onClose }: { onClose(): void }) {
  const current = useEditor((s) => s.settings);
  const info = useEditor((s) => s.hostInfo);
  const [draft, setDraft] = useState<EngineSettings | null>(current);
  const [pngImages, setPngImages] = useState(() => editor.getState().pngCarriesImages);
  const [busy, setBusy] = useState(false);
  const [refused, setRefused] = useState<string | null>(null);
  const [queueUrl, setQueueUrl] = useState(current?.farmQueue ?? '');
  const report = useFolderReport(draft?.modelsDir ?? '');
  // The settings may arrive after the dialog opened: adopt them once (React's "adjust state on a prop change").
  if (draft === null && current !== null) setDraft(current);
  if (!draft) return null;
  const providers = info?.providers ?? ['cpu'];
  // --demo: the demo models whatever this says (the banner says so too).
  const demoFlag = (info?.demo ?? false) && current?.demoModels !== true;
  const apply = async () => {
    setBusy(true);
    setRefused(null);
    try {
      await applySettings(editor, host(), draft);
      editor.setState({ pngCarriesImages: pngImages });
      try {
        localStorage.setItem(PNG_IMAGES_KEY, pngImages ? '1' : '0');
      } catch {
        /* storage disabled: kept for this session */
      }
      editor.getState().notify('info', 'Settings saved.');
      onClose();
    } catch (e) {
      // Refused (a folder that does not exist, ...): said here, next to the fields, and nothing is saved.
      setRefused((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="modal-backdrop">
      <form
        className="modal"
        role="dialog"
        aria-label="Settings"
        onSubmit={(e) => {
          e.preventDefault();
          void apply();
        }}
      >
        <h2>Settings</h2>
        <FolderField label="Models folder" purpose="models" value={draft.modelsDir} onChange={(v) => setDraft((d) => d && { ...d, modelsDir: v })}>
          <small>
            Subfolders {MODEL_KINDS.join(', ')} — point it at a ComfyUI <code>models</code> folder.
          </small>
          <FolderReport report={report} />
        </FolderField>
        <label className="check">
          <input
            type="checkbox"
            checked={draft.demoModels === true || demoFlag}
            disabled={demoFlag}
            onChange={(e) => setDraft({ ...draft, demoModels: e.target.checked })}
          />
          Use demo models
          <small>
            {demoFlag
              ? 'On for this session: the app was started with --demo, so the folder above is not used.'
              : 'Tiny random weights that draw noise, to try the app without models. Off: the folder above, even when it is empty.'}
          </small>
        </label>
        <label>
          Execution provider
          <select value={draft.provider} onChange={(e) => setDraft({ ...draft, provider: e.target.value as EngineSettings['provider'] })}>
            {PROVIDERS.map((p) => (
              <option key={p} value={p} disabled={!providers.includes(p)}>
                {p}
                {providers.includes(p) ? '' : ' (not on this machine)'}
              </option>
            ))}
          </select>
          <small>If the chosen provider fails to start, runs fall back to the CPU and a notice says so.</small>
          {info?.providerReadiness?.map((r) => (
            <small key={r.provider} data-provider-readiness={r.provider} data-state={r.state}>
              {r.sentence}
            </small>
          ))}
        </label>
        <label>
          CPU precision
          <select
            value={draft.cpuPrecision ?? 'fp32'}
            onChange={(e) => setDraft({ ...draft, cpuPrecision: e.target.value as NonNullable<EngineSettings['cpuPrecision']> })}
          >
            <option value="fp32">exact fp32</option>
            <option value="fast">fast (int8 linear layers)</option>
          </select>
          <small>
            Fast: the UNet&apos;s and ControlNet&apos;s linear layers in int8 on the CPU (1.1-1.25x less CPU time per SD1.5 step here, one-step error under 1 %;
            README &quot;CPU precision&quot;). Images differ slightly from exact ones; PNGs record the choice.
          </small>
        </label>
        <label>
          GPU precision
          <select
            value={draft.gpuPrecision ?? 'fp16'}
            onChange={(e) => setDraft({ ...draft, gpuPrecision: e.target.value as NonNullable<EngineSettings['gpuPrecision']> })}
          >
            <option value="fp16">fp16 (default)</option>
            <option value="fp32">fp32</option>
          </select>
          <small>
            On webgpu, cuda and dml: fp16 runs the provider&apos;s fp16 graph with fused ops (README &quot;Graph profiles&quot;; a step that is not finite is
            computed again in fp32); fp32 is slower and uses twice the GPU memory. The CPU ignores it; PNGs record fp16.
          </small>
        </label>
        <fieldset className="field">
          <legend>Run on</legend>
          <label className="check">
            <input type="radio" name="run-on" checked={!draft.farmQueue} onChange={() => setDraft({ ...draft, farmQueue: '' })} />
            this machine
          </label>
          <label className="check">
            <input
              type="radio"
              name="run-on"
              checked={!!draft.farmQueue}
              onChange={() => setDraft({ ...draft, farmQueue: queueUrl || 'redis://127.0.0.1:6379' })}
            />
            queue at
            <input
              type="text"
              aria-label="Farm queue (Redis address)"
              value={draft.farmQueue || queueUrl}
              placeholder="redis://host:6379"
              onChange={(e) => {
                setQueueUrl(e.target.value);
                setDraft({ ...draft, farmQueue: e.target.value });
              }}
            />
          </label>
          <label>
            priority{' '}
            <input
              type="number"
              aria-label="Farm job priority"
              min={0}
              max={2097152}
              step={1}
              value={draft.farmPriority ?? 0}
              disabled={!draft.farmQueue}
              onChange={(e) => {
                const n = Math.round(Number(e.target.value));
                setDraft({ ...draft, farmPriority: Number.isFinite(n) ? Math.min(2097152, Math.max(0, n)) : 0 });
              }}
            />
            <small>0: none (first come, first served); 1 runs before 2, and so on (BullMQ priorities).</small>
          </label>
          <small>A render farm: workers started with npm run worker -- --redis … on machines with the same models take the jobs.</small>
          <FarmStatusLine saved={current?.farmQueue} />
        </fieldset>
        <FolderField label="Output folder" purpose="output" value={draft.outputDir} onChange={(v) => setDraft((d) => d && { ...d, outputDir: v })} />
        <label className="check">
          <input type="checkbox" checked={pngImages} onChange={(e) => setPngImages(e.target.checked)} />
          Exported PNGs carry their input images
          <small>Off by default (bigger files). When on, Export puts the run's input images into the PNG too, so it opens with them on another machine.</small>
        </label>
        {refused && (
          <div className="folder-report bad" role="alert">
            Not saved: {refused}
          </div>
        )}
        <div className="modal-buttons">
          <button
            type="button"
            title="Releases the loaded models and removes the graphs, weight links and float32 copies the app keeps in its cache (made again on next use)"
            onClick={() =>
              void host()
                .call('clearModelCache', {})
                .then(
                  (r) => editor.getState().notify('info', `Model cache cleared: ${r.files} file(s) removed, ${(r.freedBytes / 2 ** 30).toFixed(2)} GB freed.`),
                  (e: Error) => editor.getState().notify('warn', `Model cache not cleared: ${e.message}.`),
                )
            }
          >
            Clear model cache
          </button>
          <button type="button" onClick={onClose}>
            Close
          </button>
          <button type="submit" className="primary" disabled={busy || !!report?.problem}>
            Apply
          </button>
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
      <form
        className="modal small"
        role="dialog"
        aria-label="Save workflow as"
        onSubmit={(e) => {
          e.preventDefault();
          onDone(name.trim() || null);
        }}
        onKeyDown={(e) => e.key === 'Escape' && onDone(null)}
      >
        <h2>Save workflow as</h2>
        <label>
          File name
          <input ref={input} type="text" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <div className="modal-buttons">
          <button type="button" onClick={() => onDone(null)}>
            Close
          </button>
          <button type="submit" className="primary">
            Download
          </button>
        </div>
      </form>
    </div>
  );
}

/**
 * The question a workflow opened without some of its images asks (a browser cannot read the
 * folder a file came from): choose the images, or the folder they are in; they are matched to the
 * missing refs by path. "Later" leaves them marked "missing" on their nodes, each with Relink….
 */
export function MissingImagesDialog() {
  const ask = useEditor((s) => s.missingAsk);
  // Re-render when the document or what is known about its images changes.
  useEditor((s) => s.nodes);
  useEditor((s) => s.imageStatus);
  const filesInput = useRef<HTMLInputElement>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  if (!ask) return null;
  const uses = missingRefs(editor);
  const refs = [...new Set(uses.map((u) => u.ref))];
  const close = () => editor.setState({ missingAsk: null });
  const chosen = async (list: FileList | null) => {
    if (!list?.length) return;
    setBusy(true);
    try {
      const images = await Promise.all([...list].map(async (f) => ({ path: f.webkitRelativePath || f.name, bytes: await fileBytes(f) })));
      const left = await relinkMissing(editor, host(), images);
      if (left === 0) {
        editor.getState().notify('info', 'All images of the workflow found.');
        close();
      } else
        editor
          .getState()
          .notify('warn', `${left} image${left === 1 ? '' : 's'} still missing: none of the chosen files has ${left === 1 ? 'its' : 'their'} name.`);
    } catch (e) {
      editor.getState().notify('error', (e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  if (!refs.length) return null;
  return (
    <div className="modal-backdrop">
      <div className="modal" role="dialog" aria-label="Missing images" onKeyDown={(e) => e.key === 'Escape' && close()}>
        <h2>Images this workflow needs</h2>
        <p>
          {ask.fileName} names {refs.length === 1 ? 'an image' : `${refs.length} images`} that did not come with it. Choose
          {refs.length === 1 ? ' it' : ' them'}, or the folder the workflow is in; files are matched by name.
        </p>
        <ul className="missing-list">
          {refs.map((r) => (
            <li key={r}>
              <code>{r}</code> — {[...new Set(uses.filter((u) => u.ref === r).map((u) => `${u.title} (${u.node})`))].join(', ')}
            </li>
          ))}
        </ul>
        <div className="modal-buttons">
          <button type="button" onClick={close}>
            Later
          </button>
          <button type="button" onClick={() => folderInput.current?.click()} disabled={busy}>
            Choose folder…
          </button>
          <button type="button" className="primary" onClick={() => filesInput.current?.click()} disabled={busy}>
            Choose images…
          </button>
        </div>
        <input
          ref={filesInput}
          type="file"
          hidden
          multiple
          accept="image/png,image/jpeg,image/webp"
          aria-label="Images for the workflow"
          onChange={(e) => {
            void chosen(e.target.files).finally(() => {
              if (filesInput.current) filesInput.current.value = '';
            });
          }}
        />
        <input
          ref={folderInput}
          type="file"
          hidden
          {...{ webkitdirectory: '' }}
          aria-label="Folder of the workflow"
          onChange={(e) => {
            void chosen(e.target.files).finally(() => {
              if (folderInput.current) folderInput.current.value = '';
            });
          }}
        />
      </div>
    </div>
  );
}

/** How long a notice stays (errors stay until dismissed). */
const NOTICE_MS = { info: 5000, warn: 12000 } as const;

export function Notices() {
  const notices = useEditor((s) => s.notices);
  useEffect(() => {
    const timers = notices
      .filter((n) => n.level !== 'error')
      .map((n) => setTimeout(() => editor.getState().dismiss(n.id), NOTICE_MS[n.level as 'info' | 'warn']));
    return () => timers.forEach(clearTimeout);
  }, [notices]);
  return (
    <div className="notices" aria-live="polite">
      {notices.map((n) => (
        <div key={n.id} className={`notice notice-${n.level}`} role={n.level === 'error' ? 'alert' : 'status'}>
          <span>{n.text}</span>
          <button type="button" className="icon" aria-label="Dismiss notice" onClick={() => editor.getState().dismiss(n.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
