/**
 * "Replace unsaved work?": New, Open, an example and a gallery image's workflow ask before they
 * replace a document with unsaved changes (the store's `discardAsk`, shown by DiscardDialog).
 * An empty canvas or a saved document is replaced without asking.
 */
import { isDirty, type EditorStore } from './store/index.js';

/** Resolves true when the document may be replaced (nothing unsaved, or the person chose to discard it). */
export function askDiscard(store: EditorStore, action: string): Promise<boolean> {
  const s = store.getState();
  if (!isDirty(s) || s.nodes.length === 0) return Promise.resolve(true);
  // A question still open is answered "no" by the new one.
  s.discardAsk?.resolve(false);
  return new Promise((resolve) =>
    store.setState({
      discardAsk: {
        action,
        resolve: (ok) => {
          store.setState({ discardAsk: null });
          resolve(ok);
        },
      },
    }),
  );
}
