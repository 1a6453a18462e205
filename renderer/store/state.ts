/**
 * The editor state's shape: each slice's fields and actions (document.ts, run.ts, ui.ts implement
 * them) and their union, `EditorState`. Types only; the slices import it rather than index.ts,
 * so the store's files import each other without a cycle.
 */
import type { EdgeChange, NodeChange } from '@xyflow/react';
import type { EngineSettings, RunEvent, ValidationError, Workflow } from '../../engine/api.js';
import type { GalleryItem, HostInfo, ModelsFolderReport, QueueJob } from '../../engine/protocol.js';
import type { ModelKind, NodeSpec, ParamValue } from '../../nodes/types.js';
import type { Connection, Doc, FlowEdge, FlowNode, GroupBox, NodeMode, NodeUi, SpecMap } from '../graph.js';

// ---- document (document.ts) ----------------------------------------------------------------------

export interface LoadOptions {
  /** Load as unsaved work (a recovered autosave). */
  dirty?: boolean;
  /** Keep the undo history (the caller committed first, so opening a file can be undone). */
  keepHistory?: boolean;
}

export interface DocumentSlice extends Doc {
  specs: SpecMap;
  specList: NodeSpec[];
  past: Doc[];
  future: Doc[];
  coalesce: { key: string; at: number } | null;
  dragging: boolean;
  /** Bumped by every document change; equal to savedRevision when nothing is unsaved. */
  revision: number;
  savedRevision: number;
  fileName: string | null;
  clipboard: Doc | null;
  /** The opened workflow's meta (title, an import's groups and notes), saved back with it. */
  meta?: Record<string, unknown>;

  setSpecs(list: NodeSpec[]): void;
  /** Records the current document as an undo step (call before changing it). */
  commit(coalesceKey?: string): void;
  /** Replaces the document without history (loading). */
  loadDoc(doc: Doc, fileName: string | null, opts?: LoadOptions): void;
  loadWorkflow(wf: Workflow, fileName: string | null, opts?: LoadOptions): string[];
  workflow(): Workflow;
  onNodesChange(changes: NodeChange<FlowNode>[]): void;
  onEdgesChange(changes: EdgeChange<FlowEdge>[]): void;
  connect(c: Connection): string | null;
  /** Adds a node at the free spot nearest (x, y); returns its id. */
  addNode(type: string, x: number, y: number, params?: Record<string, ParamValue>): string | null;
  /** A wire dropped on empty canvas: adds the node and wires its first compatible port to that end (one undo step). */
  addNodeWired(type: string, x: number, y: number, from: { node: string; port: string; side: 'source' | 'target' }): string | null;
  /** Bypass / mute the nodes, or run them again (null). */
  setMode(ids: string[], mode: NodeMode | null): void;
  /** Sets (or, with undefined / false, removes) keys of the nodes' `ui`: collapsed, color. */
  setUi(ids: string[], patch: Partial<NodeUi>): void;
  /** Turns a param into an input (a primitive may feed it) or back into a widget. */
  convertParam(node: string, name: string, toInput: boolean): void;
  /** Splits a wire with a reroute at (x, y). */
  addReroute(edgeId: string, x: number, y: number): string | null;
  addGroup(ids: string[], title?: string): string | null;
  updateGroup(id: string, patch: Partial<Omit<GroupBox, 'id'>>, coalesceKey?: string): void;
  removeGroup(id: string): void;
  /** Moves a group and the cards inside it (no undo step: the drag start commits). */
  moveGroup(id: string, dx: number, dy: number, members?: string[]): void;
  setParam(node: string, name: string, value: ParamValue): void;
  deleteSelected(): void;
  selectAll(): void;
  copy(): number;
  /** Pastes the clipboard at `at` (the pointer, flow coordinates) or beside the original, where it covers no card. */
  paste(at?: { x: number; y: number }): void;
  undo(): void;
  redo(): void;
  markSaved(fileName: string): void;
  /** Sets every image param holding a key of `map` to its value (Relink: one undo step for all the nodes that named it). */
  replaceImageRefs(map: Record<string, string>): void;
}

// ---- run (run.ts) -------------------------------------------------------------------------------

/** A node's run warnings and the node's type and file params when it ran (renderer/node-warnings.ts shownWarnings compares them). */
export interface NodeWarning {
  type: string;
  files: Record<string, unknown>;
  messages: string[];
}
export interface NodeRun {
  status: 'queued' | 'running' | 'done' | 'cached' | 'error';
  ms?: number;
  startedAt?: number;
  message?: string;
}
/**
 * A job of the queue panel: one the editor queued (with its workflow, so it can be queued again)
 * or one the host lists (another window's, a remote farm's: `where`). Filled from RunEvents and
 * listQueue (engine/protocol.ts QueueJob; /work/notes/s8/queue-api.md).
 */
