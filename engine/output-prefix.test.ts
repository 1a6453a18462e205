/** Save Image's filename prefix: inside the output folder only, and no Windows device names. */
import { describe, expect, it } from 'vitest';
import { checkOutputPrefix } from './paths.js';

describe('filename prefixes naming Windows devices', () => {
  it('are refused in any segment, in any case, with or without an extension', () => {
    for (const p of [
      'nul/x',
      'con/x',
      'CON/x',
      'sweeps/aux/x',
      'prn',
      'com1/x',
      'LPT9/x',
      'nul.txt/x',
      'a\\\\con\\\\b',
      'con .x/y',
      'com\u00b9/x',
      'out/nul.tar.gz',
    ]) {
      expect(checkOutputPrefix(p), p).toMatch(/a device name on Windows/);
    }
  });

  it('names that only contain them are fine', () => {
    for (const p of ['console/x', 'nullable', 'com10/x', 'lpt/x', 'aux_files/x', 'my-con', 'ipadapter', 'sweeps/a/img'])
      expect(checkOutputPrefix(p), p).toBeNull();
  });
});
