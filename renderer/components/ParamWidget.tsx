/**
 * One widget per param kind: sliders with a number field for bounded floats (λ), seeds with a
 * randomise button, multi-line prompts, pickers over the models folder, images with a thumbnail
 * and drag-and-drop upload (Load Image also paints a mask: MaskPainter), optional images as a small
 * badge with a remove button. `nodrag`/`nowheel` keep React Flow from panning while editing.
 */
import { memo, useRef, useState, type DragEvent, type Ref } from 'react';
import type { ParamSpec, ParamValue } from '../../nodes/types.js';
import { seedAfterGenerate, seedProblem, seedValue } from '../../engine/seed.js';
import { editor, host, useEditor } from '../editor.js';
import { fileBytes, uploadImage } from '../files.js';
import { MaskPainter } from './MaskPainter.js';

interface Props {
  node: string;
  nodeTitle: string;
  spec: ParamSpec;
  value: ParamValue | undefined;
}

const set = (node: string, name: string, v: ParamValue) => editor.getState().setParam(node, name, v);

/**
 * Why a typed number may not be the param's value, or null: what validation would refuse at Run
 * (engine/validate.ts, the same words), said as it is typed, with the field's label.
 */
export function numberProblem(text: string, p: { min?: number; max?: number; integer?: boolean }): string | null {
  const t = text.trim();
  if (t === '' || t === '-' || t === '.' || t === '-.') return 'needs a number';
  const v = Number(t);
  if (!Number.isFinite(v)) return `must be a number, found "${t}"`;
  if (p.integer && !Number.isInteger(v)) return `must be a whole number, found ${v}`;
  if (p.min !== undefined && v < p.min) return `${v} is below the minimum ${p.min}`;
  if (p.max !== undefined && v > p.max) return `${v} is above the maximum ${p.max}`;
  return null;
}

/**
 * A number field that accepts partial input ("0.", "-"), commits valid numbers in range, and says
 * at once (under the field, `onProblem`) why a typed value is not taken; leaving the field shows the value kept.
 */
function NumberField(props: {
  value: number;
  min?: number;
  max?: number;
  step?: number;
  integer?: boolean;
  label: string;
  onChange(v: number): void;
  onProblem?(problem: string | null): void;
  className?: string;
}) {
  const [text, setText] = useState(String(props.value));
  // A new value from outside (undo, another widget) replaces the text unless the text already means it.
  const [shown, setShown] = useState(props.value);
  if (shown !== props.value) {
    setShown(props.value);
    if (Number(text) !== props.value) setText(String(props.value));
  }
  const problem = numberProblem(text, props);
  const commit = (t: string) => {
    const bad = numberProblem(t, props);
    props.onProblem?.(bad);
    if (!bad) props.onChange(Number(t));
  };
  return (
    <input
      className={`nodrag ${props.className ?? ''}${problem ? ' invalid' : ''}`}
      type="number"
      aria-label={props.label}
      aria-invalid={problem ? true : undefined}
      value={text}
      min={props.min}
      max={props.max}
      step={props.step ?? (props.integer ? 1 : 'any')}
      onChange={(e) => {
        setText(e.target.value);
        commit(e.target.value);
      }}
      onBlur={() => {
        setText(String(props.value));
        props.onProblem?.(null);
      }}
    />
  );
}

/** A number param: a slider with its field for bounded floats (λ), else a field; a typed value out of range is said under it. */
function NumberParam({ node, spec, value }: { node: string; spec: Extract<ParamSpec, { kind: 'number' }>; value: ParamValue | undefined }) {
  const [problem, setProblem] = useState<string | null>(null);
  const label = spec.label ?? spec.name;
  const n = typeof value === 'number' ? value : spec.default;
  const field = (className?: string, step = spec.step) => (
    <NumberField
      className={className}
      label={label}
      value={n}
      min={spec.min}
      max={spec.max}
      step={step}
      integer={spec.integer}
      onChange={(v) => set(node, spec.name, v)}
      onProblem={setProblem}
    />
  );
  return (
    <>
      {isSlider(spec) ? (
        <div className="row">
          <input
            className="nodrag slider"
            type="range"
            aria-label={`${label} slider`}
            min={spec.min}
            max={spec.max}
            step={spec.step ?? 0.01}
            value={n}
            onChange={(e) => set(node, spec.name, Number(e.target.value))}
          />
          {field('short', spec.step ?? 0.01)}
        </div>
      ) : (
        field()
      )}
      {problem && (
        <div className="param-problem" role="alert">
          {label}: {problem} (kept {n})
        </div>
      )}
    </>
  );
}

/**
 * A seed: an integer in [0, 2^64) (engine/seed.ts), typed as digits (a number below 2^53, a decimal
 * string above), with a randomise button (below 2^50, as control_after_generate's randomize).
 */
