import { describe, expectTypeOf, it } from 'vitest';
import type { Provider as SessionProvider } from './onnx/session.js';
import type { Provider } from './providers.js';

describe('providers', () => {
  it('the session options take exactly the PROVIDERS list (checked by tsc)', () => {
    // models/onnx/session.ts spells its own Provider union out; this keeps the two equal.
    expectTypeOf<SessionProvider>().toEqualTypeOf<Provider>();
  });
});
