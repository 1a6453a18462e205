/** Conformance cases of the `ddim` group. */
import type { CaseHandler } from '../context.js';

export const ddim: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
