import { describe, expect, it } from 'vitest';
import { PreviewThrottle } from './runtime/sampling.js';

describe('PreviewThrottle', () => {
  it('sends the first preview, then at most one per interval, and always the last step', () => {
    let now = 0;
    const th = new PreviewThrottle(250, () => now);
    const sent: number[] = [];
    for (let i = 0; i < 50; i++) {
      now = i * 40;
      if (th.due(i === 49)) sent.push(i);
    } // 40 ms steps
    expect(sent).toEqual([0, 7, 14, 21, 28, 35, 42, 49]);
  });
});
