import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCheckpoint, loadCheckpoint } from './checkpoint.js';
import { resolveClipVision } from './clip-vision.js';
import { loadControlNet } from './controlnet-load.js';
import { IpAdapterModel } from './ip-adapter.js';
import { vaeWeightsFromFile } from './keymaps/ldm-vae.js';
import { PickleFileError, isPickleFile, looksLikePickle, openPickleFile, openTensorFile, refusePickle } from './pickle.js';
import { type StorageSpec, TensorSpec, f32, pickleObject, torchZip, zipStored } from './pickle/testing.js';
import { SafetensorsError, SafetensorsFile, encodeSafetensors, readTensorBytes, readTensorF32 } from './safetensors.js';
import { fixtureFolder } from '../test/helpers/fixtures.js';

const MODEL_FILES = fixtureFolder('model-files');
const BASE = fixtureFolder('tiny-sd15');
const pk = (f: string) => path.join(MODEL_FILES, 'pickles', f);
const bad = (f: string) => path.join(MODEL_FILES, 'malicious', f);
const VAE_TWIN = path.join(MODEL_FILES, 'vae', 'vae-ft-mse-tiny.safetensors');

/** Each fixture pickle and its safetensors twin (fixtures README, "Pickles and their safetensors twins"). */
const TWINS: [string, string][] = [
  [pk('ip-adapter_sd15-tiny.bin'), path.join(BASE, 'ip-adapter_sd15-tiny.safetensors')],
  [pk('control_v11p_sd15_tiny.pth'), path.join(BASE, 'controlnet-ldm.safetensors')],
  [pk('vae-ft-mse-tiny.ckpt'), VAE_TWIN],
  [pk('vae-ft-mse-tiny-legacy.ckpt'), VAE_TWIN],
  [pk('vae-ft-mse-tiny-statedict-only.pt'), VAE_TWIN],
  [pk('vae-ft-mse-tiny-statedict-only-legacy.pt'), VAE_TWIN],
];

/** Files whose payload would run code, the global they name and the marker the payload creates. */
const CODE_EXEC: [string, string, string][] = [
  ['ip-adapter_os_system.bin', 'os.system', 'os_system'],
  ['model_builtins_exec.ckpt', 'builtins.exec', 'builtins_exec'],
  ['checkpoint_subprocess_popen.ckpt', 'subprocess.Popen', 'subprocess_popen'],
  ['lora_stack_global_eval.bin', 'builtins.eval', 'stack_global_eval'],
];

function expectSameTensors(a: SafetensorsFile, b: SafetensorsFile): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const k of b.keys()) {
    const x = a.get(k),
      y = b.get(k);
    expect({ k, dtype: x.dtype, shape: x.shape }).toEqual({ k, dtype: y.dtype, shape: y.shape });
    expect(readTensorBytes(x).equals(readTensorBytes(y)), k).toBe(true);
  }
}

let dir: string;
const write = (name: string, bytes: Uint8Array) => {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, bytes);
  return p;
};
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pickle-test-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('openTensorFile on the fixture pickles', () => {
  it.each(TWINS)('%s has the tensors of its safetensors twin, in place', (pickle, twin) => {
    const p = openTensorFile(pickle);
    expectSameTensors(p, SafetensorsFile.open(twin));
    const size = fs.statSync(pickle).size;
    for (const k of p.keys()) {
      const r = p.get(k);
      expect(r.file).toBe(pickle); // contiguous tensors are byte ranges of the pickle itself
      expect(r.offset + r.length).toBeLessThanOrEqual(size);
    }
    expect(p.metadata.format).toBe('pt');
  });

  it('maps h94 nesting to the safetensors names and unwraps state_dict', () => {
    const ip = openTensorFile(pk('ip-adapter_sd15-tiny.bin'));
    expect(ip.has('image_proj.proj.weight') && ip.has('ip_adapter.1.to_k_ip.weight')).toBe(true);
    const ckpt = openTensorFile(pk('vae-ft-mse-tiny.ckpt'));
    expect(ckpt.keys().some((k) => k.startsWith('state_dict') || k === 'global_step')).toBe(false);
    expect(isPickleFile(pk('vae-ft-mse-tiny-legacy.ckpt')) && !isPickleFile(VAE_TWIN)).toBe(true);
  });

  it('opens safetensors files as SafetensorsFile.open does, by content not by name', () => {
    expectSameTensors(openTensorFile(VAE_TWIN), SafetensorsFile.open(VAE_TWIN));
    const renamed = write('renamed.safetensors', fs.readFileSync(pk('vae-ft-mse-tiny.ckpt')));
    expectSameTensors(openTensorFile(renamed), SafetensorsFile.open(VAE_TWIN));
    const stAsCkpt = write('really-safetensors.ckpt', fs.readFileSync(VAE_TWIN));
    expect(openTensorFile(stAsCkpt).keys().length).toBe(184);
    expect(() => openTensorFile(write('garbage.bin', Buffer.alloc(64, 7)))).toThrow(SafetensorsError);
  });
});

