import { EventEmitter } from "node:events";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { ConfigError, ConnectionError, JetqError, JobTimeoutError, PermanentError, QueueNotFoundError, TimeoutError, ValidationError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import { backoffDelay } from "../queue/backoff.ts";
import { decodePayload } from "../queue/codec.ts";
import { describe, type Queue } from "../queue/define.ts";
import { copyToDeadLetters, type DeadLetterReason, jobIdOf } from "../dlq/route.ts";
import { type Delivered, Puller } from "./pull.ts";
import { AckConfirmer } from "./ack-confirmer.ts";
import { SlotTable } from "./slots.ts";
import { AdvisoryMover } from "../dlq/advisory.ts";
import { type AttemptSpan, type WorkerTelemetry, noWorkerTelemetry } from "../telemetry/hooks.ts";
import { type TelemetryOptions, workerTelemetry } from "../telemetry/otel.ts";

/** What a handler receives for each attempt of a job. */
export interface Job<T> {
  /** The job id: the producer's `id` option, or `seq-<stream sequence>` when none was given. Stable across attempts and a dead-letter replay. */
  readonly id: string;
  /** The payload, validated and typed by the queue's schema. */
  readonly data: T;
  /** 1 on the first delivery, 2 on the first retry, and so on. */
  readonly attempt: number;
  /** The queue's `maxAttempts`: when `attempt === maxAttempts` a failure dead-letters the job. */
  readonly maxAttempts: number;
  /** Stream sequence of the job; stable across attempts. */
  readonly seq: number;
  /** When the job was stored by the server. */
  readonly publishedAt: Date;
  /** Header values carried with the job (first value of each name). */
  readonly headers: Readonly<Record<string, string>>;
  /** Aborts when the attempt times out or the worker is stopped past its deadline. Pass it to fetch, database calls and the like. */
  readonly signal: AbortSignal;
  /** Extends the job's lease now (an in-progress ack). The worker already does this on its own every `ackWaitMs / 3`. */
  extendLease(): void;
}

/**
 * The handler contract: resolve = the job is done and acked; throw = retry with
 * backoff (or dead-letter on the last attempt); throw {@link PermanentError} =
 * dead-letter now; crash = redelivery after `ackWaitMs`.
 */
export type Handler<T> = (job: Job<T>) => Promise<unknown> | unknown;

/** Options of {@link Worker}. */
export interface WorkerOptions {
  /** Handlers run at once by this worker; also the most un-acked jobs it ever holds. @default 1 */
  concurrency?: number;
  /**
   * `"fire"` acks without waiting (fastest; a lost ack means a redelivery, which at-least-once allows);
   * `"confirmed"` waits for the server to confirm each ack (`ackAck`) before the job counts as completed.
   * @default "fire"
   */
  ackMode?: "fire" | "confirmed";
  /**
   * Ask for more jobs when at least this many handler slots are free; smaller batches lower
   * latency, larger ones cost fewer requests. @default max(1, concurrency / 4)
   */
  pullBatch?: number;
  /** How long one pull request waits on the server for jobs before it is renewed. @default 5000 */
  pullExpiresMs?: number;
  /**
   * Move jobs the server gave up on (crash loops: `max_deliver` reached without an ack) to the
   * dead-letter queue, by consuming the queue's MAX_DELIVERIES advisories. @default true
   */
  deadLetterCrashLoops?: boolean;
  /** Validate payloads against the queue's schema before the handler sees them. @default true */
  validate?: boolean;
  /** Logger for diagnostics nobody is listening for (pino-compatible). @default silent */
  logger?: Logger;
  /**
   * OpenTelemetry spans and metrics: a CONSUMER span per attempt (a child of the job's
   * publish span, with the handler running in its context) and the worker's counters,
   * histograms and gauges. `false` turns them off for this worker.
   * @default the global tracer and meter providers (no-ops until an SDK registers them)
   */
  telemetry?: TelemetryOptions | false;
}

/** The subset of a pino-style logger jetq uses. */
export interface Logger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/** Options of {@link Worker.stop}. */
export interface StopOptions {
  /** How long in-flight handlers may run on before they are aborted and their jobs handed back. @default 10000 */
  timeoutMs?: number;
}

/** Summary of one job, as carried by worker events. */
export interface JobEvent {
  id: string;
  seq: number;
  attempt: number;
}

/** Events a {@link Worker} emits. */
export interface WorkerEvents {
  /** A handler resolved and its job was acked. */
  completed: [job: JobEvent, durationMs: number];
  /** A handler failed; `retryInMs` is the backoff before the next attempt. */
  retrying: [job: JobEvent, error: Error, retryInMs: number];
  /** A job was moved to the dead-letter queue. */
  dead: [job: JobEvent, reason: DeadLetterReason, error: Error];
  /** A job was handed back (nak) because the worker stopped before its handler finished. */
  released: [job: JobEvent];
  /** Something went wrong outside a handler (pulling, acking, dead-lettering). The worker keeps going. */
  error: [error: Error];
  /** The worker has stopped. */
  stopped: [];
}

type State = "idle" | "starting" | "running" | "stopping" | "stopped";

class Running {
  /** Index in the worker's slot table; -1 when not held. */
  slot = -1;
  controller: AbortController | undefined;
  settled = false;
  /** The final ack was sent (confirmed mode, awaiting the server): no more in-progress acks or naks. */
  acked = false;
  lastLease: number;
  timer: NodeJS.Timeout | undefined;
  readonly msg: Delivered;
  readonly event: JobEvent;
  constructor(msg: Delivered, event: JobEvent, now: number) {
    this.msg = msg;
    this.event = event;
    this.lastLease = now;
  }
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }
  abort(reason: Error): void {
    this.controller ??= new AbortController();
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }
}

