/**
 * e2e section (issue 3): the image-prompt workflow run by the engine on SD1.5-size models with
 * random fp32 weights (UNet 320/640/1280/1280, CLIP ViT-L text tower, SD VAE, OpenCLIP ViT-H/14
 * image encoder, a 4-token ip-adapter_sd15), written as a ComfyUI models folder in the real layouts
 * in a temp directory, 512x512, IP-Adapter, CFG, 2 DDIM steps (or --steps N). The image prompt is
 * examples/images/image-prompt.png unless --image names another. Uses the engine's own session
 * options; --opt / --prepack / --attention / --threads do not apply. Takes several minutes on
 * 2 cores; peak RSS is the process's, so run it alone (`npm run bench -- --only e2e`) for its own figure.
 *
 * Figures: { seconds_per_step, cpu_seconds_per_step, model_load_s, first_run_s, second_run_s, peak_rss_mb, weight_bytes, ... }
 * model_load_s = the first run minus the second (same workflow, new seed: models cached; it also
 * holds the cached image/text encodings and the first step's warm-up); store_session_load_s = graph
 * build + session creation of the sessions the model store logs (the UNet; the other networks load
 * inside their nodes: first_run_node_ms); the
 * cpu_ figures are this process's CPU time (all threads), steadier when other processes load the cores.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SD15_SCHEDULER } from '../../models/ddim.js';
import type { Provider } from '../../models/providers.js';
import { unetParameterShapes } from '../../models/unet.js';
import { parseVaeConfig, vaeParameterShapes } from '../../models/vae.js';
import { crossAttnLayers, parseUNetConfig } from '../../models/unet-config.js';
import type { RunEvent } from '../../engine/api.js';
import { clipTextShapes, clipVisionShapes, ipAdapterShapes, type Shapes } from '../../engine/demo/weights.js';
import { demoTokenizer } from '../../engine/demo/tokenizer.js';
import { createEngine } from '../../engine/engine.js';
import { ipAdapterWorkflow } from '../../test/helpers/workflows.js';
import type { Args } from './common.js';
import { writeRandomSafetensors } from './random-weights.js';

/** This benchmark's init: 1-D tensors that are not norm weights (biases) uniform within +-0.02. */
const writeRandom = (file: string, shapes: Shapes, seed: number) => writeRandomSafetensors(file, shapes, seed, { vectorAmp: 0.02 });

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/** Writes the SD1.5-sized random models folder; returns the total weight bytes. */
export function writeSd15Models(dir: string): number {
  const unetJson = {
    sample_size: 64,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [320, 640, 1280, 1280],
    layers_per_block: 2,
    attention_head_dim: 8,
    norm_num_groups: 32,
    cross_attention_dim: 768,
    flip_sin_to_cos: true,
    freq_shift: 0,
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    mid_block_type: 'UNetMidBlock2DCrossAttn',
  };
  const unet = parseUNetConfig(unetJson, 'bench SD1.5 config');
  const ck = path.join(dir, 'checkpoints', 'sd15-random');
  const put = (rel: string, s: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), s);
  };
  let bytes = 0;
  put('checkpoints/sd15-random/model_index.json', json({ _class_name: 'StableDiffusionPipeline' }));
  put('checkpoints/sd15-random/unet/config.json', json(unetJson));
  bytes += writeRandom(path.join(ck, 'unet', 'diffusion_pytorch_model.safetensors'), unetParameterShapes(unet), 1);
  const vae = { block_out_channels: [128, 256, 512, 512], layers_per_block: 2, latent_channels: 4, norm_num_groups: 32, scaling_factor: 0.18215 };
  put('checkpoints/sd15-random/vae/config.json', json(vae));
  bytes += writeRandom(path.join(ck, 'vae', 'diffusion_pytorch_model.safetensors'), vaeParameterShapes(parseVaeConfig(vae, 'bench VAE config')), 2);
  // Text tower at SD1.5's size; the tokenizer is the small demo vocabulary (ids stay in range).
  const tok = demoTokenizer();
  put(
    'checkpoints/sd15-random/text_encoder/config.json',
    json({
      hidden_size: 768,
      intermediate_size: 3072,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      max_position_embeddings: 77,
      hidden_act: 'quick_gelu',
      vocab_size: 49408,
    }),
  );
  bytes += writeRandom(
    path.join(ck, 'text_encoder', 'model.safetensors'),
    clipTextShapes({ vocab: 49408, positions: 77, hidden: 768, inner: 3072, layers: 12 }),
    3,
  );
  put('checkpoints/sd15-random/tokenizer/vocab.json', tok.vocabJson);
  put('checkpoints/sd15-random/tokenizer/merges.txt', tok.merges);
  put('checkpoints/sd15-random/scheduler/scheduler_config.json', json(SD15_SCHEDULER));
  const cv = path.join(dir, 'clip_vision', 'vit-h-random');
  put(
    'clip_vision/vit-h-random/config.json',
    json({
      hidden_size: 1280,
      intermediate_size: 5120,
      num_hidden_layers: 32,
      num_attention_heads: 16,
      image_size: 224,
      patch_size: 14,
      projection_dim: 1024,
      hidden_act: 'gelu',
      layer_norm_eps: 1e-5,
    }),
  );
  bytes += writeRandom(
    path.join(cv, 'model.safetensors'),
    clipVisionShapes({ hidden: 1280, inner: 5120, layers: 32, imageSize: 224, patch: 14, projection: 1024 }),
    4,
  );
  const layers = crossAttnLayers(unet).map((l) => ({ index: l.index, hidden: l.hiddenSize }));
  bytes += writeRandom(
    path.join(dir, 'ipadapter', 'ip-adapter_sd15-random.safetensors'),
    ipAdapterShapes({ embedDim: 1024, crossDim: 768, tokens: 4, layers }),
    5,
  );
  return bytes;
}

