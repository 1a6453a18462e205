/**
 * Conformance runner: every case of cases.json in each fixtures folder, run through the product's
 * real loaders in fp32, one row per compared output (labelled `<folder>/<group>`), then one line
 * summing all folders: `conformance: N passed, N failed, N skipped`.
 *
 *   npm run conformance [-- --fixtures DIR[:DIR...]] [-- --only SELECTION] [-- --precision fp32|fp16|int8] [-- --controlnet-in-unet]
 *
 * Folders: `--fixtures`, else $IPA_FIXTURES (both `:`-separated, `;` on Windows), else every folder
 * under `<repo>/../shared/fixtures/`. `--only` is a comma-separated list of `FOLDER` (all its
 * groups), `FOLDER/GROUP`, or `GROUP` (that group in whichever folder has it); folders it does not
 * select are named in a line and not run, and an entry that selects nothing is a failing row.
 *
 * A group without a handler is a failure ("not implemented"), not a skip, and so is a field the
 * runner does not understand: every key of a case's inputs / params / outputs / intermediates that
 * its handler never reads becomes a failing row naming the key (context.ts trackCase).
 * A folder named explicitly (--fixtures, IPA_FIXTURES) without cases/cases.json is a failing row;
 * only a missing default root is a clean skip.
 * `--precision` builds every network with the CPU's graph profile of that precision (models/onnx/profile.ts) and
 * compares with that precision's tolerance column (tolerances.ts); the tolerance column of each row says which.
 * `--controlnet-in-unet` runs the pipeline groups' ControlNets inside the UNet session (models/unet-controlnet.ts,
 * the GPU providers' path) on any provider.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_FIXTURES_ROOT, defaultFixtureFolders, listedFixtureFolders } from '../helpers/fixtures.js';
import { PRECISIONS, type Precision, profileFor } from '../../models/onnx/profile.js';
import { PROVIDERS, type Provider } from '../../models/providers.js';
import { Ctx, type Row, runControlNetsInUNet, runPrecision, runProvider, trackCase } from './context.js';
import { handlers } from './groups/index.js';

export interface Args {
  fixtures: string | null;
  only: string[] | null;
  precision: Precision;
  provider: Provider;
  /** `--controlnet-in-unet`: the pipelines' ControlNets inside the UNet session (EngineOptions.controlNetsInUNet). */
  controlNetsInUNet: boolean;
}

export function parseArgs(argv: string[]): Args {
  const value = (flag: string): string | null => {
    const i = argv.indexOf(flag);
    if (i < 0) return null;
    const v = argv[i + 1];
    if (!v || v.startsWith('--')) throw new Error(`conformance: ${flag} needs a value`);
    return v;
  };
  const known = new Set(['--fixtures', '--only', '--precision', '--provider']);
  const switches = new Set(['--controlnet-in-unet']);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--') && !known.has(argv[i]) && !switches.has(argv[i]))
      throw new Error(
        `conformance: unknown option ${argv[i]} (expected --fixtures DIR[${path.delimiter}DIR...], --only FOLDER,FOLDER/GROUP,GROUP, --precision ${PRECISIONS.join('|')}, --controlnet-in-unet)`,
      );
    if (known.has(argv[i])) i++;
  }
  const only = value('--only');
  const precision = value('--precision') ?? 'fp32';
  if (!(PRECISIONS as readonly string[]).includes(precision)) throw new Error(`conformance: --precision must be ${PRECISIONS.join(', ')} (got ${precision})`);
  const provider = value('--provider') ?? 'cpu';
  if (!(PROVIDERS as readonly string[]).includes(provider)) throw new Error(`conformance: --provider must be ${PROVIDERS.join(', ')} (got ${provider})`);
  return {
    precision: precision as Precision,
    provider: provider as Provider,
    controlNetsInUNet: argv.includes('--controlnet-in-unet'),
    fixtures: value('--fixtures'),
    only:
      only === null
        ? null
        : only
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
  };
}

/** The fixture folders to run and whether they were named explicitly. */
export function fixtureFolders(args: Args): { folders: string[]; explicit: boolean; source: string } {
  const listed = listedFixtureFolders(args.fixtures ?? process.env.IPA_FIXTURES);
  if (listed) return { folders: listed, explicit: true, source: args.fixtures ? '--fixtures' : 'IPA_FIXTURES' };
  return { folders: defaultFixtureFolders(), explicit: false, source: `every folder under ${DEFAULT_FIXTURES_ROOT}` };
}