class JobImpl<T> implements Job<T> {
  readonly #r: Running;
  readonly data: T;
  readonly maxAttempts: number;
  #headers: Record<string, string> | undefined;
  constructor(r: Running, data: T, maxAttempts: number) {
    this.#r = r;
    this.data = data;
    this.maxAttempts = maxAttempts;
  }
  get id(): string {
    return this.#r.event.id;
  }
  get attempt(): number {
    return this.#r.event.attempt;
  }
  get seq(): number {
    return this.#r.event.seq;
  }
  get publishedAt(): Date {
    return new Date(this.#r.msg.storedAtMs);
  }
  get headers(): Readonly<Record<string, string>> {
    if (!this.#headers) {
      const out: Record<string, string> = {};
      const h = this.#r.msg.headers;
      if (h) for (const [k, v] of h) if (v[0] !== undefined) out[k] = v[0];
      this.#headers = out;
    }
    return this.#headers;
  }
  get signal(): AbortSignal {
    return this.#r.signal;
  }
  extendLease(): void {
    if (!this.#r.settled && !this.#r.acked) {
      this.#r.msg.working();
      this.#r.lastLease = Date.now();
    }
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new JetqError(`handler threw a non-Error value: ${describe(e)}`);
}

/**
 * Runs a handler for every job of a queue. Any number of workers, in any
 * number of processes, share the queue's durable consumer; each job goes to
 * one of them at a time.
 *
 * Flow control: the worker asks the server for jobs only when it has free
 * handler slots, and never for more than it has free, so the jobs it holds
 * (running plus requested) never exceed `concurrency`; across all workers the
 * server caps un-acked jobs at the queue's `maxAckPending`.
 */
export class Worker<T = unknown> extends EventEmitter<WorkerEvents> {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<unknown, T>;
  readonly #handler: Handler<T>;
  readonly #concurrency: number;
  readonly #ackMode: "fire" | "confirmed";
  readonly #pullBatch: number;
  readonly #pullExpiresMs: number;
  readonly #crashLoops: boolean;
  readonly #validate: boolean;
  readonly #logger: Logger | undefined;
  #state: State = "idle";
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #puller: Puller | undefined;
  /** Jobs whose handler runs (or whose outcome is being recorded). Bounded by concurrency. */
  readonly #running = new SlotTable<Running>();
  #pullRetryMs = 0;
  #pullRetryTimer: NodeJS.Timeout | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #mover: AdvisoryMover | undefined;
  #idle: (() => void) | undefined;
  #stopping: Promise<void> | undefined;
  #pullQueued = false;
  #telemetry: WorkerTelemetry = noWorkerTelemetry;
  #confirmer: AckConfirmer | undefined;
  /** Completed jobs whose fire-and-forget ack goes out at the end of this turn. Bounded by concurrency. */
  readonly #acks: Array<{ r: Running; durationMs: number; span: AttemptSpan }> = [];

  constructor(nc: NatsConnection, queue: Queue<unknown, T>, handler: Handler<T>, options: WorkerOptions = {}) {
    super();
    if (typeof handler !== "function") throw new ConfigError(`Expected \`handler\` to be a function, got ${describe(handler)}`);
    const int = (name: string, v: unknown, min: number, max: number): number => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
        throw new ConfigError(`Expected \`${name}\` to be an integer from ${min} to ${max}, got ${describe(v)}`);
      }
      return v;
    };
    this.#concurrency = int("concurrency", options.concurrency ?? 1, 1, 100_000);
    this.#pullBatch = int("pullBatch", options.pullBatch ?? Math.max(1, Math.floor(this.#concurrency / 4)), 1, this.#concurrency);
    this.#pullExpiresMs = int("pullExpiresMs", options.pullExpiresMs ?? 5_000, 1_000, 300_000);
    const ackMode = options.ackMode ?? "fire";
    if (ackMode !== "fire" && ackMode !== "confirmed") {
      throw new ConfigError(`Expected \`ackMode\` to be "fire" or "confirmed", got ${describe(ackMode)}`);
    }
    this.#ackMode = ackMode;
    // ackAck()'s timeout: the JetStream client's default request timeout.
    if (ackMode === "confirmed") this.#confirmer = new AckConfirmer(nc, 5_000);
    this.#crashLoops = options.deadLetterCrashLoops ?? true;
    this.#validate = options.validate ?? true;
    this.#logger = options.logger;
    this.#nc = nc;
    this.#queue = queue;
    this.#handler = handler;
    this.#telemetry = workerTelemetry(queue as Queue<unknown, unknown>, this, options.telemetry);
  }

