import type { Inbox } from "./inbox.ts";

/** @internal What the table needs of a request: when it gives up waiting. */
export interface Deadlined {
  readonly deadline: number;
}

/**
 * @internal Requests waiting for one answer each, by reply subject, on one {@link Inbox}.
 *
 * A reply subject is reused once its request was answered: the server answers a publish (or an
 * ack with a reply) once, so nothing more can arrive on it for the old request. One whose request
 * expired, or was failed without an answer, is never reused (a late answer must not settle a
 * later request), so at most as many subjects exist as requests are open at once. Reuse matters
 * to the server more than to us: it caches where each subject goes, and a new subject per request
 * misses that cache on every answer (7.6 against 6.8 µs of server CPU per publish in a scratch
 * run; see BENCHMARKS.md). After a reconnect the free subjects are forgotten, and answered ones of
 * the old prefix are not taken back: see {@link Inbox.rekey}.
 *
 * Every request of a table has the same timeout, so insertion order is deadline order and the
 * sweep stops at the first live one.
 */
export class ReplyTable<P extends Deadlined> {
  readonly #inbox: Inbox;
  readonly #pending = new Map<string, P>();
  /** Answered subjects of the current prefix, free for the next request. Bounded by the most open at once. */
  readonly #free: string[] = [];

  constructor(inbox: Inbox) {
    this.#inbox = inbox;
  }

  /** Requests waiting. */
  get size(): number {
    return this.#pending.size;
  }

  /** Subjects free for reuse (tests). */
  get free(): number {
    return this.#free.length;
  }

  /** Registers `p` and returns the reply subject to send it with. */
  add(p: P): string {
    const reply = this.#free.pop() ?? this.#inbox.subject();
    this.#pending.set(reply, p);
    return reply;
  }

  /** Withdraws a request that could not be sent; its subject is free again. */
  cancel(reply: string): P | undefined {
    const p = this.#pending.get(reply);
    if (p === undefined) return undefined;
    this.#pending.delete(reply);
    if (this.#inbox.current(reply)) this.#free.push(reply);
    return p;
  }

  /** The request `reply` answers, removed; `undefined` when none waits on it (expired, or not ours). */
  take(reply: string): P | undefined {
    // The same as cancel: an answered subject can carry the next request.
    return this.cancel(reply);
  }

  /** Removes the requests whose deadline passed, oldest first, and hands each to `each`. */
  expire(now: number, each: (p: P) => void): void {
    if (this.#pending.size === 0) return;
    for (const [reply, p] of this.#pending) {
      if (p.deadline > now) break;
      this.#pending.delete(reply);
      each(p);
    }
  }

  /** Removes every request and hands each to `each` (the connection closed); their subjects are retired. */
  drain(each: (p: P) => void): void {
    for (const [reply, p] of this.#pending) {
      this.#pending.delete(reply);
      each(p);
    }
  }

  /** The inbox moved to a fresh prefix: forget the free subjects of the old one. */
  rekeyed(): void {
    this.#free.length = 0;
  }
}
