/** Conformance cases of the `tokenizer` group. */
import type { CaseHandler } from '../context.js';

export const tokenizer: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
