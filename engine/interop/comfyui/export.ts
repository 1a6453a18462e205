/**
 * Our workflow -> ComfyUI: the UI workflow (format 0.4, what ComfyUI's Load and drag-and-drop
 * read) and the API prompt ({id: {class_type, inputs}}, what its /prompt endpoint queues), for the
 * nodes that map back, with a report of what differs (what ComfyUI will compute otherwise).
 *
 * Each of our nodes is claimed by one ComfyUI node: most one to one (node-map.ts in reverse); an
 * image-prompt chain CLIP Vision Encode -> IP-Adapter Projection -> Apply IP-Adapter (with its
 * negative chain) becomes one IPAdapterAdvanced (IPAdapterMS for custom layer weights), other IP
 * chains IPAdapterEncoder (+ IPAdapterCombineEmbeds) + IPAdapterEmbeds; a positive/negative pair of
 * Apply ControlNet with the same ControlNet, image and params becomes one ControlNetApplyAdvanced.
 * A placeholder goes back to the ComfyUI node it stands for; a node ComfyUI has no counterpart for
 * (Lineart, Scribble) is kept in the UI file under class `IPAdapterStudio:<type>` (ComfyUI shows it
 * as a missing node) and left out of the API prompt.
 *
 * Every ComfyUI node carries, under properties["ipadapter-studio"] (the API's _meta), our ids,
 * positions, types and params of the nodes it claims and a signature of its widgets: an import
 * of an unedited export restores the same graph; one edited in ComfyUI takes ComfyUI's values.
 * Pure.
 */
import type { NodeSpec, ParamValue } from '../../../nodes/spec.js';
import { resolveGraph } from '../../graph-modes.js';
import type { Workflow, WorkflowEdge, WorkflowNode } from '../../protocol.js';
import { COMFY_DEFS, FRONTEND_ONLY, widgetSignature, widgetSlots, type NodeDefC } from './defs.js';
import { PLACEHOLDER_TYPE, STUDIO_CLASS_PREFIX, STUDIO_KEY, type StudioProps } from './import.js';
import { comfyWeightType } from './layers.js';

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface ExportNodeReport {
  /** Our node id. */
  id: string;
  type: string;
  status: 'mapped' | 'approximated' | 'unsupported';
  notes: string[];
  /** The ComfyUI node that holds it. */
  comfy?: number;
}

export interface ExportResult {
  /** UI workflow (format 0.4). */
  ui: Json;
  /** API prompt. */
  api: Json;
  report: ExportNodeReport[];
}

interface Src {
  node: string;
  port: string;
}
interface ENode {
  id: number;
  classType: string;
  title?: string;
  pos: [number, number];
  /** Widget values by name. */
  widgets: Record<string, unknown>;
  /** ComfyUI link input -> the output of ours that feeds it. */
  inputs: Record<string, Src | null>;
  /** Our output (node, port) -> this node's output slot. */
  outputs: { node: string; port: string; slot: number }[];
  studio: StudioProps;
  /** Declared link inputs / outputs when the class has no definition here (placeholders of unknown classes). */
  sockets?: { inputs: { name: string; type: string }[]; outputs: { name: string; type: string }[] };
  /** Raw widgets_values of a placeholder of an unknown class. */
  rawWidgets?: unknown;
  /** Left out of the API prompt (ComfyUI cannot queue a node it does not have). */
  uiOnly?: boolean;
  /** ComfyUI's node mode: 4 bypassed, 2 muted ("never"); 0 when absent. */
  mode?: number;
  /** Drawn collapsed (ComfyUI's flags.collapsed). */
  collapsed?: boolean;
  /** Widgets turned into inputs, fed by a PrimitiveNode: widget name -> [that node's id, the widget's type]. */
  widgetLinks?: Record<string, [number, string]>;
}

const OUR_TO_COMFY_TYPE: Record<string, string> = { IP_ADAPTER: 'IPADAPTER', IMAGE_EMBEDS: 'EMBEDS', IP_EMBEDS: 'EMBEDS' };
const SAMPLERS = new Set(['ddim-sampler', 'ksampler', 'ksampler-advanced']);

class Exporter {
  private readonly byId: Map<string, WorkflowNode>;
  private readonly into = new Map<string, Src>();
  private readonly out = new Map<string, { to: string; port: string }[]>();
  private readonly claimed = new Map<string, ENode>();
  readonly enodes: ENode[] = [];
  readonly reports = new Map<string, ExportNodeReport>();
  private readonly specs: Map<string, NodeSpec>;
  private next = 1;

  constructor(
    private readonly wf: Workflow,
    specs: readonly NodeSpec[],
  ) {
    this.specs = new Map(specs.map((s) => [s.type, s]));
    this.byId = new Map(wf.nodes.map((n) => [n.id, n]));
    for (const e of wf.edges) {
      this.into.set(`${e.to.node}\0${e.to.port}`, { node: e.from.node, port: e.from.port });
      const k = `${e.from.node}\0${e.from.port}`;
      if (!this.out.has(k)) this.out.set(k, []);
      this.out.get(k)!.push({ to: e.to.node, port: e.to.port });
    }
    for (const n of wf.nodes) this.reports.set(n.id, { id: n.id, type: n.type, status: 'mapped', notes: [] });
  }

  private src(node: string, port: string): Src | null {
    return this.into.get(`${node}\0${port}`) ?? null;
  }
  private readers(node: string, port: string) {
    return this.out.get(`${node}\0${port}`) ?? [];
  }
  private readersOf(node: string) {
    return [...this.out.entries()].filter(([k]) => k.startsWith(`${node}\0`)).flatMap(([, v]) => v);
  }
  private params(n: WorkflowNode): Record<string, ParamValue> {
    const spec = this.specs.get(n.type);
    const out: Record<string, ParamValue> = {};
    for (const p of spec?.params ?? []) out[p.name] = p.name in n.params ? n.params[p.name]! : p.default;
    for (const [k, v] of Object.entries(n.params)) if (!(k in out)) out[k] = v;
    return out;
  }
  private approx(id: string, note: string) {
    const r = this.reports.get(id)!;
    if (r.status === 'mapped') r.status = 'approximated';
    if (!r.notes.includes(note)) r.notes.push(note);
  }

