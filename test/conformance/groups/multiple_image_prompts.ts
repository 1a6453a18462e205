/** Conformance cases of the `multiple_image_prompts` group. */
import type { CaseHandler } from '../context.js';

export const multipleImagePrompts: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
