/**
 * The ONNX Runtime execution providers the app may ask for, in the order they are offered. CPU
 * always works; another that fails to start falls back to CPU with a notice. Pure data (no
 * imports): the engine's settings schema (engine/protocol.ts) and the renderer's Settings read it.
 */
export const PROVIDERS = ['cpu', 'webgpu', 'cuda', 'dml'] as const;
export type Provider = (typeof PROVIDERS)[number];