  /** @internal Replaces the telemetry hooks (tests and benchmarks); the `telemetry` option is the public way. */
  _setTelemetry(t: WorkerTelemetry): void {
    this.#telemetry = t;
  }

  /** The queue this worker serves. */
  get queue(): Queue<unknown, T> {
    return this.#queue;
  }
  /** The configured concurrency. */
  get concurrency(): number {
    return this.#concurrency;
  }
  /** Handlers running right now. */
  get inFlight(): number {
    return this.#running.size;
  }
  /** Whether the worker is pulling jobs. */
  get isRunning(): boolean {
    return this.#state === "running";
  }

  /**
   * Connects to the queue's consumer and starts pulling jobs.
   * @throws {QueueNotFoundError} the queue was not provisioned.
   */
  async start(): Promise<void> {
    if (this.#state !== "idle") throw new JetqError(`Worker for queue "${this.#queue.name}" was already started`);
    this.#state = "starting";
    const n = this.#queue.names;
    try {
      this.#js = jetstream(this.#nc);
      this.#jsm = await jetstreamManager(this.#nc);
      // Fails with a clear error now if the queue was not provisioned.
      await this.#js.consumers.get(n.stream, n.consumer);
    } catch (err) {
      this.#state = "stopped";
      throw mapNatsError(err, `start worker for queue "${this.#queue.name}"`);
    }
    this.#state = "running";
    this.#puller = new Puller(this.#nc, n.stream, n.consumer, this.#pullExpiresMs, {
      message: (m) => {
        this.#pullRetryMs = 0;
        this.#dispatch(m);
      },
      unfilled: () => this.#queuePull(),
      silent: () => {
        void this.#checkConsumer(undefined);
        this.#queuePull();
      },
      error: (err) => this.#pullFailed(err),
    });
    void this.#nc.closed().then(() => this.#onClosed());
    this.#telemetry.attach();
    const leaseEvery = Math.max(50, Math.floor(this.#queue.ackWaitMs / 3));
    this.#leaseTimer = setInterval(() => this.#renewLeases(leaseEvery), Math.max(25, Math.floor(leaseEvery / 2)));
    if (this.#crashLoops) {
      this.#mover = new AdvisoryMover(this.#js, this.#jsm, this.#queue, {
        onDead: (ev, err) => this.#emitDead(ev, "max_deliveries", err),
        onError: (err) => this.#reportError(err),
        maxPayload: () => this.#nc.info?.max_payload,
      });
      this.#mover.start();
    }
    this.#pull();
  }

  /**
   * Stops pulling, lets running handlers finish and ack for up to `timeoutMs`,
   * then aborts the rest through their `signal` and hands their jobs back to
   * the queue at once (nak) so another worker takes them. Idempotent.
   */
  stop(options: StopOptions = {}): Promise<void> {
    this.#stopping ??= this.#doStop(options.timeoutMs ?? 10_000);
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #doStop(timeoutMs: number): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") {
      this.#state = "stopped";
      this.emit("stopped");
      return;
    }
    this.#state = "stopping";
    clearTimeout(this.#pullRetryTimer);
    const deadline = Date.now() + timeoutMs;
    // Jobs the server already sent for our open pull requests must reach us (and be handed back)
    // before we close those requests: a round trip orders them ahead of the close.
    try {
      await this.#nc.flush();
    } catch {
      // closed connection: nothing more can arrive
    }
    this.#puller?.stop();
    const moverStopped = this.#mover?.stop();
    if (this.#running.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.#idle = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#idle = undefined;
    }
    // Completed jobs still waiting for their ack are acked, not handed back.
    this.#flushAcks();
    for (const r of this.#running.snapshot()) {
      // Past the deadline: abort the handler and give the job back now rather than after ackWait.
      r.abort(new JetqError(`worker for queue "${this.#queue.name}" stopped`));
      this.#release(r);
    }
    await moverStopped;
    clearInterval(this.#leaseTimer);
    this.#confirmer?.close();
    this.#telemetry.detach();
    this.#state = "stopped";
    this.emit("stopped");
  }

  #pull(): void {
    const puller = this.#puller;
    if (this.#state !== "running" || this.#pullRetryTimer || !puller) return;
    const requested = puller.outstanding;
    const free = this.#concurrency - this.#running.size - requested;
    if (free <= 0) return;
    // Ask in batches, but never let the worker sit idle with free slots and nothing requested.
    if (free < this.#pullBatch && requested > 0) return;
    puller.pull(free);
  }

  /** Pulling failed (permission, consumer gone, connection): report it and back off. */
  #pullFailed(err: Error): void {
    if (this.#state !== "running") return;
    // Back off so a missing consumer or a dead server does not turn into a busy loop.
    this.#pullRetryMs = Math.min(5_000, Math.max(100, this.#pullRetryMs * 2));
    clearTimeout(this.#pullRetryTimer);
    this.#pullRetryTimer = setTimeout(() => {
      this.#pullRetryTimer = undefined;
      this.#pull();
    }, this.#pullRetryMs);
    void this.#checkConsumer(err);
  }

  /**
   * Reports a pull failure, or (`failed` undefined) pulls the server never answered. The server
   * does not answer pulls for a consumer that is gone, so unless the connection is the problem,
   * ask whether the consumer still exists and say so if not.
   */
  async #checkConsumer(failed: Error | undefined): Promise<void> {
    const what = `pull jobs of queue "${this.#queue.name}"`;
    let err: Error | undefined = failed;
    if (!(err instanceof ConnectionError) && !(err instanceof QueueNotFoundError) && this.#jsm) {
      const n = this.#queue.names;
      try {
        await this.#jsm.consumers.info(n.stream, n.consumer);
      } catch (e) {
        if (mapNatsError(e, what) instanceof QueueNotFoundError) {
          err = new QueueNotFoundError(
            `${what}: its consumer "${n.consumer}" on stream "${n.stream}" does not exist (deleted?). Provision the queue again (provisionQueue() or \`jetq provision\`); the worker resumes by itself.`,
            { cause: failed ?? e },
          );
        }
      }
    }
    if (err && this.#state === "running") this.#reportError(err);
  }

  #dispatch(m: Delivered): void {
    const event: JobEvent = { id: jobIdOf(m.headers, m.seq), seq: m.seq, attempt: m.deliveries };
    const r = new Running(m, event, Date.now());
    this.#running.add(r);
    if (this.#state !== "running") {
      // Arrived after stop began: hand it straight back.
      this.#release(r);
      return;
    }
    const span = this.#telemetry.start(this.#queue.name, m, event);
    let data: unknown;
    try {
      data = decodePayload(m.data);
    } catch (err) {
      void this.#deadLetter(r, "decode", new ValidationError(`payload is not valid JSON: ${asError(err).message}`, [], { cause: err }), span);
      return;
    }
    const schema = this.#queue.schema;
    if (schema && this.#validate) {
      const parsed = schema.safeParse(data);
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => ({ path: i.path, message: i.message, code: i.code }));
        const summary = issues.slice(0, 3).map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
        void this.#deadLetter(r, "validation", new ValidationError(`payload does not match the schema: ${summary}`, issues), span);
        return;
      }
      data = parsed.data;
    }
    void this.#run(r, data as T, span);
  }

  async #run(r: Running, data: T, span: AttemptSpan): Promise<void> {
    const started = performance.now();
    let error: Error | undefined;
    try {
      const timeoutMs = this.#queue.timeoutMs;
      const job = new JobImpl<T>(r, data, this.#queue.maxAttempts);
      if (timeoutMs === undefined) {
        await span.run(() => this.#handler(job));
      } else {
        await new Promise<void>((resolve, reject) => {
          r.timer = setTimeout(() => {
            const e = new JobTimeoutError(`handler for job ${r.event.id} exceeded timeoutMs (${timeoutMs} ms)`);
            r.abort(e);
            reject(e);
          }, timeoutMs);
          Promise.resolve()
            .then(() => span.run(() => this.#handler(job)))
            .then(() => resolve(), reject);
        });
      }
    } catch (err) {
      error = asError(err);
    } finally {
      clearTimeout(r.timer);
    }
    if (r.settled) {
      // stop() already handed it back
      span.end(error, { kind: "released" });
      return;
    }
    const durationMs = performance.now() - started;
    if (error === undefined) {
      await this.#complete(r, durationMs, span);
      return;
    }
    if (error instanceof PermanentError || error.name === "PermanentError") {
      await this.#deadLetter(r, "permanent", error, span);
    } else if (r.event.attempt >= this.#queue.maxAttempts) {
      await this.#deadLetter(r, "max_attempts", error, span);
    } else {
      const delay = backoffDelay(this.#queue.backoff, r.event.attempt);
      this.#tell(r, "nak", () => r.msg.nak(delay));
      this.#finish(r);
      span.end(error, { kind: "retry", delayMs: delay });
      this.#telemetry.retried(this.#queue.name);
      this.emit("retrying", r.event, error, delay);
    }
  }

  async #complete(r: Running, durationMs: number, span: AttemptSpan): Promise<void> {
    if (!this.#confirmer) {
      // Fire-and-forget acks wait for the end of this turn of the event loop and go out together:
      // the NATS client flushes its outbound buffer in a microtask, so acks made one per job went
      // out one socket write each, about half of a draining worker's CPU in a profile.
      r.acked = true;
      this.#acks.push({ r, durationMs, span });
      if (this.#acks.length === 1) setImmediate(() => this.#flushAcks());
      return;
    }
    try {
      r.acked = true;
      await this.#confirmer.confirm(r.msg);
    } catch (err) {
      this.#afterAck(r, durationMs, span, { err, what: "confirm ack of" });
      return;
    }
    this.#afterAck(r, durationMs, span, undefined);
  }

  /**
   * The job's final ack went out (or could not be sent or confirmed): free its slot, then report
   * `completed`, or the failure. A job whose ack failed ran all the same; the server redelivers it
   * (at-least-once), so it is reported, not hidden.
   */
  #afterAck(r: Running, durationMs: number, span: AttemptSpan, failed: { err: unknown; what: string } | undefined): void {
    this.#finish(r);
    if (failed) {
      this.#reportError(mapNatsError(failed.err, `${failed.what} job ${r.event.id} (it will be redelivered)`));
    } else {
      this.#telemetry.completed(this.#queue.name, durationMs);
      this.emit("completed", r.event, durationMs);
    }
    span.end(undefined);
  }

  /** Sends the queued fire-and-forget acks; each job's slot is freed (and `completed` emitted) after its ack. */
  #flushAcks(): void {
    const acks = this.#acks.splice(0);
    for (const { r, durationMs, span } of acks) {
      let failed: { err: unknown; what: string } | undefined;
      try {
        r.msg.ack();
      } catch (err) {
        // The connection is gone.
        failed = { err, what: "ack" };
      }
      this.#afterAck(r, durationMs, span, failed);
    }
    // Ask for the freed slots now, so the pull request leaves in the same write as the acks
    // rather than one more turn later.
    this.#pull();
  }

  async #deadLetter(r: Running, reason: DeadLetterReason, error: Error, span: AttemptSpan): Promise<void> {
    const m = r.msg;
    try {
      await copyToDeadLetters(this.#js!, this.#queue, {
        data: m.data,
        headers: m.headers,
        sourceSeq: m.seq,
        attempts: m.deliveries,
        publishedAtMs: m.storedAtMs,
        reason,
        error,
      }, this.#nc.info?.max_payload);
    } catch (err) {
      // Not confirmed: keep the job. nak() makes it retry later; if this was the last delivery the
      // server stops redelivering and the advisory path moves it instead.
      this.#tell(r, "nak", () => r.msg.nak(backoffDelay(this.#queue.backoff, m.deliveries)));
      this.#finish(r);
      span.end(error);
      this.#reportError(asError(err));
      return;
    }
    // Confirmed in the dead-letter stream: now remove the original (term deletes it from a work queue).
    // If the connection is gone now, the job comes back once more and is removed then: its dead
    // letter has the same msg id, so the server drops the second copy.
    this.#tell(r, "remove", () => r.msg.term());
    this.#finish(r);
    span.end(error, { kind: "dead", reason });
    this.#emitDead(r.event, reason, error);
  }

  #emitDead(ev: JobEvent, reason: DeadLetterReason, error: Error): void {
    this.#telemetry.dead(this.#queue.name, reason);
    this.emit("dead", ev, reason, error);
  }

  #release(r: Running): void {
    if (r.settled) return;
    if (!r.acked) this.#tell(r, "hand back", () => r.msg.nak());
    this.#finish(r);
    this.emit("released", r.event);
  }

  /** Frees the job's slot; exactly once per job. */
  #finish(r: Running): void {
    if (r.settled) return;
    r.settled = true;
    clearTimeout(r.timer);
    this.#running.delete(r);
    if (this.#running.size === 0) this.#idle?.();
    this.#queuePull();
  }

  /**
   * Pulls once the current turn of the event loop is over, so jobs finishing together (a batch
   * that arrived in one read and ran through fast handlers) free their slots into one fetch.
   * Pulling per completion made many one-job fetches, each a new inbox subscription and pull
   * request: most of the worker's garbage, and the heap (RSS) grew with the backlog.
   */
  #queuePull(): void {
    if (this.#pullQueued) return;
    this.#pullQueued = true;
    setImmediate(() => {
      this.#pullQueued = false;
      this.#pull();
    });
  }

  #renewLeases(every: number): void {
    const now = Date.now();
    this.#running.forEach((r) => {
      if (now - r.lastLease >= every && !r.acked) {
        r.lastLease = now;
        this.#tell(r, "extend the lease of", () => r.msg.working());
      }
    });
  }

  /**
   * Sends an ack-protocol message for a job. These are publishes: on a closed connection they
   * throw, and a throw here would escape as an unhandled rejection. The server redelivers what it
   * did not hear about, so reporting is enough.
   */
  #tell(r: Running, what: string, send: () => void): void {
    try {
      send();
    } catch (err) {
      this.#reportError(mapNatsError(err, `${what} job ${r.event.id} (the server will redeliver it after ackWaitMs)`));
    }
  }

  /** The connection closed under a running worker: nothing more can be pulled or acked. */
  #onClosed(): void {
    if (this.#state !== "running") return;
    this.#reportError(
      new ConnectionError(
        `the NATS connection of the worker for queue "${this.#queue.name}" closed; the worker stopped. Its un-acked jobs go to other workers after ackWaitMs.`,
      ),
    );
    void this.stop({ timeoutMs: 0 });
  }

  #reportError(err: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", err);
    else this.#logger?.error({ err, queue: this.#queue.name }, err.message);
  }
}

