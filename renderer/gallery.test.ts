import { describe, expect, it } from 'vitest';
import { matchesQuery, parseParameters } from './gallery.js';
import { createEditorStore } from './store/index.js';
import { numberProblem } from './components/ParamWidget.js';
import type { OutputImage } from './store/index.js';

const TEXT =
  'a red fox, in snow\nwith a second line\nNegative prompt: blurry, low quality\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: v1-5, IP-Adapter weight: 0.8';

describe('parseParameters', () => {
  it('reads the prompt (several lines), the negative prompt and the fields in order', () => {
    const p = parseParameters(TEXT)!;
    expect(p.prompt).toBe('a red fox, in snow\nwith a second line');
    expect(p.negative).toBe('blurry, low quality');
    expect(p.fields).toEqual([
      ['Steps', '30'],
      ['Sampler', 'DPM++ 2M'],
      ['Schedule type', 'Karras'],
      ['CFG scale', '7.5'],
      ['Seed', '42'],
      ['Size', '512x512'],
      ['Model', 'v1-5'],
      ['IP-Adapter weight', '0.8'],
    ]);
  });
  it('a text without negative prompt or fields is all prompt; none is null', () => {
    expect(parseParameters('just words')).toEqual({ prompt: 'just words', negative: '', fields: [] });
    expect(parseParameters(undefined)).toBeNull();
  });
});

describe('matchesQuery', () => {
  const out: OutputImage = { id: '/outputs/fox_00001_.png', url: '/outputs/fox_00001_.png', path: 'fox_00001_.png', width: 8, height: 8, parameters: TEXT };
  it('every word must appear in the prompts, title or file name, in any case', () => {
    expect(matchesQuery(out, '')).toBe(true);
    expect(matchesQuery(out, 'FOX snow')).toBe(true);
    expect(matchesQuery(out, 'blurry')).toBe(true);
    expect(matchesQuery(out, '00001')).toBe(true);
    expect(matchesQuery(out, 'fox castle')).toBe(false);
  });
});

describe('numberProblem (the range message as a value is typed)', () => {
  it('says what validation would refuse, in its words', () => {
    const w = { min: -1, max: 3 };
    expect(numberProblem('0.5', w)).toBeNull();
    expect(numberProblem('7', w)).toBe('7 is above the maximum 3');
    expect(numberProblem('-2', w)).toBe('-2 is below the minimum -1');
    expect(numberProblem('1.5', { integer: true })).toBe('must be a whole number, found 1.5');
    expect(numberProblem('', w)).toBe('needs a number');
  });
});

describe('run slice: queue records, duplicates, toasts, gallery', () => {
  it('names jobs, tracks progress, marks a duplicate and clears run toasts on a later success', () => {
    const store = createEditorStore();
    const s = () => store.getState();
    s().notify('error', 'The workflow has 1 error; see the marked nodes.', 'run');
    s().notify('warn', 'unrelated');
    s().handleEvent({ type: 'queued', runId: 'a', position: 0, name: 'Fox' });
    s().handleEvent({ type: 'run-start', runId: 'a' });
    s().handleEvent({ type: 'progress', runId: 'a', node: 'sampler', step: 3, total: 10 });
    expect(s().runs.a).toMatchObject({ name: 'Fox', status: 'running', progress: { step: 3, total: 10 } });
    s().handleEvent({ type: 'output', runId: 'a', node: 'save', images: [{ path: '/o/fox_00001_.png', url: '/outputs/fox_00001_.png', width: 8, height: 8 }] });
    s().handleEvent({ type: 'run-done', runId: 'a', ok: true });
    expect(s().runs.a).toMatchObject({ status: 'done', images: ['/o/fox_00001_.png'] });
    expect(s().notices.map((n) => n.text)).toEqual(['unrelated']);
    s().handleEvent({ type: 'queued', runId: 'b', position: 0, name: 'Fox' });
    s().handleEvent({ type: 'run-done', runId: 'b', ok: true, duplicateOf: 'a' });
    expect(s().runs.b).toMatchObject({ status: 'duplicate', duplicateOf: 'a', images: ['/o/fox_00001_.png'] });
    expect(s().notices.at(-1)?.text).toMatch(/Nothing changed since an earlier run.*fox_00001_\.png/);
    // A document loaded: the run's notices go.
    s().loadDoc({ nodes: [], edges: [] }, null);
    expect(s().notices.map((n) => n.text)).toEqual(['unrelated']);
  });

  it('the folder listing joins the session’s images by URL (keeping their workflow), and the host queue merges in', () => {
    const store = createEditorStore();
    const s = () => store.getState();
    s().handleEvent({ type: 'output', runId: 'a', node: 'save', images: [{ path: '/o/x_00002_.png', url: '/outputs/x_00002_.png', width: 8, height: 8 }] });
    s().toggleOutput('/outputs/x_00002_.png');
    s().setGallery([
      { file: 'x_00002_.png', url: '/outputs/x_00002_.png', width: 8, height: 8, bytes: 1, mtimeMs: 2, parameters: 'p2', hasWorkflow: true },
      { file: 'x_00001_.png', url: '/outputs/x_00001_.png', width: 8, height: 8, bytes: 1, mtimeMs: 1, hasWorkflow: true },
    ]);
    expect(s().outputs.map((o) => [o.id, o.runId, o.parameters])).toEqual([
      ['/outputs/x_00002_.png', 'a', 'p2'],
      ['/outputs/x_00001_.png', undefined, undefined],
    ]);
    expect(s().selectedOutputs).toEqual(['/outputs/x_00002_.png']);
    s().mergeQueue([{ runId: 'r', name: 'Remote job', state: 'running', where: 'redis://farm:6379', submittedAt: 5, progress: { step: 1, total: 4 } }]);
    expect(s().runs.r).toMatchObject({ name: 'Remote job', status: 'running', where: 'redis://farm:6379', progress: { step: 1, total: 4 } });
    s().handleEvent({ type: 'run-done', runId: 'a', ok: true });
    s().clearFinished();
    expect(Object.keys(s().runs)).toEqual(['r']);
  });
});
