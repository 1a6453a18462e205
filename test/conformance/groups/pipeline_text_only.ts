/** Conformance cases of the `pipeline_text_only` group (λ = 0 and no adapter): run through the engine. */
import type { CaseHandler } from '../context.js';
import { pipelineTextOnlyCase } from '../pipeline-runner.js';

export const pipelineTextOnly: CaseHandler = pipelineTextOnlyCase;
