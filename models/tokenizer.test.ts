import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClipTokenizer, bytesToUnicode, cleanFtfy, cleanTransformers } from './tokenizer.js';

/** A tiny CLIP-style vocabulary: the 256 byte symbols, with and without </w>, a few merges, the specials. */
function writeTinyTokenizer(dir: string, opts: { pad?: string; noVocab?: boolean } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const bytes = bytesToUnicode();
  const vocab: Record<string, number> = {};
  for (const s of [...bytes, ...bytes.map((b) => `${b}</w>`)]) vocab[s] = Object.keys(vocab).length;
  const merges = [
    ['c', 'a'],
    ['ca', 't</w>'],
    ['d', 'o'],
    ['do', 'g</w>'],
  ];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  vocab['<|startoftext|>'] = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = Object.keys(vocab).length;
  if (!opts.noVocab) fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
  fs.writeFileSync(path.join(dir, 'merges.txt'), ['#version: 0.2', ...merges.map((m) => m.join(' '))].join('\n') + '\n');
  if (opts.pad) fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ pad_token: opts.pad }));
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('ClipTokenizer', () => {
  const dir = path.join(root, 'tiny');
  writeTinyTokenizer(dir);
  const tok = ClipTokenizer.fromDir(dir);
  const id = (s: string) => (tok as unknown as { vocab: Map<string, number> }).vocab.get(s)!;

  it('applies merges by rank and marks word ends', () => {
    expect(tok.tokenize('A cat, dog')).toEqual([id('a</w>'), id('cat</w>'), id(',</w>'), id('dog</w>')]);
  });

  it('pads to 77 with the pad token (EOS by default, or the one special_tokens_map names)', () => {
    const ids = tok.encode('cat');
    expect(ids.length).toBe(77);
    expect(ids.slice(0, 3)).toEqual([tok.bosId, id('cat</w>'), tok.eosId]);
    expect(new Set(ids.slice(3))).toEqual(new Set([tok.eosId]));
    const d2 = path.join(root, 'pad');
    writeTinyTokenizer(d2, { pad: '!' });
    const t2 = ClipTokenizer.fromDir(d2);
    expect(t2.encode('cat')[3]).toBe(id('!'));
    expect(t2.padId).toBe(id('!'));
  });

  it('truncates a long prompt to BOS + 75 tokens + EOS at position 76', () => {
    const ids = tok.encode(Array.from({ length: 100 }, () => 'cat').join(' '));
    expect(ids.length).toBe(77);
    expect(ids[0]).toBe(tok.bosId);
    expect(ids[75]).toBe(id('cat</w>'));
    expect(ids[76]).toBe(tok.eosId);
  });

  it('keeps special-token strings as their ids', () => {
    expect(tok.tokenize('cat<|endoftext|>dog')).toEqual([id('cat</w>'), tok.eosId, id('dog</w>')]);
  });

  it('names the missing file and where to put it', () => {
    const d = path.join(root, 'novocab');
    writeTinyTokenizer(d, { noVocab: true });
    expect(() => ClipTokenizer.fromDir(d)).toThrow(/vocab\.json not found in .*novocab.*tokenizer\/ folder of a diffusers model.*<models>\/tokenizers/);
    expect(() => ClipTokenizer.fromDir(path.join(root, 'nowhere'))).toThrow(/vocab\.json not found/);
  });
});

describe('cleaning', () => {
  it('transformers: lowercase, NFC, whitespace collapsed, CJK ideographs split, accents kept', () => {
    expect(cleanTransformers('  Cafe\u0301\tNAÏVE\n東京 ')).toBe('café naïve 東 京');
    expect(cleanTransformers('a\u200db\u0000c')).toBe('abc'); // format/control characters dropped
  });
  it('ftfy: entities, quotes, ligatures, full-width forms; CJK kept together', () => {
    expect(cleanFtfy('“Fish” &amp; ﬁne ＡＢＣ  東京')).toBe('"fish" & fine abc 東京');
    expect(cleanFtfy('a &lt;b&gt;')).toBe('a <b>');
  });
  it('the two modes give different ids for a CJK prompt only', () => {
    const dir = path.join(root, 'tiny2');
    writeTinyTokenizer(dir);
    const a = ClipTokenizer.fromDir(dir);
    const b = ClipTokenizer.fromDir(dir, { cleaning: 'ftfy' });
    expect(a.encode('A cat & a DOG')).toEqual(b.encode('A cat & a DOG'));
    expect(a.encode('東京')).not.toEqual(b.encode('東京'));
  });
});
