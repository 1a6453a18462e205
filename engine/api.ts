/**
 * The engine's API as hosts see it (CLI, web server, Electron main). Transport-neutral:
 * the web server and the Electron IPC forward these calls and events, validated by schema.
 * This file is pure types (no runtime imports) so the renderer may import it.
 */
import type { ModelKind, NodeSpec } from '../nodes/spec.js';
import type { PortType } from '../nodes/ports.js';
import type { EngineSettings, QueueJob, RunEvent, ValidationError, Workflow } from './protocol.js';

// The workflow, validation-error, image, run-event and settings shapes are written once, as the
// zod schemas of engine/protocol.ts (which the hosts validate with); these are their types.
export type { EngineSettings, ImageRef, QueueJob, RunEvent, ValidationError, Workflow, WorkflowEdge, WorkflowNode } from './protocol.js';

/** What every host calls. */
export interface EngineApi {
  nodeSpecs(): NodeSpec[];
  listModels(): Promise<Record<ModelKind, string[]>>;
  validate(wf: Workflow): ValidationError[];
  /**
   * Queues a run; events arrive through `subscribe`. `name` is what the queue shows; with `dedupe`
   * a run that would write the same images as a finished one ends at once, naming it (`duplicateOf`).
   */
  enqueue(wf: Workflow, opts?: { name?: string; dedupe?: boolean }): { runId: string; duplicateOf?: string };
  /** Queued, running and recently finished jobs, oldest first (an engine without a queue of its own lists none). */
  listQueue?(): QueueJob[];
  cancel(runId: string): void;
  subscribe(listener: (e: RunEvent) => void): () => void;
  settings(): EngineSettings;
  updateSettings(s: Partial<EngineSettings>): EngineSettings;
  /** Settings' "Clear model cache": releases loaded models and removes the cache's graphs, weight links and float32 copies (refused while a run is queued or running). */
  clearModelCache?(): Promise<{ files: number; freedBytes: number }>;
}

export type { PortType };
