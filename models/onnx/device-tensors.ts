/**
 * Tensors kept on the WebGPU device between session runs (onnxruntime-node 1.30).
 *
 * What the installed binding offers (README "Graph profiles", "Tensors on the device"; evidence in
 * /work/notes/s9/K-gpu-device.md): a session created with `preferredOutputLocation: 'gpu-buffer'` runs through an
 * IoBinding and returns its outputs as `Tensor.fromGpuBuffer` tensors (location 'gpu-buffer') whose `gpuBuffer` is
 * an N-API External holding the OrtValue; such a tensor can be fed as an input of any WebGPU session (the same
 * device: every session uses WebGPU context 0). There is no other way to make one: JavaScript cannot build that
 * External (Node has no GPUBuffer), and `ort.env.webgpu` is never read by the Node backend. A gpu-buffer tensor's
 * `download` is `NAPI_THROW("not implemented")`, which aborts the process, so `getData()` must never be called on
 * one: it comes back through a WebGPU session whose output is on the CPU (`fromDevice`). It owns device memory
 * until `dispose()` (there is no finalizer).
 *
 * So "upload once" is a run of a tiny Identity session with a gpu-buffer output (`toDevice`), and `residentFeeds`
 * keeps a session's constant inputs (text embeddings, IP-Adapter tokens, scales, masks) on the device across the
 * sampler's steps. What must still cross every step while the scheduler's math is on the CPU: the latent going in
 * and the noise prediction coming out (SD1.5 512x512, CFG batch 2: (2, 4, 64, 64) float32 = 128 KiB each way).
 * On the CPU provider every function here returns its input unchanged (same tensors, same bytes).
 */
import * as ort from 'onnxruntime-node';
import { DataType, Graph } from './graph.js';
import type { DataTypeId } from './proto.js';
import { sessionProfile } from './session.js';

type DeviceType = 'float32' | 'float16';
const ONNX_TYPE: Record<DeviceType, DataTypeId> = { float32: DataType.FLOAT, float16: DataType.FLOAT16 };

/** Whether `session` runs on the WebGPU provider (made by createSession under a webgpu profile: not a CPU fallback). */
export function isDeviceSession(session: ort.InferenceSession): boolean {
  return sessionProfile(session)?.provider === 'webgpu';
}

/** The Identity graph `x -> y` for one type and rank (symbolic dims), used to move tensors on and off the device. */
function identityModel(type: DeviceType, rank: number): Uint8Array {
  const g = new Graph(`device-identity-${type}-${rank}`);
  const dims = Array.from({ length: rank }, (_, i) => `d${i}`);
  const x = g.input('x', ONNX_TYPE[type], dims);
  g.output('y', g.op('Identity', [x]), ONNX_TYPE[type]);
  return g.build().bytes;
}

/** Upload and download sessions, one per (direction, type, rank), kept for the process: a gpu-buffer tensor's memory belongs to them. */
const MOVERS = new Map<string, Promise<ort.InferenceSession>>();

function mover(direction: 'up' | 'down', type: DeviceType, rank: number): Promise<ort.InferenceSession> {
  const key = `${direction}|${type}|${rank}`;
  let s = MOVERS.get(key);
  if (!s) {
    s = ort.InferenceSession.create(identityModel(type, rank), {
      executionProviders: ['webgpu'],
      graphOptimizationLevel: 'disabled', // keep the Identity: it is the copy
      ...(direction === 'up' ? { preferredOutputLocation: 'gpu-buffer' as const } : {}),
    });
    s.catch(() => MOVERS.delete(key)); // a failed start is retried by the next call
    MOVERS.set(key, s);
  }
  return s;
}

function deviceType(t: ort.Tensor): DeviceType | null {
  return t.type === 'float32' || t.type === 'float16' ? t.type : null;
}

