/** The ComfyUI fixtures (test/fixtures-comfyui, written from the node definitions) and the demo set's listing, for the importer's tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEMO_NAMES } from '../../engine/demo/demo.js';
import { parseJsonExact } from '../../engine/interop/comfyui/read.js';

export const COMFY_FIXTURES = path.resolve(__dirname, '../fixtures-comfyui');

/** What listModels gives for the demo model set. */
export const DEMO_LIST = {
  checkpoints: [DEMO_NAMES.checkpoint],
  ipadapter: [DEMO_NAMES.ipAdapter],
  clip_vision: [DEMO_NAMES.clipVision],
  controlnet: [DEMO_NAMES.controlnetCanny, DEMO_NAMES.controlnetLineart],
  vae: [DEMO_NAMES.vae],
  loras: [DEMO_NAMES.lora],
  tokenizers: [DEMO_NAMES.tokenizer],
};

export function comfyFixture(name: string): unknown {
  return parseJsonExact(fs.readFileSync(path.join(COMFY_FIXTURES, name), 'utf8'));
}