export interface RunInfo {
  runId: string;
  status: 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'duplicate';
  position?: number;
  workflow?: Workflow;
  /** The workflow's name as the queue shows it. */
  name?: string;
  /** Absent: this machine; else the remote queue's address. */
  where?: string;
  progress?: { step: number; total: number };
  submittedAt?: number;
  finishedAt?: number;
  /** A duplicate: the finished run whose images it would have written again. */
  duplicateOf?: string;
  /** Output image paths of a finished run (a duplicate's are its original's). */
  images?: string[];
  error?: string;
  /** A farm job the host holds while its queue is unreachable: "waiting for the queue at redis://…". */
  held?: string;
  /** The sweep it belongs to (its first job's runId): the queue panel's Cancel batch. */
  batch?: string;
}
/** An image of the gallery: from a run of this session (`output` events) or the output folder (listOutputs). */
export interface OutputImage {
  /** Its URL (`/outputs/<file>`): the same for a run's image and the folder listing's. */
  id: string;
  runId?: string;
  node?: string;
  url: string;
  /** The absolute path (a run's image) or the path within the output folder (listed). */
  path: string;
  width: number;
  height: number;
  /** The run's workflow (this session's runs); a listed PNG carries its own. */
  workflow?: Workflow;
  /** The Automatic1111 parameters text its PNG carries. */
  parameters?: string;
  hasWorkflow?: boolean;
  title?: string;
  mtimeMs?: number;
}
export interface Progress {
  runId: string;
  node: string;
  step: number;
  total: number;
  preview?: string;
}

export interface RunSlice {
  runs: Record<string, RunInfo>;
  activeRun: string | null;
  nodeRuns: Record<string, NodeRun>;
  /** Latest on-card preview image URL per node (preprocessor results). */
  nodePreviews: Record<string, string>;
  /** Warnings a node's run logged (a loader's NaN / Inf weights), shown as a badge on its card while its files are these. */
  nodeWarnings: Record<string, NodeWarning>;
  progress: Progress | null;
  outputs: OutputImage[];
  selectedOutputs: string[];

  handleEvent(e: RunEvent): void;
  showErrors(errors: ValidationError[]): void;
  clearRunState(): void;
  toggleOutput(id: string): void;
  /** The output folder's listing replaces the gallery (this session's images not yet listed stay in front). */
  setGallery(items: GalleryItem[]): void;
  /** The host's queue (after a reload) merged into the runs. */
  mergeQueue(jobs: QueueJob[]): void;
  /** Forgets finished jobs (the queue panel's "Clear finished"). */
  clearFinished(): void;
}

// ---- ui/settings (ui.ts) ------------------------------------------------------------------------

export interface Notice {
  id: number;
  level: 'info' | 'warn' | 'error';
  text: string;
  /**
   * What it is about, so it goes when that is gone: 'run' (a run's errors: cleared by the next
   * successful run and by a new document), 'document' (cleared by a new document).
   */
  cause?: 'run' | 'document';
}

/** What the host said about an image ref of the document (resolveImages, or an upload's answer). */
export interface ImageStatus {
  found: boolean;
  url?: string;
}

export interface UiSlice {
  models: Partial<Record<ModelKind, string[]>>;
  notices: Notice[];
  settings: EngineSettings | null;
  hostInfo: HostInfo | null;
  connected: boolean;
  examples: { name: string; title: string }[];
  /** By image ref: found or missing (shown on the node as "missing: <ref>" with Relink…), and a thumbnail URL. */
  imageStatus: Record<string, ImageStatus>;
  /**
   * Images opened together with the document (picked with it, or next to it in the desktop app),
   * stored in the inputs folder: stored ref -> the ref the file had (`images/a.png`). Save writes
   * the original refs back, so a workflow kept next to its images stays relative to them. Reset by every load.
   */
  imageOrigins: Record<string, string>;
  /** Set while the "missing images" question is open (a workflow opened without some of its images). */
  missingAsk: { fileName: string } | null;
  /** Exported PNGs carry the workflow's input images (a bundle chunk); off by default, kept in localStorage. */
  pngCarriesImages: boolean;

  /** What the models folder in use holds (checkModelsFolder): the banner says when it is missing or empty. */
  modelsReport: ModelsFolderReport | null;
  /** Set while "replace unsaved work?" is asked (New, Open, an example, a gallery image's workflow): renderer/confirm.ts. */
  discardAsk: { action: string; resolve(ok: boolean): void } | null;

  notify(level: Notice['level'], text: string, cause?: Notice['cause']): void;
  dismiss(id: number): void;
  /** Dismisses the notices of these causes (their cause is gone). */
  clearNotices(...causes: NonNullable<Notice['cause']>[]): void;
}

/**
 * The whole editor state; components read it through narrow selectors. The document (nodes +
 * edges) has undo/redo history; run state, outputs and notices do not.
 */
export type EditorState = DocumentSlice & RunSlice & UiSlice;
