/**
 * The gallery: the output folder's images (listed by the host, so they are there after a reload or
 * a restart) and this session's, newest first, searchable by prompt, each with its full file name and
 * prompt; select some for Export. Clicking one opens the viewer: the image large with its prompt,
 * negative prompt and parameters (read from its PNG), Open this workflow, Copy, Export,
 * Previous / Next (arrow keys) and Close (Escape).
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import { useReactFlow } from '@xyflow/react';
import { editor, host, useEditor } from '../editor.js';
import { askDiscard } from '../confirm.js';
import { copyOutput, openWorkflowBytes, outputPng } from '../files.js';
import { matchesQuery, outputName, parseParameters } from '../gallery.js';
import type { OutputImage } from '../store/index.js';
import { FIT_VIEW } from './Canvas.js';
import './panels.css';

/** The image's alt text: this session's runs are "Output N: name", images listed from the folder "Saved image name". */
const altOf = (o: OutputImage, i: number) => (o.runId ? `Output ${i + 1}: ${outputName(o)}` : `Saved image ${outputName(o)}`);

const when = (ms?: number) => (ms ? new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '');

function CopyIcon() {
  return (
    <svg width="13" height="13" viewBox="0 0 16 16" aria-hidden="true">
      <rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" strokeWidth="1.4" />
      <path d="M3 11V3.5A1.5 1.5 0 0 1 4.5 2H11" fill="none" stroke="currentColor" strokeWidth="1.4" />
    </svg>
  );
}

/** Saves one image's PNG (with its workflow) where the person chooses. */
async function exportOne(out: OutputImage): Promise<void> {
  const s = editor.getState();
  try {
    const png = await outputPng(out, s.pngCarriesImages ? host() : undefined);
    const saved = await host().saveFile(outputName(out), png, 'image/png', { saveAs: true });
    if (saved) s.notify('info', `Exported ${outputName(out)}.`);
  } catch (e) {
    s.notify('error', `${outputName(out)}: ${(e as Error).message}`);
  }
}

