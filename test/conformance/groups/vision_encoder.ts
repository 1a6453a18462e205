/** Conformance cases of the `vision_encoder` group. */
import type { CaseHandler } from '../context.js';

export const visionEncoder: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
