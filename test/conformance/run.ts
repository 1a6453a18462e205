/**
 * Conformance runner: every case of cases.json in the fixtures folder ($IPA_FIXTURES,
 * default ../shared/fixtures/tiny-sd15), run through the product's real loaders in fp32,
 * one row per compared output, then `conformance: N passed, N failed, N skipped`.
 *
 *   npm run conformance [-- --only group1,group2]
 *
 * A group without a handler is a failure, not a skip.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Ctx, type Row } from './context.js';
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
    console.log(`conformance: fixtures folder not found at ${dir} (set IPA_FIXTURES); skipping all cases`);
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
        try {
          out = await handler(ctx, group, c);
          if (out.length === 0) out = [{ group, case: c.name, status: 'fail', detail: 'handler compared nothing' }];
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
