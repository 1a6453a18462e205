/**
 * Conformance cases of model-files' `malicious_pickles` group: pickle files a safe reader must refuse
 * without running anything. Each file is given to the product's reader (models/pickle.ts
 * openTensorFile, which every loader uses) and to every loader that accepts pickles (checkpoint,
 * standalone VAE, ControlNet, IP-Adapter); each must throw, the reader with a PickleFileError
 * naming the file. The payload's marker file is deleted first and must still be absent afterwards.
 * `outputs.marker_path_utf8` is compared with the case's `marker_file` (a zero byte when it has none).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCheckpoint } from '../../../models/checkpoint.js';
import { loadControlNet } from '../../../models/controlnet-load.js';
import { IpAdapterModel } from '../../../models/ip-adapter.js';
import { PickleFileError, openTensorFile } from '../../../models/pickle.js';
import { readTensorBytes } from '../../../models/safetensors.js';
import { loadVaeFile } from '../../../models/vae-load.js';
import { type CaseHandler, type Row, compare } from '../context.js';

const LOADERS: [string, (f: string) => unknown][] = [
  ['checkpoint', (f) => loadCheckpoint(f)],
  ['VAE', (f) => loadVaeFile(f)],
  ['ControlNet', (f) => loadControlNet(f)],
  ['IP-Adapter', (f) => IpAdapterModel.load(f)],
];

const thrown = (fn: () => unknown): Error | null => {
  try {
    fn();
    return null;
  } catch (e) {
    return e as Error;
  }
};

export const maliciousPickles: CaseHandler = async (ctx, group, c) => {
  const file = ctx.resolve(c.file, `case ${c.name} file`);
  const marker = c.marker_file;
  if (marker !== null && typeof marker !== 'string')
    return [{ group, case: c.name, status: 'fail', detail: `marker_file ${JSON.stringify(marker)} is not a path or null` }];
  if (!fs.existsSync(file)) return [{ group, case: c.name, status: 'fail', detail: `${file} does not exist` }];
  if (marker) fs.rmSync(marker, { force: true });
  const rows: Row[] = [];
  const name = path.basename(file);
  const reader = thrown(() => openTensorFile(file));
  const readerOk = reader instanceof PickleFileError && reader.message.includes(name);
  rows.push({
    group,
    case: `${c.name} refused by the reader`,
    status: readerOk ? 'pass' : 'fail',
    detail: reader ? `${reader.name}: ${reader.message.replace(/ \(file: .*\)$/, '').slice(0, 110)}` : 'the reader returned a tensor table',
  });
  const accepted = LOADERS.filter(([, load]) => !thrown(() => load(file))).map(([what]) => what);
  rows.push({
    group,
    case: `${c.name} refused by ${LOADERS.length} loaders`,
    status: accepted.length ? 'fail' : 'pass',
    detail: accepted.length ? `accepted by the ${accepted.join(', ')} loader` : LOADERS.map(([w]) => w).join(', '),
  });
  if (marker)
    rows.push({
      group,
      case: `${c.name} marker absent`,
      status: fs.existsSync(marker) ? 'fail' : 'pass',
      detail: fs.existsSync(marker) ? `${marker} exists: the payload ran` : marker,
    });
  const outs = (c.outputs ?? {}) as Record<string, unknown>;
  for (const [k, ref] of Object.entries(outs)) {
    if (k !== 'marker_path_utf8') {
      rows.push({ group, case: `${c.name} outputs.${k}`, status: 'fail', detail: `output ${k} is not understood` });
      continue;
    }
    const want = readTensorBytes(ctx.groupFile(group).get(ctx.tensorName(group, ref)));
    rows.push(compare(group, `${c.name} marker_path_utf8`, marker ? Buffer.from(marker, 'utf8') : Buffer.from([0]), want, { atol: 0, rtol: 0, exact: true }));
  }
  return rows;
};
