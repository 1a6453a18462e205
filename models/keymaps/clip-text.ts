/**
 * Weight maps for the CLIP text encoder in the layouts users have, presenting the
 * transformers `CLIPTextModel` names (`text_model.embeddings.token_embedding.weight`, ...):
 * - transformers / diffusers folder `text_encoder/model.safetensors`, or a ComfyUI
 *   `clip/` file: keys are already `text_model.*`;
 * - original (LDM) single-file SD1.x checkpoint: `cond_stage_model.transformer.text_model.*`
 *   (no `position_ids` buffer needed: positions are a constant of the graph);
 * - older single-file checkpoints saved with transformers < 4.x naming:
 *   `cond_stage_model.transformer.embeddings.*` / `.encoder.*` / `.final_layer_norm.*`.
 *
 * The generic views (`prefixedWeights`, `mappedWeights`) live in ./view.ts.
 */
import * as path from 'node:path';
import type { WeightMap } from '../onnx/graph.js';
import type { SafetensorsFile } from '../safetensors.js';
import { mappedWeights, prefixedWeights } from './view.js';

export { mappedWeights, prefixedWeights };

export type ClipTextLayout = 'transformers' | 'ldm' | 'ldm-legacy';

const PROBE = 'text_model.embeddings.token_embedding.weight';
const LDM = 'cond_stage_model.transformer.';

/** Which CLIP text layout a file has, or null when it holds no SD1.x-style CLIP text encoder. */
export function detectClipTextLayout(file: SafetensorsFile): ClipTextLayout | null {
  if (file.has(PROBE)) return 'transformers';
  if (file.has(LDM + PROBE)) return 'ldm';
  if (file.has(`${LDM}embeddings.token_embedding.weight`)) return 'ldm-legacy';
  return null;
}

/**
 * The CLIP text encoder weights of `file` under transformers names, whatever its layout.
 * Files with an OpenCLIP text tower (SD2.x) or SDXL's two encoders are refused by name.
 */
export function clipTextWeights(file: SafetensorsFile): WeightMap {
  switch (detectClipTextLayout(file)) {
    case 'transformers':
      return prefixedWeights(file, '');
    case 'ldm':
      return prefixedWeights(file, LDM);
    case 'ldm-legacy':
      return mappedWeights(file, (n) => LDM + n.replace(/^text_model\./, ''), 'legacy LDM layout');
    default:
      break;
  }
  const keys = file.keys();
  const name = path.basename(file.file);
  if (keys.some((k) => k.startsWith('conditioner.embedders.'))) {
    throw new Error(`${name}: this is an SDXL checkpoint (conditioner.embedders.*); only Stable Diffusion 1.x text encoders are supported`);
  }
  if (keys.some((k) => k.startsWith('cond_stage_model.model.'))) {
    throw new Error(
      `${name}: this checkpoint has an OpenCLIP text encoder (cond_stage_model.model.*, Stable Diffusion 2.x); only Stable Diffusion 1.x (CLIP ViT-L/14) is supported`,
    );
  }
  throw new Error(`${name}: no CLIP text encoder found (expected "${PROBE}" or "${LDM}${PROBE}"); file: ${file.file}`);
}
