/**
 * Conformance cases of the `tokenizer` group: every case's prompt through ClipTokenizer,
 * read from the fixture's own tokenizer folder (cases.json -> models.tokenizer.path), once
 * per cleaning mode: `input_ids` is transformers' cleaning, `input_ids_ftfy` openai/CLIP's.
 */
import type { CaseHandler, Row } from '../context.js';
import { compare, toleranceFor } from '../context.js';
import { ClipTokenizer, type TextCleaning } from '../../../models/tokenizer.js';

const COLUMNS: Record<string, TextCleaning> = { input_ids: 'transformers', input_ids_ftfy: 'ftfy' };
const cache = new Map<string, ClipTokenizer>();

function tokenizerFor(dir: string, cleaning: TextCleaning): ClipTokenizer {
  const k = `${dir}\0${cleaning}`;
  let t = cache.get(k);
  if (!t) cache.set(k, (t = ClipTokenizer.fromDir(dir, { cleaning })));
  return t;
}

export const tokenizer: CaseHandler = async (ctx, group, c) => {
  const spec = ctx.cases.models.tokenizer;
  if (!spec?.path) throw new Error('cases.json: models.tokenizer.path is missing');
  const dir = ctx.modelPath(spec.path);
  const prompt = c.inputs?.prompt;
  if (typeof prompt !== 'string') throw new Error(`case ${c.name}: inputs.prompt is not a string`);
  const rows: Row[] = [];
  for (const [output, ref] of Object.entries(c.outputs ?? {})) {
    const cleaning = COLUMNS[output];
    if (!cleaning) {
      rows.push({ group, case: `${c.name} [${output}]`, status: 'fail', detail: `unknown output column ${output}` });
      continue;
    }
    const maxLength = typeof c.params?.max_length === 'number' ? c.params.max_length : undefined;
    if (c.params?.padding !== undefined && c.params.padding !== 'max_length')
      throw new Error(`case ${c.name}: padding ${String(c.params.padding)} is not supported`);
    if (c.params?.truncation !== undefined && c.params.truncation !== true) throw new Error(`case ${c.name}: truncation=false is not supported`);
    const tok = tokenizerFor(dir, cleaning);
    const ids = maxLength && maxLength !== tok.maxLength ? ClipTokenizer.fromDir(dir, { cleaning, maxLength }).encode(prompt) : tok.encode(prompt);
    const expected = ctx.i64(group, ref);
    rows.push(compare(group, `${c.name} [${output}]`, ids, expected, toleranceFor(c, output)));
  }
  return rows;
};
