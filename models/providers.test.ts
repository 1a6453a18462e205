import { describe, expect, expectTypeOf, it } from 'vitest';
import type { Provider as SessionProvider } from './onnx/session.js';
import { PROVIDERS, type Provider } from './providers.js';

describe('providers', () => {
  it('the session options take exactly the PROVIDERS list (checked by tsc), CPU first', () => {
    // models/onnx/session.ts still spells its Provider union out; this keeps the two equal until it imports this one.
    expectTypeOf<SessionProvider>().toEqualTypeOf<Provider>();
    expect(PROVIDERS[0]).toBe('cpu');
  });
});
