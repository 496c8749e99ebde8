import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { JetqError } from "../errors.ts";
import { mapNatsError, noResponders } from "../natserr.ts";
import { type Confirmable, Confirmer } from "../transport/confirmer.ts";
import type { Delivered } from "./pull.ts";

/**
 * @internal Confirmed acks without a client request per job. `JsMsg.ackAck()` goes through the
 * client's `RequestOne`, which in @nats-io/nats-core 3.4 builds an `Error` on every successful
 * request (its resolver calls `cancel()`, which creates `new RequestError("cancelled")`), arms a
 * timer, and with async traces on builds two more `Error`s: most of a confirmed drain's CPU in a
 * profile. This sends the same protocol message (`+ACK` with a reply subject) with the reply on
 * the shared transport ({@link Confirmer}).
 */
export class AckConfirmer extends Confirmer<Confirmable> {
  #closing = false;
  /** Ack subjects and reply subjects to send at the end of this turn, in pairs. Bounded by concurrency. */
  readonly #outbox: string[] = [];
  readonly #sendFn = (): void => this.#send();

  constructor(nc: NatsConnection, timeoutMs: number) {
    super(nc, timeoutMs, {
      what: "the ack",
      receive: "receive ack confirmations",
      closed: (n) => `the NATS connection closed with ${n} ack${n === 1 ? "" : "s"} not confirmed by the server; a job whose ack did not arrive is delivered again after ackWaitMs`,
    });
  }

  /** Acks `msg` and resolves once the server confirmed it; rejects on timeout, a server error or a closed connection. */
  confirm(msg: Delivered): Promise<void> {
    const ack = msg.reply;
    this.#closing = false;
    return new Promise<void>((resolve, reject) => {
      try {
        this.ensureSubscribed();
      } catch (err) {
        reject(mapNatsError(err, "confirm an ack"));
        return;
      }
      const reply = this.pending.add({ deadline: Date.now() + this.timeoutMs, resolve, reject });
      // Acks of one turn go out together (one socket write rather than one per job).
      this.#outbox.push(ack, reply);
      if (this.#outbox.length === 2) setImmediate(this.#sendFn);
    });
  }

  /** Releases the subscription once nothing awaits a confirmation (at once if nothing does). */
  close(): void {
    this.#closing = true;
    if (this.pending.size === 0) this.teardown();
  }

  protected override answered(w: Confirmable, m: Msg): void {
    const h = m.headers;
    if (h !== undefined && h.hasError) {
      const what = "confirm the ack";
      w.reject(h.code === 503 ? noResponders("consumer", what) : new JetqError(`${what}: the server answered ${h.code} ${h.description}`));
    } else w.resolve();
  }

  protected override settled(): void {
    if (this.#closing && this.pending.size === 0) this.teardown();
  }

  #send(): void {
    const out = this.#outbox.splice(0);
    for (let i = 0; i < out.length; i += 2) {
      const reply = out[i + 1]!;
      try {
        this.nc.publish(out[i]!, "+ACK", { reply });
      } catch (err) {
        this.pending.cancel(reply)?.reject(mapNatsError(err, "send an ack"));
      }
    }
  }
}
