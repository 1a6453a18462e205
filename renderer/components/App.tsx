/**
 * The workspace: toolbar, canvas, outputs; boots from the host (specs, models, settings,
 * examples), restores the autosave or opens the default workflow, and handles keys and drops.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ReactFlowProvider, useNodesInitialized, useReactFlow } from '@xyflow/react';
import { ACTIONS, handleKey, type ActionContext } from '../actions.js';
import { defaultWorkflow } from '../defaults.js';
import { editor, host } from '../editor.js';
import { carriesComfyWorkflow } from '../comfyui.js';
import { fileBytes, openPickedFiles, openWorkflowBytes, readRecovery, refreshImageStatus, uploadImage, writeRecovery, type PickedFile } from '../files.js';
import { layout, refitGroups, restack } from '../graph.js';
import { isPng, readTextChunk } from '../png.js';
import { parseWorkflow } from '../../engine/workflow.js';
import { Canvas, FIT_VIEW, type WireDrop } from './Canvas.js';
import { loadRendererPrefs, MissingImagesDialog, NameDialog, Notices, SettingsDialog } from './Dialogs.js';
import { OutputPanel } from './OutputPanel.js';
import { ModelsBanner } from './Banner.js';
import { DiscardDialog } from './ConfirmDialog.js';
import { askDiscard } from '../confirm.js';
import { refreshGallery, refreshModelsReport, refreshQueue } from '../gallery.js';
import { Palette } from './Palette.js';
import { Toolbar } from './Toolbar.js';

/** Set when the default workflow was laid out from estimated card heights (restacked once drawn). */
let restackPending = false;

async function boot(): Promise<void> {
  const h = host();
  const [info, specs, models, settings, examples] = await Promise.all([
    h.call('hostInfo', {}),
    h.call('nodeSpecs', {}),
    h.call('listModels', {}),
    h.call('getSettings', {}),
    h.call('listExamples', {}),
  ]);
  const s = editor.getState();
  s.setSpecs(specs);
  editor.setState({ hostInfo: info, models, settings, examples });
  loadRendererPrefs();
  // What the models banner says for as long as it is true (demo models, --demo over a models folder, no models) is not repeated as a toast.
  for (const n of info.notices) if (!/^(Demo models|Started with --demo|The models folder )/.test(n)) s.notify('warn', n);
  // The gallery remembers (the output folder's images), the queue shows jobs still pending, the banner what the models folder holds.
  await Promise.all([refreshGallery(editor, h), refreshQueue(editor, h), refreshModelsReport(editor, h)]);
  if (editor.getState().nodes.length) return; // a reconnect: keep the open document
  const rec = readRecovery();
  const parsed = rec ? parseWorkflow(rec.workflow) : null;
  if (rec && parsed?.workflow) {
    s.loadWorkflow(parsed.workflow, rec.fileName, { dirty: rec.dirty });
    if (rec.imageOrigins && typeof rec.imageOrigins === 'object') editor.setState({ imageOrigins: rec.imageOrigins });
    if (rec.dirty) s.notify('info', 'Restored your unsaved work from the recovery slot.');
  } else {
    restackPending = true;
    s.loadDoc(defaultWorkflow(editor.getState().specs, models, info.sampleImage?.value), null);
  }
}

