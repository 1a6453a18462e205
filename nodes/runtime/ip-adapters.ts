/**
 * Applying an IP-Adapter to a MODEL, shared by every node that does it (Apply IP-Adapter, and nodes
 * that apply one from precomputed tokens): the checks on what is applied and the new ModelValue.
 * Each application is one image branch of the UNet graph (models/unet.ts, at most MAX_IP_ADAPTERS),
 * with its own tokens, λ per layer, window, negative tokens, embeds_scaling and mask:
 *   Z = Attn(Q, K, V) + Σ_k λ_k · m_k ⊙ Attn(Q, K'_k, V'_k).
 * Two applications of the same file are two branches (their own softmaxes, as ComfyUI chains them);
 * the file's weights are shared in the graph.
 */
import { MAX_IP_ADAPTERS } from '../../models/unet.js';
import type { ExecContext } from '../../engine/context.js';
import type { AppliedAdapter, ModelValue } from '../values.js';

/** How an application names itself in a sentence: `Apply IP-Adapter "apply_2"`. */
export const adapterLabel = (a: Pick<AppliedAdapter, 'from' | 'adapter'>) => (a.from ? `${a.from.title} "${a.from.node}"` : `the IP-Adapter ${a.adapter.path}`);

/**
 * The model with `applied` added as one more image branch. Refuses a fifth adapter (naming the
 * nodes already applied), tokens projected by another adapter, and a mask whose batch is neither 1
 * nor the number of images; an empty mask (all 0: the adapter acts nowhere) is a warning.
 */
export function appendAdapter(ctx: Pick<ExecContext, 'log' | 'nodeId'>, model: ModelValue, applied: AppliedAdapter): ModelValue {
  const me = adapterLabel(applied);
  if (model.adapters.length >= MAX_IP_ADAPTERS) {
    throw new Error(
      `${me}: this model already has ${model.adapters.length} IP-Adapters (${model.adapters.map(adapterLabel).join(', ')}); ` +
        `one UNet takes at most ${MAX_IP_ADAPTERS}: merge image prompts into one IP-Adapter Projection, or use fewer adapters`,
    );
  }
  const { adapter, tokens, negative } = applied;
  for (const [what, t] of [
    ['tokens', tokens],
    ['negative tokens', negative],
  ] as const) {
    if (t && t.adapterPath !== adapter.path) {
      throw new Error(`the ${what} were projected by ${t.adapterPath}, not by this adapter (${adapter.path}); connect the same Load IP-Adapter to both nodes`);
    }
  }
  if (negative && negative.tokens !== tokens.tokens) {
    throw new Error(`the negative image prompt has ${negative.tokens} tokens but the image prompt has ${tokens.tokens}; give both the same number of images`);
  }
  const mask = applied.mask;
  if (mask) {
    const images = adapter.tokensPerImage > 0 && tokens.tokens % adapter.tokensPerImage === 0 ? tokens.tokens / adapter.tokensPerImage : 1;
    if (mask.batch !== 1 && mask.batch !== images) {
      throw new Error(
        `${me}: the mask has ${mask.batch} planes but the image prompt has ${images} image${images === 1 ? '' : 's'} (${tokens.tokens} tokens of ${adapter.tokensPerImage}); give one mask for all or one per image`,
      );
    }
    for (let b = 0; b < mask.batch; b++) {
      const plane = mask.data.subarray(b * mask.width * mask.height, (b + 1) * mask.width * mask.height);
      if (!plane.some((v) => v > 0)) {
        const which = mask.batch > 1 ? ` for image ${b + 1}` : '';
        ctx.log('warn', `${me}: the attention mask${which} is empty (all 0), so this image prompt acts nowhere; paint where it should act (white = 1)`);
      }
    }
  }
  return { ...model, adapters: [...model.adapters, applied] };
}