  /** A ComfyUI node claiming our nodes by role ('' = the main one). */
  private emit(
    classType: string,
    claims: Record<string, WorkflowNode>,
    widgets: Record<string, unknown>,
    inputs: Record<string, Src | null>,
    outputs: ENode['outputs'],
  ): ENode {
    const main = claims[''] ?? Object.values(claims)[0]!;
    const studio: StudioProps = { ids: {}, pos: {}, params: {}, types: {} };
    for (const [role, n] of Object.entries(claims)) {
      studio.ids![role] = n.id;
      if (n.ui) studio.pos![role] = [n.ui.x, n.ui.y];
      studio.params![role] = this.params(n);
      studio.types![role] = n.type;
      const t = n.ui && typeof n.ui.title === 'string' ? n.ui.title : undefined;
      if (t) (studio.title ??= {})[role] = t;
      if (n.ui?.collapsed === true) (studio.collapsed ??= {})[role] = true;
    }
    // Links into these nodes that the ComfyUI node has no input for (Image Resize's latent): kept for the way back.
    const group = new Set(Object.values(claims).map((n) => n.id));
    const used = new Set(
      Object.values(inputs)
        .filter((x): x is Src => !!x)
        .map((x) => `${x.node}\0${x.port}`),
    );
    for (const [role, n] of Object.entries(claims)) {
      for (const e of this.wf.edges) {
        if (e.to.node !== n.id || group.has(e.from.node) || used.has(`${e.from.node}\0${e.from.port}`)) continue;
        (studio.links ??= []).push([role, e.to.port, e.from.node, e.from.port]);
      }
    }
    const def = COMFY_DEFS.get(classType);
    if (def) studio.widgets = widgetSignature(def, (name) => (name in widgets ? widgets[name] : def.inputs.find((i) => i.name === name)?.default));
    const title = main.ui && typeof main.ui.title === 'string' ? main.ui.title : undefined;
    const e: ENode = {
      id: this.next++,
      classType,
      pos: main.ui ? [main.ui.x, main.ui.y] : [0, 0],
      widgets,
      inputs,
      outputs,
      studio,
      ...(title ? { title } : {}),
    };
    this.enodes.push(e);
    for (const n of Object.values(claims)) {
      this.claimed.set(n.id, e);
      this.reports.get(n.id)!.comfy = e.id;
    }
    return e;
  }

  run(): void {
    // Patterns that claim several of our nodes first, then one to one.
    for (const n of this.wf.nodes) if (n.type === 'apply-ip-adapter') this.ipChain(n);
    this.controlNetPairs();
    for (const n of this.wf.nodes) if (!this.claimed.has(n.id)) this.single(n);
  }

  // ---- IP-Adapter ----

  private only(node: string, port: string, reader: string, readerPort: string): boolean {
    const r = this.readers(node, port);
    return r.length === 1 && r[0]!.to === reader && r[0]!.port === readerPort && this.readersOf(node).length === 1;
  }

  private ofType(s: Src | null, type: string): WorkflowNode | null {
    const n = s ? this.byId.get(s.node) : undefined;
    return n && n.type === type && !this.claimed.has(n.id) ? n : null;
  }

  /** encode -> projection (one embeds input, only read by `reader.port`), or null. */
  private simpleProjection(s: Src | null, reader: string, readerPort: string): { proj: WorkflowNode; encode: WorkflowNode } | null {
    const proj = this.ofType(s, 'ip-adapter-projection');
    if (!proj || !this.only(proj.id, 'tokens', reader, readerPort)) return null;
    if (['embeds_2', 'embeds_3', 'embeds_4'].some((p) => this.src(proj.id, p))) return null;
    const encode = this.ofType(this.src(proj.id, 'embeds'), 'clip-vision-encode');
    if (!encode || !this.only(encode.id, 'embeds', proj.id, 'embeds')) return null;
    return { proj, encode };
  }

