/**
 * Layering rules from the design (style.md: "engine/, nodes/ and models/ never import Electron or
 * React"), checked over the sources: the networks and the engine stay host-neutral, the renderer
 * bundle never pulls native or Node-only code, and models/ does not depend on the engine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(rel));
    else if (/\.tsx?$/.test(e.name)) out.push(rel);
  }
  return out;
}

/** Module specifiers of runtime imports (type-only imports are erased and do not count). */
function runtimeImports(file: string): string[] {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+['"]([^'"]+)['"]/gm)) specs.push(m[1]);
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) specs.push(m[1]);
  return specs;
}

const isTest = (f: string) => /\.test\.tsx?$/.test(f);

describe('architecture', () => {
  it('models/, engine/ and nodes/ import neither Electron nor React', () => {
    const bad = ['models', 'engine', 'nodes'].flatMap(sources)
      .flatMap((f) => runtimeImports(f).filter((s) => /^(electron|react|react-dom|@xyflow\/react|zustand)(\/|$)/.test(s)).map((s) => `${f} imports ${s}`));
    expect(bad).toEqual([]);
  });

  it('the renderer imports no native or Node-only module, and only pure engine/nodes files', () => {
    const pureShared = new Set(['engine/api.ts', 'engine/workflow.ts', 'engine/protocol.ts', 'engine/png-chunks.ts', 'nodes/ports.ts', 'nodes/types.ts']);
    const bad: string[] = [];
    for (const f of sources('renderer').filter((x) => !isTest(x))) {
      for (const s of runtimeImports(f)) {
        if (/^(node:|onnxruntime|sharp|ws$|electron)/.test(s)) bad.push(`${f} imports ${s}`);
        if (s.startsWith('.')) {
          const target = path.relative(root, path.resolve(root, path.dirname(f), s)).replace(/\.js$/, '.ts');
          if (!target.startsWith('renderer') && !pureShared.has(target)) bad.push(`${f} imports ${target}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('models/ (the networks) does not depend on engine/ or nodes/', () => {
    const bad = sources('models').filter((f) => !isTest(f))
      .flatMap((f) => runtimeImports(f).filter((s) => /(^|\/)\.\.\/(\.\.\/)*(engine|nodes)\//.test(s)).map((s) => `${f} imports ${s}`));
    expect(bad).toEqual([]);
  });
});