function SeedField({ node, name, label, value }: { node: string; name: string; label: string; value: ParamValue }) {
  const [text, setText] = useState(String(value));
  const [shown, setShown] = useState(value);
  if (shown !== value) {
    setShown(value);
    setText(String(value));
  }
  const bad = seedProblem(text.trim());
  const commit = (t: string) => {
    const d = t.trim();
    if (!/^\d+$/.test(d) || seedProblem(d)) return;
    set(node, name, seedValue(BigInt(d)));
  };
  return (
    <>
      <div className="row">
        <input
          className={`nodrag seed${bad ? ' invalid' : ''}`}
          type="text"
          inputMode="numeric"
          aria-label={label}
          value={text}
          aria-invalid={bad ? true : undefined}
          title={bad ? `seed ${bad}` : 'An integer from 0 to 18446744073709551615'}
          onChange={(e) => {
            setText(e.target.value);
            commit(e.target.value);
          }}
          onBlur={() => setText(String(value))}
        />
        <button
          type="button"
          className="icon nodrag"
          aria-label={`Randomise ${label}`}
          title="Randomise"
          onClick={() => set(node, name, seedAfterGenerate(0, 'randomize'))}
        >
          <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true">
            <rect x="1.5" y="1.5" width="13" height="13" rx="3" fill="none" stroke="currentColor" strokeWidth="1.4" />
            <circle cx="5" cy="5" r="1.3" fill="currentColor" />
            <circle cx="11" cy="11" r="1.3" fill="currentColor" />
            <circle cx="8" cy="8" r="1.3" fill="currentColor" />
            <circle cx="11" cy="5" r="1.3" fill="currentColor" />
            <circle cx="5" cy="11" r="1.3" fill="currentColor" />
          </svg>
        </button>
      </div>
      {bad && text.trim() !== String(value) && (
        <div className="param-problem" role="alert">
          {label} {bad} (kept {String(value)})
        </div>
      )}
    </>
  );
}

function isSlider(p: Extract<ParamSpec, { kind: 'number' }>): boolean {
  if (p.widget) return p.widget === 'slider';
  return p.min !== undefined && p.max !== undefined && !p.integer && p.max - p.min <= 10;
}

/**
 * Uploads an image file or bytes into a param (one undoable change); errors become notices. A
 * missing image being relinked is replaced on every node that named it (one undo step too).
 */
