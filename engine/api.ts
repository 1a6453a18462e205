/**
 * The engine's API as hosts see it (CLI, web server, Electron main). Transport-neutral:
 * the web server and the Electron IPC forward these calls and events, validated by schema.
 * This file is pure types (no runtime imports) so the renderer may import it.
 */
import type { ModelKind, NodeSpec } from '../nodes/spec.js';
import type { Provider } from '../models/providers.js';
import type { PortType } from '../nodes/ports.js';

/** Workflow JSON (format "ipadapter-studio/workflow", versioned). */
export interface Workflow {
  format: 'ipadapter-studio/workflow';
  version: number;
  nodes: WorkflowNode[];
  edges: WorkflowEdge[];
  meta?: Record<string, unknown>;
}
export interface WorkflowNode {
  id: string;
  type: string;
  params: Record<string, number | string | boolean>;
  /** Editor layout; the engine never reads it. */
  ui?: { x: number; y: number; [k: string]: unknown };
}
export interface WorkflowEdge {
  from: { node: string; port: string };
  to: { node: string; port: string };
}

/** One validation error, tied to a node (and port/param where relevant). */
export interface ValidationError {
  node?: string;
  port?: string;
  param?: string;
  message: string;
}

export interface ImageRef {
  /** Absolute path of the written PNG (inside the output folder) or a temp preview. */
  path: string;
  /** A URL the renderer can load (server route or data URL). */
  url?: string;
  width: number;
  height: number;
}

export type RunEvent =
  | { type: 'queued'; runId: string; position: number }
  | { type: 'run-start'; runId: string }
  | { type: 'node-start'; runId: string; node: string }
  | { type: 'node-done'; runId: string; node: string; ms: number; cached: boolean }
  | { type: 'progress'; runId: string; node: string; step: number; total: number; preview?: { width: number; height: number; png: string /* base64 */ } }
  | { type: 'node-error'; runId: string; node: string; message: string }
  | { type: 'output'; runId: string; node: string; images: ImageRef[] }
  /** A node's own preview (e.g. a preprocessor's result): drawn on its card, not in the outputs panel. */
  | { type: 'node-preview'; runId: string; node: string; images: ImageRef[] }
  | { type: 'log'; runId?: string; level: 'info' | 'warn'; message: string }
  | { type: 'run-done'; runId: string; ok: boolean; cancelled?: boolean; error?: string; errors?: ValidationError[] };

export interface EngineSettings {
  modelsDir: string;
  outputDir: string;
  provider: Provider;
}

/** What every host calls. */
export interface EngineApi {
  nodeSpecs(): NodeSpec[];
  listModels(): Promise<Record<ModelKind, string[]>>;
  validate(wf: Workflow): ValidationError[];
  /** Queues a run; events arrive through `subscribe`. */
  enqueue(wf: Workflow): { runId: string };
  cancel(runId: string): void;
  subscribe(listener: (e: RunEvent) => void): () => void;
  settings(): EngineSettings;
  updateSettings(s: Partial<EngineSettings>): EngineSettings;
}

export type { PortType };
