import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";

/** @internal Receives every message of an inbox; `current` is false for one retired by a reconnect. */
export type InboxHandler = (err: Error | null, msg: Msg, current: boolean) => void;

/**
 * @internal One wildcard subscription (`<prefix>.*`) that many requests share, each with its own
 * token: the muxed inbox of nats.js's `request()`, without a promise and a timer per request.
 *
 * After a reconnect {@link rekey} moves it to a fresh prefix, so a request sent from then on can
 * never be answered by a reply meant for one sent before. The old subscription is kept for a
 * while (late answers to old requests still find them) or dropped at once.
 */
export class Inbox {
  readonly #nc: NatsConnection;
  readonly #base: string | undefined;
  readonly #handler: InboxHandler;
  #prefix: string;
  #sub: Subscription | undefined;
  #next = 0;
  /** Subscriptions of earlier prefixes, kept until `until` for late answers. Bounded: one per reconnect within a timeout. */
  readonly #retired: Array<{ sub: Subscription; wildcard: string; until: number }> = [];

  /** `base`: the inbox prefix (`_INBOX` unless the connection or the user set another). */
  constructor(nc: NatsConnection, base: string | undefined, handler: InboxHandler) {
    this.#nc = nc;
    this.#base = base;
    this.#handler = handler;
    this.#prefix = createInbox(base);
  }

  /** The current prefix; replies come on `<prefix>.<token>`. */
  get prefix(): string {
    return this.#prefix;
  }

  /** The subject subscribed: `<prefix>.*`. */
  get wildcard(): string {
    return `${this.#prefix}.*`;
  }

  get subscribed(): boolean {
    return this.#sub !== undefined;
  }

  /** Subscriptions of earlier prefixes still kept. */
  get retired(): number {
    return this.#retired.length;
  }

  /** Subscribes unless it is already; throws what `nc.subscribe` throws (a closed connection). */
  open(): void {
    if (this.#sub) return;
    const sub: Subscription = this.#nc.subscribe(this.wildcard, {
      callback: (err, msg) => this.#handler(err, msg, sub === this.#sub),
    });
    this.#sub = sub;
  }

  /** A fresh token: base 36 of a counter that never repeats for this inbox. */
  token(): string {
    return (this.#next++).toString(36);
  }

  /** A fresh reply subject on the current prefix. */
  subject(): string {
    return `${this.#prefix}.${this.token()}`;
  }

  /** Whether `subject` is on the current prefix (not on one retired by a reconnect). */
  current(subject: string): boolean {
    return subject.startsWith(this.#prefix) && subject.charCodeAt(this.#prefix.length) === 46;
  }

  /** The token of a reply subject on the current prefix (allocates: use on rare paths). */
  tokenOf(subject: string): string {
    return subject.slice(this.#prefix.length + 1);
  }

  /** Whether `wildcard` is the subject of this inbox, current or retired (permission errors). */
  owns(wildcard: string): boolean {
    return wildcard === this.wildcard || this.#retired.some((r) => r.wildcard === wildcard);
  }

  /**
   * Moves to a fresh prefix. The old subscription is kept `keepMs` for late answers (0: dropped
   * now). The next {@link open} subscribes the new prefix.
   */
  rekey(keepMs: number, now = Date.now()): void {
    const old = this.#sub;
    const wildcard = this.wildcard;
    this.#sub = undefined;
    this.#prefix = createInbox(this.#base);
    if (!old) return;
    if (keepMs > 0) this.#retired.push({ sub: old, wildcard, until: now + keepMs });
    else unsubscribe(old);
  }

  /** Drops retired subscriptions whose time is up. */
  sweep(now: number): void {
    while (this.#retired.length > 0 && this.#retired[0]!.until <= now) unsubscribe(this.#retired.shift()!.sub);
  }

  /** Unsubscribes everything. */
  close(): void {
    for (const r of this.#retired.splice(0)) unsubscribe(r.sub);
    if (this.#sub) unsubscribe(this.#sub);
    this.#sub = undefined;
  }
}

function unsubscribe(sub: Subscription): void {
  try {
    sub.unsubscribe();
  } catch {
    // a closed connection: the subscription is gone with it
  }
}
