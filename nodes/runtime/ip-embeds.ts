/**
 * IP_EMBEDS (ComfyUI_IPAdapter_plus' EMBEDS): what an adapter's projection takes, per image. Shared by the
 * IP-Adapter Encoder, Combine Embeds, Apply IP-Adapter (embeds) and Save / Load Embeds nodes:
 *   - the combine methods of IPAdapterCombineEmbeds (IPAdapterPlus.py), over the rows of all inputs;
 *   - embeds -> IP_TOKENS through the adapter's projection, with ipadapter_execute's unconditional rule;
 *   - the .safetensors file format of saved embeds (one F32 tensor, the adapter recorded in the header).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkAdapterMatchesVision, type IpAdapterKind } from '../../models/ip-adapter.js';
import { encodeSafetensors, readTensorF32, SafetensorsFile } from '../../models/safetensors.js';
import type { ModelStore } from '../../engine/model-store.js';
import type { IpAdapterValue, IpEmbedsValue, IpTokensValue } from '../values.js';
import { clipVisionRuntime, projectorRuntime } from './networks.js';

/** IPAdapterCombineEmbeds' methods, in its order. */
export const COMBINE_METHODS = ['concat', 'add', 'subtract', 'average', 'norm average', 'max', 'min'] as const;
export type CombineMethod = (typeof COMBINE_METHODS)[number];

/**
 * Combines the rows e_1..e_n of the inputs (torch.cat(embeds, dim=0) first), elementwise over each row:
 *   concat: the n rows;  add: Σ e_i;  subtract: e_1 − mean(e_2..e_n);  average: mean(e_i);
 *   norm average: mean(e_i / ‖e_·‖), the norm over the n rows of each element (torch.norm(dim=0));
 *   max / min: the elementwise max / min. All but concat give one row. Float32 arithmetic per step, as torch.
 */
export function combineRows(rows: Float32Array, n: number, method: CombineMethod): { data: Float32Array; count: number } {
  if (method === 'concat' || n === 0) return { data: rows, count: n };
  const len = rows.length / n;
  const out = new Float32Array(len);
  const fr = Math.fround;
  const at = (i: number, j: number) => rows[i * len + j]!;
  const mean = (j: number, from: number) => {
    let s = 0;
    for (let i = from; i < n; i++) s = fr(s + at(i, j));
    return fr(s / (n - from));
  };
  for (let j = 0; j < len; j++) {
    switch (method) {
      case 'add': {
        let s = 0;
        for (let i = 0; i < n; i++) s = fr(s + at(i, j));
        out[j] = s;
        break;
      }
      case 'subtract':
        out[j] = fr(at(0, j) - mean(j, 1));
        break;
      case 'average':
        out[j] = mean(j, 0);
        break;
      case 'norm average': {
        let ss = 0;
        for (let i = 0; i < n; i++) ss = fr(ss + fr(at(i, j) * at(i, j)));
        const norm = fr(Math.sqrt(ss));
        let s = 0;
        for (let i = 0; i < n; i++) s = fr(s + fr(at(i, j) / norm));
        out[j] = fr(s / n);
        break;
      }
      case 'max':
      case 'min': {
        let m = at(0, j);
        for (let i = 1; i < n; i++) m = method === 'max' ? Math.max(m, at(i, j)) : Math.min(m, at(i, j));
        out[j] = m;
        break;
      }
    }
  }
  return { data: out, count: 1 };
}

/** Rows of `e` brought to `n` (ComfyUI's tensor_to_size: repeat the last row, or keep the first n). */
export function rowsToSize(e: IpEmbedsValue, n: number): Float32Array {
  const len = e.data.length / e.count;
  const out = new Float32Array(n * len);
  for (let i = 0; i < n; i++) out.set(e.data.subarray(Math.min(i, e.count - 1) * len, (Math.min(i, e.count - 1) + 1) * len), i * len);
  return out;
}

/** The embeds an adapter's projection takes for no image: zeros (base) or the vision states of all-zero pixels. */
export async function unconditionalEmbeds(store: ModelStore, adapter: IpAdapterValue, visionPath: string, count: number): Promise<IpEmbedsValue | null> {
  const proj = await projectorRuntime(store, adapter.path);
  const D = proj.adapter.embedDim;
  if (adapter.adapterKind === 'base') {
    return { kind: 'IP_EMBEDS', adapterPath: adapter.path, adapterKind: 'base', visionPath, count, rowDims: [D], data: new Float32Array(count * D) };
  }
  if (!visionPath) return null;
  const vision = await clipVisionRuntime(store, visionPath);
  checkAdapterMatchesVision(proj.adapter, vision.config, vision.weightsFile);
  const states = await store.get(`clip-vision-zeros|${store.fileKey(visionPath)}`, async () => (await vision.encode(vision.zeroPixels(1))).penultimate);
  const one: IpEmbedsValue = {
    kind: 'IP_EMBEDS',
    adapterPath: adapter.path,
    adapterKind: adapter.adapterKind,
    visionPath,
    count: 1,
    rowDims: states.dims.slice(1),
    data: states.data,
  };
  return { ...one, count, data: rowsToSize(one, count) };
}

