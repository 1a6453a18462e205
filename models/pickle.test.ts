import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCheckpoint, loadCheckpoint } from './checkpoint.js';
import { resolveClipVision } from './clip-vision.js';
import { loadControlNet } from './controlnet-load.js';
import { IpAdapterModel } from './ip-adapter.js';
import { vaeWeightsFromFile } from './keymaps/ldm-vae.js';
import { PickleFileError, looksLikePickle, refusePickle } from './pickle.js';
import { SafetensorsFile, encodeSafetensors } from './safetensors.js';

/** The first bytes torch.save writes: a zip archive (torch >= 1.6) and the legacy pickle stream. */
const ZIP_PICKLE = Buffer.concat([Buffer.from('PK\x03\x04\x00\x00\x08\x08', 'latin1'), Buffer.alloc(200, 1)]);
const LEGACY_PICKLE = Buffer.concat([Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]), Buffer.alloc(200, 2)]);

/** The advice every loader gives: names the file, says pickle, never unpickled, and how to convert. */
const advice = (name: string, what: string) => new RegExp(
  `^${name.replace(/\./g, '\\.')}: ${what} is a PyTorch pickle file.*never unpickled here, for safety.*convert it to \\.safetensors.*safetensors\\.torch\\.save_file`);

describe('refusePickle', () => {
  let dir: string;
  const write = (name: string, bytes: Buffer) => {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, bytes);
    return p;
  };
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pickle-test-')); });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loadCheckpoint refuses a .ckpt with advice, before reading it as safetensors', () => {
    const f = write('v1-5-pruned.ckpt', ZIP_PICKLE);
    expect(() => loadCheckpoint(f)).toThrow(PickleFileError);
    expect(() => loadCheckpoint(f)).toThrow(advice('v1-5-pruned.ckpt', 'the checkpoint'));
    expect(() => loadCheckpoint(f)).not.toThrow(/header length/);
    expect(() => detectCheckpoint(f)).toThrow(advice('v1-5-pruned.ckpt', 'the checkpoint'));
    for (const ext of ['.pt', '.pth', '.bin', '.PT']) {
      expect(() => loadCheckpoint(write(`model${ext}`, LEGACY_PICKLE))).toThrow(advice(`model${ext}`, 'the checkpoint'));
    }
  });

  it('recognises a pickle renamed to .safetensors by its first bytes', () => {
    const zip = write('renamed.safetensors', ZIP_PICKLE);
    expect(() => loadCheckpoint(zip)).toThrow(/renamed\.safetensors: the checkpoint is a PyTorch pickle file despite its \.safetensors name/);
    const legacy = write('renamed-legacy.safetensors', LEGACY_PICKLE);
    expect(() => vaeWeightsFromFile(legacy)).toThrow(/renamed-legacy\.safetensors: the VAE is a PyTorch pickle file despite/);
  });

  it('the VAE loader refuses a pickle VAE by path, before opening it', () => {
    const f = write('vae-ft-mse-840000-ema-pruned.ckpt', ZIP_PICKLE);
    expect(() => vaeWeightsFromFile(f)).toThrow(advice('vae-ft-mse-840000-ema-pruned.ckpt', 'the VAE'));
    expect(() => vaeWeightsFromFile(f)).not.toThrow(/header length/);
    // A real VAE file by path still loads (LDM layout, no prefix).
    const one = { dtype: 'F32' as const, shape: [1, 1, 1, 1], data: new Float32Array(1) };
    const ok = write('vae.safetensors', encodeSafetensors({ 'decoder.conv_in.weight': one, 'decoder.mid.block_1.conv1.weight': one }));
    expect(vaeWeightsFromFile(ok).has('decoder.conv_in.weight')).toBe(true);
    expect(vaeWeightsFromFile(SafetensorsFile.open(ok)).has('decoder.conv_in.weight')).toBe(true);
  });

  it('the ControlNet, IP-Adapter and CLIP vision loaders give the same advice', () => {
    expect(() => loadControlNet(write('control_v11p_sd15_canny.pth', ZIP_PICKLE))).toThrow(advice('control_v11p_sd15_canny.pth', 'the ControlNet'));
    expect(() => IpAdapterModel.load(write('ip-adapter_sd15.bin', ZIP_PICKLE))).toThrow(advice('ip-adapter_sd15.bin', 'the IP-Adapter'));
    expect(() => resolveClipVision(write('image_encoder.bin', ZIP_PICKLE))).toThrow(advice('image_encoder.bin', 'the CLIP vision model'));
    // A transformers folder holding only pytorch_model.bin.
    write('clip-folder/pytorch_model.bin', ZIP_PICKLE);
    expect(() => resolveClipVision(path.join(dir, 'clip-folder'))).toThrow(advice('pytorch_model.bin', 'the CLIP vision model'));
    // A diffusers folder whose unet/ has only diffusion_pytorch_model.bin.
    write('sd-folder/unet/config.json', Buffer.from(JSON.stringify({
      block_out_channels: [32, 64], layers_per_block: 1, cross_attention_dim: 768,
      down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    })));
    write('sd-folder/unet/diffusion_pytorch_model.bin', ZIP_PICKLE);
    expect(() => loadCheckpoint(path.join(dir, 'sd-folder'))).toThrow(advice('diffusion_pytorch_model.bin', 'the unet weights file'));
  });

  it('leaves safetensors files and missing files to their loaders', () => {
    const st = write('fine.safetensors', encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }));
    expect(() => refusePickle(st, 'the model')).not.toThrow();
    expect(() => refusePickle(path.join(dir, 'missing.safetensors'), 'the model')).not.toThrow();
    // A safetensors header length whose low bytes look like a pickle opcode is not mistaken for one.
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(0x0280n); // 640: bytes 80 02 00 00 00 00 00 00
    expect(looksLikePickle(len)).toBe(false);
    expect(looksLikePickle(LEGACY_PICKLE.subarray(0, 8))).toBe(true);
    expect(looksLikePickle(ZIP_PICKLE.subarray(0, 8))).toBe(true);
  });
});