describe('malicious pickles are refused and nothing runs', () => {
  it.each(CODE_EXEC)('%s: refuses %s, creates no marker, and the next good file loads', (file, global, marker) => {
    const m = `/tmp/ipas-pickle-marker-${marker}`;
    fs.rmSync(m, { force: true });
    let err: unknown;
    try {
      openTensorFile(bad(file));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PickleFileError);
    expect((err as PickleFileError).message).toContain(`"${global}" is not a tensor-file global`);
    expect((err as PickleFileError).message.startsWith(`${file}: `)).toBe(true);
    expect((err as PickleFileError).refusedGlobal).toBe(global);
    expect(fs.existsSync(m)).toBe(false);
    expect(openTensorFile(pk('vae-ft-mse-tiny.ckpt')).keys().length).toBe(184);
  });

  it('refuses an out-of-bounds tensor, a complex dtype and a recursion bomb with their defect', () => {
    expect(() => openTensorFile(bad('out_of_bounds_tensor.bin'))).toThrow(
      /"proj\.weight": storage offset 1000 \+ extent 4096 elements .* past its storage of 16 elements/,
    );
    expect(() => openTensorFile(bad('complex_dtype.bin'))).toThrow(/complex64 tensors \(torch\.ComplexFloatStorage\), a dtype no Stable Diffusion file uses/);
    expect(() => openTensorFile(bad('recursion_bomb.bin'))).toThrow(/recursion_bomb\.bin: nesting deeper than 256 levels/);
    expect(openTensorFile(pk('control_v11p_sd15_tiny.pth')).keys().length).toBe(338);
  });

  it('every loader refuses them too', () => {
    expect(() => IpAdapterModel.load(bad('ip-adapter_os_system.bin'))).toThrow(/"os\.system" is not a tensor-file global/);
    expect(() => loadCheckpoint(bad('checkpoint_subprocess_popen.ckpt'))).toThrow(/"subprocess\.Popen" is not a tensor-file global/);
    expect(() => vaeWeightsFromFile(bad('model_builtins_exec.ckpt'))).toThrow(/"builtins\.exec" is not a tensor-file global/);
    expect(() => loadControlNet(bad('lora_stack_global_eval.bin'))).toThrow(/"builtins\.eval" is not a tensor-file global/);
  });
});