function useUpload(node: string, name: string, relinking?: string) {
  const [busy, setBusy] = useState(false);
  const upload = async (fileName: string, bytes: Promise<Uint8Array> | Uint8Array) => {
    setBusy(true);
    try {
      const res = await uploadImage(editor, host(), fileName, await bytes);
      if (relinking) editor.getState().replaceImageRefs({ [relinking]: res.value });
      else set(node, name, res.value);
    } catch (e) {
      editor.getState().notify('error', `${fileName}: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return { busy, upload };
}

/** Drag-and-drop of an image file onto a widget: the file goes to `onFile`, not to the canvas. */
function useImageDrop(onFile: (f: File) => void) {
  const [over, setOver] = useState(false);
  const handlers = {
    onDragOver: (e: DragEvent) => {
      if (e.dataTransfer.types.includes('Files')) {
        e.preventDefault();
        setOver(true);
      }
    },
    onDragLeave: () => setOver(false),
    onDrop: (e: DragEvent) => {
      const file = e.dataTransfer.files[0];
      setOver(false);
      if (!file || !file.type.startsWith('image/')) return;
      // An image dropped on the node fills this param instead of opening a workflow.
      e.preventDefault();
      e.stopPropagation();
      onFile(file);
    },
  };
  return { over, handlers };
}

/** The hidden file picker behind a "Choose…" button; cleared after each pick so the same file can be picked again. */
function ImageFileInput({ inputRef, label, onFile }: { inputRef: Ref<HTMLInputElement>; label: string; onFile(f: File): void }) {
  return (
    <input
      ref={inputRef}
      type="file"
      accept="image/png,image/jpeg,image/webp"
      hidden
      aria-label={label}
      onChange={(e) => {
        const f = e.target.files?.[0];
        if (f) onFile(f);
        e.target.value = '';
      }}
    />
  );
}

const isMaskParam = (p: ParamSpec) => p.kind === 'image' && !!p.mask;

/** The name of the node's mask param (Load Image's painted mask) an image param paints into, if it has one. */
function useMaskParam(node: string, spec: ParamSpec): string | undefined {
  return useEditor((s) => {
    if (isMaskParam(spec)) return undefined;
    const type = s.nodes.find((n) => n.id === node)?.data.type;
    return type ? s.specs[type]?.params.find(isMaskParam)?.name : undefined;
  });
}

const baseName = (v: string) => v.split(/[\\/]/).pop() ?? v;

/** True when the host said this image ref will not be found (then the widget offers Relink…). */
function useMissing(v: string): boolean {
  return useEditor((s) => v !== '' && s.imageStatus[v]?.found === false);
}

/** "missing: <ref>" on the node, for an image the engine will not find. */
function MissingNote({ value }: { value: string }) {
  return (
    <div className="image-missing" role="alert" title="Not next to the workflow file nor in the inputs folder: choose it again (Relink…)">
      missing: {value}
    </div>
  );
}

function ImageParam({ node, nodeTitle, spec, value }: Props) {
  const input = useRef<HTMLInputElement>(null);
  const v = typeof value === 'string' ? value : '';
  const missing = useMissing(v);
  const { busy, upload } = useUpload(node, spec.name, missing ? v : undefined);
  const { over, handlers } = useImageDrop((f) => void upload(f.name, fileBytes(f)));
  const [painting, setPainting] = useState(false);
  const maskParam = useMaskParam(node, spec);
  const url = v && !missing ? host().imageUrl(v) : null;
  const label = spec.label ?? spec.name;

  const openPainter = () => setPainting(true);
  const saveMask = async (mask: string, png: Uint8Array | null) => {
    const n = editor.getState().nodes.find((x) => x.id === node);
    const had = String(n?.data.params[mask] ?? '');
    if (!png) {
      // Nothing painted: the node goes back to the image's transparency.
      if (had) set(node, mask, '');
      return;
    }
    const stem =
      baseName(v)
        .replace(/\.[^.]*$/, '')
        .replace(/-[0-9a-f]{12}$/, '') || 'image';
    const res = await uploadImage(editor, host(), `${stem}-mask.png`, png);
    set(node, mask, res.value);
  };
  return (
    <div className={`image-param nodrag ${over ? 'drop-over' : ''}`} {...handlers}>
      {url ? (
        <img className="thumb" src={url} alt={`${label} of ${nodeTitle}`} />
      ) : (
        <div className="thumb empty">{busy ? 'Uploading…' : 'Drop an image here'}</div>
      )}
      {missing && <MissingNote value={v} />}
      <div className="image-row">
        <span className="file-name" title={v}>
          {v ? baseName(v) : 'no image'}
        </span>
        {missing ? (
          <button type="button" className="relink" onClick={() => input.current?.click()} title={`Choose the image this workflow calls ${v}`}>
            Relink…
          </button>
        ) : (
          <button type="button" onClick={() => input.current?.click()} title="Choose an image file">
            Choose…
          </button>
        )}
        {maskParam && (
          <button
            type="button"
            className="paint-mask"
            onClick={openPainter}
            disabled={!url}
            title={url ? 'Paint the area to repaint (inpainting)' : 'Choose or drop an image first'}
          >
            Paint mask
          </button>
        )}
      </div>
      <ImageFileInput inputRef={input} label={`${label} file for ${nodeTitle}`} onFile={(f) => void upload(f.name, fileBytes(f))} />
      {painting && url && maskParam && (
        <MaskPainter
          nodeTitle={nodeTitle}
          imageUrl={url}
          onSave={(png) => saveMask(maskParam, png)}
          onClose={() => setPainting(false)}
          maskUrl={(() => {
            const m = editor.getState().nodes.find((x) => x.id === node)?.data.params[maskParam];
            return typeof m === 'string' && m ? host().imageUrl(m) : null;
          })()}
        />
      )}
    </div>
  );
}

/**
 * An optional image param (Load Image's mask): a badge with a thumbnail while set, and a way to
 * remove it; a mask file may also be chosen or dropped here. Painting starts from the image.
 */
function OptionalImageParam({ node, nodeTitle, spec, value }: Props) {
  const input = useRef<HTMLInputElement>(null);
  const v = typeof value === 'string' ? value : '';
  const missing = useMissing(v);
  const { busy, upload } = useUpload(node, spec.name, missing ? v : undefined);
  const { over, handlers } = useImageDrop((f) => void upload(f.name, fileBytes(f)));
  const url = v && !missing ? host().imageUrl(v) : null;
  const label = spec.label ?? spec.name;
  const isMask = isMaskParam(spec);
  return (
    <div className={`mask-param nodrag ${over ? 'drop-over' : ''}`} {...handlers}>
      {v ? (
        <>
          {url && <img className="mask-thumb" src={url} alt={`${isMask ? 'Painted mask' : label} of ${nodeTitle}`} />}
          {isMask && !missing && <span className="mask-badge">mask set</span>}
          {missing ? (
            <MissingNote value={v} />
          ) : (
            <span className="file-name" title={v}>
              {baseName(v)}
            </span>
          )}
          {missing && (
            <button type="button" className="relink" onClick={() => input.current?.click()} title={`Choose the ${label} this workflow calls ${v}`}>
              Relink…
            </button>
          )}
          <button type="button" className="icon" aria-label={`Remove ${label}`} title={`Remove ${label}`} onClick={() => set(node, spec.name, '')}>
            ×
          </button>
        </>
      ) : (
        <>
          <span className="file-name">{busy ? 'Uploading…' : isMask ? 'none: transparent pixels' : 'none'}</span>
          <button type="button" onClick={() => input.current?.click()} title={`Choose a ${label} image (white = repaint)`}>
            Choose…
          </button>
        </>
      )}
      <ImageFileInput inputRef={input} label={`${label} file for ${nodeTitle}`} onFile={(f) => void upload(f.name, fileBytes(f))} />
    </div>
  );
}

/** Weight files a picker may show that are PyTorch pickles: the editor offers to convert them. */
const PICKLE_FILE = /\.(bin|pt|pth|ckpt)$/i;

const refreshModels = () =>
  host()
    .call('listModels', {})
    .then((m) => editor.setState({ models: m }));

function FileParam({ node, spec, value }: Props) {
  const kind = spec.kind === 'file' ? spec.modelKind : 'checkpoints';
  const optional = spec.kind === 'file' && !!spec.optional;
  const list = useEditor((s) => s.models[kind]);
  const v = typeof value === 'string' ? value : '';
  const options = list ?? [];
  const [converting, setConverting] = useState(false);
  const refresh = () => refreshModels().catch(() => {});
  // Written once, atomically, beside the pickle (engine/hosts/host-api.ts convertModelFile); then selected.
  const convert = async () => {
    setConverting(true);
    try {
      const r = await host().call('convertModel', { kind, name: v });
      await refreshModels().catch(() => {});
      set(node, spec.name, r.written);
      editor.getState().notify('info', `${v} converted: ${r.written} (${r.tensors} tensors, ${(r.bytes / 1024 / 1024).toFixed(1)} MiB) is selected.`);
    } catch (e) {
      editor.getState().notify('error', `${v}: not converted: ${(e as Error).message}`);
    } finally {
      setConverting(false);
    }
  };
  const select = (
    <select
      className="nodrag"
      aria-label={spec.label ?? spec.name}
      value={v}
      onFocus={refresh}
      onChange={(e) => set(node, spec.name, e.target.value)}
      title={`Files in <models>/${kind}`}
    >
      {(!v || optional) && <option value="">{optional ? '(none)' : options.length ? 'choose…' : `no files in models/${kind}`}</option>}
      {v && !options.includes(v) && <option value={v}>{v} (not in models folder)</option>}
      {options.map((o) => (
        <option key={o} value={o}>
          {o}
        </option>
      ))}
    </select>
  );
  if (!(PICKLE_FILE.test(v) && options.includes(v))) return select;
  return (
    <div className="row">
      {select}
      <button
        type="button"
        className="convert-model nodrag"
        onClick={() => void convert()}
        disabled={converting}
        aria-busy={converting || undefined}
        title={`Write ${v.replace(PICKLE_FILE, '.safetensors')} beside it once (nothing from the pickle runs), and use it`}
      >
        Convert to .safetensors
      </button>
    </div>
  );
}

function Widget(props: Props) {
  const { node, spec, value } = props;
  const label = spec.label ?? spec.name;
  switch (spec.kind) {
    case 'number': {
      if (spec.widget === 'seed') return <SeedField node={node} name={spec.name} label={label} value={value ?? spec.default} />;
      return <NumberParam node={node} spec={spec} value={value} />;
    }
    case 'string':
      return spec.multiline ? (
        <textarea className="nodrag nowheel" aria-label={label} rows={3} value={String(value ?? '')} onChange={(e) => set(node, spec.name, e.target.value)} />
      ) : (
        <input className="nodrag" type="text" aria-label={label} value={String(value ?? '')} onChange={(e) => set(node, spec.name, e.target.value)} />
      );
    case 'enum':
      return (
        <select className="nodrag" aria-label={label} value={String(value ?? spec.default)} onChange={(e) => set(node, spec.name, e.target.value)}>
          {spec.options.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      );
    case 'boolean':
      return <input className="nodrag" type="checkbox" aria-label={label} checked={Boolean(value)} onChange={(e) => set(node, spec.name, e.target.checked)} />;
    case 'file':
      return <FileParam {...props} />;
    case 'image':
      return spec.optional ? <OptionalImageParam {...props} /> : <ImageParam {...props} />;
  }
}

export const ParamWidget = memo(function ParamWidget(props: Props) {
  const label = props.spec.label ?? props.spec.name;
  const inline = props.spec.kind === 'boolean';
  return (
    <div className={`param param-${props.spec.kind} ${inline ? 'inline' : ''}`}>
      <span className="param-label">{label}</span>
      <Widget {...props} />
    </div>
  );
});