export interface E2eOptions {
  steps?: number;
  size?: number;
  provider?: Provider;
  keep?: boolean;
  image: string;
}

export async function benchEndToEnd(o: E2eOptions): Promise<Record<string, unknown>> {
  const steps = o.steps ?? 2;
  const size = o.size ?? 512;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-bench-e2e-'));
  try {
    let t0 = performance.now();
    const weightBytes = writeSd15Models(path.join(dir, 'models'));
    const writeS = (performance.now() - t0) / 1000;
    const engine = createEngine({
      modelsDir: path.join(dir, 'models'),
      outputDir: path.join(dir, 'out'),
      provider: o.provider ?? 'cpu',
      userDataDir: path.join(dir, 'user'),
      demo: false,
    });
    const stepTimes: number[] = [];
    // CPU time of this process (all threads): under other processes' load wall time grows, CPU time barely.
    const cpuS = () => {
      const c = process.cpuUsage();
      return (c.user + c.system) / 1e6;
    };
    const stepCpu: number[] = [];
    const nodeMs: Record<string, number> = {};
    const sessionS: Record<string, number> = {};
    let last = 0;
    let lastCpu = 0;
    engine.subscribe((e: RunEvent) => {
      if (e.type === 'node-start' && e.node === 'sampler') {
        last = performance.now();
        lastCpu = cpuS();
      }
      if (e.type === 'progress') {
        const now = performance.now();
        const c = cpuS();
        stepTimes.push((now - last) / 1000);
        stepCpu.push(c - lastCpu);
        last = now;
        lastCpu = c;
      }
      if (e.type === 'node-done' && !e.cached) nodeMs[e.node] = e.ms;
      if (e.type === 'log' && e.level === 'warn') process.stderr.write(`${e.message}\n`);
      // The model store's "loaded <key> (<s> s)": graph build + session creation (store.session users: the UNet).
      const m = e.type === 'log' ? /^loaded (.+) \(([\d.]+) s\)$/.exec(e.message) : null;
      if (m) sessionS[m[1].split(dir).join('…')] = Number(m[2]);
    });
    const wf = (seed: number) =>
      ipAdapterWorkflow({
        image: o.image,
        steps,
        seed,
        width: size,
        height: size,
        weight: 1,
        output: 'preview',
        checkpoint: 'sd15-random',
        clipVision: 'vit-h-random',
        ipAdapter: 'ip-adapter_sd15-random.safetensors',
      });
    t0 = performance.now();
    let c0 = cpuS();
    const r1 = await engine.run(wf(1));
    const first = (performance.now() - t0) / 1000;
    const firstCpu = cpuS() - c0;
    if (!r1.ok) throw new Error(`bench run failed: ${r1.error ?? JSON.stringify(r1.errors)}`);
    const firstNodes = { ...nodeMs };
    for (const k of Object.keys(nodeMs)) delete nodeMs[k];
    const firstSteps = stepTimes.splice(0);
    stepCpu.splice(0);
    t0 = performance.now();
    c0 = cpuS();
    const r2 = await engine.run(wf(2)); // models and encodings cached: sampler, decode and output re-run
    const second = (performance.now() - t0) / 1000;
    const secondCpu = cpuS() - c0;
    if (!r2.ok) throw new Error(`bench run failed: ${r2.error}`);
    await engine.close();
    const med = (xs: number[]) => {
      const v = [...xs].sort((a, b) => a - b);
      const m = v.length >> 1;
      return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
    };
    return {
      workload: {
        size: `${size}x${size}`,
        steps,
        cfg: 'batch 2 = [uncond, cond]',
        ip_tokens: 4,
        provider: o.provider ?? 'cpu',
        threads: os.availableParallelism(),
      },
      seconds_per_step: +med(stepTimes).toFixed(2),
      seconds_per_step_all: stepTimes.map((s) => +s.toFixed(2)),
      first_run_steps_s: firstSteps.map((s) => +s.toFixed(2)),
      cpu_seconds_per_step: +med(stepCpu).toFixed(2),
      cpu_seconds_per_step_all: stepCpu.map((s) => +s.toFixed(2)),
      model_load_s: +(first - second).toFixed(1),
      first_run_s: +first.toFixed(1),
      second_run_s: +second.toFixed(1),
      model_load_cpu_s: +(firstCpu - secondCpu).toFixed(1),
      store_session_load_s: sessionS,
      first_run_node_ms: firstNodes,
      second_run_node_ms: nodeMs, // the second run lists only nodes that re-ran
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      weight_bytes: weightBytes,
      write_weights_s: +writeS.toFixed(1),
    };
  } finally {
    if (!o.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

const EXAMPLE_IMAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'images', 'image-prompt.png');

/** The `e2e` section of scripts/bench.ts. */
export async function benchE2e(_dir: string, a: Args): Promise<Record<string, unknown>> {
  const image = path.resolve(a.image ?? EXAMPLE_IMAGE);
  const r = await benchEndToEnd({ image, steps: a.stepsGiven ? a.steps : 2, size: 512, provider: a.provider, keep: a.keep });
  return { ...r, image: path.relative(process.cwd(), image) };
}
