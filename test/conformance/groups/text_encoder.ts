/** Conformance cases of the `text_encoder` group. */
import type { CaseHandler } from '../context.js';

export const textEncoder: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
