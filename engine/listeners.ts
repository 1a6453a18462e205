/**
 * A set of event listeners: `emit` calls each (a listener that throws does not stop the others or the run),
 * `add` returns the function that removes it. The engine's run events and the farm's go through one each.
 */
export function listenerSet<E>(): { emit(e: E): void; add(l: (e: E) => void): () => void } {
  const listeners = new Set<(e: E) => void>();
  return {
    emit(e) {
      for (const l of [...listeners]) {
        try {
          l(e);
        } catch {
          /* a listener's bug is not the run's */
        }
      }
    },
    add(l) {
      listeners.add(l);
      return () => {
        listeners.delete(l);
      };
    },
  };
}