/** A copy of CPU tensor `t` on the WebGPU device (location 'gpu-buffer'; the caller disposes it). Float32 / float16 only. */
export async function toDevice(t: ort.Tensor): Promise<ort.Tensor> {
  const type = deviceType(t);
  if (!type || t.location !== 'cpu') throw new Error(`device tensors: can only upload a float32 / float16 CPU tensor (got ${t.type} on ${t.location})`);
  const out = await (await mover('up', type, t.dims.length)).run({ x: t });
  return out.y!;
}

/** A CPU copy of gpu-buffer tensor `t` (through a WebGPU session with a CPU output: the binding's own download aborts). */
export async function fromDevice(t: ort.Tensor): Promise<ort.Tensor> {
  if (t.location === 'cpu') return t;
  const type = deviceType(t);
  if (!type || t.location !== 'gpu-buffer')
    throw new Error(`device tensors: can only download a float32 / float16 gpu-buffer tensor (got ${t.type} on ${t.location})`);
  const out = await (await mover('down', type, t.dims.length)).run({ x: t });
  return out.y!;
}

/** Counters of what `residentFeeds` moved (gpu-check reports them). */
export interface ResidentStats {
  uploads: number;
  reused: number;
  bytesUploaded: number;
  bytesReused: number;
}

interface Resident {
  dims: string;
  bytes: Uint8Array; // a CPU snapshot: the device copy is reused only while the caller's values are byte-identical
  device: ort.Tensor;
}

interface SessionResidents {
  byInput: Map<string, Resident>;
  stats: ResidentStats;
}

const RESIDENTS = new WeakMap<ort.InferenceSession, SessionResidents>();

function bytesOf(t: ort.Tensor): Uint8Array {
  const d = t.data as Float32Array | Uint16Array;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * `feeds` for `session` with its constant inputs on the device: on a WebGPU session, every float32 / float16 CPU
 * input for which `perStep(name)` is false is uploaded once and the device copy fed again while the caller's values
 * stay byte-identical (compared with a snapshot, so a caller that rewrites an array in place gets a new upload, never
 * stale values); the `perStep` inputs (the latent, the timestep) and other types go as they are. One device copy per
 * input name, disposed when it is replaced or when the session is released. On any other session: `feeds` itself.
 */
export async function residentFeeds(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  perStep: (name: string) => boolean,
): Promise<Record<string, ort.Tensor>> {
  if (!isDeviceSession(session)) return feeds;
  let r = RESIDENTS.get(session);
  if (!r) {
    const state: SessionResidents = { byInput: new Map(), stats: { uploads: 0, reused: 0, bytesUploaded: 0, bytesReused: 0 } };
    r = state;
    RESIDENTS.set(session, state);
    const release = session.release.bind(session);
    session.release = async () => {
      for (const e of state.byInput.values()) e.device.dispose();
      state.byInput.clear();
      await release();
    };
  }
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    if (perStep(name) || t.location !== 'cpu' || !deviceType(t)) {
      out[name] = t;
      continue;
    }
    const bytes = bytesOf(t);
    const dims = t.dims.join(',');
    const cur = r.byInput.get(name);
    if (cur && cur.dims === dims && sameBytes(cur.bytes, bytes)) {
      r.stats.reused++;
      r.stats.bytesReused += bytes.length;
      out[name] = cur.device;
      continue;
    }
    const device = await toDevice(t);
    cur?.device.dispose();
    r.byInput.set(name, { dims, bytes: bytes.slice(), device });
    r.stats.uploads++;
    r.stats.bytesUploaded += bytes.length;
    out[name] = device;
  }
  return out;
}

/** What `residentFeeds` did for `session` so far (undefined: nothing kept, e.g. a CPU session). */
export function residentStats(session: ort.InferenceSession): ResidentStats | undefined {
  const s = RESIDENTS.get(session)?.stats;
  return s && { ...s };
}

/** The UNet's inputs that change at every step (models/unet-call.ts): the latent, the timestep, ControlNet residuals. */
export function unetPerStepInput(name: string): boolean {
  return name === 'sample' || name === 'timestep' || name.endsWith('_additional_residual') || /_additional_residual_\d+$/.test(name);
}
