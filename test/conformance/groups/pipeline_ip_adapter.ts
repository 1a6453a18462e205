/** Conformance cases of the `pipeline_ip_adapter` group: run through the engine from workflow JSON. */
import type { CaseHandler } from '../context.js';
import { pipelineIpAdapterCase } from '../pipeline-runner.js';

export const pipelineIpAdapter: CaseHandler = pipelineIpAdapterCase;
