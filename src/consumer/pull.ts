import { createInbox, type Msg, type MsgHdrs, type NatsConnection, PermissionViolationError, type Status, type Subscription } from "@nats-io/transport-node";
import { ConnectionError, JetqError, PermissionError, QueueNotFoundError } from "../errors.ts";
import { deliveryOf } from "./delivery.ts";

const ACK = "+ACK";
const WPI = "+WPI";
const TERM = "+TERM";
const NAK = "-NAK";

/** @internal What the worker needs of a delivered JetStream message. */
export interface Delivered {
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  /** The ack subject. */
  readonly reply: string;
  readonly seq: number;
  readonly attempt: number;
  /** When the job was stored, in ms since the epoch (from the ack subject). */
  readonly storedAtMs: number;
  ack(): void;
  /** Hands the job back; redelivered after `delayMs` (at once without). */
  nak(delayMs?: number): void;
  /** Ends delivery for good (removes it from a work queue). */
  term(): void;
  /** Extends the ack deadline (in-progress ack). */
  working(): void;
}

/**
 * A job message pulled from the queue's consumer. Acks are the JetStream ack protocol: a core
 * publish of `+ACK`, `-NAK`, `+TERM` or `+WPI` to the message's reply subject (what `JsMsg` sends).
 * After the final answer (ack, nak or term) later ones are ignored.
 */
class PulledMsg implements Delivered {
  readonly #nc: NatsConnection;
  readonly #msg: Msg;
  readonly seq: number;
  readonly attempt: number;
  #done = false;
  constructor(nc: NatsConnection, msg: Msg, seq: number, attempt: number) {
    this.#nc = nc;
    this.#msg = msg;
    this.seq = seq;
    this.attempt = attempt;
  }
  get data(): Uint8Array {
    return this.#msg.data;
  }
  get headers(): MsgHdrs | undefined {
    return this.#msg.headers;
  }
  get reply(): string {
    return this.#msg.reply!;
  }
  get storedAtMs(): number {
    // $JS.ACK.[<domain>.<hash>.]<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>]
    const t = this.reply.split(".");
    const ts = t.length === 9 ? t[7] : t[9];
    return Math.floor(Number(ts) / 1e6);
  }
  ack(): void {
    this.#final(ACK);
  }
  nak(delayMs?: number): void {
    this.#final(delayMs && delayMs > 0 ? `${NAK} ${JSON.stringify({ delay: Math.round(delayMs * 1e6) })}` : NAK);
  }
  term(): void {
    this.#final(TERM);
  }
  working(): void {
    if (!this.#done) this.#nc.publish(this.reply, WPI);
  }
  #final(what: string): void {
    if (this.#done) return;
    this.#done = true;
    this.#nc.publish(this.reply, what);
  }
}

export interface PullerHooks {
  /** A job arrived (counts against the open request). */
  message(m: Delivered): void;
  /** The open request ended with `unfilled` of its jobs not sent (0 when it was filled). */
  ended(unfilled: number): void;
  /** Pulling cannot go on as is (permission, consumer gone, bad request); the worker backs off. */
  error(err: Error): void;
}

/**
 * Pulls jobs from a durable pull consumer with one inbox subscription for the worker's lifetime
 * and at most one open pull request at a time, so every job that arrives belongs to that request
 * and the worker knows exactly how many it may still receive.
 *
 * `consumer.fetch()` made a new inbox subscription (SUB and UNSUB to the server), a status
 * iterator and a heartbeat monitor per pull: on a 1,000,000-job drain that garbage made V8 grow
 * the worker's heap to twice its size for 10,000 jobs. `consume()` keeps one subscription but
 * re-pulls as jobs arrive rather than as handlers free up, so its buffer grows behind busy
 * handlers. This keeps `consume()`'s one subscription and `fetch()`'s exact window.
 *
 * A request ends when all its jobs arrived, when the server says so (408 expired, 409, 404), or
 * when the server cannot have it any more (a reconnect, or its expiry plus a grace period passed
 * without an answer, e.g. a server restart that lost it).
 */
export class Puller {
  readonly #nc: NatsConnection;
  readonly #subject: string;
  readonly #prefix: string;
  readonly #expiresMs: number;
  readonly #hooks: PullerHooks;
  readonly #where: string;
  #sub: Subscription | undefined;
  #status: (AsyncIterable<Status> & { stop?: () => void }) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #next = 0;
  /** The open request: its reply token, how many jobs it asked for and got, and when to give up on it. */
  #open: { token: string; want: number; got: number; giveUpAt: number } | undefined;

  constructor(nc: NatsConnection, stream: string, consumer: string, expiresMs: number, hooks: PullerHooks, apiPrefix = "$JS.API") {
    this.#nc = nc;
    this.#subject = `${apiPrefix}.CONSUMER.MSG.NEXT.${stream}.${consumer}`;
    this.#prefix = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
    this.#expiresMs = expiresMs;
    this.#hooks = hooks;
    this.#where = `pull jobs from ${stream}/${consumer}`;
  }

