/**
 * CLIP BPE tokenizer (byte-level BPE over vocab.json + merges.txt), as Stable Diffusion 1.5
 * pipelines call it: `padding="max_length", max_length=77, truncation=True`, i.e.
 * BOS 49406, the prompt's tokens (truncated to 75), EOS 49407, then the pad token.
 *
 * Mirrors transformers' slow `CLIPTokenizer` (models/clip/tokenization_clip.py) and
 * openai/CLIP's `SimpleTokenizer` (clip/simple_tokenizer.py); both share the byte encoder,
 * the regex pattern and the BPE loop, and differ only in how the text is cleaned first.
 *
 * Cleaning modes:
 * - `'transformers'` (the default): what transformers does when `ftfy` is not installed
 *   (BasicTokenizer with strip_accents=False and no punctuation split): drop control
 *   characters, spaces around CJK ideographs, NFC, split on whitespace, lowercase.
 * - `'ftfy'`: openai/CLIP's `basic_clean` + `whitespace_clean` + lowercase: ftfy.fix_text,
 *   HTML unescape (twice), collapse whitespace. CJK ideographs are not split, so a CJK
 *   prompt gives different ids.
 *
 * Why `'transformers'` is the default: it is the behaviour of the reference environment
 * the golden fixtures were made in, and of diffusers and ComfyUI installs, which do not
 * install ftfy; it is a fixed set of rules, so this implementation reproduces it exactly on
 * every input. ftfy's main feature, repairing mojibake, is a statistical heuristic that we
 * do not reimplement: our `'ftfy'` mode applies ftfy's deterministic fixes (HTML entities,
 * C1 controls, ligatures, full-width forms, curly quotes, line breaks, terminal escapes,
 * control characters, NFC), which is all that changes a prompt typed by a person. The two
 * modes agree on every prompt that has no CJK ideographs, HTML entities or typographic quotes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readRegularFileSync } from './regular-file.js';

export type TextCleaning = 'transformers' | 'ftfy';

export interface ClipTokenizerOptions {
  /** Text cleaning before BPE; default 'transformers' (see the module comment for why). */
  cleaning?: TextCleaning;
  /** Sequence length including BOS/EOS; default tokenizer_config's model_max_length, else 77. */
  maxLength?: number;
}

/** transformers and openai/CLIP both read at most this many merges (49152 - 256 - 2). */
const MAX_MERGES = 49152 - 256 - 2;

/** The CLIP pre-tokenizer pattern (openai/CLIP, re.IGNORECASE), with unicode property escapes. */
const PAT = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

/**
 * GPT-2/CLIP `bytes_to_unicode`: every byte maps to a printable character, so BPE runs on
 * strings. Printable latin-1 bytes map to themselves, the others to 256 + n.
 */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  return table;
}
const BYTE_ENCODER = bytesToUnicode();

/** Python's str.isspace() set (used by str.split() and re's \s), which JS's \s does not equal. */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'gu');
const PY_SPACE_TRIM = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');
const pyStrip = (s: string) => s.replace(PY_SPACE_TRIM, '');
const pySplit = (s: string) =>
  pyStrip(s)
    .split(PY_SPACE_RUN)
    .filter((t) => t.length > 0);

// ---------------------------------------------------------------------------------------
// Cleaning 'transformers': BasicTokenizer(do_lower_case=True, strip_accents=False,
// do_split_on_punc=False).tokenize(text), then " ".join(tokens).
// ---------------------------------------------------------------------------------------

/** BERT's `_is_chinese_char` ranges (CJK Unified Ideographs and extensions, compatibility). */
function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

const IS_OTHER = /^\p{C}$/u; // Cc, Cf, Cs, Co, Cn: BERT's _is_control (except \t \n \r)
const IS_ZS = /^\p{Zs}$/u;

export function cleanTransformers(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || IS_ZS.test(ch)) out += ' ';
    else if (cp === 0 || cp === 0xfffd || IS_OTHER.test(ch)) continue;
    else if (isCjk(cp)) out += ` ${ch} `;
    else out += ch;
  }
  const tokens = pySplit(out.normalize('NFC')).map((t) => t.toLowerCase());
  return pySplit(tokens.join(' ')).join(' ');
}

// ---------------------------------------------------------------------------------------
// Cleaning 'ftfy': openai/CLIP: whitespace_clean(basic_clean(text)).lower(), where
// basic_clean = ftfy.fix_text, html.unescape twice, strip.
// ---------------------------------------------------------------------------------------

