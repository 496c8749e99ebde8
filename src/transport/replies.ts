import type { Inbox } from "./inbox.ts";

/** @internal What the table needs of a request: when it gives up waiting. */
export interface Deadlined {
  readonly deadline: number;
}

const ZERO = 48;

/**
 * @internal Requests waiting for one answer each, by reply subject, on one {@link Inbox} that
 * the table alone makes subjects for.
 *
 * A request holds a *slot*: an index into arrays, with the slot's reply subject
 * `<prefix>.<slot>` made once. An answer's slot is read from the digits of its subject and the
 * subject compared with the slot's, so matching an answer costs no hashing and no string built
 * per request (a `Map` by subject and a fresh subject per request cost about 0.5 µs per publish at
 * full rate).
 *
 * A slot is reused once its request was answered: the server answers a publish (or an ack with a
 * reply) once, so nothing more can arrive on its subject for the old request. A slot whose
 * request expired, or was failed without an answer, gets a fresh subject (`<prefix>.<slot>g<n>`)
 * before it is used again (a late answer to the old subject must not settle a later request),
 * so at most as many slots exist as requests were open at once. Reuse matters to the server more
 * than to us: it caches where each subject goes, and a new subject per request misses that cache
 * on every answer (7.6 against 6.8 µs of server CPU per publish in a scratch run; see
 * BENCHMARKS.md). After a reconnect ({@link rekeyed}) every slot moves to the inbox's fresh
 * prefix, an open one once its request is over.
 */
export class ReplyTable<P extends Deadlined> {
  readonly #inbox: Inbox;
  /** Slot → its reply subject. */
  readonly #subjects: string[] = [];
  /** Slot → the request it holds (undefined: free). */
  readonly #entries: Array<P | undefined> = [];
  /** Slot → the inbox prefix generation its subject was made in. */
  readonly #epochs: number[] = [];
  /** Free slots; the next request takes the last. Bounded by the most open at once. */
  #free: number[] = [];
  #open = 0;
  #epoch = 0;
  #generation = 0;
  /** No open request has an earlier deadline than this (a lower bound: sweeps skip until then). */
  #earliest = Infinity;

  constructor(inbox: Inbox) {
    this.#inbox = inbox;
  }

  /** Requests waiting. */
  get size(): number {
    return this.#open;
  }

  /** Slots free for reuse (tests). */
  get free(): number {
    return this.#free.length;
  }

  /** Registers `p` and returns the reply subject to send it with. */
  add(p: P): string {
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = this.#subjects.length;
      this.#subjects.push(`${this.#inbox.prefix}.${slot}`);
      this.#entries.push(undefined);
      this.#epochs.push(this.#epoch);
    }
    this.#entries[slot] = p;
    this.#open++;
    if (p.deadline < this.#earliest) this.#earliest = p.deadline;
    return this.#subjects[slot]!;
  }

  /** Withdraws a request that could not be sent; its subject is free again. */
  cancel(reply: string): P | undefined {
    return this.take(reply);
  }

  /** The request `reply` answers, removed; `undefined` when none waits on it (expired, or not ours). */
  take(reply: string): P | undefined {
    const dot = reply.lastIndexOf(".");
    const n = reply.length;
    if (dot < 0 || dot === n - 1) return undefined;
    let slot = 0;
    for (let i = dot + 1; i < n; i++) {
      const d = reply.charCodeAt(i) - ZERO;
      if (d < 0 || d > 9) break;
      slot = slot * 10 + d;
    }
    const p = this.#entries[slot];
    if (p === undefined || this.#subjects[slot] !== reply) return undefined;
    this.#entries[slot] = undefined;
    this.#open--;
    // An answered subject can carry the next request, unless the inbox moved on since it was made.
    if (this.#epochs[slot] !== this.#epoch) this.#renew(slot);
    this.#free.push(slot);
    return p;
  }

  /** Removes the requests whose deadline passed, oldest first, and hands each to `each`. */
  expire(now: number, each: (p: P) => void): void {
    if (this.#open === 0 || now < this.#earliest) return;
    let due: number[] | undefined;
    let earliest = Infinity;
    const entries = this.#entries;
    for (let slot = 0; slot < entries.length; slot++) {
      const p = entries[slot];
      if (p === undefined) continue;
      if (p.deadline <= now) (due ??= []).push(slot);
      else if (p.deadline < earliest) earliest = p.deadline;
    }
    this.#earliest = earliest;
    if (due === undefined) return;
    due.sort((a, b) => entries[a]!.deadline - entries[b]!.deadline);
    const out = this.#retire(due);
    for (const p of out) each(p);
  }

  /** Removes every request and hands each to `each` (the connection closed); their subjects are retired. */
  drain(each: (p: P) => void): void {
    if (this.#open === 0) return;
    const open: number[] = [];
    for (let slot = 0; slot < this.#entries.length; slot++) if (this.#entries[slot] !== undefined) open.push(slot);
    const out = this.#retire(open);
    out.sort((a, b) => a.deadline - b.deadline);
    this.#earliest = Infinity;
    for (const p of out) each(p);
  }

  /** The inbox moved to a fresh prefix: free slots move now, open ones when their request is over. */
  rekeyed(): void {
    this.#epoch++;
    for (const slot of this.#free) this.#renew(slot);
  }

  /**
   * Ends open slots' requests without an answer and returns them: each slot gets a fresh subject
   * and is used after the answered ones.
   */
  #retire(slots: number[]): P[] {
    const out: P[] = [];
    for (const slot of slots) {
      out.push(this.#entries[slot]!);
      this.#entries[slot] = undefined;
      this.#open--;
      this.#renew(slot);
    }
    this.#free = slots.concat(this.#free);
    return out;
  }

  /** Gives `slot` a subject never used before, on the inbox's current prefix. */
  #renew(slot: number): void {
    this.#subjects[slot] = `${this.#inbox.prefix}.${slot}g${(this.#generation++).toString(36)}`;
    this.#epochs[slot] = this.#epoch;
  }
}