function Viewer({ list, index, onIndex, onClose }: { list: OutputImage[]; index: number; onIndex(i: number): void; onClose(): void }) {
  const flow = useReactFlow();
  const out = list[index];
  const root = useRef<HTMLDivElement>(null);
  const name = out ? outputName(out) : '';
  const params = useMemo(() => parseParameters(out?.parameters), [out]);
  useEffect(() => root.current?.focus(), []);
  // The list may shrink under the viewer (a search, a refresh): close when its image is gone.
  useEffect(() => {
    if (!out) onClose();
  }, [out, onClose]);
  const count = list.length;
  const prev = () => index > 0 && onIndex(index - 1);
  const next = () => index < count - 1 && onIndex(index + 1);
  // Keys on the window: a button that became disabled (Next on the last image) drops the focus to the page.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        onClose();
      } else if (e.key === 'ArrowLeft' && index > 0) onIndex(index - 1);
      else if (e.key === 'ArrowRight' && index < count - 1) onIndex(index + 1);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [index, count, onIndex, onClose]);
  if (!out) return null;
  const openWorkflow = async () => {
    if (!(await askDiscard(editor, `Open the workflow of ${name}`))) return;
    try {
      const res = await fetch(out.url);
      if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (await openWorkflowBytes(editor, name, bytes, { host: host() })) {
        onClose();
        setTimeout(() => void flow.fitView(FIT_VIEW), 50);
      }
    } catch (e) {
      editor.getState().notify('error', `${name}: ${(e as Error).message}`);
    }
  };
  const carries = out.workflow !== undefined || out.hasWorkflow !== false;
  return (
    <div
      ref={root}
      className="viewer-backdrop"
      role="dialog"
      aria-modal="true"
      aria-label="Image viewer"
      tabIndex={-1}
      onClick={(e) => e.target === e.currentTarget && onClose()}
    >
      <div className="viewer">
        <div className="viewer-image">
          <img src={out.url} alt={`${name} (large)`} />
        </div>
        <aside className="viewer-side" aria-label="Image details">
          <div className="viewer-nav">
            <button type="button" onClick={prev} disabled={index === 0} aria-label="Previous image" title="Previous (←)">
              ‹ Previous
            </button>
            <span className="viewer-count">
              {index + 1} / {list.length}
            </span>
            <button type="button" onClick={next} disabled={index >= list.length - 1} aria-label="Next image" title="Next (→)">
              Next ›
            </button>
            <button type="button" className="icon viewer-close" onClick={onClose} aria-label="Close viewer" title="Close (Esc)">
              ×
            </button>
          </div>
          <h3 className="viewer-name">{name}</h3>
          <div className="muted small">
            {out.width}×{out.height}
            {out.mtimeMs ? ` · ${when(out.mtimeMs)}` : ''}
            {out.title ? ` · ${out.title}` : ''}
          </div>
          {params ? (
            <>
              <section aria-label="Prompt">
                <h4>Prompt</h4>
                <p className="viewer-prompt">{params.prompt || <span className="muted">(empty)</span>}</p>
              </section>
              {params.negative && (
                <section aria-label="Negative prompt">
                  <h4>Negative prompt</h4>
                  <p className="viewer-prompt">{params.negative}</p>
                </section>
              )}
              <table className="viewer-params" aria-label="Parameters">
                <tbody>
                  {params.fields.map(([k, v]) => (
                    <tr key={k}>
                      <th scope="row">{k}</th>
                      <td>{v}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          ) : (
            <p className="muted">{out.runId ? 'Parameters appear once the output folder is listed again.' : 'This image carries no parameters.'}</p>
          )}
          <div className="viewer-actions">
            <button
              type="button"
              className="primary"
              onClick={() => void openWorkflow()}
              disabled={!carries}
              title="Replace the canvas with the workflow this image was made with"
            >
              Open this workflow
            </button>
            <button type="button" onClick={() => void copyOutput(editor, out)}>
              Copy
            </button>
            <button type="button" onClick={() => void exportOne(out)}>
              Export…
            </button>
          </div>
        </aside>
      </div>
    </div>
  );
}

export function Gallery() {
  const outputs = useEditor((s) => s.outputs);
  const selected = useEditor((s) => s.selectedOutputs);
  const [query, setQuery] = useState('');
  const [open, setOpen] = useState<string | null>(null);
  const shown = useMemo(() => outputs.filter((o) => matchesQuery(o, query)), [outputs, query]);
  const index = open === null ? -1 : shown.findIndex((o) => o.id === open);
  return (
    <section className="gallery" aria-label="Gallery">
      <div className="panel-head">
        <h2>
          Gallery{' '}
          <span className="count" aria-label={`${outputs.length} images`}>
            {outputs.length}
          </span>
        </h2>
        {selected.length > 0 && <span className="muted small">{selected.length} selected for Export</span>}
      </div>
      {outputs.length > 0 && (
        <input
          className="gallery-search"
          type="search"
          placeholder="Search prompts…"
          aria-label="Search prompts"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
      )}
      {outputs.length === 0 && (
        <p className="muted">
          Images of your runs appear here, with their prompts and settings. Select some and press Export to save them with their workflow.
        </p>
      )}
      {outputs.length > 0 && shown.length === 0 && <p className="muted">No image has a prompt with “{query}”.</p>}
      <ul className="gallery-grid">
        {shown.map((o, i) => {
          const name = outputName(o);
          const isSel = selected.includes(o.id);
          const prompt = parseParameters(o.parameters)?.prompt;
          return (
            <li key={o.id} className={`gallery-item${isSel ? ' selected' : ''}${i === 0 && !query ? ' newest' : ''}`}>
              <button type="button" className="gallery-thumb" onClick={() => setOpen(o.id)} title={`${name}${prompt ? `\n${prompt}` : ''}\nClick to view`}>
                <img src={o.url} alt={altOf(o, i)} width={o.width || undefined} height={o.height || undefined} loading="lazy" />
              </button>
              <div className="gallery-caption">
                <span className="gallery-name">{name.replace(/\.png$/i, '')}</span>
                {prompt && <span className="gallery-prompt">{prompt}</span>}
                <div className="gallery-tools">
                  <label title="Select for export">
                    <input type="checkbox" checked={isSel} onChange={() => editor.getState().toggleOutput(o.id)} aria-label={`Select ${name} for export`} />
                    export
                  </label>
                  <button
                    type="button"
                    className="icon"
                    onClick={() => void copyOutput(editor, o)}
                    aria-label={`Copy ${name} to clipboard`}
                    title="Copy to clipboard"
                  >
                    <CopyIcon />
                  </button>
                </div>
              </div>
            </li>
          );
        })}
      </ul>
      {index >= 0 && <Viewer list={shown} index={index} onIndex={(i) => setOpen(shown[i].id)} onClose={() => setOpen(null)} />}
    </section>
  );
}
