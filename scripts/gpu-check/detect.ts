/**
 * Whether this machine has a GPU for `npm run gpu-check`, and which providers to try on it. Pure over its probes
 * (the test passes its own): an NVIDIA GPU answers `nvidia-smi -L` (or has /dev/nvidia0); another GPU has a DRM
 * render node (/dev/dri/renderD*), which WebGPU (Dawn over Vulkan) can use.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Provider } from '../../models/providers.js';

export interface Probe {
  /** stdout of a command, or null when it cannot run / fails. */
  run(cmd: string, args: string[]): string | null;
  exists(p: string): boolean;
  list(dir: string): string[];
}

export const REAL_PROBE: Probe = {
  run: (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
    return r.status === 0 ? r.stdout : null;
  },
  exists: (p) => fs.existsSync(p),
  list: (dir) => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  },
};

export interface GpuFound {
  /** One line per GPU (nvidia-smi -L), or the device file found. */
  gpus: string[];
  nvidia: boolean;
}

/** The GPUs here, or null with no GPU. */
export function detectGpu(probe: Probe = REAL_PROBE): GpuFound | null {
  const smi = probe.run('nvidia-smi', ['-L']);
  const lines = (smi ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('GPU '));
  if (lines.length) return { gpus: lines, nvidia: true };
  if (probe.exists('/dev/nvidia0')) return { gpus: ['/dev/nvidia0 (nvidia-smi did not answer)'], nvidia: true };
  const render = probe.list('/dev/dri').filter((f) => f.startsWith('renderD'));
  if (render.length) return { gpus: render.map((r) => `/dev/dri/${r}`), nvidia: false };
  return null;
}

/** The sentence gpu-check prints (and exits 0 after) on a machine without a GPU. */
export const NO_GPU_MESSAGE =
  'gpu-check: no GPU on this machine (nvidia-smi -L lists none, no /dev/nvidia0, no /dev/dri/renderD* node); nothing to check. Run it on a machine with a GPU.';

/**
 * The providers to check on a GPU machine: WebGPU (built into onnxruntime-node on Linux x64 and Windows), and CUDA
 * where onnxruntime-node's CUDA provider library is installed (`binDir` holds libonnxruntime_providers_cuda.so).
 */
export function providersToCheck(found: GpuFound, binDir: string | null, probe: Probe = REAL_PROBE): Provider[] {
  const out: Provider[] = ['webgpu'];
  if (found.nvidia && binDir && probe.list(binDir).some((f) => /providers_cuda/.test(f))) out.push('cuda');
  return out;
}

/** onnxruntime-node's binary folder for this platform (null when not found). */
export function ortBinaryDir(requireResolve: (id: string) => string): string | null {
  try {
    return path.join(path.dirname(requireResolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return null;
  }
}
