import type { Msg, NatsConnection, PermissionViolationError } from "@nats-io/transport-node";
import { ConnectionError, TimeoutError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import { ConnectionHub, type TransportUser } from "./hub.ts";
import { Inbox } from "./inbox.ts";
import { ReplyTable } from "./replies.ts";

/** @internal Something sent with a reply subject, waiting for the server's answer. */
export interface Confirmable {
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/** @internal What a {@link Confirmer}'s errors say. */
export interface ConfirmerText {
  /** What the server did not confirm in time: "the ack", "the write". */
  what: string;
  /** The operation that failed when the inbox fails: "receive ack confirmations". */
  receive: string;
  /** The error when the connection closes with `n` confirmations waiting. */
  closed(n: number): string;
}

/**
 * @internal Confirmations without a client request per message, on the shared transport: one
 * wildcard inbox, answers matched by reply subject ({@link ReplyTable}: reused once answered), the
 * connection's one sweep timer ({@link ConnectionHub}) expiring late ones, a fresh inbox after a
 * reconnect, and every waiting confirmation failed at once when the connection closes or the
 * inbox cannot be subscribed. A client request per message (`JsMsg.ackAck()`, `js.publish()`)
 * costs a promise, a timer and, in @nats-io/nats-core 3.4, a cancellation `Error` each: most of
 * a confirmed drain's CPU in a profile. Subclasses send (acks, stream writes) and read answers.
 */
export abstract class Confirmer<W extends Confirmable> {
  protected readonly nc: NatsConnection;
  protected readonly timeoutMs: number;
  protected readonly pending: ReplyTable<W>;
  readonly #text: ConfirmerText;
  readonly #hub: ConnectionHub;
  readonly #inbox: Inbox;
  readonly #user: TransportUser = {
    sweep: (now) => this.#sweep(now),
    reconnected: () => {
      this.#inbox.rekey(this.timeoutMs + 1_000);
      this.pending.rekeyed();
    },
    closed: () => this.#connectionClosed(),
    denied: (e) => this.#denied(e),
  };
  readonly #expireOne = (w: W): void => w.reject(new TimeoutError(`the server did not confirm ${this.#text.what} within ${this.timeoutMs} ms`));
  #joined = false;

  constructor(nc: NatsConnection, timeoutMs: number, text: ConfirmerText) {
    this.nc = nc;
    this.timeoutMs = timeoutMs;
    this.#text = text;
    this.#hub = ConnectionHub.of(nc);
    this.#inbox = new Inbox(nc, (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix, (err, m) => this.#onAnswer(err, m));
    this.pending = new ReplyTable<W>(this.#inbox);
  }

  /** Confirmations waiting (tests). */
  get waiting(): number {
    return this.pending.size;
  }

  /** The inbox prefix answers come on now (tests). */
  get inboxPrefix(): string {
    return this.#inbox.prefix;
  }

  /** Subscribes the inbox (and joins the sweep) before the first send; throws what subscribing throws. */
  protected ensureSubscribed(): void {
    if (this.#inbox.subscribed) return;
    this.#inbox.open();
    if (this.#joined) return;
    this.#joined = true;
    this.#hub.join(this.#user, Math.min(250, Math.max(10, this.timeoutMs / 4)));
  }

  /** Settles `w` from its answer `m` (resolve, or reject with the server's error). */
  protected abstract answered(w: W, m: Msg): void;

  /** After each answer and each sweep: a subclass that is closing tears down once nothing waits. */
  protected settled(): void {}

  /** Leaves the sweep and closes the inbox. */
  protected teardown(): void {
    if (this.#joined) this.#hub.leave(this.#user);
    this.#joined = false;
    this.#inbox.close();
  }

  #onAnswer(err: Error | null, m: Msg): void {
    if (err) {
      const e = mapNatsError(err, this.#text.receive);
      this.pending.drain((w) => w.reject(e));
      return;
    }
    const w = this.pending.take(m.subject);
    if (w === undefined) return;
    this.answered(w, m);
    this.settled();
  }

  #sweep(now: number): void {
    this.#inbox.sweep(now);
    // One timeout for all, so insertion order is deadline order: stops at the first live entry.
    this.pending.expire(now, this.#expireOne);
    this.settled();
  }

  #connectionClosed(): void {
    const n = this.pending.size;
    const message = this.#text.closed(n);
    this.pending.drain((w) => w.reject(new ConnectionError(message)));
    this.teardown();
  }

  #denied(e: PermissionViolationError): void {
    if (e.operation !== "subscription" || !this.#inbox.owns(e.subject)) return;
    const err = mapNatsError(e, this.#text.receive);
    this.pending.drain((w) => w.reject(err));
  }
}
