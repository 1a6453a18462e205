/** test/: repository-wide checks (layering, import cycles); conformance/, e2e/ and helpers/ below. */
/**
 * Layering rules from the design (style.md: "engine/, nodes/ and models/ never import Electron or
 * React"), checked over the sources: the networks and the engine stay host-neutral, the renderer
 * bundle never pulls native or Node-only code, models/ does not depend on the engine, and no
 * module imports itself through a chain of others (no import cycles anywhere).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ESLint } from 'eslint';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');

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
  // The layering rules themselves live in eslint.config.js (no-restricted-imports), which `npm run lint` applies to
  // the whole repository; these probes check that each rule fires where it should and stays quiet where it should not.
  const lintProbe = async (filePath: string, code: string): Promise<string[]> => {
    const [result] = await new ESLint({ cwd: root }).lintText(code, { filePath: path.join(root, filePath) });
    return result.messages.filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports').map((m) => m.message);
  };

  it('models/, engine/ and nodes/ import neither Electron nor React (lint rule)', async () => {
    for (const f of ['models/probe.ts', 'engine/probe.ts', 'nodes/probe.ts', 'engine/hosts/probe.ts']) {
      expect(await lintProbe(f, "import { app } from 'electron';\nimport { useState } from 'react';\nexport { app, useState };\n")).toHaveLength(2);
    }
    expect(await lintProbe('electron/probe.ts', "import { app } from 'electron';\nexport { app };\n")).toEqual([]);
  });

  it('the renderer imports no native or Node-only module, and only pure engine/nodes files at run time (lint rule)', async () => {
    const bad = await lintProbe(
      'renderer/components/Probe.tsx',
      [
        "import * as fs from 'node:fs';",
        "import * as ort from 'onnxruntime-node';",
        "import { Engine } from '../../engine/engine.js';",
        "import { NODES } from '../../nodes/index.js';",
        'export { fs, ort, Engine, NODES };',
      ].join('\n'),
    );
    expect(bad).toHaveLength(4);
    const good = await lintProbe(
      'renderer/Probe.ts',
      [
        "import { WorkflowSchema } from '../engine/protocol.js';",
        "import { canConnect } from '../nodes/ports.js';",
        "import { MODEL_KINDS } from '../nodes/spec.js';",
        "import type { Engine } from '../engine/engine.js';",
        'export { WorkflowSchema, canConnect, MODEL_KINDS };',
        'export type { Engine };',
      ].join('\n'),
    );
    expect(good).toEqual([]);
  });

  it('models/ (the networks) does not depend on engine/ or nodes/ (lint rule)', async () => {
    expect(
      await lintProbe(
        'models/onnx/probe.ts',
        "import { Engine } from '../../engine/engine.js';\nimport { NODES } from '../../nodes/index.js';\nexport { Engine, NODES };\n",
      ),
    ).toHaveLength(2);
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