  private ipChain(a: WorkflowNode): void {
    const pa = this.params(a);
    const main = this.simpleProjection(this.src(a.id, 'tokens'), a.id, 'tokens');
    const negSrc = this.src(a.id, 'negative');
    const neg = negSrc ? this.simpleProjection(negSrc, a.id, 'negative') : null;
    const adapter = this.src(a.id, 'ip_adapter');
    const sameAdapter = (p: WorkflowNode) => {
      const s = this.src(p.id, 'ip_adapter');
      return s && adapter && s.node === adapter.node && s.port === adapter.port;
    };
    const sameVision = main && neg ? JSON.stringify(this.src(main.encode.id, 'clip_vision')) === JSON.stringify(this.src(neg.encode.id, 'clip_vision')) : true;
    const wt = comfyWeightType(String(pa.weight_type ?? 'linear'), String(pa.layer_weights ?? ''));
    if (wt.approx) this.approx(a.id, wt.approx);
    if (wt.weightType === 'style and composition' && Number(pa.weight_composition ?? 1) !== 1)
      this.approx(a.id, `weight_composition ${pa.weight_composition}: IPAdapterAdvanced's "style and composition" weighs its composition layers at 1`);
    if (this.src(a.id, 'composition'))
      this.approx(a.id, 'the composition tokens are not exported: IPAdapterAdvanced uses the image prompt on the composition layers too');
    if (main && sameAdapter(main.proj) && (!negSrc || (neg && sameAdapter(neg.proj) && sameVision))) {
      const claims: Record<string, WorkflowNode> = { '': a, proj: main.proj, encode: main.encode };
      if (neg) Object.assign(claims, { neg_proj: neg.proj, neg_encode: neg.encode });
      const ms = wt.layerWeights !== null;
      const widgets: Record<string, unknown> = {
        weight: pa.weight,
        weight_type: wt.weightType,
        combine_embeds: 'concat',
        start_at: pa.start_at,
        end_at: pa.end_at,
        embeds_scaling: String(pa.embeds_scaling ?? 'V only'),
        ...(ms ? { weight_faceidv2: 1, layer_weights: wt.layerWeights } : {}),
      };
      for (const e of [main.encode, ...(neg ? [neg.encode] : [])]) {
        if (this.params(e).crop !== 'center') this.approx(e.id, `crop "${this.params(e).crop}": ComfyUI's IPAdapter resizes and centre-crops the image`);
      }
      if (Number(pa.weight) > 5 || Number(pa.weight) < -1) this.approx(a.id, "ComfyUI's weight range is [-1, 5]");
      this.emit(
        ms ? 'IPAdapterMS' : 'IPAdapterAdvanced',
        claims,
        widgets,
        {
          model: this.src(a.id, 'model'),
          ipadapter: adapter,
          image: this.src(main.encode.id, 'image'),
          image_negative: neg ? this.src(neg.encode.id, 'image') : null,
          clip_vision: this.src(main.encode.id, 'clip_vision'),
          attn_mask: this.src(a.id, 'mask'),
        },
        [{ node: a.id, port: 'model', slot: 0 }],
      );
      return;
    }
    // Embeds path: IPAdapterEncoder per encode (single()), IPAdapterCombineEmbeds per combined projection, IPAdapterEmbeds here.
    const claims: Record<string, WorkflowNode> = { '': a };
    const projOf = (src: Src | null) => {
      const n = src ? this.byId.get(src.node) : undefined;
      return n?.type === 'ip-adapter-projection' ? n : null;
    };
    const proj = projOf(this.src(a.id, 'tokens'));
    const posEmbed = proj ? this.embedsSource(proj, a, 'proj', claims) : this.src(a.id, 'tokens');
    const nproj = negSrc ? projOf(negSrc) : null;
    const negEmbed = nproj ? this.embedsSource(nproj, a, 'neg_proj', claims) : negSrc;
    const firstEncode = proj
      ? (this.ofType(this.src(proj.id, 'embeds'), 'clip-vision-encode') ?? this.byId.get(this.src(proj.id, 'embeds')?.node ?? ''))
      : undefined;
    this.emit(
      'IPAdapterEmbeds',
      claims,
      {
        weight: pa.weight,
        weight_type: wt.weightType,
        start_at: pa.start_at,
        end_at: pa.end_at,
        embeds_scaling: String(pa.embeds_scaling ?? 'V only'),
      },
      {
        model: this.src(a.id, 'model'),
        ipadapter: adapter,
        pos_embed: posEmbed,
        neg_embed: negEmbed,
        clip_vision: firstEncode?.type === 'clip-vision-encode' ? this.src(firstEncode.id, 'clip_vision') : null,
        attn_mask: this.src(a.id, 'mask'),
      },
      [{ node: a.id, port: 'model', slot: 0 }],
    );
    if (wt.layerWeights !== null) this.approx(a.id, 'custom layer weights on embeds: IPAdapterEmbeds has no layer_weights; linear in ComfyUI');
  }

  /** The EMBEDS source for a projection read by apply `a`: its one encode, or an IPAdapterCombineEmbeds of several. */
  private embedsSource(proj: WorkflowNode, a: WorkflowNode, role: string, claims: Record<string, WorkflowNode>): Src | null {
    // A projection read by several applies is claimed by the first (its id and params go back with it); the others project again in ComfyUI.
    if (!this.claimed.has(proj.id)) claims[role] = proj;
    if (this.readersOf(proj.id).length > 1)
      this.approx(proj.id, 'read by several Apply IP-Adapter nodes: each IPAdapter Embeds projects again in ComfyUI (the same tokens)');
    const ports = ['embeds', 'embeds_2', 'embeds_3', 'embeds_4'].map((p) => this.src(proj.id, p)).filter((s): s is Src => !!s);
    const combine = String(this.params(proj).combine ?? 'concat');
    if (ports.length <= 1) return ports[0] ?? null;
    const synthetic = `${proj.id}\0combined`;
    const existing = this.enodes.find((e) => e.outputs.some((o) => o.node === synthetic));
    if (!existing) {
      const inputs: Record<string, Src | null> = {};
      ports.forEach((s, i) => {
        inputs[`embed${i + 1}`] = s;
      });
      const e: ENode = {
        id: this.next++,
        classType: 'IPAdapterCombineEmbeds',
        pos: proj.ui ? [proj.ui.x, proj.ui.y + 200] : [0, 0],
        widgets: { method: combine },
        inputs,
        outputs: [{ node: synthetic, port: 'embeds', slot: 0 }],
        studio: {},
      };
      this.enodes.push(e);
    }
    void a;
    return { node: synthetic, port: 'embeds' };
  }

  // ---- ControlNet pairs ----

  /** The sampler inputs a conditioning reaches through a chain of Apply ControlNet nodes. */
  private samplerInputsOf(node: string): string[] {
    const out: string[] = [];
    const seen = new Set<string>();
    const walk = (id: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      for (const r of this.readers(id, 'conditioning')) {
        const t = this.byId.get(r.to);
        if (!t) continue;
        if (t.type === 'apply-controlnet' && r.port === 'conditioning') walk(t.id);
        else if (SAMPLERS.has(t.type)) out.push(`${t.id}\0${r.port}`);
      }
    };
    walk(node);
    return out;
  }

