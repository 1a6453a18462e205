/** Conformance cases of the `clip_preprocess` group. */
import type { CaseHandler } from '../context.js';

export const clipPreprocess: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
