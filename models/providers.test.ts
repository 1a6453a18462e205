import { describe, expect, expectTypeOf, it } from 'vitest';
import type { Provider as SessionProvider } from './onnx/session.js';
import { CUDA_INSTALL_COMMAND, type Provider, type ProviderReadiness, type ReadinessProbe, providerReadiness, readinessNotice } from './providers.js';

describe('providers', () => {
  it('the session options take exactly the PROVIDERS list (checked by tsc)', () => {
    // models/onnx/session.ts spells its own Provider union out; this keeps the two equal.
    expectTypeOf<SessionProvider>().toEqualTypeOf<Provider>();
  });
});

describe('provider readiness', () => {
  const probe = (o: Partial<ReadinessProbe> = {}): ReadinessProbe => ({
    platform: 'linux',
    arch: 'x64',
    ortFiles: ['libonnxruntime.so.1'],
    hasLibrary: () => true,
    ...o,
  });
  const by = (r: ProviderReadiness[]) => Object.fromEntries(r.map((x) => [x.provider, x]));

  it('Linux x64 without the CUDA libraries: CPU and WebGPU available, CUDA needs its library (named, with the install command), DirectML not here', () => {
    const r = by(providerReadiness(probe()));
    expect(r.cpu!.state).toBe('available');
    expect(r.webgpu!.state).toBe('available');
    expect(r.cuda).toMatchObject({ state: 'needs-libraries', missing: 'libonnxruntime_providers_cuda.so', install: CUDA_INSTALL_COMMAND });
    expect(r.cuda!.sentence).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install');
    expect(r.dml).toMatchObject({ state: 'not-on-this-platform', sentence: 'DirectML: Windows only (this is linux x64).' });
  });

  it('WebGPU on Linux needs the Vulkan loader; CUDA with its library needs the CUDA 12 runtime; both present: available', () => {
    expect(by(providerReadiness(probe({ hasLibrary: (n) => n !== 'libvulkan.so.1' }))).webgpu).toMatchObject({
      state: 'needs-libraries',
      missing: 'libvulkan.so.1',
    });
    const withCuda = probe({ ortFiles: ['libonnxruntime.so.1', 'libonnxruntime_providers_cuda.so'] });
    expect(by(providerReadiness({ ...withCuda, hasLibrary: (n) => n !== 'libcudart.so.12' })).cuda).toMatchObject({
      state: 'needs-libraries',
      missing: 'libcudart.so.12',
    });
    expect(by(providerReadiness(withCuda)).cuda!.state).toBe('available');
  });

  it('Windows has DirectML; macOS arm64 has WebGPU but neither CUDA nor DirectML; linux arm64 has no WebGPU', () => {
    expect(by(providerReadiness(probe({ platform: 'win32' }))).dml!.state).toBe('available');
    const mac = by(providerReadiness(probe({ platform: 'darwin', arch: 'arm64' })));
    expect([mac.webgpu!.state, mac.cuda!.state, mac.dml!.state]).toEqual(['available', 'not-on-this-platform', 'not-on-this-platform']);
    expect(by(providerReadiness(probe({ arch: 'arm64' }))).webgpu!.state).toBe('not-on-this-platform');
  });
});

describe('the start-up notice', () => {
  it('names the chosen provider when it is not ready, and says nothing when it is', () => {
    const r = providerReadiness({ platform: 'linux', arch: 'x64', ortFiles: [], hasLibrary: () => true });
    expect(readinessNotice(r, 'cuda')[0]).toMatch(/^The chosen provider is not ready, so runs use the CPU: CUDA: needs libonnxruntime_providers_cuda\.so/);
    expect(readinessNotice(r, 'webgpu')).toEqual([]);
    expect(readinessNotice(r, 'cpu')).toEqual([]);
  });
});