function Workspace() {
  const flow = useReactFlow();
  const [palette, setPalette] = useState<{ at: { x: number; y: number }; flow: { x: number; y: number }; wire?: WireDrop } | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [nameAsk, setNameAsk] = useState<{ suggested: string; resolve(v: string | null): void } | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const openPaletteCentre = useCallback(() => {
    const el = document.querySelector('.canvas')?.getBoundingClientRect();
    const at = el ? { x: el.left + el.width / 2 - 150, y: el.top + 60 } : { x: 300, y: 100 };
    setPalette({ at, flow: flow.screenToFlowPosition({ x: at.x + 150, y: at.y + 60 }) });
  }, [flow]);

  const ctx: ActionContext & { openExample(name: string): void } = useMemo(
    () => ({
      store: editor,
      host: host(),
      ui: {
        fitView: () => void flow.fitView({ ...FIT_VIEW, duration: 200 }),
        openPalette: openPaletteCentre,
        openFilePicker: async () => {
          if (!(await askDiscard(editor, 'Opening a file'))) return;
          const h = host();
          if (h.openFile) {
            const f = await h.openFile('workflow');
            const images = f?.images?.map((i) => ({ path: i.ref, bytes: i.bytes }));
            if (f && (await openWorkflowBytes(editor, f.name, f.bytes, { host: h, images }))) setTimeout(() => void flow.fitView(FIT_VIEW), 50);
          } else fileInput.current?.click();
        },
        openSettings: () => setSettingsOpen(true),
        askName: (suggested) => new Promise((resolve) => setNameAsk({ suggested, resolve })),
        newWorkflow: async () => {
          if (!(await askDiscard(editor, 'New workflow'))) return;
          // A new document starts without the old one's notices.
          editor.setState({ notices: [] });
          editor.getState().commit();
          editor.getState().loadDoc({ nodes: [], edges: [] }, null, { keepHistory: true });
          // Nodes added next appear at full size, whatever zoom the previous workflow was fitted at.
          void flow.setViewport({ x: 40, y: 40, zoom: 1 });
        },
        tidy: () => {
          const s = editor.getState();
          s.commit();
          const laid = layout({ nodes: s.nodes, edges: s.edges }, s.specs);
          editor.setState({ ...laid, groups: refitGroups(s, laid, s.specs) });
          setTimeout(() => void flow.fitView({ ...FIT_VIEW, duration: 200 }), 50);
        },
      },
      openExample: async (name: string) => {
        if (!(await askDiscard(editor, `Opening the example ${editor.getState().examples.find((x) => x.name === name)?.title ?? name}`))) return;
        try {
          const wf = await host().call('readExample', { name });
          await openWorkflowBytes(editor, name, new TextEncoder().encode(JSON.stringify(wf)), { host: host() });
          setTimeout(() => void flow.fitView(FIT_VIEW), 50);
        } catch (e) {
          editor.getState().notify('error', (e as Error).message);
        }
      },
    }),
    [flow, openPaletteCentre],
  );

  // Boot, events, connection state.
  useEffect(() => {
    const h = host();
    let listing: ReturnType<typeof setTimeout> | undefined;
    const offEvent = h.onEvent((e) => {
      editor.getState().handleEvent(e);
      // A finished run's images, with the parameters their PNGs carry, come from the output folder's listing.
      if (e.type === 'run-done') {
        clearTimeout(listing);
        listing = setTimeout(() => void refreshGallery(editor, h), 150);
      }
    });
    const offConn = h.onConnection((up) => {
      editor.setState({ connected: up });
      if (up)
        boot()
          .then(() => setTimeout(() => void flow.fitView(FIT_VIEW), 50))
          .catch((e) => editor.getState().notify('error', `Could not start: ${e.message}`));
    });
    return () => {
      offEvent();
      offConn();
    };
  }, [flow]);

  // The default workflow was placed with estimated heights: once the cards are measured, close
  // the gaps (same columns, same order) and frame it again. Not an edit: no undo step, not dirty.
  const measured = useNodesInitialized();
  useEffect(() => {
    if (!measured || !restackPending) return;
    restackPending = false;
    const s = editor.getState();
    editor.setState(restack({ nodes: s.nodes, edges: s.edges }, s.specs));
    setTimeout(() => void flow.fitView(FIT_VIEW), 50);
  }, [measured, flow]);

  // Autosave to the recovery slot, debounced; and the status of image refs the editor has not asked about yet.
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let check: ReturnType<typeof setTimeout> | undefined;
    return editor.subscribe((s, prev) => {
      if (s.revision === prev.revision && s.savedRevision === prev.savedRevision) return;
      clearTimeout(timer);
      timer = setTimeout(() => writeRecovery(editor), 300);
      if (s.revision === prev.revision) return;
      clearTimeout(check);
      check = setTimeout(() => void refreshImageStatus(editor, host()).catch(() => {}), 150);
    });
  }, []);

  // Shortcuts.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      // A dialog (the image viewer, Replace unsaved work?) takes the keys while it is open.
      if (palette || settingsOpen || nameAsk || document.querySelector('[aria-modal="true"]')) return;
      handleKey(e, ctx);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [ctx, palette, settingsOpen, nameAsk]);

  // Electron: the application menu performs the same registered actions (by name).
  useEffect(
    () =>
      host().onMenuAction?.((name) => {
        const a = ACTIONS.find((x) => x.name === name);
        if (a && (!a.enabled || a.enabled(editor.getState()))) void a.perform(ctx);
      }),
    [ctx],
  );

  // Dropping a workflow JSON / exported PNG opens it; another image becomes a Load Image node.
  useEffect(() => {
    const over = (e: DragEvent) => {
      if (e.dataTransfer?.types.includes('Files')) e.preventDefault();
    };
    const drop = async (e: DragEvent) => {
      const file = e.dataTransfer?.files[0];
      if (!file) return;
      e.preventDefault();
      if ((e.dataTransfer?.files.length ?? 0) > 1) {
        // A workflow dropped with its images: opened together, its relative refs matched to them.
        const files = await pickedFiles(e.dataTransfer!.files);
        if (!(await askDiscard(editor, 'Opening the dropped files'))) return;
        if (await openPickedFiles(editor, host(), files)) setTimeout(() => void flow.fitView(FIT_VIEW), 50);
        return;
      }
      const bytes = await fileBytes(file);
      const isImage = file.type.startsWith('image/');
      // A PNG or WebP saved by ComfyUI opens its workflow (renderer/comfyui.ts).
      const comfyImage = isImage && (await carriesComfyWorkflow(bytes));
      if (!isImage || file.type === 'image/png' || comfyImage) {
        const hasWorkflow = comfyImage || !isPng(bytes) || (await readTextChunk(bytes).catch(() => null)) !== null;
        if (hasWorkflow) {
          if (!(await askDiscard(editor, `Opening ${file.name}`))) return;
          if (await openWorkflowBytes(editor, file.name, bytes, { host: host() })) setTimeout(() => void flow.fitView(FIT_VIEW), 50);
          return;
        }
      }
      if (isImage) await dropImageAsNode(file, bytes, flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    };
    window.addEventListener('dragover', over);
    window.addEventListener('drop', drop);
    return () => {
      window.removeEventListener('dragover', over);
      window.removeEventListener('drop', drop);
    };
  }, [flow]);

  return (
    <div className="app">
      <div className="top">
        <Toolbar ctx={ctx} />
        <ModelsBanner onSettings={() => setSettingsOpen(true)} />
      </div>
      <main className="main">
        <Canvas onOpenPalette={(at, f, wire) => setPalette({ at, flow: f, wire })} onTidy={ctx.ui.tidy} />
        <OutputPanel />
      </main>
      <Notices />
      {/* Several files may be chosen at once: a workflow and the images it names (matched by path). */}
      <input
        ref={fileInput}
        type="file"
        hidden
        multiple
        accept=".json,application/json,image/png,image/jpeg,image/webp"
        aria-label="Open workflow file"
        onChange={async (e) => {
          const list = e.target.files;
          const files = list && list.length ? await pickedFiles(list) : [];
          e.target.value = '';
          if (files.length && (await openPickedFiles(editor, host(), files))) setTimeout(() => void flow.fitView(FIT_VIEW), 50);
        }}
      />
      {palette && (
        <Palette
          at={palette.at}
          wire={palette.wire}
          onClose={() => setPalette(null)}
          onPick={(type) => {
            if (palette.wire) editor.getState().addNodeWired(type, palette.flow.x, palette.flow.y, palette.wire);
            else editor.getState().addNode(type, palette.flow.x, palette.flow.y);
            setPalette(null);
          }}
        />
      )}
      {settingsOpen && <SettingsDialog onClose={() => setSettingsOpen(false)} />}
      <MissingImagesDialog />
      <DiscardDialog />
      {nameAsk && (
        <NameDialog
          suggested={nameAsk.suggested}
          onDone={(v) => {
            nameAsk.resolve(v);
            setNameAsk(null);
          }}
        />
      )}
    </div>
  );
}

/** A FileList as picked files (a folder pick gives each its path within the folder). */
async function pickedFiles(list: FileList): Promise<PickedFile[]> {
  return Promise.all([...list].map(async (f) => ({ name: f.name, path: f.webkitRelativePath || f.name, bytes: await fileBytes(f) })));
}

/** An image without a workflow dropped on the canvas: upload it and add a Load Image node there. */
async function dropImageAsNode(file: File, bytes: Uint8Array, at: { x: number; y: number }): Promise<void> {
  const s = editor.getState();
  const spec = s.specList.find((x) => x.params.some((p) => p.kind === 'image'));
  if (!spec) return;
  try {
    const res = await uploadImage(editor, host(), file.name, bytes);
    const param = spec.params.find((p) => p.kind === 'image')!;
    s.addNode(spec.type, at.x, at.y, { [param.name]: res.value });
  } catch (e) {
    s.notify('error', `${file.name}: ${(e as Error).message}`);
  }
}

export function App() {
  return (
    <ReactFlowProvider>
      <Workspace />
    </ReactFlowProvider>
  );
}