  private controlNetPairs(): void {
    const cn = this.wf.nodes.filter((n) => n.type === 'apply-controlnet' && !this.claimed.has(n.id));
    const key = (n: WorkflowNode) => JSON.stringify([this.src(n.id, 'control_net'), this.src(n.id, 'image'), this.params(n)]);
    const used = new Set<string>();
    for (const p of cn) {
      if (used.has(p.id)) continue;
      const reach = this.samplerInputsOf(p.id);
      const pos = reach.filter((r) => r.endsWith('\0positive')).map((r) => r.slice(0, -'\0positive'.length));
      if (!pos.length) continue;
      const candidates = cn.filter(
        (q) =>
          q !== p &&
          !used.has(q.id) &&
          key(q) === key(p) &&
          this.samplerInputsOf(q.id).some((r) => r.endsWith('\0negative') && pos.includes(r.slice(0, -'\0negative'.length))),
      );
      const q = candidates.find((c) => c.id === `${p.id}_neg`) ?? candidates[0];
      if (!q) continue;
      used.add(p.id);
      used.add(q.id);
      const pp = this.params(p);
      this.emit(
        'ControlNetApplyAdvanced',
        { '': p, neg: q },
        { strength: pp.strength, start_percent: pp.start, end_percent: pp.end },
        {
          positive: this.src(p.id, 'conditioning'),
          negative: this.src(q.id, 'conditioning'),
          control_net: this.src(p.id, 'control_net'),
          image: this.src(p.id, 'image'),
        },
        [
          { node: p.id, port: 'conditioning', slot: 0 },
          { node: q.id, port: 'conditioning', slot: 1 },
        ],
      );
    }
  }

  // ---- one to one ----

