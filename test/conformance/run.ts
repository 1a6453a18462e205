/** test/conformance: the reference-fixture conformance suite — runner, case groups, pipeline runner. */
/**
 * Conformance runner: every case of cases.json in the fixtures folder ($IPA_FIXTURES,
 * default ../shared/fixtures/tiny-sd15), run through the product's real loaders in fp32,
 * one row per compared output, then `conformance: N passed, N failed, N skipped`.
 *
 *   npm run conformance [-- --only group1,group2]
 *
 * A group without a handler is a failure, not a skip, and so is a field the runner does not
 * understand: every key of a case's inputs / params / outputs / intermediates that its handler
 * never reads becomes a failing row naming the key (context.ts trackCase).
 * IPA_FIXTURES set to a folder without cases/cases.json exits 1; only a missing default folder
 * is a clean skip.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Ctx, type Row, trackCase } from './context.js';
import { handlers } from './groups/index.js';

function parseArgs(argv: string[]): { only: Set<string> | null } {
  const i = argv.indexOf('--only');
  if (i >= 0 && argv[i + 1]) return { only: new Set(argv[i + 1].split(',').map((s) => s.trim())) };
  return { only: null };
}

export function fixturesDir(): string {
  return path.resolve(process.env.IPA_FIXTURES ?? path.join(process.cwd(), '..', 'shared', 'fixtures', 'tiny-sd15'));
}

async function main(): Promise<void> {
  const dir = fixturesDir();
  if (!fs.existsSync(path.join(dir, 'cases', 'cases.json'))) {
    // A folder named explicitly must exist: a typo in IPA_FIXTURES must not pass as "nothing to check".
    if (process.env.IPA_FIXTURES) {
      console.error(`conformance: IPA_FIXTURES=${process.env.IPA_FIXTURES} has no cases/cases.json (looked for ${path.join(dir, 'cases', 'cases.json')}); set it to a fixtures folder such as ../shared/fixtures/tiny-sd15`);
      process.exitCode = 1;
      return;
    }
    console.log(`conformance: fixtures folder not found at ${dir} (the default; set IPA_FIXTURES); skipping all cases`);
    console.log('conformance: 0 passed, 0 failed, 0 skipped (no fixtures)');
    return;
  }
  const { only } = parseArgs(process.argv.slice(2));
  const ctx = new Ctx(dir);
  const rows: Row[] = [];
  const print = (r: Row) => {
    const err = r.maxAbsErr === undefined ? '-' : r.maxAbsErr.toExponential(3);
    console.log([r.group.padEnd(30), r.case.padEnd(44), err.padStart(10), (r.tolerance ?? '-').padEnd(22), r.status.toUpperCase(), r.detail ?? ''].join('  '));
  };
  if (only) {
    for (const g of only) if (!ctx.cases.groups[g]) { const r: Row = { group: g, case: '*', status: 'fail', detail: 'no such group in cases.json' }; rows.push(r); print(r); }
  }
  for (const [group, spec] of Object.entries(ctx.cases.groups)) {
    if (only && !only.has(group)) continue;
    const handler = handlers[group];
    for (const c of spec.cases) {
      let out: Row[];
      if (!handler) {
        out = [{ group, case: c.name, status: 'fail', detail: 'no handler for this group' }];
      } else {
        const t0 = Date.now();
        const { tracked, unread } = trackCase(c);
        try {
          out = await handler(ctx, group, tracked);
          if (out.length === 0) out = [{ group, case: c.name, status: 'fail', detail: 'handler compared nothing' }];
          // A field the handler never used is one the runner does not understand: a failure, not a skip.
          // (Not after a run that failed before comparing, and not twice for a key the handler already reported.)
          if (out.some((r) => r.status !== 'pending') && !out.some((r) => r.detail?.startsWith('error:'))) {
            for (const k of unread()) {
              const name = `${c.name} ${k}`;
              if (!out.some((r) => r.case === name)) out.push({ group, case: name, status: 'fail', detail: `the handler does not use ${k}` });
            }
          }
        } catch (e) {
          out = [{ group, case: c.name, status: 'fail', detail: `error: ${(e as Error).stack ?? e}` }];
        }
        if (process.env.IPA_CONFORMANCE_TIMING) console.log(`  (${group}/${c.name}: ${Date.now() - t0} ms)`);
      }
      for (const r of out) { rows.push(r); print(r); }
    }
  }
  const passed = rows.filter((r) => r.status === 'pass').length;
  const failed = rows.filter((r) => r.status === 'fail').length;
  const skipped = rows.filter((r) => r.status === 'pending');
  if (skipped.length) {
    console.log('skipped (pending another issue):');
    for (const r of skipped) console.log(`  ${r.group}/${r.case}: ${r.detail}`);
  }
  console.log(`conformance: ${passed} passed, ${failed} failed, ${skipped.length} skipped`);
  if (failed) process.exitCode = 1;
}

await main();
