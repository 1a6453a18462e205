/** Conformance cases of the `pipeline_img2img_ip_adapter` group: run through the engine with explicit noise. */
import type { CaseHandler } from '../context.js';
import { pipelineImg2imgCase } from '../pipeline-runner.js';

export const pipelineImg2imgIpAdapter: CaseHandler = pipelineImg2imgCase;
