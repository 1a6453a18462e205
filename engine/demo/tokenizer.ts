/**
 * A small valid CLIP BPE vocabulary for the demo set: openai/CLIP's layout (the 256 byte
 * symbols, the same with "</w>", one entry per merge, then <|startoftext|> and <|endoftext|>),
 * with merges that spell a few hundred prompt words. Any text tokenizes (unknown words fall
 * back to byte symbols), so the CLIP tokenizer runs unchanged on it.
 */
import { bytesToUnicode } from '../../models/tokenizer.js';

const WORDS = `a an the of in on at with and or by for to from photo photograph picture image portrait landscape painting
drawing sketch illustration render style art artwork cat dog bird horse fox owl lion tiger bear rabbit fish flower flowers tree
trees forest mountain mountains river lake sea ocean beach sky sun moon star stars cloud clouds rain snow city street house
castle garden field night day morning evening sunset sunrise light dark bright colorful red green blue yellow orange purple pink
black white gray golden silver man woman girl boy person people face eyes hair smile old young child beautiful detailed high
quality best masterpiece sharp focus soft blurry lowres low worst ugly bad cinematic lighting realistic oil watercolor
digital anime cartoon studio close up wide shot view background foreground`
  .split(/\s+/)
  .filter(Boolean);

export interface DemoTokenizer {
  vocabJson: string;
  merges: string;
  vocabSize: number;
  bosId: number;
  eosId: number;
}

export function demoTokenizer(): DemoTokenizer {
  const bytes = bytesToUnicode();
  const vocab: string[] = [...bytes, ...bytes.map((b) => `${b}</w>`)];
  const known = new Set(vocab);
  const merges: string[] = [];
  // Left-to-right merges per word: "c a" -> "ca", "ca t</w>" -> "cat</w>" (words are ASCII).
  for (const w of [...new Set(WORDS)]) {
    const sym = [...w];
    sym[sym.length - 1] += '</w>';
    let cur = sym[0];
    for (let i = 1; i < sym.length; i++) {
      const next = cur + sym[i];
      if (!known.has(next)) {
        merges.push(`${cur} ${sym[i]}`);
        vocab.push(next);
        known.add(next);
      }
      cur = next;
    }
  }
  const bosId = vocab.length;
  vocab.push('<|startoftext|>', '<|endoftext|>');
  const obj: Record<string, number> = {};
  vocab.forEach((t, i) => {
    obj[t] = i;
  });
  return {
    vocabJson: JSON.stringify(obj),
    merges: `#version: 0.2\n${merges.join('\n')}\n`,
    vocabSize: vocab.length,
    bosId,
    eosId: bosId + 1,
  };
}
