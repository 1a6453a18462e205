/**
 * The ONNX Runtime execution providers the app may ask for, in the order they are offered. CPU
 * always works; another that fails to start falls back to CPU with a notice. Pure (no imports; the
 * probes are passed in): the engine's settings schema (engine/protocol.ts) and the renderer's Settings read it.
 */
export const PROVIDERS = ['cpu', 'webgpu', 'cuda', 'dml'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** What a provider needs here: it is available, it needs libraries (the exact missing file, the command), or it is not built for this platform. */
export interface ProviderReadiness {
  provider: Provider;
  state: 'available' | 'needs-libraries' | 'not-on-this-platform';
  /** The sentence the settings show. */
  sentence: string;
  /** The missing file (needs-libraries). */
  missing?: string;
  /** The README's install command for it (needs-libraries). */
  install?: string;
}

/** What readiness looks at: the platform, onnxruntime-node's binary folder's files, and whether a system library loads. */
export interface ReadinessProbe {
  platform: string;
  arch: string;
  /** Files in onnxruntime-node's bin/napi-v6/<platform>/<arch> (empty when it is absent). */
  ortFiles: readonly string[];
  /** Whether the dynamic loader finds a shared library by name (ldconfig's cache on Linux). */
  hasLibrary(name: string): boolean;
}

/** The README's (section "Execution providers") command that installs onnxruntime-node's CUDA 12 provider libraries. */
export const CUDA_INSTALL_COMMAND = 'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install';

/** Each provider's readiness on the probed machine, in PROVIDERS order. */
export function providerReadiness(p: ReadinessProbe): ProviderReadiness[] {
  const here = `${p.platform} ${p.arch}`;
  const linux = p.platform === 'linux';
  const win = p.platform === 'win32';
  const out: ProviderReadiness[] = [{ provider: 'cpu', state: 'available', sentence: 'CPU: available.' }];
  // WebGPU is built into onnxruntime-node for Linux x64, Windows x64 and macOS arm64; on Linux Dawn needs the Vulkan loader.
  const webgpuBuilt = (linux && p.arch === 'x64') || (win && p.arch === 'x64') || (p.platform === 'darwin' && p.arch === 'arm64');
  if (!webgpuBuilt) out.push({ provider: 'webgpu', state: 'not-on-this-platform', sentence: `WebGPU: not in onnxruntime-node for ${here}.` });
  else if (linux && !p.hasLibrary('libvulkan.so.1'))
    out.push({
      provider: 'webgpu',
      state: 'needs-libraries',
      missing: 'libvulkan.so.1',
      install: 'sudo apt-get install libvulkan1',
      sentence: 'WebGPU: needs the Vulkan loader libvulkan.so.1 (Debian/Ubuntu: sudo apt-get install libvulkan1) and a GPU driver with Vulkan.',
    });
  else out.push({ provider: 'webgpu', state: 'available', sentence: 'WebGPU: available (built into onnxruntime-node).' });
  // CUDA: onnxruntime-node's CUDA 12 provider libraries are downloaded by its install script (Linux x64; Windows x64).
  const cudaLib = win ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  if (!((linux || win) && p.arch === 'x64'))
    out.push({ provider: 'cuda', state: 'not-on-this-platform', sentence: `CUDA: not in onnxruntime-node for ${here}.` });
  else if (!p.ortFiles.includes(cudaLib))
    out.push({
      provider: 'cuda',
      state: 'needs-libraries',
      missing: cudaLib,
      install: CUDA_INSTALL_COMMAND,
      sentence: `CUDA: needs ${cudaLib} beside onnxruntime-node's binaries: run \`${CUDA_INSTALL_COMMAND}\` (needs network), with CUDA 12 and cuDNN 9 installed.`,
    });
  else if (linux && !p.hasLibrary('libcudart.so.12'))
    out.push({
      provider: 'cuda',
      state: 'needs-libraries',
      missing: 'libcudart.so.12',
      install: 'install the CUDA 12 runtime and cuDNN 9 (NVIDIA packages cuda-runtime-12, libcudnn9)',
      sentence: 'CUDA: its provider library is installed, but the CUDA 12 runtime libcudart.so.12 is not found: install CUDA 12 and cuDNN 9.',
    });
  else out.push({ provider: 'cuda', state: 'available', sentence: 'CUDA: available (provider libraries installed).' });
  out.push(
    win && p.arch === 'x64'
      ? { provider: 'dml', state: 'available', sentence: 'DirectML: available (built into onnxruntime-node for Windows).' }
      : { provider: 'dml', state: 'not-on-this-platform', sentence: `DirectML: Windows only (this is ${here}).` },
  );
  return out;
}

/** The start-up notice for the chosen provider when it is not ready here (none when it is available). */
export function readinessNotice(readiness: readonly ProviderReadiness[], chosen: Provider): string[] {
  const r = readiness.find((x) => x.provider === chosen);
  return r && r.state !== 'available' ? [`The chosen provider is not ready, so runs use the CPU: ${r.sentence}`] : [];
}
