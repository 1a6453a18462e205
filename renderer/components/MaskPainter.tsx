/**
 * The mask painter: a modal dialog showing an image with a canvas over it, where a brush (mouse,
 * pen or touch, through pointer events) marks the area to repaint. The canvas holds an overlay
 * (renderer/mask.ts): the paint colour with alpha = coverage, shown half transparent. Save turns
 * it into a mask PNG at the image's own size (white strokes on black) and hands it to `onSave`.
 *
 * It renders into document.body through a portal: inside a node card it would sit under React
 * Flow's transformed viewport. Keys and pointer events stop at the dialog, so editor shortcuts
 * (Delete, Ctrl+Z) and node selection never act on the graph behind it.
 */
import { useCallback, useEffect, useId, useRef, useState, type KeyboardEvent, type PointerEvent, type SyntheticEvent } from 'react';
import { createPortal } from 'react-dom';
import { defaultBrush, invertOverlay, maskToOverlay, maxBrush, OVERLAY_RGB, overlayEmpty, overlayToMask, toCanvasPoint } from '../mask.js';
import '../mask-painter.css';

export interface MaskPainterProps {
  /** Names the image in labels ("Load Image"). */
  nodeTitle: string;
  /** The image to paint on (same-origin URL). */
  imageUrl: string;
  /** A mask set before, loaded as the starting point; null for none. */
  maskUrl: string | null;
  /** Called with the mask PNG, or null when nothing is painted; the dialog closes when it resolves and shows the error when it rejects. */
  onSave(png: Uint8Array | null): Promise<void>;
  onClose(): void;
}

type Tool = 'brush' | 'eraser';
interface Point {
  x: number;
  y: number;
}
const UNDO_LIMIT = 30;
const PAINT = `rgb(${OVERLAY_RGB.join(', ')})`;

