/**
 * The ops each execution provider has kernels for, as far as our graphs use them (every op the builders and the
 * profile passes emit), with the element types: `fp16` = has a float16 kernel. The structural test
 * (models/onnx/profile.test.ts) checks that every node of every built profile graph is in its provider's list.
 * Sources (read for this list, ONNX Runtime 1.30 / main at the commits named):
 * - cpu: probed on the installed onnxruntime-node 1.30 CPU provider (provider-ops.test.ts builds each op in fp32 and
 *   fp16 and creates a session); fp16 nodes without an fp16 CPU kernel get Casts to float32 from ONNX Runtime's
 *   InsertCastTransformer, so they run (computed in float32) — the com.microsoft diffusion ops have no CPU kernel at all.
 * - cuda, dml: microsoft/onnxruntime docs/OperatorKernels.md (generated from the kernel registrations), commit 001d12d,
 *   sections CUDAExecutionProvider and DmlExecutionProvider (ai.onnx and com.microsoft domains).
 *   SkipGroupNorm and NhwcConv, used by the cuda-fp16-fused profile (onnx/fusions.ts), also: CUDA kernel registrations
 *   onnxruntime/contrib_ops/cuda/diffusion/group_norm.cc (GroupNorm and SkipGroupNorm, float and MLFloat16, one kernel)
 *   and contrib_ops/cuda/diffusion/nhwc_conv.cc (NhwcConv, float and MLFloat16). No CPU kernel exists for either (nor for
 *   GroupNorm, BiasSplitGelu, BiasAdd), so graphs with them are checked structurally only (fusions.test.ts).
 * - webgpu: microsoft/onnxruntime onnxruntime/core/providers/webgpu/webgpu_execution_provider.cc (commit 003f772) and
 *   onnxruntime/contrib_ops/webgpu/webgpu_contrib_kernels.cc (commit 01671d9): no GroupNorm, SkipGroupNorm, NhwcConv.
 */
import type { Provider } from '../providers.js';

export interface OpSupport {
  /** A float16 kernel exists (else float32 only). */
  fp16: boolean;
}

/** The standard (ai.onnx) ops our graphs use. */
const ONNX_OPS = [
  'Add',
  'Mul',
  'Div',
  'Sub',
  'Reshape',
  'Shape',
  'Transpose',
  'Concat',
  'Gather',
  'Slice',
  'MatMul',
  'Split',
  'Resize',
  'Gemm',
  'Conv',
  'Unsqueeze',
  'Sigmoid',
  'Expand',
  'Clip',
  'Tanh',
  'Softmax',
  'Sin',
  'Cos',
  'ReduceMean',
  'ReduceMax',
  'Abs',
  'Pad',
  'Exp',
  'Erf',
  'Sqrt',
  'Cast',
  'Where',
  'ReduceSum',
  'LayerNormalization',
  'InstanceNormalization',
] as const;

const all = (fp16: boolean, extra: Record<string, OpSupport> = {}): Record<string, OpSupport> => ({
  ...Object.fromEntries(ONNX_OPS.map((op) => [op, { fp16 }])),
  ...extra,
});

/** `domain:op` keys for com.microsoft ops, plain op names for ai.onnx. */
export const PROVIDER_OPS: Record<Provider, Record<string, OpSupport>> = {
  // The CPU runs every fp16 op above (InsertCastTransformer computes the ones without an fp16 kernel in float32);
  // MultiHeadAttention, SkipLayerNormalization, Gelu exist on CPU; GroupNorm, SkipGroupNorm, BiasSplitGelu, BiasAdd,
  // NhwcConv do not ("Failed to find kernel for com.microsoft.BiasAdd(1)").
  cpu: all(true, {
    Identity: { fp16: true }, // graph outputs named apart from their value (Graph.output); the GPU profiles drop them
    'com.microsoft:MultiHeadAttention': { fp16: true },
    'com.microsoft:SkipLayerNormalization': { fp16: true },
    DynamicQuantizeLinear: { fp16: false }, // the int8 profile (onnx/quantize.ts)
    'com.microsoft:MatMulIntegerToFloat': { fp16: false },
    QLinearConv: { fp16: false }, // the int8 profile's resnet convs (onnx/quantize.ts)
    DequantizeLinear: { fp16: false },
    Round: { fp16: false },
  }),
  cuda: all(true, {
    'com.microsoft:MultiHeadAttention': { fp16: true },
    'com.microsoft:GroupNorm': { fp16: true },
    'com.microsoft:SkipGroupNorm': { fp16: true },
    'com.microsoft:BiasSplitGelu': { fp16: true },
    'com.microsoft:BiasAdd': { fp16: true },
    'com.microsoft:SkipLayerNormalization': { fp16: true },
    'com.microsoft:NhwcConv': { fp16: true },
  }),
  webgpu: all(true, {
    'com.microsoft:MultiHeadAttention': { fp16: true },
    'com.microsoft:BiasSplitGelu': { fp16: true },
    'com.microsoft:BiasAdd': { fp16: true },
    'com.microsoft:SkipLayerNormalization': { fp16: true },
  }),
  dml: all(true, {
    'com.microsoft:MultiHeadAttention': { fp16: true },
    'com.microsoft:GroupNorm': { fp16: true },
    'com.microsoft:BiasSplitGelu': { fp16: true },
    'com.microsoft:BiasAdd': { fp16: true },
    'com.microsoft:SkipLayerNormalization': { fp16: true },
    'com.microsoft:NhwcConv': { fp16: true },
  }),
};

/** The list entry of an op (undefined: the provider has no kernel for it). */
export function opSupport(provider: Provider, opType: string, domain = ''): OpSupport | undefined {
  return PROVIDER_OPS[provider][domain ? `${domain}:${opType}` : opType];
}

/** The nodes of a graph whose op (or fp16 use) the provider lacks: [] when every node is supported. */
export function unsupportedNodes(
  provider: Provider,
  nodes: readonly { opType: string; domain?: string; name: string }[],
  isFp16: (name: string) => boolean = () => false,
): { name: string; op: string; why: string }[] {
  const out: { name: string; op: string; why: string }[] = [];
  for (const n of nodes) {
    const s = opSupport(provider, n.opType, n.domain ?? '');
    const op = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    if (!s) out.push({ name: n.name, op, why: `${provider} has no ${op} kernel` });
    else if (isFp16(n.name) && !s.fp16) out.push({ name: n.name, op, why: `${provider} has no fp16 ${op} kernel` });
  }
  return out;
}
