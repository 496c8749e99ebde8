import { createInbox, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { ConnectionError, JetqError, TimeoutError } from "../errors.ts";
import type { Delivered } from "./pull.ts";

/**
 * Confirmed acks without a client request per job. `JsMsg.ackAck()` goes through the client's
 * `RequestOne`, which in @nats-io/nats-core 3.4 builds an `Error` on every successful request
 * (its resolver calls `cancel()`, which creates `new RequestError("cancelled")`), arms a timer,
 * and with async traces on builds two more `Error`s: most of a confirmed drain's CPU in a
 * profile. This sends the same protocol message (`+ACK` with a reply subject) with the reply on
 * one wildcard inbox subscription per worker, matches the server's answer by token, and lets one
 * timer sweep expired entries: the PublishAsync pattern the producer uses for PubAcks.
 */
/** @internal */
export class AckConfirmer {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #pending = new Map<string, { deadline: number; resolve: () => void; reject: (e: Error) => void }>();
  #sub: Subscription | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #next = 0;
  #closing = false;
  /** Ack subjects and tokens to send at the end of this turn, in pairs. Bounded by concurrency. */
  readonly #outbox: string[] = [];

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#prefix = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  }

  /** Acks `msg` and resolves once the server confirmed it; rejects on timeout or a server error. */
  confirm(msg: Delivered): Promise<void> {
    const reply = msg.reply;
    this.#closing = false;
    this.#ensureSubscribed();
    const token = (this.#next++).toString(36);
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(token, { deadline: Date.now() + this.#timeoutMs, resolve, reject });
      // Acks of one turn go out together (one socket write rather than one per job).
      this.#outbox.push(reply, token);
      if (this.#outbox.length === 2) setImmediate(() => this.#send());
    });
  }

  #send(): void {
    const out = this.#outbox.splice(0);
    for (let i = 0; i < out.length; i += 2) {
      const token = out[i + 1]!;
      try {
        this.#nc.publish(out[i]!, "+ACK", { reply: `${this.#prefix}.${token}` });
      } catch (err) {
        const p = this.#pending.get(token);
        this.#pending.delete(token);
        p?.reject(err as Error);
      }
    }
  }

  /** Releases the subscription once nothing awaits a confirmation (at once if nothing does). */
  close(): void {
    this.#closing = true;
    if (this.#pending.size === 0) this.#teardown();
  }

  #ensureSubscribed(): void {
    if (this.#sub) return;
    const cut = this.#prefix.length + 1;
    this.#sub = this.#nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, m) => {
        if (err) {
          for (const [token, p] of this.#pending) {
            this.#pending.delete(token);
            p.reject(err);
          }
          return;
        }
        const token = m.subject.slice(cut);
        const p = this.#pending.get(token);
        if (!p) return;
        this.#pending.delete(token);
        if (m.headers && m.headers.hasError) {
          const code = m.headers.code;
          p.reject(
            code === 503
              ? new ConnectionError(`no server answered the ack (the queue's consumer may be gone)`)
              : new JetqError(`the server answered the ack with ${code} ${m.headers.description}`),
          );
        } else p.resolve();
        if (this.#closing && this.#pending.size === 0) this.#teardown();
      },
    });
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(250, Math.max(10, this.#timeoutMs / 4)));
    this.#sweeper.unref();
  }

  #sweep(): void {
    const now = Date.now();
    // One timeout for all, so insertion order is deadline order: stop at the first live entry.
    for (const [token, p] of this.#pending) {
      if (p.deadline > now) break;
      this.#pending.delete(token);
      p.reject(new TimeoutError(`the server did not confirm the ack within ${this.#timeoutMs} ms`));
    }
    if (this.#closing && this.#pending.size === 0) this.#teardown();
  }

  #teardown(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#sub?.unsubscribe();
    this.#sub = undefined;
  }
}
