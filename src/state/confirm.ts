import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { ConnectionError, JetqError } from "../errors.ts";
import { mapNatsError, noResponders } from "../natserr.ts";
import { parsePubAck } from "../producer/puback.ts";
import { type Confirmable, Confirmer } from "../transport/confirmer.ts";
import type { Turn } from "./turn.ts";

/** Called once with the outcome of a confirmed write: `undefined` when the stream stored it. */
export type Stored = (err: Error | undefined) => void;

/** The writes of one turn, confirmed together by the PubAck of the last. */
class Batch implements Confirmable {
  readonly deadline: number;
  readonly #done: Stored[] = [];
  constructor(deadline: number) {
    this.deadline = deadline;
  }
  add(done: Stored): void {
    this.#done.push(done);
  }
  resolve = (): void => {
    for (const d of this.#done) d(undefined);
  };
  reject = (e: Error): void => {
    for (const d of this.#done) d(e);
  };
}

/**
 * @internal Confirmed writes into a stream (the job state stream's `completed` and `dead`
 * records) on the shared transport ({@link Confirmer}), as acks are confirmed. `js.publish` per
 * job (a request with its own promise, timer and cancellation `Error`) cost a draining worker
 * with results on more than half its throughput.
 *
 * The writes of one turn are sent together and only the last carries a reply subject: a stream
 * stores the messages of one connection in the order they arrive, so its PubAck confirms the
 * batch (and an error on it fails the batch: each job then runs again). One PubAck per turn
 * rather than one per job: the server's answers were a large part of its extra work per job.
 */
export class StoreConfirmer extends Confirmer<Batch> {
  /** Subjects and payloads to send at the end of this turn, in pairs. Bounded by concurrency. */
  readonly #outbox: string[] = [];
  #batch: Batch | undefined;
  /** Where a turn's writes wait to be sent: with the worker's acks and pull, in one socket write. */
  readonly #turn: Turn | undefined;
  readonly #sendFn = (): void => this.#send();

  constructor(nc: NatsConnection, timeoutMs: number, turn?: Turn) {
    super(nc, timeoutMs, {
      what: "the write",
      receive: "receive job state confirmations",
      closed: () => "the NATS connection closed before the server confirmed a job state record; the job runs again",
    });
    this.#turn = turn;
  }

  /** Publishes `data` to `subject` and resolves once the stream stored it. */
  store(subject: string, data: string): Promise<void> {
    return new Promise<void>((resolve, reject) => this.storeThen(subject, data, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * {@link store} with a callback instead of a promise (a draining worker stores one record per
   * job: no promise, async frame and microtask hops per job). `done` is called once, later, never
   * synchronously, and must not throw.
   */
  storeThen(subject: string, data: string, done: Stored): void {
    try {
      this.ensureSubscribed();
    } catch (err) {
      const e = mapNatsError(err, "store a job state record");
      queueMicrotask(() => done(e));
      return;
    }
    if (!this.#batch) {
      this.#batch = new Batch(Date.now() + this.timeoutMs);
      if (this.#turn) this.#turn.defer(this.#sendFn);
      else setImmediate(this.#sendFn);
    }
    this.#batch.add(done);
    this.#outbox.push(subject, data);
  }

  /** Releases the subscription (waiting writes fail). */
  close(): void {
    this.pending.drain((w) => w.reject(new ConnectionError("the worker stopped before the server confirmed the write")));
    this.teardown();
  }

  #send(): void {
    const out = this.#outbox.splice(0);
    const batch = this.#batch!;
    this.#batch = undefined;
    const reply = this.pending.add(batch);
    try {
      // The turn's payloads are encoded into one buffer and each published as a view of it: given
      // a string, the client allocates and encodes a Uint8Array per record (TextEncoder, about
      // 1.8 us of a draining worker's CPU per job in a profile; one buffer: about 0.1 us). The
      // client keeps the views until it flushes; the buffer is this batch's own, never reused.
      let size = 0;
      for (let i = 1; i < out.length; i += 2) size += Buffer.byteLength(out[i]!);
      const buf = Buffer.allocUnsafe(size);
      let at = 0;
      const last = out.length - 2;
      for (let i = 0; i <= last; i += 2) {
        const n = buf.write(out[i + 1]!, at);
        const data = buf.subarray(at, at + n);
        at += n;
        if (i < last) this.nc.publish(out[i]!, data);
        else this.nc.publish(out[i]!, data, { reply });
      }
    } catch (err) {
      this.pending.cancel(reply)?.reject(mapNatsError(err, "store a job state record"));
    }
  }

  protected override answered(w: Batch, m: Msg): void {
    const h = m.headers;
    const what = "store a job state record";
    if (h !== undefined && h.hasError) {
      w.reject(h.code === 503 ? noResponders("stream", what) : new JetqError(`${what}: the server answered ${h.code} ${h.description}`));
      return;
    }
    try {
      const ack = parsePubAck(m.data);
      if (ack.error) w.reject(new JetqError(`${what}: ${ack.error.description ?? `error ${ack.error.code}`}`));
      else w.resolve();
    } catch (e) {
      w.reject(new JetqError(`${what}: unreadable PubAck`, { cause: e }));
    }
  }
}
