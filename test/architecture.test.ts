/** test/: repository-wide checks (layering, import cycles); conformance/, e2e/ and helpers/ below. */
/**
 * Layering rules from the design (style.md: "engine/, nodes/ and models/ never import Electron or
 * React"), checked over the sources: the networks and the engine stay host-neutral, the renderer
 * bundle never pulls native or Node-only code, models/ does not depend on the engine, and no
 * module imports itself through a chain of others (no import cycles anywhere).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
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

/** Every .ts/.tsx file of the repository (POSIX paths from the root), outside node_modules, dist* and dot folders. */
function allSources(dir = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.') || e.name.startsWith('dist')) continue;
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...allSources(rel));
    else if (/\.tsx?$/.test(e.name)) out.push(rel);
  }
  return out.sort();
}

/**
 * The import graph: file -> the repository files it imports. Every kind of import counts: value and
 * type-only imports, `export ... from`, side-effect and dynamic `import()`. Relative specifiers
 * resolve as the bundler does: `x.js` to x.ts / x.tsx, a bare `x` to x.ts, x.tsx or x/index.ts(x).
 */
function importGraph(files: string[], read: (f: string) => string): Map<string, string[]> {
  const have = new Set(files);
  const resolve = (from: string, spec: string): string | undefined => {
    if (!spec.startsWith('.')) return undefined;
    const p = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
    const stem = p.replace(/\.(js|jsx|mjs)$/, '');
    return [p, `${stem}.ts`, `${stem}.tsx`, `${p}.ts`, `${p}.tsx`, `${p}/index.ts`, `${p}/index.tsx`].find((c) => have.has(c));
  };
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const { importedFiles } = ts.preProcessFile(read(f), true, true);
    graph.set(f, [...new Set(importedFiles.map((i) => resolve(f, i.fileName)).filter((t): t is string => !!t))].sort());
  }
  return graph;
}

/** Each import cycle once, as its files in import order with the first repeated at the end ("a -> b -> a"). */
function importCycles(graph: Map<string, string[]>): string[] {
  // Tarjan's strongly connected components; a component of two or more files (or a file that
  // imports itself) holds a cycle, shown as the shortest path back to its first file.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const c: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      c.push(w);
    } while (w !== v);
    if (c.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(c.sort());
  };
  for (const f of [...graph.keys()].sort()) if (!index.has(f)) visit(f);
  return components.map((c) => {
    const inC = new Set(c);
    const start = c[0];
    const prev = new Map<string, string>();
    let frontier = [start];
    while (frontier.length && !prev.has(start)) {
      const nextFrontier: string[] = [];
      for (const v of frontier) {
        for (const w of graph.get(v) ?? []) {
          if (!inC.has(w) || prev.has(w)) continue;
          prev.set(w, v);
          nextFrontier.push(w);
        }
      }
      frontier = nextFrontier;
    }
    const chain = [start];
    for (let v = prev.get(start)!; v !== start; v = prev.get(v)!) chain.unshift(v);
    chain.unshift(start);
    return `${chain.join(' -> ')}${c.length > chain.length - 1 ? ` (and ${c.length - chain.length + 1} more file(s) in the same tangle: ${c.filter((f) => !chain.includes(f)).join(', ')})` : ''}`;
  });
}

describe('architecture', () => {
  it('models/, engine/ and nodes/ import neither Electron nor React', () => {
    const bad = ['models', 'engine', 'nodes'].flatMap(sources)
      .flatMap((f) => runtimeImports(f).filter((s) => /^(electron|react|react-dom|@xyflow\/react|zustand)(\/|$)/.test(s)).map((s) => `${f} imports ${s}`));
    expect(bad).toEqual([]);
  });

  it('the renderer imports no native or Node-only module, and only pure engine/nodes files', () => {
    const pureShared = new Set(['engine/api.ts', 'engine/workflow.ts', 'engine/protocol.ts', 'engine/png-chunks.ts', 'nodes/ports.ts', 'nodes/spec.ts', 'nodes/types.ts',
      // The default workflow is this example (data only).
      'examples/ip-canny-controlnet.json']);
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

  it('no import cycles anywhere in the repository (type-only imports and re-exports count)', () => {
    const files = allSources();
    const graph = importGraph(files, (f) => fs.readFileSync(path.join(root, f), 'utf8'));
    // The scan sees what it must: type-only imports, `export ... from`, .js specifiers of .ts files.
    expect(graph.get('engine/context.ts')).toContain('engine/api.ts');
    expect(graph.get('nodes/types.ts')).toContain('nodes/spec.ts');
    expect(importCycles(graph)).toEqual([]);
  });

  it('the cycle finder reports a cycle with its files', () => {
    const src: Record<string, string> = {
      'a.ts': "import type { B } from './b.js';",
      'b.ts': "export { c } from './sub/index.js';",
      'sub/index.ts': "import('../a.js');",
      'd.ts': "import './a';",
      'e.tsx': "import type { E } from './e.js';",
    };
    const cycles = importCycles(importGraph(Object.keys(src), (f) => src[f]));
    expect(cycles).toEqual(['a.ts -> b.ts -> sub/index.ts -> a.ts', 'e.tsx -> e.tsx']);
  });
});