describe('crafted files', () => {
  const one: Record<string, StorageSpec> = { '0': { dtype: 'F32', bytes: f32([...Array(16).keys()]) } };

  it('a truncated zip or legacy file gives a clear error', () => {
    const zip = fs.readFileSync(pk('ip-adapter_sd15-tiny.bin'));
    for (const cut of [zip.length - 10, zip.length >> 1, 100]) {
      expect(() => openTensorFile(write(`cut-${cut}.bin`, zip.subarray(0, cut)))).toThrow(
        /cut-\d+\.bin: the zip archive is truncated or damaged: its end-of-central-directory record is missing/,
      );
    }
    const legacy = fs.readFileSync(pk('vae-ft-mse-tiny-legacy.ckpt'));
    expect(() => openTensorFile(write('cut-legacy.ckpt', legacy.subarray(0, legacy.length - 100)))).toThrow(
      /cut-legacy\.ckpt: the file is truncated: storage "\d+"/,
    );
    expect(() => openTensorFile(write('cut-legacy-head.ckpt', legacy.subarray(0, 200)))).toThrow(/truncated/);
  });

  it('honours storage offsets (in place), shared storages and strides (gathered copy)', () => {
    const f = write(
      'views.pt',
      torchZip(
        {
          a: new TensorSpec('0', [2, 3], undefined, 4), // elements 4..9
          b: new TensorSpec('0', [4]), // same storage, elements 0..3
          t: new TensorSpec('0', [3, 2], [1, 3], 4), // transpose of a
        },
        one,
      ),
    );
    const st = openTensorFile(f);
    const a = st.get('a');
    expect(a.file).toBe(f);
    expect(Array.from(readTensorF32(a))).toEqual([4, 5, 6, 7, 8, 9]);
    expect(a.offset - st.get('b').offset).toBe(16);
    expect(Array.from(readTensorF32(st.get('b')))).toEqual([0, 1, 2, 3]);
    const t = st.get('t');
    expect(t.file).not.toBe(f);
    expect({ shape: t.shape, values: Array.from(readTensorF32(t)) }).toEqual({ shape: [3, 2], values: [4, 7, 5, 8, 6, 9] });
  });

  it('checks extents, record lengths and storage types', () => {
    expect(() => openTensorFile(write('past.pt', torchZip({ w: new TensorSpec('0', [4], undefined, 13) }, one)))).toThrow(
      /"w": storage offset 13 \+ extent 4 elements .* past its storage of 16 elements/,
    );
    expect(() => openTensorFile(write('stride.pt', torchZip({ w: new TensorSpec('0', [2, 2], [15, 1]) }, one)))).toThrow(/extent 17 elements/);
    const short = { '0': { dtype: 'F32' as const, bytes: f32([1, 2, 3]), numel: 16 } };
    expect(() => openTensorFile(write('short.pt', torchZip({ w: new TensorSpec('0', [2]) }, short)))).toThrow(
      /storage "0" holds 16 F32 elements = 64 bytes, but its record archive\/data\/0 has 12 bytes/,
    );
    const pkl = pickleObject({ w: new TensorSpec('1', [2]) }, { '1': one['0'] });
    expect(() => openTensorFile(write('norecord.pt', zipStored([['archive/data.pkl', pkl]])))).toThrow(
      /storage "1" has no record archive\/data\/1 in the archive/,
    );
  });

  it('unwraps state_dict repeatedly; a file without one is the state dict; no tensors is said plainly', () => {
    const nested = openTensorFile(
      write('nested.ckpt', torchZip({ state_dict: { state_dict: { 'x.weight': new TensorSpec('0', [16]) } }, global_step: 840001 }, one)),
    );
    expect(nested.keys()).toEqual(['x.weight']);
    const flat = openTensorFile(write('flat.pt', torchZip({ 'x.weight': new TensorSpec('0', [16]), epoch: 3, note: 'hi' }, one, 'some-stem')));
    expect(flat.keys()).toEqual(['x.weight']);
    const none = write('none.pt', torchZip({ global_step: 5, epoch: 1 }));
    expect(() => openTensorFile(none)).toThrow(/none\.pt: no tensors found \(top-level keys: "global_step", "epoch"\)/);
    expect(() => openTensorFile(none)).not.toThrow(/under "state_dict"/);
  });

  it('refuses calls and builds on what is not allowed, deep dicts, and archives that are not torch.save', () => {
    const raw = (ops: string) => Buffer.concat([Buffer.from([0x80, 2]), Buffer.from(ops, 'latin1'), Buffer.from('.')]);
    const open = (name: string, ops: string) => () => openTensorFile(write(name, torchZip(raw(ops))));
    expect(open('inst.pt', "(S'x'\nios\nsystem\n")).toThrow(/"os\.system" is not a tensor-file global/);
    expect(open('reduce-storage.pt', 'ctorch\nFloatStorage\n)R')).toThrow(/REDUCE on "torch\.FloatStorage" is not allowed/);
    expect(open('reduce-str.pt', 'U\x01x)R')).toThrow(/REDUCE on a string is not allowed/);
    expect(open('build-list.pt', ']}b')).toThrow(/BUILD on a list is not allowed/);
    expect(open('ext.pt', '\x82\x01')).toThrow(/extension-registry/);
    expect(open('opcode.pt', '\xff')).toThrow(/unknown pickle opcode 0xff/);
    expect(open('newobj.pt', 'cbuiltins\nobject\n)\x81')).toThrow(/"builtins\.object" is not a tensor-file global/);
    expect(open('module.pt', '(U\x06moduleU\x01mt\x85Q')).toThrow(/not a tensor storage/);
    const deep = '}U\x01a'.repeat(100) + '}' + 's'.repeat(100);
    expect(open('deep.pt', deep)).toThrow(/dicts nested deeper than 64 levels/);
    const cyclic = '}q\x00U\x01ah\x00s';
    expect(open('cycle.pt', cyclic)).toThrow(/nested deeper than 64 levels/);
    expect(() => openPickleFile(VAE_TWIN)).toThrow(/not a PyTorch file/);
    expect(() => openTensorFile(write('plain.zip', zipStored([['readme.txt', Buffer.from('hi')]])))).toThrow(
      /without a <folder>\/data\.pkl record, so not a torch\.save file/,
    );
  });
});