/** The named entities a prompt plausibly contains (Python's html module knows all 2231). */
const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  copy: '©',
  reg: '®',
  trade: '™',
  hellip: '…',
  mdash: '—',
  ndash: '–',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  laquo: '«',
  raquo: '»',
  deg: '°',
  times: '×',
  divide: '÷',
  middot: '·',
  bull: '•',
  euro: '€',
  pound: '£',
  yen: '¥',
  cent: '¢',
  sect: '§',
  para: '¶',
  plusmn: '±',
  micro: 'µ',
  eacute: 'é',
  egrave: 'è',
  aacute: 'á',
  agrave: 'à',
  iacute: 'í',
  oacute: 'ó',
  uacute: 'ú',
  ntilde: 'ñ',
  ccedil: 'ç',
  auml: 'ä',
  ouml: 'ö',
  uuml: 'ü',
  szlig: 'ß',
  iuml: 'ï',
};

/** Windows-1252 for bytes 0x80..0x9f (ftfy's fix_c1_controls, html's invalid charrefs). */
const CP1252 = '€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8dŽ\x8f\x90‘’“”•–—˜™š›œ\x9džŸ';

function charRef(cp: number): string {
  if (cp >= 0x80 && cp <= 0x9f) return CP1252[cp - 0x80]!;
  if (cp === 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
  return String.fromCodePoint(cp);
}

/** A subset of Python's html.unescape: numeric references and the ENTITIES table. */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;)/g, (m, body: string) => {
    if (body[0] === '#') {
      const hex = body[1] === 'x' || body[1] === 'X';
      return charRef(parseInt(body.slice(hex ? 2 : 1).replace(';', ''), hex ? 16 : 10));
    }
    const name = body.slice(0, -1);
    return ENTITIES[name] ?? ENTITIES[name.toLowerCase()] ?? m;
  });
}

const LIGATURES: Record<string, string> = {
  Ĳ: 'IJ',
  ĳ: 'ij',
  ŉ: 'ʼn',
  Ǆ: 'DŽ',
  ǅ: 'Dž',
  ǆ: 'dž',
  Ǉ: 'LJ',
  ǈ: 'Lj',
  ǉ: 'lj',
  Ǌ: 'NJ',
  ǋ: 'Nj',
  ǌ: 'nj',
  ﬀ: 'ff',
  ﬁ: 'fi',
  ﬂ: 'fl',
  ﬃ: 'ffi',
  ﬄ: 'ffl',
  ﬅ: 'ſt',
  ﬆ: 'st',
};

/** ftfy's width map: U+3000 and the full/half-width forms U+FF01..U+FFEF to their NFKC form. */
function fixWidth(s: string): string {
  return s.replace(/[\u3000\uff01-\uffef]/g, (c) => (c === '\u3000' ? ' ' : c.normalize('NFKC')));
}

/** ftfy.fix_text with its default config, less fix_encoding (mojibake repair, a heuristic). */
export function ftfyFixText(text: string): string {
  let s = text;
  for (let round = 0; round < 8; round++) {
    const before = s;
    if (!s.includes('<')) s = htmlUnescape(s); // unescape_html="auto": not in text that looks like HTML
    s = s.replace(/[\x80-\x9f]/g, (c) => CP1252[c.charCodeAt(0) - 0x80]!);
    s = s.replace(/[\u0132\u0133\u0149\u01c4-\u01cc\ufb00-\ufb06]/g, (c) => LIGATURES[c] ?? c);
    s = fixWidth(s);
    s = s.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
    s = s.replace(/\r\n|[\r\u2028\u2029\u0085]/g, '\n');
    // eslint-disable-next-line no-control-regex -- the cleaning rules remove terminal escapes and C0 controls on purpose
    s = s.replace(/\x1b\[[\d;]*[a-zA-Z]/g, '');
    // eslint-disable-next-line no-control-regex -- as above: control characters are what this rule removes
    s = s.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, '');
    s = s.normalize('NFC');
    if (s === before) break;
  }
  return s;
}

export function cleanFtfy(text: string): string {
  const basic = pyStrip(htmlUnescape(htmlUnescape(ftfyFixText(text))));
  return pyStrip(basic.replace(PY_SPACE_RUN, ' ')).toLowerCase();
}

// ---------------------------------------------------------------------------------------
// The tokenizer.
// ---------------------------------------------------------------------------------------

