import {
  createInbox,
  headers as natsHeaders,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  PermissionViolationError,
  type Status,
  type Subscription,
} from "@nats-io/transport-node";
import {
  ConfigError,
  ConnectionError,
  JetqError,
  NotSentError,
  QueueFullError,
  QueueNotFoundError,
  TimeoutError,
  ValidationError,
} from "../errors.ts";
import { API, mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { describe } from "../queue/define.ts";
import { encodePayload } from "../queue/codec.ts";
import { HDR, seqJobId } from "../queue/headers.ts";
import { parsePubAck, type PubAck } from "./puback.ts";
import { noPublishSpan, type PublishSpan, type TelemetryHooks, noTelemetry } from "../telemetry/hooks.ts";
import { producerTelemetry, type TelemetryOptions } from "../telemetry/otel.ts";

/** Options of {@link Producer}. */
export interface ProducerOptions {
  /** Publishes sent but not yet confirmed by the server (PubAck) at once: the producer's bounded window. @default 1024 */
  maxInFlight?: number;
  /**
   * What `publish` does when the window is full: `"block"` waits for a free slot (up to
   * `blockTimeoutMs`, or until the call's `signal` aborts); `"reject"` throws
   * {@link QueueFullError} at once. @default "block"
   */
  overflow?: "block" | "reject";
  /** Longest wait for a free slot when `overflow` is `"block"`. @default 30000 */
  blockTimeoutMs?: number;
  /** Callers allowed to wait for a slot at once; beyond it `publish` throws {@link QueueFullError}. @default 4 × maxInFlight */
  maxBlocked?: number;
  /** How long to wait for the server's PubAck before failing with {@link TimeoutError}. @default 5000 */
  ackTimeoutMs?: number;
  /** Validate payloads against the queue's schema before sending. @default true */
  validate?: boolean;
  /**
   * Subject prefix of the inbox PubAcks come back on; set it (and the connection's `inboxPrefix`)
   * to narrow the producer's subscribe permission from `_INBOX.>` to `<prefix>.>`. @default "_INBOX"
   */
  inboxPrefix?: string;
  /**
   * OpenTelemetry spans and metrics: a PRODUCER span per publish (its context travels in the
   * job's headers) and the publish counters. `false` turns them off for this producer.
   * @default the global tracer and meter providers (no-ops until an SDK registers them)
   */
  telemetry?: TelemetryOptions | false;
}

/** Per-call options of {@link Producer.publish}. */
export interface PublishOptions {
  /**
   * Idempotency key (sent as `Nats-Msg-Id`). A second publish with the same id inside the
   * queue's `duplicateWindowMs` is not stored again and returns `duplicate: true`.
   * @default none: the job's id is `seq-<stream sequence>` (no deduplication)
   */
  id?: string;
  /** Extra headers carried with the job (names must not start with `Jetq-` or `Nats-`). */
  headers?: Readonly<Record<string, string>>;
  /** Aborts a publish still waiting for a window slot. */
  signal?: AbortSignal;
}

/** What the server confirmed for one publish. */
export interface PublishReceipt {
  /**
   * The job id: the `id` option, or `seq-<seq>` when none was given (such a job is sent without
   * headers; workers and dead letters use the same id).
   */
  id: string;
  /** Stream sequence of the stored job (of the original one when `duplicate`). */
  seq: number;
  /** True when the id was already in the duplicate window and nothing new was stored. */
  duplicate: boolean;
}

/** Options of {@link Producer.publishMany}. */
export interface PublishManyOptions<T> {
  /** Derives each job's idempotency key. @default none (ids are `seq-<stream sequence>`) */
  id?: (item: T, index: number) => string;
  /** Aborts the remaining publishes. */
  signal?: AbortSignal;
  /**
   * Items validated and encoded at once, before any of them is sent; a batch no longer than
   * this is all-or-nothing on validation. `Infinity` validates the whole batch first (the
   * server then idles while the client encodes). @default 1000
   */
  chunkSize?: number;
}

/** Outcome of one item of {@link Producer.publishMany} when some failed. */
export type PublishOutcome = { ok: true; receipt: PublishReceipt } | { ok: false; error: Error };

/** Thrown by {@link Producer.publishMany} when at least one item failed; `results` says which. */
export class PublishBatchError extends JetqError {
  /** Always `"PublishBatchError"`. */
  override name = "PublishBatchError" as const;
  /** The outcome of every item of the batch, in the order given. */
  readonly results: readonly PublishOutcome[];
  constructor(results: readonly PublishOutcome[], failed: number, first: Error) {
    super(`${failed} of ${results.length} publishes failed; the first error: ${first.message}`, { cause: first });
    this.results = results;
  }
}

/** Where a publish's outcome goes: one promise (`publish`) or a slot of a batch (`publishMany`). */
interface Sink {
  settle(index: number, outcome: PublishReceipt | Error): void;
}

/** A caller waiting for a window slot. */
interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  deadline: number;
  started: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Pending {
  /** The caller's id; `undefined` when the id is the stream sequence (known with the PubAck). */
  id: string | undefined;
  deadline: number;
  sink: Sink;
  index: number;
  /** Ended here when set (batch items); `publish` ends its own span. */
  span: PublishSpan | undefined;
}

/**
 * The outcomes of one `publishMany`, in input order. One object per batch instead of a promise
 * and two closures per item: at high rates those dominated the batch path's allocations.
 */
class BatchSink implements Sink {
  readonly outcomes: Array<PublishReceipt | Error | undefined> = [];
  #open = 0;
  #done: (() => void) | undefined;
  /** A slot for the next item, in input order; it counts as open until settled. */
  add(): number {
    this.#open++;
    return this.outcomes.push(undefined) - 1;
  }
  settle(index: number, outcome: PublishReceipt | Error): void {
    this.outcomes[index] = outcome;
    if (--this.#open === 0) this.#done?.();
  }
  /** Resolves once every added item has an outcome; call after the last `add()`. */
  settled(): Promise<void> {
    if (this.#open === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#done = resolve;
    });
  }
}

/** Items of a `publishMany` validated and encoded at once before any of them is sent. */
const DEFAULT_CHUNK = 1000;

const ID_RE = /^[\x21-\x7e]{1,256}$/;

/** " (item 3)" for a batch item in an error message; built only when there is an error. */
function itemLabel(index: number | undefined): string {
  return index === undefined ? "" : ` (item ${index})`;
}

function jobLabel(id: string | undefined): string {
  return id === undefined ? "the job" : `job ${id}`;
}

function retryHint(id: string | undefined): string {
  return id === undefined
    ? " Publish with an `id` to make retries safe (the server drops a repeat inside the duplicate window)."
    : " Publish again with the same id to be safe.";
}

function checkId(id: unknown, index?: number): string {
  if (typeof id !== "string" || !ID_RE.test(id)) {
    throw new ConfigError(`Expected \`id\`${itemLabel(index)} to be 1-256 printable ASCII characters without spaces, got ${describe(id)}`);
  }
  return id;
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
 */
export class Producer<In = unknown> {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<In, unknown>;
  readonly #subject: string;
  readonly #maxInFlight: number;
  readonly #overflow: "block" | "reject";
  readonly #blockTimeoutMs: number;
  readonly #maxBlocked: number;
  readonly #ackTimeoutMs: number;
  readonly #validate: boolean;
  readonly #prefix: string;
  // Unconfirmed publishes by reply subject, in send order (= deadline order).
  readonly #pending = new Map<string, Pending>();
  // Reply subjects whose publish was answered, free to carry another one (see #send).
  readonly #replies: string[] = [];
  #sub: Subscription | undefined;
  #status: { stop?: () => void } | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #next = 0;
  #reserved = 0;
  // Callers waiting for a window slot, FIFO (so in deadline order); bounded by maxBlocked. Their
  // deadlines are checked by the sweeper: no timer per wait.
  readonly #waiters: Waiter[] = [];
  #closed = false;
  #telemetry: TelemetryHooks = noTelemetry;

  constructor(nc: NatsConnection, queue: Queue<In, unknown>, options: ProducerOptions = {}) {
    const maxInFlight = options.maxInFlight ?? 1024;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 1_000_000) {
      throw new ConfigError(`Expected \`maxInFlight\` to be an integer from 1 to 1000000, got ${describe(maxInFlight)}`);
    }
    const overflow = options.overflow ?? "block";
    if (overflow !== "block" && overflow !== "reject") {
      throw new ConfigError(`Expected \`overflow\` to be "block" or "reject", got ${describe(overflow)}`);
    }
    const positive = (name: string, v: number): number => {
      if (!Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) {
        throw new ConfigError(`Expected \`${name}\` to be a positive integer number of milliseconds, got ${describe(v)}`);
      }
      return v;
    };
    this.#nc = nc;
    this.#queue = queue;
    this.#subject = queue.names.subject;
    this.#maxInFlight = maxInFlight;
    this.#overflow = overflow;
    this.#blockTimeoutMs = positive("blockTimeoutMs", options.blockTimeoutMs ?? 30_000);
    this.#ackTimeoutMs = positive("ackTimeoutMs", options.ackTimeoutMs ?? 5_000);
    const maxBlocked = options.maxBlocked ?? maxInFlight * 4;
    if (!Number.isInteger(maxBlocked) || maxBlocked < 0) {
      throw new ConfigError(`Expected \`maxBlocked\` to be a non-negative integer, got ${describe(maxBlocked)}`);
    }
    this.#maxBlocked = maxBlocked;
    this.#validate = options.validate ?? true;
    const inboxPrefix = options.inboxPrefix ?? "_INBOX";
    if (typeof inboxPrefix !== "string" || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(inboxPrefix)) {
      throw new ConfigError(`Expected \`inboxPrefix\` to be a subject without wildcards, got ${describe(inboxPrefix)}`);
    }
    this.#prefix = createInbox(inboxPrefix);
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
    return this.#pending.size + this.#reserved;
  }

  /**
   * Validates `data`, publishes it and resolves once the server stored it.
   *
   * @throws {@link ValidationError} the payload fails the schema or is not JSON (nothing sent).
   * @throws {@link QueueFullError} the stream is at its bound, or the window is full (`"reject"`, or the block deadline passed).
   * @throws {@link TimeoutError} no PubAck within `ackTimeoutMs`: the job may or may not be stored; retry with the same `id`.
   * @throws {@link QueueNotFoundError} the queue was not provisioned.
   */
  publish(data: In, options: PublishOptions = {}): Promise<PublishReceipt> {
    // Not an async function: a publish that gets a slot at once costs no extra promise, and one
    // that waits holds only its encoded payload (not `data`) while it waits.
    let payload: string;
    let id: string | undefined;
    let hdrs: MsgHdrs | undefined;
    let span = noPublishSpan;
    try {
      payload = this.#encode(data);
      id = options.id === undefined ? undefined : checkId(options.id);
      hdrs = this.#headers(id, options.headers);
      if (this.#telemetry.tracesPublishes()) {
        hdrs ??= natsHeaders();
        span = this.#telemetry.publish(this.#queue.name, id, hdrs);
      }
      if (span === noPublishSpan && this.#tryReserve()) return this.#sendOne(payload, hdrs, id);
    } catch (err) {
      span.end(err as Error);
      return Promise.reject(err as Error);
    }
    return this.#publishWaiting(payload, hdrs, id, options.signal, span);
  }

  async #publishWaiting(payload: string, hdrs: MsgHdrs | undefined, id: string | undefined, signal: AbortSignal | undefined, span: PublishSpan): Promise<PublishReceipt> {
    try {
      if (!this.#tryReserve()) await this.#waitForSlot(signal);
      const receipt = await this.#sendOne(payload, hdrs, id);
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
   * `signal`), it waits for all of them and throws {@link PublishBatchError}
   * listing each outcome.
   */
  async publishMany(items: Iterable<In>, options: PublishManyOptions<In> = {}): Promise<PublishReceipt[]> {
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
    if (chunkSize !== Infinity && (!Number.isInteger(chunkSize) || chunkSize < 1)) {
      throw new ConfigError(`Expected \`chunkSize\` to be a positive integer or Infinity, got ${describe(chunkSize)}`);
    }
    const idOf = options.id;
    const iter = items[Symbol.iterator]();
    const batch = new BatchSink();
    // One chunk's encoded payloads and given ids, reused: headers are built at send time, so a
    // waiting item holds a string rather than a header object.
    const payloads: string[] = [];
    const ids: Array<string | undefined> = [];
    let next = 0; // index of the next item to read
    let stopped: Error | undefined; // why the rest of the batch is not sent
    // The outcome of an item left unsent once `stopped` is set: that error, or NotSentError.
    let notSent = (): Error => stopped!;
    while (stopped === undefined) {
      payloads.length = 0;
      ids.length = 0;
      const base = next;
      let exhausted = false;
      try {
        while (payloads.length < chunkSize) {
          const r = iter.next();
          if (r.done) {
            exhausted = true;
            break;
          }
          const i = next++;
          const payload = this.#encode(r.value, i);
          ids.push(idOf ? checkId(idOf(r.value, i), i) : undefined);
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
      for (let k = 0; k < payloads.length; k++) {
        if (stopped === undefined) {
          try {
            if (!this.#tryReserve()) await this.#waitForSlot(options.signal);
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
        let hdrs = this.#headers(id, undefined);
        let span: PublishSpan | undefined;
        if (this.#telemetry.tracesPublishes()) {
          hdrs ??= natsHeaders();
          span = this.#telemetry.publish(this.#queue.name, id, hdrs);
        }
        this.#send(payloads[k]!, hdrs, id, batch, index, span === noPublishSpan ? undefined : span);
      }
      if (exhausted) break;
    }
    if (stopped !== undefined) {
      // Give every remaining item an outcome, so `results` lines up with the input.
      for (let r = iter.next(); !r.done; r = iter.next()) batch.settle(batch.add(), notSent());
    }
    await batch.settled();
    const outcomes = batch.outcomes;
    const n = outcomes.length;
    let failed = 0;
    // An invalid item is the reason the batch stopped: name it rather than the first NotSentError.
    let first: Error | undefined = stopped instanceof ValidationError || stopped instanceof ConfigError ? stopped : undefined;
    for (let k = 0; k < n; k++) {
      const o = outcomes[k]!;
      if (o instanceof Error) {
        failed++;
        first ??= o;
      }
    }
    if (failed > 0) {
      throw new PublishBatchError(
        outcomes.map((o) => (o instanceof Error ? { ok: false, error: o } : { ok: true, receipt: o! })),
        failed,
        first!,
      );
    }
    return outcomes as PublishReceipt[];
  }

  /** Waits for every in-flight publish to settle, then releases the inbox subscription. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const rejectWaiters = this.#waiters.splice(0);
    for (const w of rejectWaiters) this.#wake(w);
    const deadline = Date.now() + this.#ackTimeoutMs + 1000;
    while (this.#pending.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      this.#sweep();
    }
    this.#stopSweeper();
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    this.#status?.stop?.();
    this.#status = undefined;
  }

  /** `await using producer = …`: {@link Producer.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #encode(data: In, index?: number): string {
    const schema = this.#queue.schema;
    if (this.#validate && schema) {
      const r = schema.safeParse(data);
      if (!r.success) {
        const issues = r.error.issues.map((i) => ({ path: i.path, message: i.message, code: i.code }));
        const summary = issues
          .slice(0, 3)
          .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
          .join("; ");
        throw new ValidationError(`Job for queue "${this.#queue.name}"${itemLabel(index)} does not match its schema: ${summary}`, issues, {
          cause: r.error,
        });
      }
    }
    const payload = encodePayload(data);
    if (payload === undefined) {
      throw new ValidationError(`Job for queue "${this.#queue.name}"${itemLabel(index)} is not JSON-encodable`, [
        { path: [], message: "not JSON-encodable (undefined, a function, a BigInt or a circular structure)", code: "custom" },
      ]);
    }
    const max = this.#nc.info?.max_payload;
    // A UTF-16 length times 3 bounds the UTF-8 size: count bytes only when it might matter.
    if (max !== undefined && payload.length * 3 > max - 1024 && Buffer.byteLength(payload) > max - 1024) {
      throw new ValidationError(`Job for queue "${this.#queue.name}"${itemLabel(index)} is too large: ${Buffer.byteLength(payload)} bytes, the server accepts about ${max - 1024}`, [
        { path: [], message: "payload exceeds the server's max_payload", code: "too_big" },
      ]);
    }
    return payload;
  }

  /**
   * The headers a job carries: `Nats-Msg-Id` when the caller gave an id, and the caller's own.
   * `undefined` when there are none: such a job's id is `seq-<stream sequence>`, and a message
   * without headers is about 45 bytes smaller and cheaper for client and server.
   */
  #headers(id: string | undefined, extra: Readonly<Record<string, string>> | undefined): MsgHdrs | undefined {
    if (id === undefined && extra === undefined) return undefined;
    const h = natsHeaders();
    if (id !== undefined) h.set(HDR.msgId, id);
    if (extra) {
      for (const [k, v] of Object.entries(extra)) {
        if (/^(jetq|nats)-/i.test(k)) throw new ConfigError(`Header "${k}" is reserved: names starting with Jetq- or Nats- are set by jetq and NATS`);
        h.set(k, String(v));
      }
    }
    return h;
  }

  #tryReserve(): boolean {
    if (this.#closed) throw new ConnectionError(`Producer for queue "${this.#queue.name}" is closed`);
    if (this.#pending.size + this.#reserved < this.#maxInFlight && this.#waiters.length === 0) {
      this.#reserved++;
      return true;
    }
    return false;
  }

  #waitForSlot(signal: AbortSignal | undefined): Promise<void> {
    const q = this.#queue.name;
    if (this.#overflow === "reject") {
      this.#telemetry.rejected(q, "window_full");
      return Promise.reject(
        new QueueFullError(`Publish window of queue "${q}" is full (${this.#maxInFlight} unconfirmed); overflow is "reject"`, "window_full"),
      );
    }
    if (this.#waiters.length >= this.#maxBlocked) {
      this.#telemetry.rejected(q, "window_full");
      return Promise.reject(
        new QueueFullError(`Too many publishes (${this.#maxBlocked}) already wait for the window of queue "${q}"`, "window_full"),
      );
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, deadline: Date.now() + this.#blockTimeoutMs, started: performance.now(), signal, onAbort: undefined };
      if (signal) {
        w.onAbort = () => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          this.#endWait(w, signal.reason instanceof Error ? signal.reason : new JetqError("publish aborted"));
        };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      this.#waiters.push(w);
    });
  }

  /** Hands a freed slot to a waiter (or fails it when the producer closed). */
  #wake(w: Waiter): void {
    if (this.#closed) {
      this.#endWait(w, new ConnectionError(`Producer for queue "${this.#queue.name}" is closed`));
    } else {
      this.#reserved++;
      this.#endWait(w, undefined);
    }
  }

  #endWait(w: Waiter, err: Error | undefined): void {
    if (w.onAbort) w.signal!.removeEventListener("abort", w.onAbort);
    this.#telemetry.blocked(this.#queue.name, performance.now() - w.started);
    if (err) w.reject(err);
    else w.resolve();
  }

  /** Fails the waiters whose block deadline passed (they are in deadline order). */
  #expireWaiters(now: number): void {
    const q = this.#queue.name;
    while (this.#waiters.length > 0 && this.#waiters[0]!.deadline <= now) {
      const w = this.#waiters.shift()!;
      this.#telemetry.rejected(q, "window_timeout");
      this.#endWait(w, new QueueFullError(`Publish window of queue "${q}" stayed full for ${this.#blockTimeoutMs} ms`, "window_timeout"));
    }
  }

  #release(): void {
    const w = this.#waiters.shift();
    if (w) this.#wake(w);
  }

  #sendOne(payload: string, hdrs: MsgHdrs | undefined, id: string | undefined): Promise<PublishReceipt> {
    return new Promise<PublishReceipt>((resolve, reject) => {
      this.#send(payload, hdrs, id, { settle: (_i, o) => (o instanceof Error ? reject(o) : resolve(o)) }, 0, undefined);
    });
  }

  /** Sends one reserved publish; its outcome goes to `sink` (exactly once). */
  #send(payload: string, hdrs: MsgHdrs | undefined, id: string | undefined, sink: Sink, index: number, span: PublishSpan | undefined): void {
    this.#ensureSubscribed();
    // A reply subject is reused once its publish was answered: JetStream answers a publish once,
    // so nothing more can arrive on it for the old one. One that timed out is never reused (a late
    // PubAck must not settle a later publish), so at most maxInFlight subjects exist at a time.
    // Reuse matters to the server more than to us: it caches where each subject goes, and a new
    // subject per publish misses that cache on every PubAck (7.6 against 6.8 µs of server CPU
    // per publish in a scratch run; see BENCHMARKS.md).
    const reply = this.#replies.pop() ?? `${this.#prefix}.${(this.#next++).toString(36)}`;
    this.#reserved--;
    const p: Pending = { id, deadline: Date.now() + this.#ackTimeoutMs, sink, index, span };
    this.#pending.set(reply, p);
    try {
      this.#nc.publish(this.#subject, payload, hdrs === undefined ? { reply } : { reply, headers: hdrs });
    } catch (err) {
      this.#pending.delete(reply);
      this.#release();
      this.#settle(p, mapNatsError(err, `publish to queue "${this.#queue.name}"`));
    }
  }

  #settle(p: Pending, outcome: PublishReceipt | Error): void {
    if (p.span) {
      if (outcome instanceof Error) p.span.end(outcome);
      else p.span.end(undefined, outcome);
    }
    p.sink.settle(p.index, outcome);
  }

  #ensureSubscribed(): void {
    if (this.#sub) return;
    this.#sub = this.#nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, msg) => {
        if (err) {
          this.#failAll(mapNatsError(err, `receive publish acks for queue "${this.#queue.name}"`));
          return;
        }
        this.#onAck(msg);
      },
    });
    this.#watchPermissions();
    // Also enforces blockTimeoutMs on waiting callers, to within a quarter of it.
    const every = Math.min(this.#ackTimeoutMs, this.#blockTimeoutMs) / 4;
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(250, Math.max(10, every)));
    this.#sweeper.unref();
  }

  /**
   * A publish is fire-and-forget at the protocol level: when the server refuses it for lack of
   * permission, the client reports that only on the connection's status stream, and the PubAck
   * never comes. Watch that stream so the caller gets a PermissionError now, not a TimeoutError
   * after ackTimeoutMs.
   */
  #watchPermissions(): void {
    const status = this.#nc.status() as AsyncIterable<Status> & { stop?: () => void };
    this.#status = status;
    void (async () => {
      try {
        for await (const s of status) {
          if (s.type !== "error" || !(s.error instanceof PermissionViolationError)) continue;
          const e = s.error;
          const ours =
            (e.operation === "publish" && e.subject === this.#subject) ||
            (e.operation === "subscription" && e.subject === `${this.#prefix}.*`);
          if (ours) this.#failAll(mapNatsError(e, `publish to queue "${this.#queue.name}"`));
        }
      } catch {
        // the status stream ends with the connection
      }
    })();
  }

  #onAck(msg: Msg): void {
    const reply = msg.subject;
    const p = this.#pending.get(reply);
    if (!p) return; // timed out: its subject is retired
    this.#pending.delete(reply);
    this.#replies.push(reply);
    this.#release();
    const q = this.#queue.name;
    if (msg.headers && msg.headers.hasError) {
      const code = msg.headers.code;
      if (code === 503) {
        this.#settle(p, new QueueNotFoundError(`publish to queue "${q}": no stream listens on "${this.#subject}". Call provisionQueue() (or \`jetq provision\`) first.`));
      } else {
        this.#settle(p, new JetqError(`publish to queue "${q}": server answered ${code} ${msg.headers.description}`));
      }
      return;
    }
    let ack: PubAck;
    try {
      ack = parsePubAck(msg.data);
    } catch (err) {
      this.#settle(p, new JetqError(`publish to queue "${q}": unreadable PubAck`, { cause: err }));
      return;
    }
    if (ack.error) {
      const e = ack.error;
      if (e.err_code === API.streamStoreFailed || e.err_code === API.maximumMessagesExceeded || /maximum (messages|bytes)/i.test(e.description ?? "")) {
        this.#telemetry.rejected(q, "stream_full");
        this.#settle(p, new QueueFullError(`Queue "${q}" is full: ${e.description} (bounded by maxMessages/maxBytes). Nothing was enqueued.`, "stream_full"));
      } else {
        this.#settle(p, new JetqError(`publish to queue "${q}": ${e.description} (JetStream error ${e.err_code ?? e.code})`));
      }
      return;
    }
    this.#telemetry.published(q, ack.duplicate === true);
    const seq = ack.seq ?? 0;
    this.#settle(p, { id: p.id ?? seqJobId(seq), seq, duplicate: ack.duplicate === true });
  }

  #sweep(): void {
    const now = Date.now();
    if (this.#waiters.length > 0) this.#expireWaiters(now);
    if (this.#pending.size === 0) return;
    // Insertion order is deadline order (one timeout per producer), so stop at the first live one.
    for (const [reply, p] of this.#pending) {
      if (p.deadline > now) break;
      this.#pending.delete(reply);
      this.#release();
      const closed = this.#nc.isClosed();
      this.#settle(p, 
        closed
          ? new ConnectionError(`publish to queue "${this.#queue.name}": the connection closed before the server confirmed ${jobLabel(p.id)}; it may or may not be stored.${retryHint(p.id)}`)
          : new TimeoutError(`publish to queue "${this.#queue.name}": no confirmation within ${this.#ackTimeoutMs} ms for ${jobLabel(p.id)}; it may or may not be stored.${retryHint(p.id)}`),
      );
    }
  }

  #failAll(err: Error): void {
    for (const [reply, p] of this.#pending) {
      this.#pending.delete(reply);
      this.#release();
      this.#settle(p, err);
    }
  }

  #stopSweeper(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}
