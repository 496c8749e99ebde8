/**
 * @internal Work deferred to the end of this turn of the event loop, all of it in one callback.
 *
 * The NATS client flushes its outbound buffer in a microtask, and Node runs microtasks between
 * two `setImmediate` callbacks: a worker with `results` that sent its `completed` records, its
 * acks and its pull request from three callbacks made three socket writes per turn (and the
 * server three reads), where a worker without results makes one. Deferred here, they run back to
 * back and leave in one write.
 *
 * Each caller defers at most one function per turn (it keeps its own "queued" flag), so the list
 * holds at most as many entries as there are callers.
 */
export class Turn {
  readonly #fns: Array<() => void> = [];
  #armed = false;
  readonly #run = (): void => {
    this.#armed = false;
    // What these defer in turn runs at the end of the next turn.
    const fns = this.#fns.splice(0);
    for (const fn of fns) fn();
  };

  /** Runs `fn` at the end of this turn, after what was deferred before it. `fn` must not throw. */
  defer(fn: () => void): void {
    this.#fns.push(fn);
    if (!this.#armed) {
      this.#armed = true;
      setImmediate(this.#run);
    }
  }
}