  private single(n: WorkflowNode): void {
    const p = this.params(n);
    const s = (port: string) => this.src(n.id, port);
    const outs = (...ports: string[]) => ports.map((port, slot) => ({ node: n.id, port, slot }));
    const one = (cls: string, widgets: Record<string, unknown>, inputs: Record<string, Src | null>, outputs: ENode['outputs']) =>
      this.emit(cls, { '': n }, widgets, inputs, outputs);
    const note = (t: string) => this.approx(n.id, t);
    switch (n.type) {
      case 'load-checkpoint':
        if (p.config || p.tokenizer) note('ComfyUI reads the checkpoint without a config or tokenizer folder');
        one('CheckpointLoaderSimple', { ckpt_name: p.ckpt_name }, {}, outs('model', 'clip', 'vae'));
        return;
      case 'load-vae':
        if (p.config) note('ComfyUI reads the VAE file without a config');
        one('VAELoader', { vae_name: p.vae_name }, {}, outs('vae'));
        return;
      case 'load-lora':
        one(
          'LoraLoader',
          { lora_name: p.lora_name, strength_model: p.strength_model, strength_clip: p.strength_clip },
          { model: s('model'), clip: s('clip') },
          outs('model', 'clip'),
        );
        return;
      case 'load-image': {
        let image = String(p.image ?? '');
        if (/^([a-zA-Z]:)?[\\/]/.test(image)) {
          note('ComfyUI loads images from its input folder by name: put the file there');
          image = image.split(/[\\/]/).pop() ?? image;
        }
        if (p.mask) note("the painted mask (a second file) is not read by ComfyUI's Load Image: its mask output is the image's alpha");
        one('LoadImage', { image }, {}, outs('image', 'mask'));
        return;
      }
      case 'text-encode':
        if (p.cleaning === 'ftfy') note('ComfyUI cleans text as transformers does (not ftfy)');
        one('CLIPTextEncode', { text: p.text }, { clip: s('clip') }, outs('conditioning'));
        return;
      case 'empty-latent-image':
        one('EmptyLatentImage', { width: p.width, height: p.height, batch_size: p.batch_size }, {}, outs('latent'));
        return;
      case 'ddim-sampler':
      case 'ksampler': {
        const ddim = n.type === 'ddim-sampler';
        if (ddim) {
          note('as KSampler ddim / ddim_uniform: the same timesteps; the last step ends at sigma 0 in ComfyUI');
          if (Number(p.eta) !== 0) note(`eta ${p.eta}: ComfyUI's ddim is deterministic (eta 0)`);
        }
        if (p.noise === 'philox') note('noise philox: ComfyUI draws torch noise from the seed, so the image differs');
        one(
          'KSampler',
          {
            seed: p.seed,
            control_after_generate: p.control_after_generate ?? 'fixed',
            steps: p.steps,
            cfg: p.cfg,
            sampler_name: ddim ? 'ddim' : p.sampler_name,
            scheduler: ddim ? 'ddim_uniform' : p.scheduler,
            denoise: p.denoise,
          },
          { model: s('model'), positive: s('positive'), negative: s('negative'), latent_image: s('latent') },
          outs('latent'),
        );
        return;
      }
      case 'ksampler-advanced':
        if (p.noise === 'philox') note('noise philox: ComfyUI draws torch noise from the seed, so the image differs');
        one(
          'KSamplerAdvanced',
          {
            add_noise: p.add_noise,
            noise_seed: p.noise_seed,
            control_after_generate: p.control_after_generate ?? 'fixed',
            steps: p.steps,
            cfg: p.cfg,
            sampler_name: p.sampler_name,
            scheduler: p.scheduler,
            start_at_step: p.start_at_step,
            end_at_step: p.end_at_step,
            return_with_leftover_noise: p.return_with_leftover_noise,
          },
          { model: s('model'), positive: s('positive'), negative: s('negative'), latent_image: s('latent') },
          outs('latent'),
        );
        return;
      case 'vae-decode':
        one('VAEDecode', {}, { samples: s('samples'), vae: s('vae') }, outs('image'));
        return;
      case 'vae-encode':
        if (p.mode === 'sample') note('mode sample: ComfyUI encodes the mean');
        if (s('mask')) one('VAEEncodeForInpaint', { grow_mask_by: 0 }, { pixels: s('pixels'), vae: s('vae'), mask: s('mask') }, outs('latent'));
        else one('VAEEncode', {}, { pixels: s('pixels'), vae: s('vae') }, outs('latent'));
        return;
      case 'set-latent-noise-mask':
        if (p.binarize) note('binarize: ComfyUI keeps the mask soft');
        one('SetLatentNoiseMask', {}, { samples: s('samples'), mask: s('mask') }, outs('latent'));
        return;
      case 'image-to-mask':
        if (p.channel === 'luminance') note('channel luminance: ComfyUI takes one colour channel (red)');
        if (p.invert) note("invert: ComfyUI's Convert Image to Mask does not invert (add an InvertMask node)");
        one('ImageToMask', { channel: p.channel === 'luminance' ? 'red' : p.channel }, { image: s('image') }, outs('mask'));
        return;
      case 'save-image':
        one('SaveImage', { filename_prefix: p.filename_prefix }, { images: s('images') }, []);
        return;
      case 'preview-image':
        one('PreviewImage', {}, { images: s('images') }, []);
        return;
      case 'load-controlnet':
        if (p.config) note('ComfyUI reads the ControlNet file without a config');
        one('ControlNetLoader', { control_net_name: p.control_net_name }, {}, outs('control_net'));
        return;
      case 'apply-controlnet':
        if (Number(p.start) !== 0 || Number(p.end) !== 1)
          note("an Apply ControlNet without its negative twin becomes ComfyUI's old Apply ControlNet, which has no start/end");
        note("ComfyUI's old Apply ControlNet also acts on the negative prompt");
        one(
          'ControlNetApply',
          { strength: p.strength },
          { conditioning: s('conditioning'), control_net: s('control_net'), image: s('image') },
          outs('conditioning'),
        );
        return;
      case 'canny': {
        note("ComfyUI's Canny (kornia) takes thresholds on a 0..1 scale (here / 255) and always blurs (5x5, sigma 1) with L2 gradients");
        const t = (v: unknown) => Math.min(0.99, Math.max(0.01, Math.round((Number(v) / 255) * 1000) / 1000));
        one('Canny', { low_threshold: t(p.low_threshold), high_threshold: t(p.high_threshold) }, { image: s('image') }, outs('image'));
        return;
      }
      case 'image-resize': {
        const filter = { lanczos: 'lanczos', bilinear: 'bilinear', nearest: 'nearest-exact' }[String(p.filter)] ?? 'lanczos';
        if (p.mode === 'pad') note("mode pad: ComfyUI's Upscale Image stretches (no padding)");
        if (s('latent')) note('the size from the latent input: ComfyUI uses the width and height given');
        one(
          'ImageScale',
          { upscale_method: filter, width: p.width, height: p.height, crop: p.mode === 'crop' ? 'center' : 'disabled' },
          { image: s('image') },
          outs('image'),
        );
        return;
      }
      case 'load-clip-vision':
        one('CLIPVisionLoader', { clip_name: p.clip_name }, {}, outs('clip_vision'));
        return;
      case 'load-ip-adapter':
        one('IPAdapterModelLoader', { ipadapter_file: p.ipadapter_file }, {}, outs('ip_adapter'));
        return;
      case 'clip-vision-encode': {
        // Read by a projection whose IPAdapter Embeds encodes through IPAdapter Encoder.
        const reader = this.readers(n.id, 'embeds')
          .map((r) => this.byId.get(r.to))
          .find((x) => x?.type === 'ip-adapter-projection');
        if (p.crop !== 'center') note(`crop "${p.crop}": ComfyUI's IPAdapter Encoder resizes and centre-crops the image`);
        one(
          'IPAdapterEncoder',
          { weight: 1 },
          { ipadapter: reader ? this.src(reader.id, 'ip_adapter') : null, image: s('image'), clip_vision: s('clip_vision') },
          outs('embeds'),
        );
        return;
      }
      case 'ip-adapter-projection':
        // Read only by Apply IP-Adapter nodes, each exported as an IPAdapter Embeds that projects by itself.
        if (this.readersOf(n.id).every((r) => this.byId.get(r.to)?.type === 'apply-ip-adapter' && r.port === 'tokens')) {
          note('projected by each IPAdapter Embeds it feeds in ComfyUI (an import makes one projection each)');
          return;
        }
        this.studioNode(n);
        return;
      case 'ip-adapter-encoder':
        if (String(p.image_weights ?? '').trim())
          note("image_weights: ComfyUI's IPAdapter Encoder has one weight for its batch (use one encoder per image there)");
        if (p.crop !== 'center') note(`crop "${p.crop}": ComfyUI's IPAdapter Encoder resizes and centre-crops the image`);
        one(
          'IPAdapterEncoder',
          { weight: p.weight },
          { ipadapter: s('ip_adapter'), image: s('image'), mask: s('mask'), clip_vision: s('clip_vision') },
          outs('embeds', 'negative'),
        );
        return;
      case 'ip-adapter-combine-embeds':
        one(
          'IPAdapterCombineEmbeds',
          { method: p.method },
          { embed1: s('embeds_1'), embed2: s('embeds_2'), embed3: s('embeds_3'), embed4: s('embeds_4'), embed5: s('embeds_5') },
          outs('embeds'),
        );
        return;
      case 'apply-ip-adapter-embeds':
      case 'ip-adapter-tiled': {
        const wt = comfyWeightType(String(p.weight_type ?? 'linear'), String(p.layer_weights ?? ''));
        if (wt.layerWeights !== null)
          note(`layer_weights: ComfyUI's ${n.type === 'ip-adapter-tiled' ? 'IPAdapter Tiled' : 'IPAdapter Embeds'} has none; its weight type acts alone`);
        if (wt.weightType === 'style and composition' && Number(p.weight_composition ?? 1) !== 1)
          note(`weight_composition ${p.weight_composition}: ComfyUI weighs the composition layers at 1`);
        if (s('composition')) note('the composition embeds are not exported: ComfyUI uses the embeds on the composition layers too');
        const common = { weight: p.weight, weight_type: wt.weightType, start_at: p.start_at, end_at: p.end_at, embeds_scaling: p.embeds_scaling ?? 'V only' };
        if (n.type === 'ip-adapter-tiled') {
          one(
            'IPAdapterTiled',
            { ...common, combine_embeds: 'concat', sharpening: 0 },
            {
              model: s('model'),
              ipadapter: s('ip_adapter'),
              image: s('image'),
              image_negative: s('negative_image'),
              attn_mask: s('attn_mask'),
              clip_vision: s('clip_vision'),
            },
            outs('model', 'tiles', 'masks'),
          );
        } else {
          one(
            'IPAdapterEmbeds',
            common,
            {
              model: s('model'),
              ipadapter: s('ip_adapter'),
              pos_embed: s('embeds'),
              neg_embed: s('negative'),
              attn_mask: s('mask'),
              clip_vision: s('clip_vision'),
            },
            outs('model'),
          );
        }
        return;
      }
      case 'ip-adapter-noise':
        one('IPAdapterNoise', { type: p.type, strength: p.strength, blur: p.blur }, { image_optional: s('image') }, outs('image'));
        return;
      case 'image-batch':
        if (s('image_3') || s('image_4')) {
          this.studioNode(n);
          return;
        }
        one('ImageBatch', {}, { image1: s('image_1'), image2: s('image_2') }, outs('image'));
        return;
      case 'save-embeds':
        note('ComfyUI writes the embeds as a .ipadpt torch pickle, which Load Embeds here does not read');
        one('IPAdapterSaveEmbeds', { filename_prefix: p.filename_prefix }, { embeds: s('embeds') }, []);
        return;
      case PLACEHOLDER_TYPE:
        this.placeholder(n);
        return;
      case 'reroute': {
        // ComfyUI's Reroute: one input, one output of the type it carries.
        const from = s('in');
        const type = from ? this.outSlot(from)?.type : undefined;
        const e = one('Reroute', {}, { '': from }, outs('out'));
        e.sockets = { inputs: [{ name: '', type: '*' }], outputs: [{ name: '', type: type ?? '*' }] };
        e.rawWidgets = [];
        e.uiOnly = true;
        return;
      }
      case 'note': {
        const e = one('Note', {}, {}, []);
        e.sockets = { inputs: [], outputs: [] };
        e.rawWidgets = [String(p.text ?? '')];
        e.uiOnly = true;
        return;
      }
      default:
        this.studioNode(n);
    }
  }

