/** Conformance cases of the `pipeline_controlnet_ip_adapter` group. */
import type { CaseHandler } from '../context.js';

export const pipelineControlnetIpAdapter: CaseHandler = async (_ctx, group, c) => [
  { group, case: c.name, status: 'fail', detail: 'not implemented yet' },
];
