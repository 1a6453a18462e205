/**
 * IP-Adapter Noise: [IMAGE] -> IMAGE, a negative image prompt (ComfyUI_IPAdapter_plus' IPAdapterNoise,
 * IPAdapterPlus.py make_noise). The image (a black 224² one when none is connected) is centre-cropped
 * and resized to 224², torch's CPU generator is seeded with int(sum(image)) % 1000000007 (the image's
 * hash, so the same image gives the same noise), and:
 *   fade:     image·(1 − s) + U·s                       (U = torch.rand_like)
 *   dissolve: image where U₁ ≥ s, else U₂               (mask = U₁ < s)
 *   gaussian: image + N·s                               (N = torch.randn_like)
 *   shuffle:  elastic warp (torchvision ElasticTransform, alpha 75, sigma (1 − s)·3.5), both flips,
 *             then x·(1 − n) + n with n = N·0.75·s
 * then clamped to [0, 1] and, with blur > 0, Gaussian-blurred (odd kernel, torchvision's sigma rule).
 * The random draws are torch's CPU streams in torch's order (models/sampling/torch-randn.ts); the
 * arithmetic is float32 but the resize (Pillow Lanczos on 8-bit, not torchvision's bicubic), the warp and
 * the blur are our own, so the image is ComfyUI's only approximately.
 */
import { resizeTo } from '../models/preprocessors/resize.js';
import { TorchGenerator } from '../models/sampling/torch-randn.js';
import { imageToRgb8 } from './clip-vision-encode.js';
import type { NodeDef } from './types.js';
import { expectValue, type ImageValue } from './values.js';

const S = 224;
export const NOISE_TYPES = ['fade', 'dissolve', 'gaussian', 'shuffle'] as const;

/** A 1-D Gaussian kernel as torchvision's gaussian_blur makes it (normalised). */
function gaussianKernel(k: number, sigma: number): Float32Array {
  const half = (k - 1) * 0.5;
  const w = Float32Array.from({ length: k }, (_, i) => Math.exp(-0.5 * ((-half + i) / sigma) ** 2));
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / sum);
}

/** Separable Gaussian blur of `planes` planes of H x W with reflect padding (torchvision gaussian_blur). */
export function gaussianBlurPlanes(data: Float32Array, planes: number, H: number, W: number, k: number, sigma: number): Float32Array {
  const ker = gaussianKernel(k, sigma);
  const r = (k - 1) / 2;
  const reflect = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * n - 2 - i : i);
  const tmp = new Float32Array(data.length);
  const out = new Float32Array(data.length);
  for (let p = 0; p < planes; p++) {
    const o = p * H * W;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += ker[j]! * data[o + y * W + reflect(x + j - r, W)]!;
        tmp[o + y * W + x] = s;
      }
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += ker[j]! * tmp[o + reflect(y + j - r, H) * W + x]!;
        out[o + y * W + x] = s;
      }
  }
  return out;
}

/** torchvision's elastic_transform on a (3, H, W) image: bilinear grid_sample at identity + displacement, zeros outside. */
function elastic(chw: Float32Array, H: number, W: number, dx: Float32Array, dy: Float32Array): Float32Array {
  const out = new Float32Array(chw.length);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      // Normalised identity grid (align_corners=False) plus the displacement, back to pixel coordinates.
      const gx = (2 * x + 1) / W - 1 + dx[y * W + x]!;
      const gy = (2 * y + 1) / H - 1 + dy[y * W + x]!;
      const px = ((gx + 1) * W - 1) / 2;
      const py = ((gy + 1) * H - 1) / 2;
      const x0 = Math.floor(px);
      const y0 = Math.floor(py);
      const fx = px - x0;
      const fy = py - y0;
      for (let c = 0; c < 3; c++) {
        const at = (xx: number, yy: number) => (xx < 0 || yy < 0 || xx >= W || yy >= H ? 0 : chw[c * H * W + yy * W + xx]!);
        out[c * H * W + y * W + x] = (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) + fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
      }
    }
  return out;
}