  /**
   * Our primitives as ComfyUI PrimitiveNodes (UI workflow only: the API prompt has the values), each
   * linked to the widget inputs of the ComfyUI nodes that hold the params it feeds (a widget of that
   * name). Its widgets_values are [value, control_after_generate] for number and combo widgets, as the
   * frontend writes them. Returns the primitives no ComfyUI widget takes (their value is written in).
   */
  primitives(prims: WorkflowNode[], edges: readonly WorkflowEdge[]): WorkflowNode[] {
    const left: WorkflowNode[] = [];
    for (const prim of prims) {
      const targets = edges.flatMap((x) => {
        if (x.from.node !== prim.id) return [];
        const e = this.claimed.get(x.to.node);
        const w = e && COMFY_DEFS.get(e.classType)?.inputs.find((i) => i.widget && i.name === x.to.port);
        return e && w && !e.widgetLinks?.[w.name] ? [{ e, w }] : [];
      });
      if (!targets.length) {
        left.push(prim);
        continue;
      }
      const type = targets[0]!.w.widget!;
      const control = typeof prim.params.control_after_generate === 'string' ? prim.params.control_after_generate : 'fixed';
      const title = typeof prim.ui?.title === 'string' ? prim.ui.title : undefined;
      const e: ENode = {
        id: this.next++,
        classType: FRONTEND_ONLY.primitive,
        pos: prim.ui ? [prim.ui.x, prim.ui.y] : [0, 0],
        widgets: {},
        inputs: {},
        outputs: [],
        studio: {
          ids: { '': prim.id },
          ...(prim.ui ? { pos: { '': [prim.ui.x, prim.ui.y] } } : {}),
          params: { '': { ...prim.params } },
          types: { '': prim.type },
        },
        ...(title ? { title } : {}),
        sockets: { inputs: [], outputs: [{ name: 'connect to widget input', type }] },
        rawWidgets: type === 'INT' || type === 'FLOAT' || type === 'COMBO' ? [prim.params.value, control] : [prim.params.value],
        uiOnly: true,
      };
      this.enodes.push(e);
      this.reports.set(prim.id, { id: prim.id, type: prim.type, status: 'mapped', notes: [], comfy: e.id });
      for (const t of targets) (t.e.widgetLinks ??= {})[t.w.name] = [e.id, type];
    }
    return left;
  }

  /** ComfyUI's mode and collapse for each exported node: its main node's (bypass 4, mute 2). */
  applyModes(): void {
    for (const e of this.enodes) {
      const main = this.byId.get(e.studio.ids?.[''] ?? Object.values(e.studio.ids ?? {})[0] ?? '');
      if (main?.mode === 'bypass') e.mode = 4;
      else if (main?.mode === 'mute') e.mode = 2;
      if (main?.ui?.collapsed === true) e.collapsed = true;
    }
  }

