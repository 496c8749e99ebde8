import type { Msg, NatsConnection, PermissionViolationError } from "@nats-io/transport-node";
import { ConnectionError, JetqError, TimeoutError } from "../errors.ts";
import { mapNatsError, noResponders } from "../natserr.ts";
import { ConnectionHub, type TransportUser } from "../transport/hub.ts";
import { Inbox } from "../transport/inbox.ts";
import { ReplyTable } from "../transport/replies.ts";
import type { Delivered } from "./pull.ts";

/** An ack sent with a reply subject, waiting for the server's confirmation. */
interface Waiting {
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/**
 * Confirmed acks without a client request per job. `JsMsg.ackAck()` goes through the client's
 * `RequestOne`, which in @nats-io/nats-core 3.4 builds an `Error` on every successful request
 * (its resolver calls `cancel()`, which creates `new RequestError("cancelled")`), arms a timer,
 * and with async traces on builds two more `Error`s: most of a confirmed drain's CPU in a
 * profile. This sends the same protocol message (`+ACK` with a reply subject) with the reply on
 * the shared transport: one wildcard inbox per worker, answers matched by subject (reused once
 * answered, like the producer's), the connection's one sweep timer, a fresh inbox after a
 * reconnect, and every waiting confirmation failed at once when the connection closes.
 */
/** @internal */
export class AckConfirmer {
  readonly #nc: NatsConnection;
  readonly #timeoutMs: number;
  readonly #hub: ConnectionHub;
  readonly #inbox: Inbox;
  readonly #pending: ReplyTable<Waiting>;
  readonly #user: TransportUser = {
    sweep: (now) => this.#sweep(now),
    reconnected: () => {
      this.#inbox.rekey(this.#timeoutMs + 1_000);
      this.#pending.rekeyed();
    },
    closed: () => this.#connectionClosed(),
    denied: (e) => this.#denied(e),
  };
  readonly #expireOne = (w: Waiting): void => w.reject(new TimeoutError(`the server did not confirm the ack within ${this.#timeoutMs} ms`));
  #joined = false;
  #closing = false;
  /** Ack subjects and reply subjects to send at the end of this turn, in pairs. Bounded by concurrency. */
  readonly #outbox: string[] = [];

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#hub = ConnectionHub.of(nc);
    this.#inbox = new Inbox(nc, (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix, (err, m) => this.#onAnswer(err, m));
    this.#pending = new ReplyTable<Waiting>(this.#inbox);
  }

  /** Confirmations waiting (tests). */
  get waiting(): number {
    return this.#pending.size;
  }

  /** The inbox prefix answers come on now (tests). */
  get inboxPrefix(): string {
    return this.#inbox.prefix;
  }

  /** Acks `msg` and resolves once the server confirmed it; rejects on timeout, a server error or a closed connection. */
  confirm(msg: Delivered): Promise<void> {
    const ack = msg.reply;
    this.#closing = false;
    return new Promise<void>((resolve, reject) => {
      try {
        if (!this.#inbox.subscribed) this.#subscribe();
      } catch (err) {
        reject(mapNatsError(err, "confirm an ack"));
        return;
      }
      const reply = this.#pending.add({ deadline: Date.now() + this.#timeoutMs, resolve, reject });
      // Acks of one turn go out together (one socket write rather than one per job).
      this.#outbox.push(ack, reply);
      if (this.#outbox.length === 2) setImmediate(() => this.#send());
    });
  }

  /** Releases the subscription once nothing awaits a confirmation (at once if nothing does). */
  close(): void {
    this.#closing = true;
    if (this.#pending.size === 0) this.#teardown();
  }

  #send(): void {
    const out = this.#outbox.splice(0);
    for (let i = 0; i < out.length; i += 2) {
      const reply = out[i + 1]!;
      try {
        this.#nc.publish(out[i]!, "+ACK", { reply });
      } catch (err) {
        this.#pending.cancel(reply)?.reject(mapNatsError(err, "send an ack"));
      }
    }
  }

  #subscribe(): void {
    this.#inbox.open();
    if (this.#joined) return;
    this.#joined = true;
    this.#hub.join(this.#user, Math.min(250, Math.max(10, this.#timeoutMs / 4)));
  }

  #onAnswer(err: Error | null, m: Msg): void {
    if (err) {
      const e = mapNatsError(err, "receive ack confirmations");
      this.#pending.drain((w) => w.reject(e));
      return;
    }
    const w = this.#pending.take(m.subject);
    if (w === undefined) return;
    const h = m.headers;
    if (h !== undefined && h.hasError) {
      const what = "confirm the ack";
      w.reject(h.code === 503 ? noResponders("consumer", what) : new JetqError(`${what}: the server answered ${h.code} ${h.description}`));
    } else w.resolve();
    if (this.#closing && this.#pending.size === 0) this.#teardown();
  }

  #sweep(now: number): void {
    this.#inbox.sweep(now);
    // One timeout for all, so insertion order is deadline order: stops at the first live entry.
    this.#pending.expire(now, this.#expireOne);
    if (this.#closing && this.#pending.size === 0) this.#teardown();
  }

  #connectionClosed(): void {
    const n = this.#pending.size;
    this.#pending.drain((w) =>
      w.reject(new ConnectionError(`the NATS connection closed with ${n} ack${n === 1 ? "" : "s"} not confirmed by the server; a job whose ack did not arrive is delivered again after ackWaitMs`)),
    );
    this.#teardown();
  }

  #denied(e: PermissionViolationError): void {
    if (e.operation !== "subscription" || !this.#inbox.owns(e.subject)) return;
    const err = mapNatsError(e, "receive ack confirmations");
    this.#pending.drain((w) => w.reject(err));
  }

  #teardown(): void {
    this.#hub.leave(this.#user);
    this.#joined = false;
    this.#inbox.close();
  }
}