function readJson(file: string): Record<string, unknown> | null {
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(readRegularFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** A special token in special_tokens_map / tokenizer_config: a string or {content}. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  private cache = new Map<string, string[]>();
  private specials: Map<string, number>;
  private specialRe: RegExp;

  constructor(
    private readonly vocab: Map<string, number>,
    private readonly ranks: Map<string, number>,
    special: { bos: string; eos: string; pad: string; unk: string },
    readonly maxLength: number,
    readonly cleaning: TextCleaning,
  ) {
    const id = (what: string, tok: string) => {
      const v = vocab.get(tok);
      if (v === undefined) throw new Error(`tokenizer: the ${what} token ${JSON.stringify(tok)} is not in vocab.json`);
      return v;
    };
    this.bosId = id('BOS', special.bos);
    this.eosId = id('EOS', special.eos);
    this.padId = id('pad', special.pad);
    this.unkId = id('unknown', special.unk);
    this.specials = new Map([
      [special.bos, this.bosId],
      [special.eos, this.eosId],
    ]);
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    this.specialRe = new RegExp(`(${[...this.specials.keys()].map(esc).join('|')})`);
  }

  /**
   * Reads `vocab.json` and `merges.txt` (and, when present, special_tokens_map.json /
   * tokenizer_config.json for the BOS/EOS/pad tokens and the length) from `dir`: the
   * `tokenizer/` folder of a diffusers model, or `<models>/tokenizers/<name>/`.
   */
  static fromDir(dir: string, opts: ClipTokenizerOptions = {}): ClipTokenizer {
    const need = (name: string) => {
      const p = path.join(dir, name);
      if (!fs.existsSync(p)) {
        throw new Error(
          `CLIP tokenizer: ${name} not found in ${path.resolve(dir)}. Put the tokenizer files (vocab.json and merges.txt) ` +
            'in the tokenizer/ folder of a diffusers model, or in <models>/tokenizers/<name>/ (for SD1.5: the files of openai/clip-vit-large-patch14).',
        );
      }
      return p;
    };
    const vocabPath = need('vocab.json');
    const mergesPath = need('merges.txt');
    const vj = readJson(vocabPath);
    if (!vj || Array.isArray(vj)) throw new Error(`${vocabPath}: expected a JSON object of token -> id`);
    const vocab = new Map<string, number>();
    for (const [k, v] of Object.entries(vj)) {
      if (typeof v !== 'number') throw new Error(`${vocabPath}: id of ${JSON.stringify(k)} is not a number`);
      vocab.set(k, v);
    }
    // Line 0 is "#version: 0.2"; transformers and openai/CLIP keep the next MAX_MERGES lines.
    const lines = readRegularFileSync(mergesPath, 'utf8').trim().split('\n');
    const start = lines[0]?.startsWith('#version') ? 1 : 0;
    const ranks = new Map<string, number>();
    lines.slice(start, start + MAX_MERGES).forEach((line, rank) => {
      const parts = line.trim().split(/\s+/);
      if (parts.length !== 2) throw new Error(`${mergesPath}: line "${line}" is not a pair of symbols`);
      ranks.set(`${parts[0]} ${parts[1]}`, rank); // a repeated pair keeps its last rank, as dict(zip(...)) does
    });
    const stm = readJson(path.join(dir, 'special_tokens_map.json')) ?? {};
    const tcfg = readJson(path.join(dir, 'tokenizer_config.json')) ?? {};
    const pick = (k: string, dflt: string) => tokenText(stm[k]) ?? tokenText(tcfg[k]) ?? dflt;
    const eos = pick('eos_token', '<|endoftext|>');
    const special = { bos: pick('bos_token', '<|startoftext|>'), eos, pad: pick('pad_token', eos), unk: pick('unk_token', eos) };
    const cfgLen = typeof tcfg.model_max_length === 'number' && tcfg.model_max_length <= 4096 ? tcfg.model_max_length : 77;
    return new ClipTokenizer(vocab, ranks, special, opts.maxLength ?? cfgLen, opts.cleaning ?? 'transformers');
  }

  /** Cleans text as the selected mode does (before the regex split). */
  clean(text: string): string {
    return this.cleaning === 'ftfy' ? cleanFtfy(text) : cleanTransformers(text);
  }

  /** BPE of one pre-token (already byte-encoded); the last symbol carries the "</w>" suffix. */
  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    let word = [...token];
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      // The adjacent pair with the lowest merge rank.
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      // Merge every non-overlapping occurrence, left to right (as the reference loop does).
      const merged: string[] = [];
      for (let i = 0; i < word.length;) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i++]!);
        }
      }
      word = merged;
    }
    this.cache.set(token, word);
    return word;
  }

  /** Token ids of the text, without BOS/EOS, untruncated. */
  tokenize(text: string): number[] {
    const ids: number[] = [];
    // Special-token strings are split out before cleaning (transformers' added-tokens trie).
    for (const piece of text.split(this.specialRe)) {
      const sp = this.specials.get(piece);
      if (sp !== undefined) {
        ids.push(sp);
        continue;
      }
      if (!piece) continue;
      for (const m of this.clean(piece).matchAll(PAT)) {
        const bytes = Buffer.from(m[0], 'utf8');
        let enc = '';
        for (const b of bytes) enc += BYTE_ENCODER[b];
        for (const sym of this.bpe(enc)) ids.push(this.vocab.get(sym) ?? this.unkId);
      }
    }
    return ids;
  }

  /**
   * `maxLength` ids: BOS, the text's tokens truncated to maxLength - 2, EOS, then padding.
   * Equals transformers' `tokenizer(text, padding="max_length", max_length=77, truncation=True)`.
   */
  encode(text: string): number[] {
    const body = this.tokenize(text).slice(0, this.maxLength - 2);
    const ids = [this.bosId, ...body, this.eosId];
    while (ids.length < this.maxLength) ids.push(this.padId);
    return ids;
  }
}
