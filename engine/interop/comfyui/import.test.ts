/**
 * ComfyUI import: the fixtures of test/fixtures-comfyui (written for these tests from ComfyUI's and
 * ComfyUI_IPAdapter_plus' node definitions) become our workflows with ComfyUI's values as params,
 * every node in the report, unsupported ones as placeholders that keep their links; bad files give
 * the report or a clear error. Runs on the demo set are in run.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_NAMES } from '../../demo/demo.js';
import { COMFY_FIXTURES, comfyFixture, DEMO_LIST } from '../../../test/helpers/comfyui.js';
import { NODE_DEFS, nodeSpecs } from '../../../nodes/index.js';
import type { NodeSpec } from '../../../nodes/spec.js';
import type { Workflow } from '../../protocol.js';
import { resolveGraph } from '../../graph-modes.js';
import { validateWorkflow } from '../../validate.js';
import { parseWorkflow } from '../../workflow.js';
import { importComfyUI, type ImportResult } from './import.js';
import { ComfyReadError, comfyFormatOf, normalizeComfy, parseJsonExact } from './read.js';
import { countStatuses, formatReport, hasUnsupported } from './report.js';
import { blocksForWeightType, comfyWeightType } from './layers.js';
import { matchModel } from './models.js';

const FIXTURES = COMFY_FIXTURES;
const fixture = comfyFixture;
const specs = nodeSpecs();
const specMap = new Map(specs.map((s) => [s.type, s]));

function load(name: string, s: readonly NodeSpec[] = specs): ImportResult {
  return importComfyUI(fixture(name), { specs: s, models: DEMO_LIST });
}
const node = (wf: Workflow, id: string) => {
  const n = wf.nodes.find((x) => x.id === id);
  if (!n) throw new Error(`no node ${id} in ${wf.nodes.map((x) => x.id).join(', ')}`);
  return n;
};
const edges = (wf: Workflow) => wf.edges.map((e) => `${e.from.node}.${e.from.port} -> ${e.to.node}.${e.to.port}`);
const entry = (r: ImportResult, id: string) => r.report.nodes.find((n) => n.id === id)!;

describe('reading ComfyUI files', () => {
  it('tells UI 0.4, UI 1.0, API prompts (bare or as a /prompt body) and our own workflows apart', () => {
    expect(comfyFormatOf(fixture('ipadapter-advanced.v04.json'))).toBe('ui-0.4');
    expect(comfyFormatOf(fixture('embeds-noise.v1.json'))).toBe('ui-1.0');
    expect(comfyFormatOf(fixture('controlnet-lora-img2img.api.json'))).toBe('api');
    expect(comfyFormatOf({ prompt: fixture('controlnet-lora-img2img.api.json'), client_id: 'x' })).toBe('api');
    expect(comfyFormatOf(JSON.parse(fs.readFileSync(path.join(FIXTURES, '../../examples/image-prompt.json'), 'utf8')))).toBeNull();
    expect(comfyFormatOf([1, 2])).toBeNull();
    expect(() => normalizeComfy({ hello: 1 })).toThrow(ComfyReadError);
  });

  it('reads integers past 2^53 (seeds up to 2^64 - 1) exactly, and leaves strings and floats alone', () => {
    expect(parseJsonExact('{"seed": 18446744073709551615, "s": "18446744073709551615", "f": 1.5e300, "n": -1234567890123456, "k": 9007199254740991}')).toEqual({
      seed: '18446744073709551615',
      s: '18446744073709551615',
      f: 1.5e300,
      n: -1234567890123456,
      k: 9007199254740991,
    });
    expect(parseJsonExact('["a\\"123456789012345678901", 123456789012345678901]')).toEqual(['a"123456789012345678901', '123456789012345678901']);
  });
});

describe('UI workflow 0.4: IPAdapter Advanced through a reroute, the seed from a primitive', () => {
  const r = load('ipadapter-advanced.v04.json');
  const wf = r.workflow;

  it('gives our workflow, valid against the node specs (models matched in the demo set)', () => {
    expect(parseWorkflow(JSON.parse(JSON.stringify(wf))).workflow).not.toBeNull();
    expect(validateWorkflow(wf, specMap)).toEqual([]);
  });

  it('takes the widgets positionally, control_after_generate and the upload value included, and the seed from the primitive', () => {
    expect(node(wf, 'c9')).toMatchObject({
      type: 'ksampler',
      params: {
        seed: 987654321,
        control_after_generate: 'increment',
        steps: 4,
        cfg: 7.5,
        sampler_name: 'ddim',
        scheduler: 'ddim_uniform',
        denoise: 1,
        noise: 'torch',
      },
      ui: { x: 1260, y: 200, title: 'My sampler' },
    });
    expect(node(wf, 'c4').params).toMatchObject({ image: 'example.png' });
    expect(node(wf, 'c8').params).toEqual({ width: 64, height: 64, batch_size: 1 });
    expect(node(wf, 'c2')).toMatchObject({ params: { text: 'a cat sitting in a garden, best quality' }, ui: { title: 'Positive' } });
    expect(node(wf, 'c12').params).toEqual({ filename_prefix: 'ipadapter/advanced' });
  });

  it("maps IPAdapterUnifiedLoader + IPAdapterAdvanced onto loaders, encode, projection and Apply IP-Adapter with ComfyUI's values", () => {
    expect(node(wf, 'c5').params).toEqual({ ipadapter_file: DEMO_NAMES.ipAdapter });
    expect(node(wf, 'c5_vision').params).toEqual({ clip_name: DEMO_NAMES.clipVision });
    expect(node(wf, 'c6').params).toEqual({
      weight: 0.8,
      start_at: 0,
      end_at: 0.9,
      weight_type: 'style transfer',
      layer_weights: '',
      weight_composition: 1,
      embeds_scaling: 'V only',
    });
    expect(edges(wf)).toEqual(
      expect.arrayContaining([
        'c5_vision.clip_vision -> c6_encode.clip_vision',
        'c4.image -> c6_encode.image',
        'c6_encode.embeds -> c6_proj.embeds',
        'c5.ip_adapter -> c6_proj.ip_adapter',
        'c6_proj.tokens -> c6.tokens',
        'c5.ip_adapter -> c6.ip_adapter',
        // The unified loader passes the checkpoint's model through; the reroute (a Reroute node here) carries the adapter's model to the sampler.
        'c1.model -> c6.model',
        'c6.model -> c7.in',
        'c7.out -> c9.model',
        'c1.vae -> c11.vae',
        // The primitive (a Primitive node here) feeds the sampler's seed, turned into an input.
        'c10.value -> c9.seed',
      ]),
    );
    expect(node(wf, 'c7')).toMatchObject({ type: 'reroute', params: {}, ui: { x: 1140, y: 120 } });
    expect(node(wf, 'c10')).toMatchObject({ type: 'primitive', params: { value: 987654321, control_after_generate: 'increment' }, ui: { title: 'seed' } });
    expect(node(wf, 'c9').ui).toMatchObject({ inputs: ['seed'] });
    // What runs is what ComfyUI runs: the adapter's model into the sampler, the primitive's seed.
    const ran = resolveGraph(wf, specMap).workflow;
    expect(edges(ran)).toContain('c6.model -> c9.model');
    expect(node(ran, 'c9').params.seed).toBe(987654321);
    expect(ran.nodes.map((n) => n.type)).not.toContain('reroute');
  });

  it('keeps positions, titles, groups and the note (a Note node); lists every node in the report', () => {
    expect(node(wf, 'c1').ui).toEqual({ x: 30, y: 200 });
    expect(wf.meta?.groups).toEqual([{ title: 'Image prompt', bounding: [400, 0, 720, 380], color: '#3f789e', nodes: ['c5', 'c6', 'c6_encode', 'c6_proj'] }]);
    expect(node(wf, 'c13')).toMatchObject({ type: 'note', params: { text: 'A style-transfer image prompt, written for the importer tests.' } });
    expect(wf.meta?.comfyui).not.toHaveProperty('notes');
    expect(r.report.nodes.map((n) => n.id)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13']);
    expect(countStatuses(r.report)).toEqual({ mapped: 12, approximated: 1, unsupported: 0, skipped: 0 });
    expect(entry(r, '7')).toMatchObject({ nodes: ['c7'], notes: ['a reroute: a Reroute node here'] });
    expect(entry(r, '10')).toMatchObject({ nodes: ['c10'], notes: ['a primitive: a Primitive node here, feeding c9 "seed"'] });
    expect(entry(r, '13')).toMatchObject({ nodes: ['c13'], notes: ['a note: a Note node here'] });
    expect(entry(r, '1')).toMatchObject({ status: 'approximated' });
    expect(r.report.models.find((m) => m.node === 'c1')).toMatchObject({
      wanted: 'sd15/realisticVisionV51_v51VAE.safetensors',
      used: DEMO_NAMES.checkpoint,
      how: 'substituted',
    });
    expect(formatReport(r.report)).toMatch(/^ComfyUI workflow \(UI format 0\.4\): 13 nodes, 12 mapped, 1 approximated, 0 unsupported; 1 model substitution/);
  });

  it('without a KSampler node in the build, maps KSampler ddim / ddim_uniform onto the DDIM Sampler as approximated', () => {
    const old = load(
      'ipadapter-advanced.v04.json',
      specs.filter((s) => s.type !== 'ksampler' && s.type !== 'ksampler-advanced'),
    );
    expect(node(old.workflow, 'c9')).toMatchObject({ type: 'ddim-sampler', params: { seed: 987654321, steps: 4, cfg: 7.5, denoise: 1, eta: 0 } });
    expect(entry(old, '9')).toMatchObject({ status: 'approximated' });
    expect(entry(old, '9').notes.join(' ')).toMatch(/ddim \/ ddim_uniform as the DDIM Sampler/);
  });
});

describe('UI workflow 1.0: encoders, combined embeds, IPAdapter Noise, KSampler (Advanced)', () => {
  const r = load('embeds-noise.v1.json');
  const wf = r.workflow;

  it("is valid and keeps ComfyUI's values", () => {
    expect(validateWorkflow(wf, specMap)).toEqual([]);
    expect(node(wf, 'c15')).toMatchObject({
      type: 'ksampler-advanced',
      params: {
        add_noise: 'enable',
        noise_seed: 42,
        control_after_generate: 'randomize',
        steps: 3,
        cfg: 6,
        sampler_name: 'euler',
        scheduler: 'normal',
        start_at_step: 0,
        end_at_step: 10000,
        return_with_leftover_noise: 'disable',
      },
    });
    expect(node(wf, 'c7')).toMatchObject({ type: 'image-resize', params: { width: 224, height: 224, mode: 'crop', filter: 'lanczos' } });
    expect(node(wf, 'c11').params).toEqual({
      weight: 0.7,
      start_at: 0,
      end_at: 1,
      weight_type: 'composition',
      layer_weights: '',
      weight_composition: 1,
      embeds_scaling: 'V only',
    });
  });

  it('the encoders, Combine Embeds and IPAdapter Embeds become the same nodes here: weights, the average, the neg_embed', () => {
    expect(node(wf, 'c8')).toMatchObject({ type: 'ip-adapter-encoder', params: { weight: 1 } });
    expect(node(wf, 'c10')).toMatchObject({ type: 'ip-adapter-combine-embeds', params: { method: 'average' } });
    expect(node(wf, 'c11').type).toBe('apply-ip-adapter-embeds');
    expect(edges(wf)).toEqual(
      expect.arrayContaining([
        'c8.embeds -> c10.embeds_1',
        'c9.embeds -> c10.embeds_2',
        'c10.embeds -> c11.embeds',
        'c8.negative -> c11.negative',
        'c7.image -> c8.image',
        'c5.clip_vision -> c8.clip_vision',
        'c4.ip_adapter -> c8.ip_adapter',
      ]),
    );
    for (const id of ['8', '9', '10', '11']) expect(entry(r, id)).toMatchObject({ status: 'mapped', nodes: [`c${id}`] });
  });

  it("IPAdapter Noise is the IP-Adapter Noise node, whose image is the IPAdapter's negative image prompt", () => {
    expect(node(wf, 'c12')).toMatchObject({ type: 'ip-adapter-noise', params: { type: 'fade', strength: 0.5, blur: 0 } });
    expect(entry(r, '12')).toMatchObject({ status: 'mapped', nodes: ['c12'] });
    expect(edges(wf)).toEqual(expect.arrayContaining(['c12.image -> c13_neg_encode.image', 'c13_neg_proj.tokens -> c13.negative']));
    expect(edges(wf)).toEqual(expect.arrayContaining(['c11.model -> c13.model', 'c13.model -> c15.model']));
  });
});

describe('API prompt: LoRA, VAE, ControlNet (Advanced) on Canny edges, img2img with a noise mask', () => {
  const r = load('controlnet-lora-img2img.api.json');
  const wf = r.workflow;

  it('is valid; a seed of 2^64 - 1 stays exact and cfg comes from a PrimitiveFloat', () => {
    expect(validateWorkflow(wf, specMap)).toEqual([]);
    expect(node(wf, 'c13').params).toMatchObject({
      seed: '18446744073709551615',
      cfg: 5.5,
      steps: 3,
      sampler_name: 'dpmpp_2m',
      scheduler: 'karras',
      denoise: 0.6,
    });
    expect(node(wf, 'c13').ui).toBeUndefined(); // API prompts have no layout: the editor lays them out
    const titles = (wf.meta?.comfyui as { titles: Record<string, string> }).titles;
    expect(titles.c3).toBe('Positive prompt');
    expect(titles.c4).toBeUndefined(); // ComfyUI's own display name is no title
  });

  it('one ControlNetApplyAdvanced is an Apply ControlNet on each conditioning with the same values', () => {
    for (const id of ['c10', 'c10_neg']) expect(node(wf, id)).toMatchObject({ type: 'apply-controlnet', params: { strength: 0.9, start: 0, end: 0.8 } });
    expect(edges(wf)).toEqual(
      expect.arrayContaining([
        'c3.conditioning -> c10.conditioning',
        'c4.conditioning -> c10_neg.conditioning',
        'c10.conditioning -> c13.positive',
        'c10_neg.conditioning -> c13.negative',
        'c9.control_net -> c10.control_net',
        'c8.image -> c10_neg.image',
        'c12.latent -> c13.latent',
        'c6.mask -> c12.mask',
        'c2.model -> c13.model',
        'c2.clip -> c3.clip',
      ]),
    );
  });

  it('LoRA, VAE, ImageScale and Canny params', () => {
    expect(node(wf, 'c2').params).toEqual({ lora_name: DEMO_NAMES.lora, strength_model: 0.75, strength_clip: 0.5 });
    expect(node(wf, 'c5').params).toMatchObject({ vae_name: DEMO_NAMES.vae });
    expect(node(wf, 'c7').params).toEqual({ width: 64, height: 64, mode: 'crop', filter: 'lanczos' });
    expect(node(wf, 'c8').params).toEqual({ low_threshold: 51, high_threshold: 153, blur: 1, l2_gradient: true, channels: 'gray' });
    expect(node(wf, 'c9').params).toMatchObject({ control_net_name: DEMO_NAMES.controlnetCanny });
    expect(node(wf, 'c11').params).toMatchObject({ mode: 'mean' });
    expect(node(wf, 'c12').params).toEqual({ binarize: false });
    expect(r.report.models.find((m) => m.node === 'c9')).toMatchObject({ how: 'renamed' });
  });
});

describe('every mapped node type, its widgets read positionally', () => {
  const r = load('every-node-widgets.v04.json');
  const p = (id: string) => node(r.workflow, id).params;

  it('core nodes', () => {
    expect(node(r.workflow, 'c1').type).toBe('load-checkpoint');
    expect(entry(r, '1').notes.join(' ')).toMatch(/config_name "v1-inference.yaml" is not used/);
    expect(r.report.models.find((m) => m.node === 'c1')?.wanted).toBe('sd15/deliberate_v2.ckpt'); // Windows separators read as '/'
    expect(entry(r, '2')).toMatchObject({ status: 'approximated', nodes: [] }); // CLIP skip -2
    expect(p('c3')).toEqual({ text: '(masterpiece:1.2), a castle', cleaning: 'transformers' });
    expect(entry(r, '3').notes.join(' ')).toMatch(/emphasis/);
    expect(p('c4')).toMatchObject({
      seed: 12345,
      control_after_generate: 'randomize',
      steps: 20,
      cfg: 8,
      sampler_name: 'euler',
      scheduler: 'exponential',
      denoise: 1,
    });
    expect(entry(r, '4').notes.join(' ')).toMatch(/"dpmpp_3m_sde_gpu" is not available here/);
    expect(p('c5')).toMatchObject({
      add_noise: 'disable',
      noise_seed: 7,
      control_after_generate: 'fixed',
      steps: 30,
      cfg: 4.5,
      sampler_name: 'ddim',
      scheduler: 'ddim_uniform',
      start_at_step: 10,
      end_at_step: 25,
      return_with_leftover_noise: 'enable',
    });
    expect(p('c6')).toEqual({ width: 768, height: 512, batch_size: 2 });
    expect(p('c7')).toMatchObject({ mode: 'mean' });
    expect(node(r.workflow, 'c8').type).toBe('vae-encode');
    expect(entry(r, '8').notes.join(' ')).toMatch(/grow_mask_by 6/);
    expect(node(r.workflow, 'c9').type).toBe('vae-decode');
    expect(p('c10')).toMatchObject({ vae_name: DEMO_NAMES.vae });
    expect(p('c11')).toMatchObject({ strength_model: 100, strength_clip: -0.25 });
    expect(entry(r, '11').notes.join(' ')).toMatch(/150 is above this app's maximum 100/);
    expect(p('c12')).toMatchObject({ image: 'sub/dir/photo.png' });
    expect(p('c13')).toEqual({ filename_prefix: '%date:yyyy-MM-dd%/ComfyUI' });
    expect(node(r.workflow, 'c14').type).toBe('preview-image');
    expect(p('c15')).toEqual({ width: 512, height: 512, mode: 'stretch', filter: 'bilinear' });
    expect(p('c16')).toEqual({ width: 640, height: 480, mode: 'crop', filter: 'nearest' });
    expect(p('c17')).toEqual({ binarize: false });
    expect(p('c18')).toMatchObject({ control_net_name: DEMO_NAMES.controlnetCanny });
    expect(p('c19')).toEqual({ strength: 0.65, start: 0, end: 1 });
    expect(p('c20')).toEqual({ strength: 1.1, start: 0.1, end: 0.75 });
    expect(p('c20_neg')).toEqual({ strength: 1.1, start: 0.1, end: 0.75 });
    expect(p('c21')).toEqual({ low_threshold: 25.5, high_threshold: 76.5, blur: 1, l2_gradient: true, channels: 'gray' });
    expect(p('c22')).toEqual({ clip_name: DEMO_NAMES.clipVision });
    expect(p('c23')).toEqual({ channel: 'green', invert: false });
  });

  it('ComfyUI_IPAdapter_plus nodes', () => {
    expect(node(r.workflow, 'c24').type).toBe('load-ip-adapter');
    expect(r.report.models.find((m) => m.node === 'c24')).toMatchObject({ how: 'substituted', used: DEMO_NAMES.ipAdapter });
    expect(node(r.workflow, 'c25_vision').type).toBe('load-clip-vision');
    expect(p('c26')).toEqual({ ipadapter_file: DEMO_NAMES.ipAdapter });
    expect(p('c27')).toEqual({
      weight: 0.9,
      start_at: 0.1,
      end_at: 0.95,
      weight_type: 'ease out',
      layer_weights: '',
      weight_composition: 1,
      embeds_scaling: 'V only',
    });
    expect(p('c28')).toEqual({
      weight: 1.4,
      start_at: 0.05,
      end_at: 0.85,
      weight_type: 'ease in-out',
      layer_weights: '',
      weight_composition: 1,
      embeds_scaling: 'K+V',
    });
    expect(p('c28_proj')).toEqual({ combine: 'average' });
    expect(entry(r, '28').notes.join(' ')).not.toMatch(/embeds_scaling/); // taken as it is
    expect(p('c29')).toMatchObject({ weight: 1.2, weight_type: 'ease in', layer_weights: '', weight_composition: 1 });
    expect(node(r.workflow, 'c30').type).toBe('ip-adapter-tiled'); // IPAdapterTiled, its tiles and masks outputs too
    expect(p('c30')).toMatchObject({ weight: 0.6, weight_type: 'strong style transfer', layer_weights: '', weight_composition: 1 });
    expect(p('c31')).toMatchObject({ weight: 1, weight_type: 'linear', layer_weights: '3:2.5, 6:1' });
    expect(p('c32')).toMatchObject({ weight_type: 'style transfer precise' });
    expect(entry(r, '32').notes.join(' ')).toMatch(/style_boost 2 is not applied/);
    expect(p('c33')).toMatchObject({ weight_type: 'composition precise' });
    expect(p('c34')).toMatchObject({ weight_type: 'weak input', layer_weights: '', weight_composition: 1 });
    expect(node(r.workflow, 'c35')).toMatchObject({ type: 'ip-adapter-encoder', params: { weight: 0.8 } });
    expect(node(r.workflow, 'c36')).toMatchObject({ type: 'ip-adapter-combine-embeds', params: { method: 'subtract' } });
    expect(entry(r, '36')).toMatchObject({ status: 'mapped' });
    expect(p('c37')).toEqual({
      weight: 0.6,
      start_at: 0.2,
      end_at: 0.8,
      weight_type: 'style transfer',
      layer_weights: '',
      weight_composition: 1,
      embeds_scaling: 'V only',
    });
    expect(node(r.workflow, 'c38').type).toBe('apply-ip-adapter-embeds');
    expect(p('c39')).toEqual({ width: 224, height: 224, mode: 'crop', filter: 'lanczos' });
    expect(entry(r, '39').notes.join(' ')).toMatch(/BICUBIC.*top.*sharpening/s);
    expect(node(r.workflow, 'c40')).toMatchObject({ type: 'ip-adapter-tiled', params: { weight: 0.7, weight_type: 'composition' } });
    expect(hasUnsupported(r.report)).toBe(false);
  });
});

describe('unsupported nodes and bad links', () => {
  const r = load('unsupported-faceid.v04.json');
  const wf = r.workflow;

  it('lists FaceID and unknown custom nodes as unsupported, with why', () => {
    expect(entry(r, '5')).toMatchObject({ status: 'unsupported', classType: 'IPAdapterFaceID', title: 'FaceID portrait', nodes: ['c5'] });
    expect(entry(r, '5').notes[0]).toBe('IPAdapterFaceID needs InsightFace (face detection and embedding), not supported');
    expect(entry(r, '3').notes[0]).toMatch(/FaceID adapters, which needs InsightFace/);
    expect(entry(r, '4').status).toBe('unsupported');
    expect(entry(r, '11')).toMatchObject({ status: 'unsupported', classType: 'WAS_Image_Blend' });
    expect(entry(r, '11').notes[0]).toMatch(/custom node/);
    expect(hasUnsupported(r.report)).toBe(true);
  });

  it('keeps each unsupported node as a placeholder with its values, sockets and links', () => {
    expect(node(wf, 'c5')).toMatchObject({ type: 'comfyui-node', params: { class_type: 'IPAdapterFaceID', title: 'FaceID portrait' }, ui: { x: 1050, y: 0 } });
    expect(JSON.parse(node(wf, 'c5').params.widgets as string)).toEqual({
      weight: 0.85,
      weight_faceidv2: 1,
      weight_type: 'linear',
      combine_embeds: 'concat',
      start_at: 0,
      end_at: 1,
      embeds_scaling: 'V only',
    });
    expect(JSON.parse(node(wf, 'c5').params.outputs as string)).toEqual([
      { name: 'MODEL', type: 'MODEL' },
      { name: 'face_image', type: 'IMAGE' },
    ]);
    expect(JSON.parse(node(wf, 'c11').params.widgets as string)).toEqual({ widgets_values: [0.5] });
    expect(edges(wf)).toEqual(
      expect.arrayContaining([
        // The bypassed LoraLoader is a bypassed Load LoRA here, between the checkpoint and its readers.
        'c1.model -> c2.model',
        'c2.model -> c3.model',
        'c2.clip -> c7.clip',
        'c3.MODEL -> c5.model',
        'c3.ipadapter -> c5.ipadapter',
        'c6.image -> c5.image',
        'c4.INSIGHTFACE -> c5.insightface',
        'c5.MODEL -> c9.model',
        'c10.image -> c11.image_a',
        'c6.image -> c11.image_b',
        'c11.IMAGE -> c13.images',
        // The muted SaveImage is a muted Save Image here, still wired.
        'c11.IMAGE -> c12.images',
      ]),
    );
    // What runs passes the checkpoint's MODEL and CLIP through the bypassed LoRA, as ComfyUI does, and leaves the muted Save Image out.
    const ran = resolveGraph(wf, specMap);
    expect(edges(ran.workflow)).toEqual(expect.arrayContaining(['c1.model -> c3.model', 'c1.clip -> c7.clip']));
    expect(ran.bypassed).toEqual(['c2']);
    expect(ran.muted).toEqual(['c12']);
  });

  it('validation refuses the run, naming each placeholder and why, and nothing else about them', () => {
    const defs = new Map(NODE_DEFS.map((d) => [d.type, d]));
    const errs = validateWorkflow(wf, specMap, { check: (t, p) => defs.get(t)?.check?.(p) ?? [] });
    const byNode = (id: string) => errs.filter((e) => e.node === id).map((e) => e.message);
    expect(byNode('c5')).toEqual([
      'ComfyUI node (not supported) (c5): ComfyUI node IPAdapterFaceID "FaceID portrait" is not supported here: IPAdapterFaceID needs InsightFace (face detection and embedding), not supported. Replace it with nodes of this app, or remove it, to run the workflow',
    ]);
    expect(byNode('c9')).toEqual([]); // its model comes from a placeholder: no port complaints
    expect(errs.filter((e) => /unknown (in|out)put port/.test(e.message))).toEqual([]);
  });

  it('reports links to missing nodes, widget lists of the wrong length, bypassed and muted nodes', () => {
    expect(entry(r, '14')).toMatchObject({ status: 'approximated' });
    expect(entry(r, '14').notes).toContain('input "samples" is linked to node 99, which is not in the file; it is left unconnected');
    expect(entry(r, '13').notes.join(' ')).toMatch(/input "extra" is not an input of PreviewImage/);
    expect(entry(r, '9').notes).toContain("widgets_values has 3 values for 6 widgets; sampler_name, scheduler, denoise take ComfyUI's default");
    expect(node(wf, 'c9').params).toMatchObject({
      seed: 7,
      steps: 12,
      cfg: 6.5,
      sampler_name: 'euler',
      scheduler: 'normal',
      denoise: 1,
      control_after_generate: 'fixed',
    });
    expect(entry(r, '15').notes.join(' ')).toMatch(/1 value more than EmptyLatentImage's 3 widgets/);
    expect(entry(r, '2').notes).toContain('bypassed in ComfyUI: bypassed here (its inputs pass through, as they do there)');
    expect(entry(r, '12').notes).toContain('muted in ComfyUI: muted here (it and what needs it do not run)');
    expect(node(wf, 'c2')).toMatchObject({ type: 'load-lora', mode: 'bypass' });
    expect(node(wf, 'c12')).toMatchObject({ type: 'save-image', mode: 'mute' });
    expect(wf.meta?.comfyui).not.toHaveProperty('skipped');
  });
});

describe('bad files', () => {
  it('malformed entries, cycles and dangling link ids give warnings, not a crash', () => {
    const doc = {
      last_node_id: 3,
      last_link_id: 3,
      version: 0.4,
      nodes: [
        'not a node',
        {
          id: 1,
          type: 'VAEDecode',
          inputs: [
            { name: 'samples', type: 'LATENT', link: 1 },
            { name: 'vae', type: 'VAE', link: 42 },
          ],
          outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [2] }],
        },
        {
          id: 2,
          type: 'SetLatentNoiseMask',
          inputs: [
            { name: 'samples', type: 'LATENT', link: 3 },
            { name: 'mask', type: 'MASK', link: null },
          ],
          outputs: [{ name: 'LATENT', type: 'LATENT', links: [1] }],
        },
        {
          id: 3,
          type: 'SetLatentNoiseMask',
          inputs: [{ name: 'samples', type: 'LATENT', link: 4 }],
          outputs: [{ name: 'LATENT', type: 'LATENT', links: [3] }],
        },
        { id: 3, type: 'Duplicate' },
        { type: 'NoId' },
      ],
      links: [[1, 2, 0, 1, 0, 'LATENT'], [2, 1, 0, 9, 0, 'IMAGE'], [3, 3, 0, 2, 0, 'LATENT'], [4, 2, 0, 3, 0, 'LATENT'], 'junk', [5, 1]],
    };
    const r = importComfyUI(doc, { specs });
    expect(r.report.warnings).toEqual(
      expect.arrayContaining([
        'nodes[0] is not an object; skipped',
        'node id 3 is used twice; the second (Duplicate) is skipped',
        'nodes[5] has no id; skipped',
        'links[4] is not a valid link; skipped',
        'links[5] is not a valid link; skipped',
        'node 1 (VAEDecode) input "vae" names link 42, which is not in the file; left unconnected',
      ]),
    );
    expect(r.report.warnings.some((w) => /part of a cycle/.test(w))).toBe(true);
    expect(r.workflow.nodes.map((n) => n.id).sort()).toEqual(['c1', 'c2', 'c3']);
  });

  it('subgraphs, group nodes and widget values by name', () => {
    const doc = {
      version: 1,
      state: {},
      links: [],
      nodes: [
        { id: 1, type: '0b5a8a44-7f4e-4c2b-9a51-8d7c7b1e2f30', pos: [0, 0], mode: 0, widgets_values: [] },
        { id: 2, type: 'workflow>My group', pos: [0, 200], mode: 0, widgets_values: [1, 2] },
        { id: 3, type: 'EmptyLatentImage', pos: [0, 400], mode: 0, widgets_values: { width: 320, height: 256, batch_size: 2 } },
      ],
      definitions: { subgraphs: [{ id: '0b5a8a44-7f4e-4c2b-9a51-8d7c7b1e2f30', name: 'Upscale' }] },
    };
    const r = importComfyUI(doc, { specs });
    expect(entry(r, '1')).toMatchObject({ status: 'unsupported' });
    expect(entry(r, '1').notes[0]).toMatch(/a subgraph: unpack it in ComfyUI/);
    expect(entry(r, '2').notes[0]).toMatch(/a group node: convert it back to nodes/);
    expect(node(r.workflow, 'c3').params).toEqual({ width: 320, height: 256, batch_size: 2 });
  });

  it("a 20 MB workflow: a giant prompt is cut to this app's limit and said; too many nodes is a clear error", () => {
    const huge = 'a'.repeat(20 * 2 ** 20);
    const doc = {
      '1': { class_type: 'CLIPTextEncode', inputs: { text: huge, clip: ['2', 1] } },
      '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'x.safetensors' } },
    };
    const text = JSON.stringify(doc);
    expect(text.length).toBeGreaterThan(20 * 2 ** 20);
    const t0 = Date.now();
    const r = importComfyUI(parseJsonExact(text), { specs, models: DEMO_LIST });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((r.workflow.nodes.find((n) => n.id === 'c1')!.params.text as string).length).toBe(100_000);
    expect(entry(r, '1').notes.join(' ')).toMatch(/a text of 20971520 characters is cut to 100000/);
    const many: Record<string, unknown> = {};
    for (let i = 0; i < 60_000; i++) many[String(i)] = { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } };
    expect(JSON.stringify(many).length).toBeGreaterThan(4 * 2 ** 20);
    expect(() => importComfyUI(many, { specs })).toThrow(/has 60000 nodes; at most 5000 are read/);
    const ui = {
      last_node_id: 3000,
      nodes: Array.from({ length: 3000 }, (_, i) => ({ id: i + 1, type: 'EmptyLatentImage', widgets_values: [512, 512, 1] })),
      links: [],
      version: 0.4,
    };
    expect(() => importComfyUI(ui, { specs })).toThrow(/becomes 3000 nodes here; a workflow holds at most 2000/);
  });
});

describe('layers and model names', () => {
  it('weight types map to themselves; layer weights to IPAdapterMS index pairs and back', () => {
    expect(blocksForWeightType('linear', 1).params.weight_type).toBe('linear');
    expect(blocksForWeightType('standard', 1).params.weight_type).toBe('linear');
    expect(blocksForWeightType('composition precise', 1).params).toEqual({ weight_type: 'composition precise', layer_weights: '' });
    expect(blocksForWeightType('style and composition', 2, 0.5).params).toEqual({
      weight_type: 'style and composition',
      layer_weights: '',
      weight_composition: 0.5,
    });
    expect(blocksForWeightType('strong style and composition', 2, 1).params.layer_weights).toBe(
      '0:1, 1:1, 2:1, 3:1, 4:0.5, 5:0.5, 6:1, 7:1, 8:1, 9:1, 10:1, 11:1, 12:1, 13:1, 14:1, 15:1',
    );
    expect(blocksForWeightType('sideways', 1)).toMatchObject({ params: { weight_type: 'linear' }, approx: expect.stringMatching(/not known/) });
    expect(comfyWeightType('style transfer', '')).toEqual({ weightType: 'style transfer', layerWeights: null });
    expect(comfyWeightType('ease in', '1, 0, 0.5')).toEqual({ weightType: 'linear', layerWeights: '0:1, 1:0, 2:0.5' });
    expect(comfyWeightType('style transfer precise', '4:1')).toEqual({ weightType: 'style transfer precise', layerWeights: '4:1' });
    expect(comfyWeightType('linear', 'down_blocks.2:1, 6:0.5')).toEqual({ weightType: 'linear', layerWeights: '4:1, 5:1, 6:0.5' });
  });

  it('matches by name, then by file name and stem, then by kind within the family, and says so', () => {
    const list = ['sd15/dreamshaper_8.safetensors', 'sdxl/juggernautXL.safetensors', 'realisticVision.ckpt'];
    expect(matchModel('checkpoints', 'sd15\\dreamshaper_8.safetensors', list)).toMatchObject({ how: 'exact', value: 'sd15/dreamshaper_8.safetensors' });
    expect(matchModel('checkpoints', 'dreamshaper_8.safetensors', list)).toMatchObject({ how: 'renamed', value: 'sd15/dreamshaper_8.safetensors' });
    expect(matchModel('checkpoints', 'SD15/realisticVision.safetensors', list)).toMatchObject({ how: 'renamed', value: 'realisticVision.ckpt' });
    expect(matchModel('checkpoints', 'sd15/epicrealism.safetensors', list)).toMatchObject({ how: 'substituted', value: 'sd15/dreamshaper_8.safetensors' });
    expect(matchModel('checkpoints', 'x.safetensors', [])).toMatchObject({ how: 'missing', value: 'x.safetensors' });
    expect(matchModel('checkpoints', 'x.safetensors', undefined)).toMatchObject({ how: 'unchecked' });
  });
});
