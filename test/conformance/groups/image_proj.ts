/** Conformance cases of the `image_proj` group. */
import type { CaseHandler } from '../context.js';

export const imageProj: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