  /** A placeholder: the ComfyUI node it stands for, its values and links as they were. */
  private placeholder(n: WorkflowNode): void {
    const p = this.params(n);
    const cls = String(p.class_type || 'Unknown');
    let widgets: Json = {};
    let ins: { name: string; type: string }[] = [];
    let outs: { name: string; type: string }[] = [];
    try {
      widgets = JSON.parse(String(p.widgets || '{}'));
    } catch {
      /* kept empty */
    }
    try {
      ins = JSON.parse(String(p.inputs || '[]'));
    } catch {
      /* kept empty */
    }
    try {
      outs = JSON.parse(String(p.outputs || '[]'));
    } catch {
      /* kept empty */
    }
    const def = COMFY_DEFS.get(cls);
    const inputs: Record<string, Src | null> = {};
    for (const i of ins) inputs[i.name] = this.src(n.id, i.name);
    const e = this.emit(
      cls,
      { '': n },
      isObj(widgets) ? { ...widgets } : {},
      inputs,
      outs.map((o, slot) => ({ node: n.id, port: o.name, slot })),
    );
    if (!def) {
      e.sockets = {
        inputs: ins.map((i) => ({ name: i.name, type: OUR_TO_COMFY_TYPE[i.type] ?? i.type })),
        outputs: outs.map((o) => ({ name: o.name, type: OUR_TO_COMFY_TYPE[o.type] ?? o.type })),
      };
      if (isObj(widgets) && 'widgets_values' in widgets) e.rawWidgets = widgets.widgets_values;
    }
    if (typeof p.title === 'string' && p.title) e.title = p.title;
    const r = this.reports.get(n.id)!;
    r.status = 'unsupported';
    r.notes.push(`the ComfyUI node ${cls} it stands for, as it was imported (${String(p.reason)})`);
  }

  /** A node ComfyUI has no counterpart for: kept in the UI file (ComfyUI shows a missing node), left out of the API prompt. */
  private studioNode(n: WorkflowNode): void {
    const spec = this.specs.get(n.type);
    const inputs: Record<string, Src | null> = {};
    for (const i of spec?.inputs ?? []) inputs[i.name] = this.src(n.id, i.name);
    const e = this.emit(
      `${STUDIO_CLASS_PREFIX}${n.type}`,
      { '': n },
      { ...this.params(n) },
      inputs,
      (spec?.outputs ?? []).map((o, slot) => ({ node: n.id, port: o.name, slot })),
    );
    e.sockets = {
      inputs: (spec?.inputs ?? []).map((i) => ({ name: i.name, type: OUR_TO_COMFY_TYPE[i.type] ?? i.type })),
      outputs: (spec?.outputs ?? []).map((o) => ({ name: o.name, type: OUR_TO_COMFY_TYPE[o.type] ?? o.type })),
    };
    e.uiOnly = true;
    const r = this.reports.get(n.id)!;
    r.status = 'unsupported';
    r.notes.push(
      `ComfyUI has no ${spec?.title ?? n.type} node: kept in the UI workflow as a missing node (${STUDIO_CLASS_PREFIX}${n.type}), left out of the API prompt`,
    );
  }

  // ---- serialising ----

  private outSlot(src: Src | null): { id: number; slot: number; type: string } | null {
    if (!src) return null;
    for (const e of this.enodes) {
      const o = e.outputs.find((x) => x.node === src.node && x.port === src.port);
      if (o) {
        const def = COMFY_DEFS.get(e.classType);
        return { id: e.id, slot: o.slot, type: def?.outputs[o.slot]?.type ?? e.sockets?.outputs[o.slot]?.type ?? '*' };
      }
    }
    return null;
  }

  private linkInputs(e: ENode): { name: string; type: string }[] {
    const def = COMFY_DEFS.get(e.classType);
    if (def) return def.inputs.filter((i) => !i.widget).map((i) => ({ name: i.name, type: i.type }));
    return e.sockets?.inputs ?? [];
  }

  private outputsOf(e: ENode): { name: string; type: string }[] {
    return COMFY_DEFS.get(e.classType)?.outputs ?? e.sockets?.outputs ?? [];
  }

  private widgetsValues(e: ENode, def: NodeDefC | undefined): unknown {
    if (!def) return e.rawWidgets ?? e.widgets;
    return widgetSlots(def).map((sl) => {
      if (sl.pseudo === 'control_after_generate') return e.widgets[sl.name] ?? 'fixed';
      if (sl.pseudo === 'upload') return 'image';
      return sl.name in e.widgets ? e.widgets[sl.name] : (sl.input?.default ?? null);
    });
  }

  /** Positions for ComfyUI nodes whose nodes here have none (an imported API prompt): columns by depth. */
  private layout(): void {
    const unplaced = this.enodes.filter((e) => !Object.keys(e.studio.pos ?? {}).length);
    if (!unplaced.length) return;
    const depth = new Map<number, number>();
    const of = (e: ENode, seen = new Set<number>()): number => {
      if (depth.has(e.id)) return depth.get(e.id)!;
      if (seen.has(e.id)) return 0;
      seen.add(e.id);
      let d = 0;
      for (const src of Object.values(e.inputs)) {
        const from = this.outSlot(src);
        const up = from ? this.enodes.find((x) => x.id === from.id) : undefined;
        if (up) d = Math.max(d, of(up, seen) + 1);
      }
      depth.set(e.id, d);
      return d;
    };
    const rows = new Map<number, number>();
    for (const e of unplaced) {
      const d = of(e);
      const row = rows.get(d) ?? 0;
      rows.set(d, row + 1);
      e.pos = [d * 380, row * 260];
    }
  }

