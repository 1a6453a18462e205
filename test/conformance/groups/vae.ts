/** Conformance cases of the `vae` group. */
import type { CaseHandler } from '../context.js';

export const vae: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
