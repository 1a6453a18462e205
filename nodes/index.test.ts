import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NODE_DEFS, nodeSpecs } from './index.js';
import { PORT_TYPES } from './ports.js';

const dir = path.dirname(fileURLToPath(import.meta.url));
const NOT_NODES = new Set(['index.ts', 'types.ts', 'spec.ts', 'ports.ts', 'values.ts']);
const camel = (id: string) => id.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

describe('node definitions', () => {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !NOT_NODES.has(f));

  it('one file per node type: file name = type id, and the file exports it under the camel-case id', async () => {
    for (const f of files) {
      const id = f.replace(/\.ts$/, '');
      const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as Record<string, unknown>;
      const exported = Object.entries(mod).filter(
        ([, v]) => v && typeof v === 'object' && (v as { type?: unknown }).type === id && typeof (v as { execute?: unknown }).execute === 'function',
      );
      expect(
        exported.map(([k]) => k.toLowerCase()),
        f,
      ).toEqual([camel(id).toLowerCase()]);
    }
  });

  it('nodes/index.ts lists every node file exactly once, and nothing else', () => {
    expect(NODE_DEFS.map((d) => `${d.type}.ts`).sort()).toEqual([...files].sort());
    expect(new Set(NODE_DEFS.map((d) => d.type)).size).toBe(NODE_DEFS.length);
  });

  it('specs are serialisable, with known port types, unique names and defaults inside their ranges', () => {
    const specs = nodeSpecs();
    expect(JSON.parse(JSON.stringify(specs))).toEqual(specs);
    for (const s of specs) {
      expect('execute' in s).toBe(false);
      expect(s.category, s.type).toBeTruthy();
      for (const p of [...s.inputs, ...s.outputs]) expect(PORT_TYPES, `${s.type}.${p.name}`).toContain(p.type);
      expect(new Set(s.inputs.map((p) => p.name)).size).toBe(s.inputs.length);
      for (const p of s.params) {
        if (p.kind === 'number') {
          if (p.min !== undefined) expect(p.default, `${s.type}.${p.name}`).toBeGreaterThanOrEqual(p.min);
          if (p.max !== undefined) expect(p.default, `${s.type}.${p.name}`).toBeLessThanOrEqual(p.max);
        }
        if (p.kind === 'enum') expect(p.options).toContain(p.default);
      }
    }
  });

  it("shows the paper's dataflow: image -> CLIP Vision Encode -> Projection -> Apply IP-Adapter (λ) -> sampler", () => {
    const by = new Map(nodeSpecs().map((s) => [s.type, s]));
    expect(by.get('clip-vision-encode')!.outputs[0].type).toBe('IMAGE_EMBEDS');
    expect(by.get('ip-adapter-projection')!.inputs.map((p) => p.type)).toContain('IMAGE_EMBEDS');
    expect(
      by
        .get('apply-ip-adapter')!
        .inputs.map((p) => p.type)
        .slice(0, 4),
    ).toEqual(['MODEL', 'IP_ADAPTER', 'IP_TOKENS', 'IP_TOKENS']);
    expect(by.get('apply-ip-adapter')!.params.find((p) => p.name === 'weight')).toBeTruthy();
    expect(by.get('ddim-sampler')!.inputs.map((p) => p.type)).toEqual(['MODEL', 'CONDITIONING', 'CONDITIONING', 'LATENT']);
  });
});