/** Which groups of which folder `--only` selects; entries that select nothing are reported. */
export function selectGroups(sets: { set: string; groups: string[] }[], only: string[] | null): { selected: Map<string, Set<string>>; unmatched: string[] } {
  const selected = new Map<string, Set<string>>(sets.map((s) => [s.set, new Set(only ? [] : s.groups)]));
  const unmatched: string[] = [];
  for (const entry of only ?? []) {
    let hit = false;
    const slash = entry.indexOf('/');
    for (const s of sets) {
      const pick = (g: string) => {
        selected.get(s.set)!.add(g);
        hit = true;
      };
      if (slash >= 0) {
        if (entry.slice(0, slash) === s.set && s.groups.includes(entry.slice(slash + 1))) pick(entry.slice(slash + 1));
      } else if (entry === s.set) {
        s.groups.forEach(pick);
      } else if (s.groups.includes(entry)) {
        pick(entry);
      }
    }
    if (!hit) unmatched.push(entry);
  }
  return { selected, unmatched };
}

async function runCase(ctx: Ctx, group: string, c: Parameters<typeof trackCase>[0]): Promise<Row[]> {
  const handler = handlers[group];
  if (!handler) return [{ group, case: c.name, status: 'fail', detail: 'not implemented (no handler for this group)' }];
  const t0 = Date.now();
  const { tracked, unread } = trackCase(c);
  let out: Row[];
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
  if (process.env.IPA_CONFORMANCE_TIMING) console.log(`  (${ctx.set}/${group}/${c.name}: ${Date.now() - t0} ms)`);
  return out;
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 1;
    return;
  }
  runPrecision.value = args.precision;
  runProvider.value = args.provider;
  runControlNetsInUNet.value = args.controlNetsInUNet;
  if (args.controlNetsInUNet) console.log('conformance: ControlNets run inside the UNet session (models/unet-controlnet.ts)');
  if (args.precision !== 'fp32' || args.provider !== 'cpu')
    console.log(
      `conformance: provider ${args.provider}, precision ${args.precision} (graph profile ${profileFor(args.provider, args.precision).id}; tolerance column: test/conformance/tolerances.ts)`,
    );
  const { folders, explicit, source } = fixtureFolders(args);
  if (!explicit && !fs.existsSync(DEFAULT_FIXTURES_ROOT)) {
    console.log(`conformance: fixtures folder not found at ${DEFAULT_FIXTURES_ROOT} (the default; set IPA_FIXTURES or --fixtures); skipping all cases`);
    console.log('conformance: 0 passed, 0 failed, 0 skipped (no fixtures)');
    return;
  }
  console.log(`conformance: fixture folders from ${source}: ${folders.map((f) => path.basename(f)).join(', ') || '(none)'}`);
  const rows: Row[] = [];
  const print = (r: Row) => {
    const err = r.maxAbsErr === undefined ? '-' : r.maxAbsErr.toExponential(3);
    console.log([r.group.padEnd(40), r.case.padEnd(52), err.padStart(10), (r.tolerance ?? '-').padEnd(22), r.status.toUpperCase(), r.detail ?? ''].join('  '));
  };
  const add = (r: Row) => {
    rows.push(r);
    print(r);
  };

  // A folder without cases.json is a failing row (a typo must not pass as "nothing to check").
  const ctxs: Ctx[] = [];
  for (const dir of folders) {
    const cases = path.join(dir, 'cases', 'cases.json');
    if (!fs.existsSync(cases)) {
      add({ group: path.basename(dir), case: '*', status: 'fail', detail: `no cases/cases.json in ${dir} (from ${source})` });
      continue;
    }
    try {
      ctxs.push(new Ctx(dir));
    } catch (e) {
      add({ group: path.basename(dir), case: '*', status: 'fail', detail: `cannot read ${cases}: ${(e as Error).message}` });
    }
  }
  const { selected, unmatched } = selectGroups(
    ctxs.map((c) => ({ set: c.set, groups: Object.keys(c.cases.groups) })),
    args.only,
  );
  for (const u of unmatched)
    add({ group: u, case: '*', status: 'fail', detail: `--only ${u}: no such folder or group among ${ctxs.map((c) => c.set).join(', ')}` });

  for (const ctx of ctxs) {
    const pick = selected.get(ctx.set)!;
    const all = Object.keys(ctx.cases.groups);
    const left = all.filter((g) => !pick.has(g));
    if (left.length) console.log(`conformance: ${ctx.set}: not selected by --only, not run: ${left.join(', ')}`);
    for (const [group, spec] of Object.entries(ctx.cases.groups)) {
      if (!pick.has(group)) continue;
      for (const c of spec.cases) {
        for (const r of await runCase(ctx, group, c)) add({ ...r, group: `${ctx.set}/${r.group}` });
      }
    }
  }
  for (const f of new Set(runProvider.failures)) add({ group: args.provider, case: '*', status: 'fail', detail: `${f} (its cases ran on the CPU instead)` });
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

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
