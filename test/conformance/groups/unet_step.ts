/** Conformance cases of the `unet_step` group. */
import type { CaseHandler } from '../context.js';

export const unetStep: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
