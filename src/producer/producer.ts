import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type PermissionViolationError } from "@nats-io/transport-node";
import { ConfigError, ConnectionError, NotSentError, QueueFullError, TimeoutError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { noPublishSpan, type PublishSpan, type TelemetryHooks, noTelemetry } from "../telemetry/hooks.ts";
import { producerTelemetry } from "../telemetry/otel.ts";
import { ConnectionHub, type TransportUser } from "../transport/hub.ts";
import { Inbox } from "../transport/inbox.ts";
import { ReplyTable } from "../transport/replies.ts";
import { BatchSink, batchResult, type Sink } from "./batch.ts";
import { checkId, encodeJob, jobHeaders } from "./job.ts";
import { type Due, HELD, heldJobId, resolveDue } from "../schedule/held.ts";
import { isJobSubject, priorityHeaders, prioritySubject } from "../flow/priority.ts";
import { groupHeaders, groupToken } from "../flow/group.ts";
import { type ProducerOptions, type PublishManyOptions, type PublishOptions, resolveChunkSize, resolveProducerOptions, type ResolvedProducerOptions } from "./options.ts";
import { publishOutcome, type PublishReceipt, type ResultOf } from "./receipt.ts";
import { Jobs } from "../state/jobs.ts";
import { PublishWindow } from "./window.ts";

export type { ProducerOptions, PublishOptions, PublishManyOptions } from "./options.ts";
export { PublishBatchError } from "./receipt.ts";
export type { PublishReceipt, PublishOutcome } from "./receipt.ts";

/** One publish sent and not yet confirmed. */
interface Pending {
  /** The caller's id; `undefined` when the id is the stream sequence (known with the PubAck). */
  readonly id: string | undefined;
  readonly deadline: number;
  readonly sink: Sink;
  readonly index: number;
  /** Ended here when set (batch items); `publish` ends its own span. */
  readonly span: PublishSpan | undefined;
  /** Sent to the held stream (a delayed job): its default id is `delayed-<seq>`. */
  readonly held: boolean;
}

/**
 * One `publish`'s pending entry and its promise's sink in one object (a publish at full rate
 * allocates as little as it can beside its promise).
 */
class OnePublish implements Pending, Sink {
  readonly id: string | undefined;
  readonly deadline: number;
  readonly held: boolean;
  readonly sink: Sink = this;
  readonly index = 0;
  readonly span = undefined;
  readonly #resolve: (r: PublishReceipt) => void;
  readonly #reject: (e: Error) => void;
  constructor(id: string | undefined, deadline: number, held: boolean, resolve: (r: PublishReceipt) => void, reject: (e: Error) => void) {
    this.id = id;
    this.deadline = deadline;
    this.held = held;
    this.#resolve = resolve;
    this.#reject = reject;
  }
  settle(_index: number, outcome: PublishReceipt | Error): void {
    if (outcome instanceof Error) this.#reject(outcome);
    else this.#resolve(outcome);
  }
}

function jobLabel(id: string | undefined): string {
  return id === undefined ? "the job" : `job ${id}`;
}

function retryHint(id: string | undefined): string {
  return id === undefined
    ? " Publish with an `id` to make retries safe (the server drops a repeat inside the duplicate window)."
    : " Publish again with the same id to be safe.";
}

/**
 * Publishes jobs to a queue, each confirmed by the server before its promise
 * resolves. At most `maxInFlight` publishes are unconfirmed at once; the
 * `overflow` policy decides what happens beyond that.
 *
 * Internally this is the "publish async" pattern of the JetStream clients: a
 * core publish with its own reply subject on one shared inbox subscription,
 * PubAcks matched by that subject, and one timer sweeping expired entries. It is
 * several times faster than awaiting `js.publish()` per job, with the same
 * guarantees. Unlike those clients, a reply subject is reused once its publish
 * was answered, which saves the server a subject lookup per PubAck.
 *
 * When the connection closes, every publish not yet confirmed rejects at once
 * with a {@link ConnectionError} saying how many were not confirmed.
 */
export class Producer<In = unknown> {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<In, unknown>;
  readonly #subject: string;
  readonly #opts: ResolvedProducerOptions;
  readonly #window: PublishWindow;
  readonly #hub: ConnectionHub;
  readonly #inbox: Inbox;
  /** Unconfirmed publishes by reply subject, in send order (= deadline order). */
  readonly #pending: ReplyTable<Pending>;
  readonly #user: TransportUser = {
    sweep: (now) => this.#sweep(now),
    reconnected: () => this.#reconnected(),
    closed: () => this.#connectionClosed(),
    denied: (e) => this.#denied(e),
  };
  readonly #expireOne = (p: Pending): void => {
    this.#window.release();
    this.#settle(
      p,
      new TimeoutError(
        `publish to queue "${this.#queue.name}": no confirmation within ${this.#opts.ackTimeoutMs} ms for ${jobLabel(p.id)}; it may or may not be stored.${retryHint(p.id)}`,
      ),
    );
  };
  #jobs: Jobs | undefined;
  /** Every receipt's `result()`: one function per producer, the receipt as `this`. */
  readonly #resultOf: ResultOf = (() => {
    const self = this;
    return function (this: PublishReceipt, options) {
      try {
        self.#jobs ??= new Jobs(self.#nc, self.#queue as never);
      } catch (err) {
        return Promise.reject(err);
      }
      return self.#jobs.wait(this.id, options);
    };
  })();
  #joined = false;
  #closed = false;
  #telemetry: TelemetryHooks = noTelemetry;

  constructor(nc: NatsConnection, queue: Queue<In, unknown>, options: ProducerOptions = {}) {
    this.#opts = resolveProducerOptions(options);
    this.#nc = nc;
    this.#queue = queue;
    this.#subject = queue.names.subject;
    const q = queue.name;
    this.#window = new PublishWindow(q, this.#opts, {
      rejected: (reason) => this.#telemetry.rejected(q, reason),
      blocked: (ms) => this.#telemetry.blocked(q, ms),
    });
    this.#hub = ConnectionHub.of(nc);
    this.#inbox = new Inbox(nc, this.#opts.inboxPrefix, (err, msg) => {
      if (err) this.#failAll(mapNatsError(err, `receive publish acks for queue "${q}"`));
      else this.#onAck(msg);
    });
    this.#pending = new ReplyTable<Pending>(this.#inbox);
    this.#telemetry = producerTelemetry(queue as Queue<unknown, unknown>, options.telemetry);
  }

  /** @internal Replaces the telemetry hooks (tests and benchmarks); the `telemetry` option is the public way. */
  _setTelemetry(t: TelemetryHooks): void {
    this.#telemetry = t;
  }

  /** The queue this producer publishes to. */
  get queue(): Queue<In, unknown> {
    return this.#queue;
  }

  /** Publishes not yet confirmed by the server. */
  get inFlight(): number {
    return this.#window.taken;
  }

  /**
   * Validates `data`, publishes it and resolves once the server stored it.
   *
   * @throws {@link ValidationError} the payload fails the schema, is not JSON (the reason and the thrown error as `cause`), or a header is invalid; nothing sent.
   * @throws {@link JobTooLargeError} the job is above the server's max_payload or not below the queue's maxBytes; nothing sent.
   * @throws {@link QueueFullError} the stream is at its bound, or the window is full (`"reject"`, or the block deadline passed).
   * @throws {@link TimeoutError} no PubAck within `ackTimeoutMs`: the job may or may not be stored; retry with the same `id`.
   * @throws {@link ConnectionError} the connection closed before the server confirmed the job (it may or may not be stored).
   * @throws {@link QueueNotFoundError} the queue was not provisioned.
   */
  publish(data: In, options: PublishOptions = {}): Promise<PublishReceipt> {
    // Not an async function: a publish that gets a slot at once costs no extra promise, and one
    // that waits holds only its encoded payload (not `data`) while it waits.
    let payload: string;
    let id: string | undefined;
    let hdrs: MsgHdrs | undefined;
    let span = noPublishSpan;
    let due: Due;
    let subject: string | undefined;
    try {
      payload = encodeJob(this.#queue as Queue<unknown, unknown>, data, this.#opts.validate, this.#nc.info?.max_payload);
      id = options.id === undefined ? undefined : checkId(options.id);
      due = options.delayMs === undefined && options.runAt === undefined ? undefined : this.#due(options.delayMs, options.runAt);
      hdrs = jobHeaders(id, options.headers);
      if (due !== undefined) hdrs = heldHeaders(hdrs, due);
      if (options.priority !== undefined) {
        // A priority other than the lowest: its level's subject. A delayed job is held on another
        // subject until due, so it carries a header naming its level for the mover.
        subject = this.#priority(options.priority);
        if (subject !== undefined && due !== undefined) hdrs = priorityHeaders(hdrs, options.priority);
      }
      if (options.group !== undefined) hdrs = groupHeaders(hdrs, groupToken(this.#queue as Queue<unknown, unknown>, options.group));
      if (this.#telemetry.tracesPublishes()) {
        hdrs ??= natsHeaders();
        span = this.#telemetry.publish(this.#queue.name, id, hdrs);
      }
      if (span === noPublishSpan && this.#window.tryTake()) return this.#sendOne(payload, hdrs, id, due !== undefined, subject);
    } catch (err) {
      span.end(err as Error);
      return Promise.reject(err as Error);
    }
    return this.#publishWaiting(payload, hdrs, id, options.signal, span, due !== undefined, subject);
  }

  /**
   * Checks a publish's `priority`: the level's subject (`undefined` for the lowest level). A
   * delayed job is held on the held subject all the same; its level header tells the mover which
   * level's subject it goes to when due.
   */
  #priority(priority: unknown, index?: number): string | undefined {
    return prioritySubject(this.#queue as Queue<unknown, unknown>, priority, index === undefined ? "" : ` (item ${index})`);
  }

  /** Checks a publish's `delayMs`/`runAt`; a queue without `scheduling: true` cannot hold a job. */
  #due(delayMs: unknown, runAt: unknown, index?: number): Due {
    const due = resolveDue(delayMs, runAt, Date.now(), index === undefined ? "" : ` (item ${index})`);
    if (due !== undefined && !this.#queue.scheduling) {
      throw new ConfigError(
        `Queue "${this.#queue.name}" cannot delay jobs: define it with \`scheduling: true\` and provision it again (jetq provision ${this.#queue.name} --scheduling), or publish without delayMs/runAt`,
      );
    }
    return due;
  }

  async #publishWaiting(payload: string, hdrs: MsgHdrs | undefined, id: string | undefined, signal: AbortSignal | undefined, span: PublishSpan, held: boolean, subject?: string): Promise<PublishReceipt> {
    try {
      if (!this.#window.tryTake()) await this.#window.wait(signal);
      const receipt = await this.#sendOne(payload, hdrs, id, held, subject);
      span.end(undefined, receipt);
      return receipt;
    } catch (err) {
      span.end(err as Error);
      throw err;
    }
  }

  /**
   * Publishes every item through the bounded window (pipelined, not one at a
   * time) and resolves with the receipts in input order.
   *
   * Items are validated and encoded `chunkSize` at a time, each chunk completely
   * before any of its items is sent, and the next chunk while the server works on
   * the previous one (validation overlaps sending, and a generator is read only a
   * chunk ahead). So a batch of at most `chunkSize` items is all-or-nothing: an
   * invalid item throws its {@link ValidationError} (or {@link ConfigError} for a
   * bad `id`) and nothing is sent. In a longer batch an invalid item in a later
   * chunk stops the batch there: the earlier chunks are published, and the call
   * throws {@link PublishBatchError} whose `results` hold the invalid item's
   * `ValidationError` and, for every other item of its chunk and after it, a {@link NotSentError}.
   * `chunkSize: Infinity` validates the whole batch before sending anything.
   *
   * If any item fails to publish (the queue is full, a timeout, an aborted
   * `signal`, the connection closed), it waits for all of them and throws
   * {@link PublishBatchError} listing each outcome.
   */
  async publishMany(items: Iterable<In>, options: PublishManyOptions<In> = {}): Promise<PublishReceipt[]> {
    const chunkSize = resolveChunkSize(options.chunkSize);
    const idOf = options.id;
    const iter = items[Symbol.iterator]();
    const batch = new BatchSink();
    const queue = this.#queue as Queue<unknown, unknown>;
    const validate = this.#opts.validate;
    // One chunk's encoded payloads and given ids, reused: headers are built at send time, so a
    // waiting item holds a string rather than a header object.
    const payloads: string[] = [];
    const ids: Array<string | undefined> = [];
    // Due times of the chunk's items; empty unless the batch delays jobs.
    const dues: Due[] = [];
    const { delayMs, runAt } = options;
    const delays = delayMs !== undefined || runAt !== undefined;
    // Levels of the chunk's items; empty unless the batch has priorities.
    const priority = options.priority;
    const levels: Array<{ subject: string; level: number } | undefined> = [];
    // Encoded group keys of the chunk's items; empty unless the batch has groups.
    const group = options.group;
    const groups: Array<string | undefined> = [];
    let next = 0; // index of the next item to read
    let stopped: Error | undefined; // why the rest of the batch is not sent
    // The outcome of an item left unsent once `stopped` is set: that error, or NotSentError.
    let notSent = (): Error => stopped!;
    while (stopped === undefined) {
      payloads.length = 0;
      ids.length = 0;
      dues.length = 0;
      levels.length = 0;
      groups.length = 0;
      const base = next;
      let exhausted = false;
      try {
        const maxPayload = this.#nc.info?.max_payload;
        while (payloads.length < chunkSize) {
          const r = iter.next();
          if (r.done) {
            exhausted = true;
            break;
          }
          const i = next++;
          const payload = encodeJob(queue, r.value, validate, maxPayload, i);
          ids.push(idOf ? checkId(idOf(r.value, i), i) : undefined);
          if (delays) {
            const d = typeof delayMs === "function" ? delayMs(r.value, i) : delayMs;
            const t = typeof runAt === "function" ? runAt(r.value, i) : runAt;
            dues.push(this.#due(d, t, i));
          }
          if (priority !== undefined) {
            const level = typeof priority === "function" ? priority(r.value, i) : priority;
            const subject = level === undefined ? undefined : this.#priority(level, i);
            levels.push(subject === undefined ? undefined : { subject, level: level! });
          }
          if (group !== undefined) {
            const key = typeof group === "function" ? group(r.value, i) : group;
            groups.push(key === undefined ? undefined : groupToken(queue, key, ` (item ${i})`));
          }
          payloads.push(payload);
        }
      } catch (err) {
        if (base === 0) {
          iter.return?.();
          throw err; // nothing was sent
        }
        const bad = next - 1;
        const cause = err as Error;
        stopped = cause;
        notSent = () => new NotSentError(`Not sent: item ${bad} of the batch is invalid`, bad, cause);
        // Earlier items of this chunk are not sent either: the chunk is all-or-nothing.
        for (let k = base; k < bad; k++) batch.settle(batch.add(), notSent());
        batch.settle(batch.add(), cause);
        break;
      }
      // Read once per chunk: whether each item needs a span (and so headers for its trace context).
      const tracing = this.#telemetry.tracesPublishes();
      const ackTimeoutMs = this.#opts.ackTimeoutMs;
      for (let k = 0; k < payloads.length; k++) {
        if (stopped === undefined) {
          try {
            if (!this.#window.tryTake()) await this.#window.wait(options.signal);
          } catch (err) {
            stopped = err as Error;
          }
        }
        const index = batch.add();
        if (stopped !== undefined) {
          batch.settle(index, stopped);
          continue;
        }
        // The id was checked with its chunk; no extra headers in a batch. Without an id and
        // without tracing the job goes without headers (its id is then `seq-<stream seq>`).
        const id = ids[k];
        let hdrs = id === undefined ? undefined : jobHeaders(id, undefined);
        const due = delays ? dues[k] : undefined;
        if (due !== undefined) hdrs = heldHeaders(hdrs, due);
        const level = priority !== undefined ? levels[k] : undefined;
        if (level !== undefined && due !== undefined) hdrs = priorityHeaders(hdrs, level.level);
        const g = group !== undefined ? groups[k] : undefined;
        if (g !== undefined) hdrs = groupHeaders(hdrs, g);
        let span: PublishSpan | undefined;
        if (tracing) {
          hdrs ??= natsHeaders();
          span = this.#telemetry.publish(this.#queue.name, id, hdrs);
        }
        const p: Pending = { id, deadline: Date.now() + ackTimeoutMs, sink: batch, index, span: span === noPublishSpan ? undefined : span, held: due !== undefined };
        this.#send(payloads[k]!, hdrs, p, level?.subject);
      }
      if (exhausted) break;
    }
    if (stopped !== undefined) {
      // Give every remaining item an outcome, so `results` lines up with the input.
      for (let r = iter.next(); !r.done; r = iter.next()) batch.settle(batch.add(), notSent());
    }
    await batch.settled();
    return batchResult(batch.outcomes, stopped);
  }

  /** Waits for every in-flight publish to settle, then releases the inbox subscription. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#window.close();
    const deadline = Date.now() + this.#opts.ackTimeoutMs + 1000;
    while (this.#pending.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      this.#sweep(Date.now());
    }
    this.#leave();
  }

  /** `await using producer = …`: {@link Producer.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #sendOne(payload: string, hdrs: MsgHdrs | undefined, id: string | undefined, held: boolean, subject?: string): Promise<PublishReceipt> {
    return new Promise<PublishReceipt>((resolve, reject) => {
      this.#send(payload, hdrs, new OnePublish(id, Date.now() + this.#opts.ackTimeoutMs, held, resolve, reject), subject);
    });
  }

  /** Sends one publish holding a window slot; its outcome goes to `sink` (exactly once). */
  /** `subject`: a priority level's (`undefined`: the queue's own). */
  #send(payload: string, hdrs: MsgHdrs | undefined, p: Pending, subject: string | undefined): void {
    const held = p.held;
    let reply: string | undefined;
    try {
      if (!this.#inbox.subscribed) this.#subscribe();
      reply = this.#pending.add(p);
      this.#nc.publish(held ? this.#queue.names.heldSubject : (subject ?? this.#subject), payload, hdrs === undefined ? { reply } : { reply, headers: hdrs });
    } catch (err) {
      if (reply !== undefined) this.#pending.cancel(reply);
      this.#window.release();
      this.#settle(p, mapNatsError(err, `publish to queue "${this.#queue.name}"`));
    }
  }

  #subscribe(): void {
    this.#inbox.open();
    if (this.#joined) return;
    this.#joined = true;
    // Also enforces blockTimeoutMs on waiting callers, to within a quarter of it.
    const every = Math.min(this.#opts.ackTimeoutMs, this.#opts.blockTimeoutMs) / 4;
    this.#hub.join(this.#user, Math.min(250, Math.max(10, every)));
  }

  #leave(): void {
    this.#hub.leave(this.#user);
    this.#joined = false;
    this.#inbox.close();
  }

  #settle(p: Pending, outcome: PublishReceipt | Error): void {
    if (p.span) {
      if (outcome instanceof Error) p.span.end(outcome);
      else p.span.end(undefined, outcome);
    }
    p.sink.settle(p.index, outcome);
  }

  #onAck(msg: Msg): void {
    const p = this.#pending.take(msg.subject);
    if (p === undefined) return; // timed out: its subject is retired
    this.#window.release();
    const q = this.#queue.name;
    const h = msg.headers;
    const outcome = publishOutcome(h !== undefined && h.hasError ? { code: h.code, description: h.description } : undefined, msg.data, p.id, q, p.held ? heldJobId : undefined, this.#resultOf);
    if (outcome instanceof Error) {
      if (outcome instanceof QueueFullError) this.#telemetry.rejected(q, "stream_full");
    } else {
      this.#telemetry.published(q, outcome.duplicate);
    }
    this.#settle(p, outcome);
  }

  #sweep(now: number): void {
    if (this.#window.waiting > 0) this.#window.expire(now);
    this.#inbox.sweep(now);
    // Insertion order is deadline order (one timeout per producer): stops at the first live one.
    this.#pending.expire(now, this.#expireOne);
  }

  /**
   * After a reconnect, publishes go out with reply subjects of a fresh inbox: none of them can be
   * confirmed by an answer meant for one sent before. The old inbox stays subscribed until every
   * publish sent on it has timed out, so a PubAck that was on its way still confirms its own job.
   */
  #reconnected(): void {
    this.#inbox.rekey(this.#opts.ackTimeoutMs + 1_000);
    this.#pending.rekeyed();
  }

  /**
   * The connection closed: no PubAck can come any more. Every publish not yet confirmed rejects
   * now, saying how many there were (an unref'd sweep would otherwise let a script end with them
   * unsettled, printing nothing), and so does every later publish.
   */
  #connectionClosed(): void {
    const q = this.#queue.name;
    this.#window.close(new ConnectionError(`publish to queue "${q}": the NATS connection is closed. Connect again and publish through a new Producer.`));
    const n = this.#pending.size;
    this.#pending.drain((p) => {
      this.#window.release();
      this.#settle(
        p,
        new ConnectionError(
          `publish to queue "${q}": the NATS connection closed with ${n} publish${n === 1 ? "" : "es"} not confirmed by the server; ${jobLabel(p.id)} may or may not be stored.${retryHint(p.id)}`,
        ),
      );
    });
    this.#leave();
  }

  /**
   * A publish is fire-and-forget at the protocol level: when the server refuses it for lack of
   * permission, the client reports that only on the connection's status stream, and the PubAck
   * never comes. The caller gets a PermissionError now, not a TimeoutError after ackTimeoutMs.
   */
  #denied(e: PermissionViolationError): void {
    const ours = (e.operation === "publish" && (isJobSubject(this.#queue as Queue<unknown, unknown>, e.subject) || e.subject === this.#queue.names.heldSubject)) || (e.operation === "subscription" && this.#inbox.owns(e.subject));
    if (ours) this.#failAll(mapNatsError(e, `publish to queue "${this.#queue.name}"`));
  }

  #failAll(err: Error): void {
    this.#pending.drain((p) => {
      this.#window.release();
      this.#settle(p, err);
    });
  }
}

/** A delayed job's headers: the caller's (if any) and when it is due. */
function heldHeaders(h: MsgHdrs | undefined, due: NonNullable<Due>): MsgHdrs {
  const out = h ?? natsHeaders();
  if ("delayMs" in due) out.set(HELD.delay, due.delayMs.toFixed(0));
  else out.set(HELD.due, due.runAt.toFixed(0));
  return out;
}