describe('loaders open pickles through openTensorFile', () => {
  it('VAE, ControlNet and IP-Adapter pickles load like their twins', () => {
    for (const f of ['vae-ft-mse-tiny.ckpt', 'vae-ft-mse-tiny-legacy.ckpt', 'vae-ft-mse-tiny-statedict-only.pt', 'vae-ft-mse-tiny-statedict-only-legacy.pt']) {
      const w = vaeWeightsFromFile(pk(f)),
        twin = vaeWeightsFromFile(VAE_TWIN);
      for (const n of ['decoder.conv_in.weight', 'decoder.up_blocks.0.resnets.0.conv1.weight', 'encoder.mid_block.attentions.0.to_q.weight']) {
        expect(readTensorBytes(w.get(n)).equals(readTensorBytes(twin.get(n))), `${f} ${n}`).toBe(true);
      }
    }
    const cn = loadControlNet(pk('control_v11p_sd15_tiny.pth')),
      cnTwin = loadControlNet(path.join(BASE, 'controlnet-ldm.safetensors'));
    expect(cn.config).toEqual(cnTwin.config);
    expect(cn.shapes).toEqual(cnTwin.shapes);
    const ip = IpAdapterModel.load(pk('ip-adapter_sd15-tiny.bin')),
      ipTwin = IpAdapterModel.load(path.join(BASE, 'ip-adapter_sd15-tiny.safetensors'));
    expect([ip.kind, ip.numTokens, ip.embedDim, ip.crossAttentionDim, ip.layers.size]).toEqual([
      ipTwin.kind,
      ipTwin.numTokens,
      ipTwin.embedDim,
      ipTwin.crossAttentionDim,
      ipTwin.layers.size,
    ]);
  });

  it('a .ckpt checkpoint ({state_dict, global_step}) loads like the safetensors checkpoint', () => {
    const src = SafetensorsFile.open(path.join(BASE, 'checkpoint-ldm.safetensors'));
    const storages: Record<string, StorageSpec> = {},
      sd: Record<string, TensorSpec> = {};
    src.keys().forEach((k, i) => {
      const r = src.get(k);
      storages[String(i)] = { dtype: r.dtype, bytes: readTensorBytes(r) };
      sd[k] = new TensorSpec(String(i), r.shape);
    });
    const ckpt = write('v1-5-tiny.ckpt', torchZip({ state_dict: sd, global_step: 840001 }, storages, 'v1-5-tiny'));
    const a = loadCheckpoint(ckpt),
      b = loadCheckpoint(src.file);
    expect(a.unet.config).toEqual(b.unet.config);
    expect(a.vae).toMatchObject({ weightsFile: ckpt, prefix: 'first_stage_model.' });
    expect(detectCheckpoint(ckpt).layout).toBe('ldm');
    const n = 'down_blocks.0.resnets.0.conv1.weight';
    expect(readTensorBytes(a.unet.weights.get(n)).equals(readTensorBytes(b.unet.weights.get(n)))).toBe(true);
    expect(vaeWeightsFromFile(ckpt).has('decoder.conv_in.weight')).toBe(true);
  });

  it('CLIP vision and diffusers folder .bin weights are still refused, with the converter named', () => {
    const zip = fs.readFileSync(pk('ip-adapter_sd15-tiny.bin'));
    const advice = /image_encoder\.bin: the CLIP vision model is a PyTorch pickle file \(\.bin\), which this loader does not read.*npm run convert-model -- /;
    expect(() => resolveClipVision(write('image_encoder.bin', zip))).toThrow(advice);
    write('clip-folder/pytorch_model.bin', zip);
    expect(() => resolveClipVision(path.join(dir, 'clip-folder'))).toThrow(/pytorch_model\.bin: the CLIP vision model is a PyTorch pickle/);
    expect(() => refusePickle(write('renamed-clip.safetensors', zip), 'the CLIP vision model')).toThrow(/despite its \.safetensors name/);
    write(
      'sd-folder/unet/config.json',
      Buffer.from(
        JSON.stringify({
          block_out_channels: [32, 64],
          layers_per_block: 1,
          cross_attention_dim: 768,
          down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
          up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
        }),
      ),
    );
    write('sd-folder/unet/diffusion_pytorch_model.bin', zip);
    expect(() => loadCheckpoint(path.join(dir, 'sd-folder'))).toThrow(/diffusion_pytorch_model\.bin: the unet weights file is a PyTorch pickle/);
    const st = write('fine.safetensors', encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }));
    expect(() => refusePickle(st, 'the model')).not.toThrow();
    expect(() => refusePickle(path.join(dir, 'missing.safetensors'), 'the model')).not.toThrow();
  });

  it('looksLikePickle tells pickles from safetensors headers', () => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(0x0280n); // 640: bytes 80 02 00 00 00 00 00 00
    expect(looksLikePickle(len)).toBe(false);
    expect(looksLikePickle(fs.readFileSync(pk('vae-ft-mse-tiny-legacy.ckpt')).subarray(0, 8))).toBe(true);
    expect(looksLikePickle(fs.readFileSync(pk('vae-ft-mse-tiny.ckpt')).subarray(0, 8))).toBe(true);
  });
});
