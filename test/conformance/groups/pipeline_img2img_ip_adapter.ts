/** Conformance cases of the `pipeline_img2img_ip_adapter` group. */
import type { CaseHandler } from '../context.js';

export const pipelineImg2imgIpAdapter: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
