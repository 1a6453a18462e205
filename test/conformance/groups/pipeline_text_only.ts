/** Conformance cases of the `pipeline_text_only` group. */
import type { CaseHandler } from '../context.js';

export const pipelineTextOnly: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
