import { ConnectionError, JetqError, QueueFullError } from "../errors.ts";

/** @internal What the window reports (the producer's telemetry). */
export interface WindowHooks {
  rejected(reason: "window_full" | "window_timeout"): void;
  blocked(waitedMs: number): void;
}

/** @internal The window's bounds (from the producer's options). */
export interface WindowLimits {
  readonly maxInFlight: number;
  readonly overflow: "block" | "reject";
  readonly blockTimeoutMs: number;
  readonly maxBlocked: number;
}

/** A caller waiting for a slot. */
interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  deadline: number;
  started: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * @internal The producer's bounded window: at most `maxInFlight` publishes taken (sent and not
 * confirmed, or about to be sent) at once. Beyond it the `overflow` policy decides: reject at
 * once, or wait in FIFO order (bounded by `maxBlocked`) until a slot frees, the deadline passes or
 * the caller's signal aborts. Waiters' deadlines are checked by {@link expire}, called from the
 * producer's sweep: no timer per wait.
 *
 * A slot freed while callers wait goes straight to the first of them: a new caller never
 * overtakes one already waiting.
 */
export class PublishWindow {
  readonly #limits: WindowLimits;
  readonly #hooks: WindowHooks;
  readonly #queue: string;
  #taken = 0;
  /** FIFO, so in deadline order; bounded by maxBlocked. */
  readonly #waiters: Waiter[] = [];
  #closedWith: Error | undefined;

  constructor(queue: string, limits: WindowLimits, hooks: WindowHooks) {
    this.#queue = queue;
    this.#limits = limits;
    this.#hooks = hooks;
  }

  /** Slots taken. */
  get taken(): number {
    return this.#taken;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Takes a slot if one is free and nobody waits for one; throws once {@link close}d. */
  tryTake(): boolean {
    if (this.#closedWith) throw this.#closedWith;
    if (this.#taken < this.#limits.maxInFlight && this.#waiters.length === 0) {
      this.#taken++;
      return true;
    }
    return false;
  }

  /**
   * Waits for a slot (after {@link tryTake} said no); resolves holding it.
   * @throws {QueueFullError} overflow is "reject", too many wait already, or the deadline passed.
   */
  wait(signal: AbortSignal | undefined): Promise<void> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const q = this.#queue;
    const { overflow, maxInFlight, maxBlocked, blockTimeoutMs } = this.#limits;
    if (overflow === "reject") {
      this.#hooks.rejected("window_full");
      return Promise.reject(new QueueFullError(`Publish window of queue "${q}" is full (${maxInFlight} unconfirmed); overflow is "reject"`, "window_full"));
    }
    if (this.#waiters.length >= maxBlocked) {
      this.#hooks.rejected("window_full");
      return Promise.reject(new QueueFullError(`Too many publishes (${maxBlocked}) already wait for the window of queue "${q}"`, "window_full"));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, deadline: Date.now() + blockTimeoutMs, started: performance.now(), signal, onAbort: undefined };
      if (signal) {
        w.onAbort = () => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          this.#end(w, signal.reason instanceof Error ? signal.reason : new JetqError("publish aborted"));
        };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      this.#waiters.push(w);
    });
  }

  /** A taken slot is free again: it goes to the first waiter, if any. */
  release(): void {
    const w = this.#waiters.shift();
    if (w === undefined || this.#closedWith) {
      this.#taken--;
      if (w) this.#end(w, this.#closedWith);
      return;
    }
    // The slot passes to the waiter: taken stays the same.
    this.#end(w, undefined);
  }

  /** Fails the waiters whose deadline passed (they are in deadline order). */
  expire(now: number): void {
    const q = this.#queue;
    while (this.#waiters.length > 0 && this.#waiters[0]!.deadline <= now) {
      const w = this.#waiters.shift()!;
      this.#hooks.rejected("window_timeout");
      this.#end(w, new QueueFullError(`Publish window of queue "${q}" stayed full for ${this.#limits.blockTimeoutMs} ms`, "window_timeout"));
    }
  }

  /** Fails every waiter with `err`, and every later {@link tryTake} and {@link wait}. */
  close(err: Error = new ConnectionError(`Producer for queue "${this.#queue}" is closed`)): void {
    this.#closedWith ??= err;
    for (const w of this.#waiters.splice(0)) this.#end(w, this.#closedWith);
  }

  #end(w: Waiter, err: Error | undefined): void {
    if (w.onAbort) w.signal!.removeEventListener("abort", w.onAbort);
    this.#hooks.blocked(performance.now() - w.started);
    if (err) w.reject(err);
    else w.resolve();
  }
}