  /** Whether a request is open (the worker may not ask for more until it ends). */
  get busy(): boolean {
    return this.#open !== undefined;
  }

  /** Asks for up to `n` jobs. Only when no request is open. */
  pull(n: number): void {
    if (this.#open) throw new JetqError("internal: a pull request is already open");
    this.#ensureSubscribed();
    const token = (this.#next++).toString(36);
    this.#open = { token, want: n, got: 0, giveUpAt: Date.now() + this.#expiresMs + Math.max(2_000, this.#expiresMs / 2) };
    try {
      this.#nc.publish(this.#subject, JSON.stringify({ batch: n, expires: this.#expiresMs * 1e6 }), { reply: `${this.#prefix}.${token}` });
    } catch (err) {
      this.#end(n);
      this.#hooks.error(new ConnectionError(`${this.#where}: ${(err as Error).message}`, { cause: err }));
    }
  }

  /** Stops: no more jobs arrive after this (the server drops requests whose inbox has no subscriber). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    this.#status?.stop?.();
    this.#status = undefined;
    const open = this.#open;
    if (open) this.#end(open.want - open.got);
  }

  #end(unfilled: number): void {
    this.#open = undefined;
    this.#hooks.ended(unfilled);
  }

  #ensureSubscribed(): void {
    if (this.#sub) return;
    const cut = this.#prefix.length + 1;
    this.#sub = this.#nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, m) => {
        if (err) {
          const open = this.#open;
          if (open) this.#end(open.want - open.got);
          this.#hooks.error(err instanceof PermissionViolationError
            ? new PermissionError(`${this.#where}: ${err.message}. Grant this NATS user subscribe permission on its inbox.`, { cause: err })
            : new ConnectionError(`${this.#where}: ${err.message}`, { cause: err }));
          return;
        }
        if (m.reply) this.#onJob(m);
        else this.#onStatus(m.subject.slice(cut), m);
      },
    });
    // A request sent before a reconnect is gone (the old connection's inbox interest went with it).
    this.#timer = setInterval(() => {
      const open = this.#open;
      if (open && Date.now() > open.giveUpAt) this.#end(open.want - open.got);
    }, 1_000);
    this.#timer.unref();
    this.#watchStatus();
  }

  #onJob(m: Msg): void {
    const d = deliveryOf(m.reply!);
    if (d === undefined) return; // not a JetStream delivery: nothing to ack
    this.#hooks.message(new PulledMsg(this.#nc, m, d.seq, d.attempt));
    const open = this.#open;
    if (open && ++open.got >= open.want) this.#end(0);
  }

  #onStatus(token: string, m: Msg): void {
    const open = this.#open;
    if (!open || open.token !== token) return; // an answer to a request already ended
    const code = m.headers?.code ?? 0;
    if (code === 100) return; // idle heartbeat (not requested, but harmless)
    const unfilled = open.want - open.got;
    this.#end(unfilled);
    const description = m.headers?.description ?? "";
    if (code === 408 || code === 404) return; // expired or nothing there: ask again
    if (code === 409) {
      if (/consumer (is )?deleted/i.test(description)) {
        this.#hooks.error(new QueueNotFoundError(`${this.#where}: the consumer was deleted. Provision the queue again (provisionQueue() or \`jetq provision\`).`));
      } else if (!/leadership change|max ?waiting|max ?request/i.test(description)) {
        this.#hooks.error(new JetqError(`${this.#where}: the server answered 409 ${description}`));
      }
      return;
    }
    if (code === 503) {
      this.#hooks.error(new ConnectionError(`${this.#where}: no JetStream server answered (503). Is JetStream enabled and the queue provisioned?`));
      return;
    }
    this.#hooks.error(new JetqError(`${this.#where}: the server answered ${code} ${description}`));
  }

  /** Permission violations and reconnects arrive on the connection's status stream. */
  #watchStatus(): void {
    const status = this.#nc.status() as AsyncIterable<Status> & { stop?: () => void };
    this.#status = status;
    void (async () => {
      try {
        for await (const s of status) {
          if (s.type === "reconnect") {
            const open = this.#open;
            if (open) this.#end(open.want - open.got);
          } else if (s.type === "error" && s.error instanceof PermissionViolationError) {
            const e = s.error;
            if ((e.operation === "publish" && e.subject === this.#subject) || (e.operation === "subscription" && e.subject === `${this.#prefix}.*`)) {
              const open = this.#open;
              if (open) this.#end(open.want - open.got);
              this.#hooks.error(new PermissionError(`${this.#where}: ${e.message}. Grant this NATS user that permission.`, { cause: e }));
            }
          }
        }
      } catch {
        // the status stream ends with the connection
      }
    })();
  }
}