function loadImage(url: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${url}`));
    img.src = url;
  });
}

/** One brush or eraser segment (a dot when `from` is `to`). */
function paint(ctx: CanvasRenderingContext2D, from: Point, to: Point, size: number, tool: Tool): void {
  ctx.globalCompositeOperation = tool === 'eraser' ? 'destination-out' : 'source-over';
  ctx.fillStyle = ctx.strokeStyle = PAINT;
  if (from.x === to.x && from.y === to.y) {
    // A zero-length line draws nothing in Chromium, so a click paints a disc.
    ctx.beginPath();
    ctx.arc(to.x, to.y, size / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.lineWidth = size;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

/** The image's on-screen size: as large as fits the window (small images are scaled up), aspect kept. */
function fitBox(w: number, h: number): { width: number; height: number; scale: number } {
  const maxW = Math.min(window.innerWidth * 0.86, 1024);
  const maxH = window.innerHeight * 0.66;
  const scale = Math.min(maxW / w, maxH / h);
  return { width: Math.round(w * scale), height: Math.round(h * scale), scale };
}

const FOCUSABLE = 'button:not(:disabled), input:not(:disabled), [tabindex]:not([tabindex="-1"])';
const stop = (e: SyntheticEvent) => e.stopPropagation();

export function MaskPainter({ nodeTitle, imageUrl, maskUrl, onSave, onClose }: MaskPainterProps) {
  const titleId = useId();
  const dialog = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const last = useRef<Point | null>(null);
  const undo = useRef<ImageData[]>([]);
  const [size, setSize] = useState<{ w: number; h: number } | null>(null);
  const [tool, setTool] = useState<Tool>('brush');
  const [brush, setBrush] = useState(8);
  const [cursor, setCursor] = useState<{ x: number; y: number; d: number } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [canUndo, setCanUndo] = useState(false);
  const [, relayout] = useState(0);

  const ctx = () => canvas.current?.getContext('2d') ?? null;

  // Focus moves into the dialog, and back to where it was (the Paint mask button) on close.
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    dialog.current?.focus();
    return () => before?.focus?.();
  }, []);

  // The image's natural size is the canvas size: the saved mask matches the image pixel for pixel.
  useEffect(() => {
    let live = true;
    loadImage(imageUrl).then(
      (img) => {
        if (!live) return;
        setSize({ w: img.naturalWidth, h: img.naturalHeight });
        setBrush(defaultBrush(img.naturalWidth, img.naturalHeight));
      },
      (e: Error) => live && setError(e.message),
    );
    return () => {
      live = false;
    };
  }, [imageUrl]);

  useEffect(() => {
    const onResize = () => relayout((n) => n + 1);
    window.addEventListener('resize', onResize);
    return () => window.removeEventListener('resize', onResize);
  }, []);

  // A mask set before is the starting point (scaled to the image when its size differs).
  useEffect(() => {
    if (!size || !maskUrl) return;
    let live = true;
    loadImage(maskUrl).then(
      (img) => {
        const c = ctx();
        if (!live || !c) return;
        const tmp = document.createElement('canvas');
        tmp.width = size.w;
        tmp.height = size.h;
        const t = tmp.getContext('2d')!;
        t.drawImage(img, 0, 0, size.w, size.h);
        c.putImageData(new ImageData(maskToOverlay(t.getImageData(0, 0, size.w, size.h).data), size.w, size.h), 0, 0);
      },
      (e: Error) => live && setError(`the current mask: ${e.message}`),
    );
    return () => {
      live = false;
    };
  }, [size, maskUrl]);

  const snapshot = useCallback(() => {
    const c = ctx();
    if (!c || !size) return;
    undo.current.push(c.getImageData(0, 0, size.w, size.h));
    if (undo.current.length > UNDO_LIMIT) undo.current.shift();
    setCanUndo(true);
  }, [size]);

  const undoStroke = () => {
    const prev = undo.current.pop();
    if (prev) ctx()?.putImageData(prev, 0, 0);
    setCanUndo(undo.current.length > 0);
  };
  const clear = () => {
    snapshot();
    if (size) ctx()?.clearRect(0, 0, size.w, size.h);
  };
  const invert = () => {
    const c = ctx();
    if (!c || !size) return;
    snapshot();
    const data = c.getImageData(0, 0, size.w, size.h);
    invertOverlay(data.data);
    c.putImageData(data, 0, 0);
  };

  const point = (e: PointerEvent<HTMLCanvasElement>): Point => toCanvasPoint(e.clientX, e.clientY, e.currentTarget.getBoundingClientRect(), e.currentTarget);
  const showCursor = (e: PointerEvent<HTMLCanvasElement>) => {
    const r = e.currentTarget.getBoundingClientRect();
    const scale = r.width / e.currentTarget.width;
    setCursor({ x: e.clientX - r.left, y: e.clientY - r.top, d: brush * scale });
  };
  const onPointerDown = (e: PointerEvent<HTMLCanvasElement>) => {
    if (!e.isPrimary || e.button !== 0) return;
    const c = ctx();
    if (!c) return;
    e.preventDefault();
    e.currentTarget.setPointerCapture(e.pointerId);
    snapshot();
    const p = point(e);
    paint(c, p, p, brush, tool);
    last.current = p;
  };
  const onPointerMove = (e: PointerEvent<HTMLCanvasElement>) => {
    showCursor(e);
    const c = ctx();
    if (!last.current || !c || !e.isPrimary) return;
    // Coalesced events keep fast strokes smooth (the browser batches moves per frame).
    const events = e.nativeEvent.getCoalescedEvents?.() ?? [];
    const rect = e.currentTarget.getBoundingClientRect();
    const pts = events.length ? events.map((m) => toCanvasPoint(m.clientX, m.clientY, rect, e.currentTarget)) : [point(e)];
    for (const p of pts) {
      paint(c, last.current, p, brush, tool);
      last.current = p;
    }
  };
  const endStroke = () => {
    last.current = null;
  };

  const save = async () => {
    const c = ctx();
    if (!c || !size) return;
    setBusy(true);
    setError(null);
    try {
      const overlay = c.getImageData(0, 0, size.w, size.h).data;
      let png: Uint8Array | null = null;
      if (!overlayEmpty(overlay)) {
        const out = document.createElement('canvas');
        out.width = size.w;
        out.height = size.h;
        out.getContext('2d')!.putImageData(new ImageData(overlayToMask(overlay), size.w, size.h), 0, 0);
        const blob = await new Promise<Blob | null>((resolve) => out.toBlob(resolve, 'image/png'));
        if (!blob) throw new Error('the mask could not be encoded as PNG');
        png = new Uint8Array(await blob.arrayBuffer());
      }
      await onSave(png);
      onClose();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    // Nothing typed here reaches the editor's shortcuts behind the dialog.
    e.stopPropagation();
    const mod = e.ctrlKey || e.metaKey;
    if (e.key === 'Escape') onClose();
    else if (mod && e.key.toLowerCase() === 'z') {
      e.preventDefault();
      undoStroke();
    } else if (e.key === 'Tab') {
      // Keep focus inside the dialog.
      const items = Array.from(dialog.current?.querySelectorAll<HTMLElement>(FOCUSABLE) ?? []);
      const i = items.indexOf(document.activeElement as HTMLElement);
      const next = e.shiftKey ? (i <= 0 ? items.length - 1 : i - 1) : i === items.length - 1 ? 0 : i + 1;
      e.preventDefault();
      items[next]?.focus();
    } else if (!mod && (e.target as HTMLElement).tagName !== 'INPUT') {
      if (e.key === 'b') setTool('brush');
      else if (e.key === 'e') setTool('eraser');
      else if (e.key === '[' && size) setBrush((b) => Math.max(1, Math.round(b / 1.25)));
      else if (e.key === ']' && size) setBrush((b) => Math.min(maxBrush(size.w, size.h), Math.round(b * 1.25) + 1));
    }
  };

  const box = size ? fitBox(size.w, size.h) : null;
  return createPortal(
    <div
      className="modal-backdrop mask-backdrop"
      onPointerDown={stop}
      onMouseDown={stop}
      onClick={stop}
      onDoubleClick={stop}
      onContextMenu={stop}
      onWheel={stop}
    >
      <div ref={dialog} className="mask-painter" role="dialog" aria-modal="true" aria-labelledby={titleId} tabIndex={-1} onKeyDown={onKeyDown}>
        <div className="mask-head">
          <h2 id={titleId}>Paint mask</h2>
          <span className="mask-hint">Paint the area to repaint on the image of {nodeTitle}. B brush, E eraser, [ ] size, Ctrl+Z undo.</span>
        </div>
        <div className="mask-tools" role="toolbar" aria-label="Mask tools">
          <button type="button" aria-pressed={tool === 'brush'} onClick={() => setTool('brush')}>
            Brush
          </button>
          <button type="button" aria-pressed={tool === 'eraser'} onClick={() => setTool('eraser')}>
            Eraser
          </button>
          <label className="mask-size">
            Brush size
            <input type="range" min={1} max={size ? maxBrush(size.w, size.h) : 64} step={1} value={brush} onChange={(e) => setBrush(Number(e.target.value))} />
            <output>{brush} px</output>
          </label>
          <span className="mask-spacer" />
          <button type="button" onClick={undoStroke} disabled={!canUndo}>
            Undo
          </button>
          <button type="button" onClick={clear} disabled={!size}>
            Clear
          </button>
          <button type="button" onClick={invert} disabled={!size}>
            Invert
          </button>
        </div>
        <div className="mask-stage-wrap">
          {size && box ? (
            // Upscaled small images show their pixels sharp: the mask has the image's resolution.
            <div className={`mask-stage ${box.scale >= 2 ? 'pixelated' : ''}`} style={{ width: box.width, height: box.height }}>
              <img src={imageUrl} alt={`Image of ${nodeTitle} to paint a mask on`} draggable={false} />
              <canvas
                ref={canvas}
                width={size.w}
                height={size.h}
                aria-label="Mask canvas"
                className={`mask-canvas tool-${tool}`}
                onPointerDown={onPointerDown}
                onPointerMove={onPointerMove}
                onPointerUp={endStroke}
                onPointerCancel={endStroke}
                onPointerLeave={() => setCursor(null)}
              />
              {cursor && <div className="mask-cursor" style={{ left: cursor.x, top: cursor.y, width: cursor.d, height: cursor.d }} />}
            </div>
          ) : (
            <div className="mask-loading">{error ? '' : 'Loading image…'}</div>
          )}
        </div>
        {error && (
          <div className="mask-error" role="alert">
            {error}
          </div>
        )}
        <div className="modal-buttons">
          <span className="mask-size-note">{size ? `${size.w}×${size.h} mask` : ''}</span>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="primary" onClick={() => void save()} disabled={!size || busy}>
            {busy ? 'Saving…' : 'Save'}
          </button>
        </div>
      </div>
    </div>,
    document.body,
  );
}