  ui(): Json {
    this.layout();
    const links: unknown[][] = [];
    const nodes = this.enodes.map((e, order) => {
      const def = COMFY_DEFS.get(e.classType);
      const inputs: { name: string; type: string; link: number | null; widget?: { name: string } }[] = this.linkInputs(e).map((i) => {
        const from = this.outSlot(e.inputs[i.name] ?? null);
        let link: number | null = null;
        if (from) {
          link = links.length + 1;
          links.push([link, from.id, from.slot, e.id, 0, from.type]);
        }
        return { name: i.name, type: i.type, link };
      });
      // Widgets turned into inputs, each linked from its PrimitiveNode.
      for (const [name, [from, type]] of Object.entries(e.widgetLinks ?? {})) {
        const link = links.length + 1;
        links.push([link, from, 0, e.id, 0, type]);
        inputs.push({ name, type, widget: { name }, link });
      }
      // Input slots are positions in this list.
      inputs.forEach((inp, slot) => {
        if (inp.link !== null) links[inp.link - 1]![4] = slot;
      });
      return {
        id: e.id,
        type: e.classType,
        pos: e.pos,
        size: [320, 120],
        flags: e.collapsed ? { collapsed: true } : {},
        order,
        mode: e.mode ?? 0,
        inputs,
        outputs: this.outputsOf(e).map((o, slot) => ({ name: o.name, type: o.type, links: [] as number[], slot_index: slot })),
        properties: { 'Node name for S&R': e.classType, [STUDIO_KEY]: e.studio },
        widgets_values: this.widgetsValues(e, def),
        ...(e.title ? { title: e.title } : {}),
      };
    });
    for (const l of links) {
      const from = nodes.find((n) => n.id === l[1]);
      from?.outputs[l[2] as number]?.links.push(l[0] as number);
    }
    const groups = Array.isArray(this.wf.meta?.groups)
      ? (this.wf.meta!.groups as unknown[])
          .filter(isObj)
          .filter((g) => Array.isArray(g.bounding))
          .map((g) => ({
            title: typeof g.title === 'string' ? g.title : 'Group',
            bounding: g.bounding,
            ...(typeof g.color === 'string' ? { color: g.color } : {}),
          }))
      : [];
    return {
      last_node_id: this.next - 1,
      last_link_id: links.length,
      nodes,
      links,
      groups,
      config: {},
      extra: { 'ipadapter-studio': { exported: true } },
      version: 0.4,
    };
  }

  api(): Json {
    const out: Json = {};
    for (const e of this.enodes) {
      if (e.uiOnly) continue;
      const def = COMFY_DEFS.get(e.classType);
      const inputs: Json = {};
      if (def) {
        for (const i of def.inputs) {
          if (i.widget) inputs[i.name] = i.name in e.widgets ? e.widgets[i.name] : (i.default ?? null);
          else {
            const from = this.outSlot(e.inputs[i.name] ?? null);
            if (from && !this.enodes.find((x) => x.id === from.id)?.uiOnly) inputs[i.name] = [String(from.id), from.slot];
          }
        }
      } else {
        Object.assign(inputs, isObj(e.widgets) ? Object.fromEntries(Object.entries(e.widgets).filter(([k]) => k !== 'widgets_values')) : {});
        for (const [name, src] of Object.entries(e.inputs)) {
          const from = this.outSlot(src);
          if (from) inputs[name] = [String(from.id), from.slot];
        }
      }
      out[String(e.id)] = { class_type: e.classType, inputs, _meta: { title: e.title ?? def?.display ?? e.classType, ipadapter_studio: e.studio } };
    }
    return out;
  }
}

/**
 * Our workflow as a ComfyUI UI workflow and API prompt, with what differs per node. The UI
 * workflow keeps bypassed and muted nodes (ComfyUI modes 4 and 2), collapsed cards, reroutes
 * (Reroute), notes (Note) and primitives (PrimitiveNode, its value also written into the widgets it
 * feeds, as ComfyUI saves them). The API prompt is the graph that runs (engine/graph-modes.ts): no
 * bypassed, muted or canvas-only nodes.
 */
export function exportComfyUI(wf: Workflow, specs: readonly NodeSpec[]): ExportResult {
  const specMap = new Map(specs.map((s) => [s.type, s]));
  const resolved = resolveGraph(wf, specMap).workflow;
  // The UI graph: primitives resolved into the params they feed, the rest as it is.
  const prims = new Set(wf.nodes.filter((n) => specMap.get(n.type)?.virtual === 'primitive').map((n) => n.id));
  const values = new Map(resolved.nodes.map((n) => [n.id, n.params]));
  const uiWf: Workflow = prims.size
    ? {
        ...wf,
        nodes: wf.nodes.filter((n) => !prims.has(n.id)).map((n) => (values.has(n.id) ? { ...n, params: values.get(n.id)! } : n)),
        edges: wf.edges.filter((e) => !prims.has(e.from.node)),
      }
    : wf;
  const ex = new Exporter(uiWf, specs);
  ex.run();
  ex.applyModes();
  const left = ex.primitives(
    wf.nodes.filter((n) => prims.has(n.id)),
    wf.edges,
  );
  const forApi = resolved === wf ? ex : new Exporter(resolved, specs);
  if (forApi !== ex) forApi.run();
  const report = [...ex.reports.values()];
  for (const n of left) {
    report.push({
      id: n.id,
      type: n.type,
      status: 'approximated',
      notes: ['no ComfyUI widget takes the params it feeds by name: its value is written into them (no PrimitiveNode)'],
    });
  }
  return { ui: ex.ui(), api: forApi.api(), report };
}

/** The export report as text. */
export function formatExportReport(r: ExportNodeReport[]): string {
  const lines: string[] = [];
  for (const status of ['unsupported', 'approximated', 'mapped'] as const) {
    const list = r.filter((x) => x.status === status);
    if (!list.length) continue;
    lines.push(`${status}:`);
    for (const n of list) {
      lines.push(`  ${n.id} (${n.type})${n.comfy !== undefined ? ` -> ComfyUI node ${n.comfy}` : ''}`);
      for (const note of n.notes) lines.push(`      ${note}`);
    }
  }
  return lines.join('\n');
}