/**
 * Embeds -> image tokens through the adapter's projection (ipadapter_execute with pos_embed / neg_embed): the
 * unconditional embeds are `negative` brought to the positive's row count, else unconditionalEmbeds.
 */
export async function embedsToTokens(
  store: ModelStore,
  adapter: IpAdapterValue,
  pos: IpEmbedsValue,
  negative?: IpEmbedsValue,
  visionPath = '',
): Promise<IpTokensValue> {
  for (const [what, e] of [
    ['embeds', pos],
    ['negative embeds', negative],
  ] as const) {
    if (e && e.adapterPath !== adapter.path) {
      throw new Error(
        `the ${what} belong to ${path.basename(e.adapterPath)}, not to this adapter (${path.basename(adapter.path)}); encode or load them for the adapter they are applied with`,
      );
    }
  }
  if (negative && negative.rowDims.join() !== pos.rowDims.join()) {
    throw new Error(`the negative embeds have rows of shape [${negative.rowDims}] but the embeds [${pos.rowDims}]`);
  }
  const proj = await projectorRuntime(store, adapter.path);
  const n = pos.count;
  const uncondRows = negative
    ? rowsToSize(negative, n)
    : ((await unconditionalEmbeds(store, adapter, visionPath || pos.visionPath, n))?.data ??
      (() => {
        throw new Error(
          `the unconditional tokens of ${path.basename(adapter.path)} (${adapter.adapterKind}) need the CLIP vision model or negative embeds; connect the CLIP Vision the embeds were made with, or the Encoder's negative output`,
        );
      })());
  const dims = [n, ...pos.rowDims];
  const cond = await proj.project({ data: pos.data, dims }); // (n, N, C)
  const uncond = await proj.project({ data: uncondRows, dims });
  const [, N, C] = cond.dims as [number, number, number];
  return { kind: 'IP_TOKENS', adapterPath: adapter.path, tokens: n * N, dim: C, cond: cond.data, uncond: uncond.data };
}

// ---------------------------------------------------------------------------------------
// Saved embeds: .safetensors, one tensor "embeds" (n, ...row) F32; the header records the adapter.
// ---------------------------------------------------------------------------------------

export const EMBEDS_FORMAT = 'ipadapter-studio/ip-embeds';

/** SHA-256 of an adapter file (hex), cached per file identity: what a saved embeds file is tied to. */
export function adapterDigest(store: ModelStore, file: string): Promise<string> {
  return store.get(`sha256|${store.fileKey(file)}`, async () => {
    const h = crypto.createHash('sha256');
    for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
    return h.digest('hex');
  });
}

/** The bytes of a saved embeds file. */
export function encodeEmbedsFile(e: IpEmbedsValue, adapterSha256: string): Buffer {
  return encodeSafetensors(
    { embeds: { dtype: 'F32', shape: [e.count, ...e.rowDims], data: e.data } },
    { format: EMBEDS_FORMAT, adapter: path.basename(e.adapterPath), adapter_sha256: adapterSha256, adapter_kind: e.adapterKind },
  );
}

/** Reads a saved embeds file for `adapter`, refusing one made for another adapter (naming both files). */
export async function readEmbedsFile(store: ModelStore, file: string, adapter: IpAdapterValue): Promise<IpEmbedsValue> {
  const st = SafetensorsFile.open(file);
  const m = st.metadata;
  if (m.format !== EMBEDS_FORMAT || !st.has('embeds')) {
    throw new Error(`${file} is not an IP-Adapter embeds file (no "${EMBEDS_FORMAT}" header with an "embeds" tensor); save embeds with Save Embeds`);
  }
  const sha = await adapterDigest(store, adapter.path);
  if (m.adapter_sha256 !== sha) {
    throw new Error(
      `${path.basename(file)} holds embeds for the IP-Adapter ${m.adapter ?? '(unknown)'}, not for ${path.basename(adapter.path)} (another file, by its content); load it with the adapter it was saved with`,
    );
  }
  const t = st.get('embeds');
  if (t.dtype !== 'F32' || t.shape.length < 2) throw new Error(`${file}: "embeds" must be F32 (n, D) or (n, T, D), found ${t.dtype} [${t.shape}]`);
  return {
    kind: 'IP_EMBEDS',
    adapterPath: adapter.path,
    adapterKind: adapter.adapterKind as IpAdapterKind,
    visionPath: '',
    count: t.shape[0]!,
    rowDims: t.shape.slice(1),
    data: readTensorF32(t),
  };
}
