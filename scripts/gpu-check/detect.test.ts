import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NO_GPU_MESSAGE, type Probe, detectGpu, providersToCheck } from './detect.js';

const probe = (o: { smi?: string | null; files?: string[]; dri?: string[]; bin?: string[] }): Probe => ({
  run: () => o.smi ?? null,
  exists: (p) => (o.files ?? []).includes(p),
  list: (d) => (d === '/dev/dri' ? (o.dri ?? []) : (o.bin ?? [])),
});

describe('gpu-check: finding a GPU', () => {
  it('an NVIDIA GPU from nvidia-smi -L, or its device file; another GPU from a DRM render node; else none', () => {
    expect(detectGpu(probe({ smi: 'GPU 0: NVIDIA H200 (UUID: GPU-1)\n' }))).toEqual({ gpus: ['GPU 0: NVIDIA H200 (UUID: GPU-1)'], nvidia: true });
    expect(detectGpu(probe({ smi: null, files: ['/dev/nvidia0'] }))?.nvidia).toBe(true);
    expect(detectGpu(probe({ dri: ['card0', 'renderD128'] }))).toEqual({ gpus: ['/dev/dri/renderD128'], nvidia: false });
    expect(detectGpu(probe({ dri: ['card0'] }))).toBeNull();
  });

  it('checks WebGPU everywhere, and CUDA where its provider library is installed beside onnxruntime-node', () => {
    const nv = { gpus: ['GPU 0'], nvidia: true };
    expect(providersToCheck(nv, '/ort', probe({ bin: ['libonnxruntime.so.1'] }))).toEqual(['webgpu']);
    expect(providersToCheck(nv, '/ort', probe({ bin: ['libonnxruntime.so.1', 'libonnxruntime_providers_cuda.so'] }))).toEqual(['webgpu', 'cuda']);
    expect(providersToCheck({ gpus: ['/dev/dri/renderD128'], nvidia: false }, '/ort', probe({ bin: ['libonnxruntime_providers_cuda.so'] }))).toEqual([
      'webgpu',
    ]);
  });

  it.skipIf(detectGpu() !== null)('npm run gpu-check on this machine (no GPU) says so and exits 0', () => {
    const root = path.resolve(import.meta.dirname, '..', '..');
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(root, 'scripts', 'gpu-check.ts')], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(NO_GPU_MESSAGE);
  });
});