/** make_noise on a (224, 224, 3) float image in [0, 1]; returns the same layout. */
export function makeNoise(type: (typeof NOISE_TYPES)[number], strength: number, blur: number, hwc: Float32Array): Float32Array {
  const fr = Math.fround;
  const n = hwc.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += hwc[i]!;
  const gen = new TorchGenerator(Math.trunc(sum) % 1000000007);
  const rand = (len: number) => Float32Array.from({ length: len }, () => gen.uniformFloat());
  let out = new Float32Array(n);
  if (type === 'fade') {
    const u = rand(n);
    for (let i = 0; i < n; i++) out[i] = fr(fr(hwc[i]! * fr(1 - strength)) + fr(u[i]! * strength));
  } else if (type === 'dissolve') {
    const m = rand(n);
    const u = rand(n);
    for (let i = 0; i < n; i++) out[i] = m[i]! < strength ? u[i]! : hwc[i]!;
  } else if (type === 'gaussian') {
    const g = gen.randn([n]);
    for (let i = 0; i < n; i++) out[i] = fr(hwc[i]! + fr(g[i]! * strength));
  } else {
    // ElasticTransform(alpha=75, sigma=(1 - s) * 3.5): dx, dy = rand * 2 - 1, blurred when sigma > 0, times alpha / size.
    const sigma = (1 - strength) * 3.5;
    const field = () => {
      let d: Float32Array = Float32Array.from(rand(S * S), (v) => v * 2 - 1);
      if (sigma > 0) {
        let k = Math.trunc(8 * sigma + 1);
        if (k % 2 === 0) k += 1;
        d = gaussianBlurPlanes(d, 1, S, S, k, sigma);
      }
      return d.map((v) => (v * 75) / S);
    };
    const dx = field();
    const dy = field();
    const chw = new Float32Array(n);
    for (let i = 0; i < S * S; i++) for (let c = 0; c < 3; c++) chw[c * S * S + i] = hwc[i * 3 + c]!;
    const warped = elastic(chw, S, S, dx, dy);
    gen.uniformFloat(); // RandomVerticalFlip(p=1): torch.rand(1) >= p never skips
    gen.uniformFloat(); // RandomHorizontalFlip(p=1)
    const g = gen.randn([n]);
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++)
        for (let c = 0; c < 3; c++) {
          const i = (y * S + x) * 3 + c;
          const v = warped[c * S * S + (S - 1 - y) * S + (S - 1 - x)]!; // both flips
          const nz = fr(g[i]! * fr(strength * 0.75));
          out[i] = fr(fr(v * fr(1 - nz)) + nz);
        }
  }
  for (let i = 0; i < n; i++) out[i] = Math.min(1, Math.max(0, out[i]!));
  if (blur > 0) {
    const k = blur % 2 === 0 ? blur + 1 : blur;
    const chw = new Float32Array(n);
    for (let i = 0; i < S * S; i++) for (let c = 0; c < 3; c++) chw[c * S * S + i] = out[i * 3 + c]!;
    const b = gaussianBlurPlanes(chw, 3, S, S, k, 0.3 * ((k - 1) * 0.5 - 1) + 0.8);
    out = new Float32Array(n);
    for (let i = 0; i < S * S; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = b[c * S * S + i]!;
  }
  return out;
}

export const ipAdapterNoise: NodeDef = {
  type: 'ip-adapter-noise',
  title: 'IP-Adapter Noise',
  category: 'IP-Adapter',
  description:
    'Makes a negative image prompt (ComfyUI\'s IPAdapterNoise), 224x224: "fade" blends the image into uniform noise, "dissolve" replaces a share "strength" of its pixels by noise, "gaussian" adds Gaussian noise, "shuffle" warps and flips it and adds noise; "blur" then blurs it. Without an image it starts from black. The same image always gives the same noise. Feed it to CLIP Vision Encode -> Projection -> negative tokens, or to an Encoder -> negative embeds.',
  inputs: [{ name: 'image', label: 'image (optional)', type: 'IMAGE', optional: true }],
  outputs: [{ name: 'image', type: 'IMAGE' }],
  params: [
    { name: 'type', kind: 'enum', options: [...NOISE_TYPES], default: 'fade' },
    { name: 'strength', kind: 'number', default: 1, min: 0, max: 1, step: 0.05 },
    { name: 'blur', kind: 'number', default: 0, min: 0, max: 32, step: 1, integer: true },
  ],
  async execute(inputs, params) {
    const img = inputs.image === undefined ? undefined : expectValue<ImageValue>(inputs.image, 'IMAGE', 'image');
    const batch = img?.batch ?? 1;
    const data = new Float32Array(batch * S * S * 3);
    for (let b = 0; b < batch; b++) {
      let hwc = new Float32Array(S * S * 3);
      if (img) {
        const r = resizeTo({ ...imageToRgb8(img, b), channels: 3 }, S, S, { mode: 'crop', filter: 'lanczos' });
        hwc = Float32Array.from(r.data, (v) => v / 255);
      }
      // ComfyUI seeds once per call from the whole batch; one image at a time here (the usual batch of 1 agrees).
      data.set(makeNoise(params.type as (typeof NOISE_TYPES)[number], params.strength as number, params.blur as number, hwc), b * S * S * 3);
    }
    const out: ImageValue = { kind: 'IMAGE', batch, width: S, height: S, data };
    return { image: out };
  },
};
