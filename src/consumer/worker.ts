import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { ConfigError, ConnectionError, JetqError, QueueNotFoundError, ValidationError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import { backoffDelay } from "../queue/backoff.ts";
import { decodePayload } from "../queue/codec.ts";
import { describe, type Queue } from "../queue/define.ts";
import { copyToDeadLetters, type DeadLetterReason, jobIdOf } from "../dlq/route.ts";
import { type Delivered, Puller } from "./pull.ts";
import { AckConfirmer } from "./ack-confirmer.ts";
import { apiPrefix, domainOf, jsOptions } from "../transport/api.ts";
import { SlotTable } from "./slots.ts";
import { PauseWatch } from "../flow/pause.ts";
import { RateLimiter } from "../flow/rate.ts";
import { type JobSource, levelConsumer, levelOfAckSubject, PriorityPull } from "../flow/priority.ts";
import { GROUP_HEADER, type GroupHold, GroupLimiter } from "../flow/group.ts";
import { type Job, type JobEvent, JobImpl, Running } from "./job.ts";
import {
  afterDead,
  afterFailure,
  afterHandBack,
  baseRecord,
  classify,
  decide,
  EMPTY_RECORD,
  isolatedStart,
  safeError,
  type Settlement,
} from "./decide.ts";
import { type Scheduling, startScheduling } from "../schedule/run.ts";
import { Ledger, LedgerConflictError } from "./ledger.ts";
import { type Middleware, PayloadRejected, runChain, telemetryStep, timeoutStep, validationStep } from "./middleware.ts";
import { type WorkerTelemetry, noAttemptSpan, noWorkerTelemetry } from "../telemetry/hooks.ts";
import { checkResult, StateWriter, STORING_PER_SLOT } from "../state/writer.ts";
import { type TelemetryOptions, workerTelemetry } from "../telemetry/otel.ts";
import { announceEvery, Announcer } from "../fleet/announcer.ts";

export type { Job, JobEvent } from "./job.ts";
export type { Middleware } from "./middleware.ts";

/**
 * The handler contract: resolve = the job is done and acked; throw = retry with
 * backoff (or dead-letter on the last attempt); throw {@link PermanentError} =
 * dead-letter now; throw {@link RetryError} = retry after its delay; crash =
 * redelivery, and a job that crashes its process `maxCrashes` times while it
 * runs alone is dead-lettered with reason `crashed`.
 */
export type Handler<T> = (job: Job<T>) => Promise<unknown> | unknown;

/** Options of {@link Worker}. */
export interface WorkerOptions<T = unknown> {
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
  /**
   * How long one pull request waits on the server for jobs before it is renewed. Keep it well
   * below the queue's `ackWaitMs` (see docs/design/attempts.md, "server facts"). @default ackWaitMs / 3, from 1000 to 5000
   */
  pullExpiresMs?: number;
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
  /**
   * Middleware around the handler, outermost first (see {@link Middleware}). More can be added
   * with {@link Worker.use} before `start()`. @default []
   */
  use?: ReadonlyArray<Middleware<T>>;
  /**
   * For a queue defined with `scheduling: true`: move its delayed jobs into the queue when they
   * are due and fire its schedules' ticks (any number of workers may: each held job is moved
   * once, each tick makes one job). `false` leaves that to other workers or to
   * `jetq schedules run <queue>`. @default true
   */
  schedules?: boolean;
  /**
   * Announce this worker (host, pid, version, concurrency, running jobs, utilization) every
   * `everyMs` in the server's worker list, read by {@link listWorkers}, `jetq workers` and the
   * dashboard: one small core publish per interval, nothing per job. A worker that dies drops off
   * the list 15 s after its last announcement; one that stops, at once. `false` turns it off.
   * @default true (every 5000 ms; `everyMs` from 100 to 5000)
   */
  announce?: boolean | { everyMs?: number };
}

/** The subset of a pino-style logger jetq uses. */
export interface Logger {
  /** Something went wrong that jetq recovered from, or that nobody listened for. */
  warn(obj: object, msg?: string): void;
  /** An error no `error` event listener took. */
  error(obj: object, msg?: string): void;
  /** Lifecycle notes; optional. */
  info?(obj: object, msg?: string): void;
  /** Detail for debugging; optional. */
  debug?(obj: object, msg?: string): void;
}

/** Options of {@link Worker.stop}. */
export interface StopOptions {
  /** How long in-flight handlers may run on before they are aborted and their jobs handed back. @default 10000 */
  timeoutMs?: number;
}

/** Events a {@link Worker} emits. */
export interface WorkerEvents {
  /** A handler resolved and its job was acked. */
  completed: [job: JobEvent, durationMs: number];
  /** A handler failed; `retryInMs` is the backoff before the next attempt. */
  retrying: [job: JobEvent, error: Error, retryInMs: number];
  /** A job was moved to the dead-letter queue. */
  dead: [job: JobEvent, reason: DeadLetterReason, error: Error];
  /** A job was handed back (nak) because the worker stopped before its handler finished. Costs it no attempt. */
  released: [job: JobEvent];
  /**
   * A job redelivered without a recorded outcome (its process died or stalled) starts its run
   * alone in this worker: nothing else runs here until it settles.
   */
  isolated: [job: JobEvent];
  /**
   * A handler outlived its `timeoutMs` and ignores its abort signal. Its attempt has failed (the
   * job is retried elsewhere after its backoff) but the handler keeps its slot until it settles.
   */
  stuck: [job: JobEvent, error: Error];
  /** Something went wrong outside a handler (pulling, acking, dead-lettering). The worker keeps going. */
  error: [error: Error];
  /** The worker has stopped. */
  stopped: [];
}

type State = "idle" | "starting" | "running" | "stopping" | "stopped";

/** How long a job handed back without an attempt used (a deferral) waits before it is redelivered. */
const DEFER_MS = 250;
const OK: Settlement = { kind: "ok" };

/** What a rejected chain means; `instanceof` itself can throw (a Proxy's getPrototypeOf trap). */
function failure(err: unknown): Settlement {
  try {
    if (err instanceof PayloadRejected) return { kind: "rejected", reason: "validation", error: err.error };
  } catch {
    // not ours
  }
  return { kind: "failed", error: safeError(err) };
}

/**
 * Runs a handler for every job of a queue. Any number of workers, in any
 * number of processes, share the queue's durable consumer; each job goes to
 * one of them at a time.
 *
 * Flow control: the worker asks the server for jobs only when it has free
 * handler slots, and never for more than it has free, so the jobs it holds
 * (running plus requested) never exceed `concurrency`; across all workers the
 * server caps un-acked jobs at the queue's `maxAckPending`. With `results`, up to
 * 4 × `concurrency` more completed jobs wait for their stored result before their ack.
 *
 * Attempts: `job.attempt` counts handler failures, recorded in the queue's
 * outcome ledger; a job redelivered without a recorded outcome (its process
 * died) runs alone, and only crashes while alone count against it
 * (docs/design/attempts.md). A job that succeeds on its first delivery costs
 * no ledger read or write.
 */
export class Worker<T = unknown> extends EventEmitter<WorkerEvents> {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<unknown, T>;
  readonly #handler: Handler<T>;
  readonly #concurrency: number;
  readonly #ackMode: "fire" | "confirmed";
  readonly #pullBatch: number;
  readonly #pullExpiresMs: number;
  readonly #validate: boolean;
  readonly #logger: Logger | undefined;
  readonly #workerId = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  /** User middleware, in order; fixed at start(). */
  readonly #use: Middleware<T>[] = [];
  /** jetq's steps and the user's, built at start(). */
  #steps: Middleware<T>[] = [];
  #state: State = "idle";
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #ledger: Ledger | undefined;
  #incarnation = 0;
  /** Job state writes, for a queue with `results` only (docs: README "Results and progress"). */
  #states: StateWriter | undefined;
  /**
   * Completed jobs whose `completed` record the server has not confirmed yet (their ack waits for
   * it). Up to {@link STORING_PER_SLOT} × `concurrency` of them hold no handler slot: the worker
   * pulls and runs the next jobs while their records are confirmed, so a draining worker with
   * results does not wait a round trip per slot. Always 0 without `results`.
   */
  #storing = 0;
  /** The queue's consumer, or one per level for a queue with `priorities` (src/flow/priority.ts). */
  #puller: JobSource | undefined;
  /** The queue's pause record, watched (src/flow/pause.ts). */
  #pause: PauseWatch | undefined;
  /** The queue's rate limit (src/flow/rate.ts); `undefined` for an unlimited queue. */
  #limiter: RateLimiter | undefined;
  #rateTimer: NodeJS.Timeout | undefined;
  /** The queue's group limits (src/flow/group.ts); `undefined` for a queue without them. */
  #groups: GroupLimiter | undefined;
  /** Group concurrency tokens of the jobs running here. Bounded by concurrency. */
  readonly #holds = new Map<Running, GroupHold>();
  /**
   * The last pull request of a rate-limited queue expired unfilled: pull without tokens (each
   * job that comes takes its own), rather than burn a batch of tokens per idle pull.
   */
  #rateIdle = true;
  /** Deliveries this worker holds (running, settling, or stuck). Bounded by concurrency. */
  readonly #running = new SlotTable<Running>();
  /** Timed-out handlers that have not settled, by stream sequence. Bounded by concurrency. */
  readonly #stuck = new Map<number, Running>();
  /** A suspect this worker runs alone, once everything else here has settled (or hands back at `timer`). */
  #isolation: { r: Running; started: boolean; timer: NodeJS.Timeout | undefined } | undefined;
  /**
   * Jobs still running when a suspect gave up waiting to run alone here. Until they settle, this
   * worker hands suspects back at once instead of pausing for them. Bounded by concurrency.
   */
  readonly #blockers = new Set<Running>();
  #pullRetryMs = 0;
  #pullRetryTimer: NodeJS.Timeout | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #idle: (() => void) | undefined;
  #stopping: Promise<void> | undefined;
  #pullQueued = false;
  #telemetry: WorkerTelemetry = noWorkerTelemetry;
  #confirmer: AckConfirmer | undefined;
  /** Completed jobs whose fire-and-forget ack goes out at the end of this turn. Bounded by concurrency. */
  readonly #acks: Array<{ r: Running; durationMs: number }> = [];
  /** Hand-backs in progress (ledger write, then nak); stop() waits for them. Bounded by concurrency. */
  readonly #handingBack = new Set<Promise<void>>();
  readonly #schedules: boolean;
  #scheduling: Scheduling | undefined;
  readonly #telemetryOptions: TelemetryOptions | false | undefined;
  /** Announcement interval in the worker list (src/fleet); 0: off. */
  readonly #announceEveryMs: number;
  #announcer: Announcer | undefined;

  constructor(nc: NatsConnection, queue: Queue<unknown, T>, handler: Handler<T>, options: WorkerOptions<T> = {}) {
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
    // Pull requests expire well before a crashed worker's jobs come back (ackWaitMs): nats-server
    // 2.9.10 redelivers a job with a delivery count of 1 when the only pull requests waiting
    // belong to a connection that is gone (a crashed worker's) and have not expired yet, and a
    // count of 1 hides the crash from jetq's crash isolation.
    this.#pullExpiresMs = int("pullExpiresMs", options.pullExpiresMs ?? Math.min(5_000, Math.max(1_000, Math.floor(queue.ackWaitMs / 3))), 1_000, 300_000);
    const ackMode = options.ackMode ?? "fire";
    if (ackMode !== "fire" && ackMode !== "confirmed") {
      throw new ConfigError(`Expected \`ackMode\` to be "fire" or "confirmed", got ${describe(ackMode)}`);
    }
    this.#ackMode = ackMode;
    this.#validate = options.validate ?? true;
    this.#schedules = options.schedules ?? true;
    this.#telemetryOptions = options.telemetry;
    this.#announceEveryMs = announceEvery(options.announce);
    if (typeof this.#schedules !== "boolean") throw new ConfigError(`Expected \`schedules\` to be true or false, got ${describe(this.#schedules)}`);
    this.#logger = options.logger;
    if (options.use !== undefined) {
      if (!Array.isArray(options.use)) throw new ConfigError(`Expected \`use\` to be an array of middleware functions, got ${describe(options.use)}`);
      for (const mw of options.use) this.use(mw);
    }
    this.#nc = nc;
    this.#queue = queue;
    this.#handler = handler;
    this.#telemetry = workerTelemetry(queue as Queue<unknown, unknown>, this, options.telemetry);
  }

  /**
   * Adds a middleware around the handler, inside those added before (see {@link Middleware}).
   * Only before `start()`.
   * @returns this worker, for chaining.
   */
  use(middleware: Middleware<T>): this {
    if (typeof middleware !== "function") throw new ConfigError(`Expected a middleware function, got ${describe(middleware)}`);
    if (this.#state !== "idle") throw new ConfigError("Middleware can only be added before the worker starts");
    this.#use.push(middleware);
    return this;
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
  /** Handlers running right now (stuck ones included). */
  get inFlight(): number {
    return this.#running.size;
  }
  /** Whether the worker is pulling jobs. */
  get isRunning(): boolean {
    return this.#state === "running";
  }
  /** This worker's identity in ledger records and dead letters: `host:pid:random`. */
  get id(): string {
    return this.#workerId;
  }

  /**
   * Connects to the queue's consumer and starts pulling jobs.
   * @throws {@link QueueNotFoundError} the queue was not provisioned.
   * @throws {@link JetqError} the worker was stopped (before or while starting); create a new one.
   */
  async start(): Promise<void> {
    if (this.#state === "stopped" || this.#stopping) {
      throw new JetqError(`Worker for queue "${this.#queue.name}" was stopped; create a new Worker to start again`);
    }
    if (this.#state !== "idle") throw new JetqError(`Worker for queue "${this.#queue.name}" was already started`);
    this.#state = "starting";
    const n = this.#queue.names;
    try {
      this.#js = jetstream(this.#nc, jsOptions(this.#queue));
      this.#jsm = await jetstreamManager(this.#nc, jsOptions(this.#queue));
      // Fails with a clear error now if the queue was not provisioned.
      await this.#jsm.consumers.info(n.stream, n.consumer);
      const si = await this.#jsm.streams.info(n.stream);
      this.#incarnation = Date.parse(si.created) || 0;
      await this.#jsm.streams.info(n.ledgerStream);
      if (this.#queue.priorities) await this.#checkLevels(this.#jsm);
      if (this.#queue.results) await this.#jsm.streams.info(n.stateStream);
      if (this.#queue.scheduling && this.#schedules) {
        this.#scheduling = await startScheduling(this.#nc, this.#queue as Queue<unknown, unknown>, { error: (err) => this.#reportError(err) }, this.#telemetryOptions);
      }
      // A worker started while its queue is paused starts paused.
      this.#pause = new PauseWatch(this.#nc, this.#jsm, this.#queue as Queue<unknown, unknown>, () => this.#queuePull(), (e) => this.#reportError(e));
      await this.#pause.start();
      if (this.#queue.rateLimit) {
        this.#limiter = new RateLimiter(this.#nc, this.#js, this.#jsm, this.#queue as Queue<unknown, unknown>);
        await this.#limiter.check();
      }
      if (this.#queue.group) {
        this.#groups = new GroupLimiter(this.#js, this.#jsm, this.#queue as Queue<unknown, unknown>);
        await this.#groups.check();
      }
    } catch (err) {
      void this.#scheduling?.stop();
      this.#pause?.stop();
      if (this.#state === "starting") this.#state = "stopped";
      throw mapNatsError(err, `start worker for queue "${this.#queue.name}"`);
    }
    // stop() while we waited: stop wins.
    if (this.#state !== "starting") {
      void this.#scheduling?.stop();
      this.#pause.stop();
      throw new JetqError(`Worker for queue "${this.#queue.name}" was stopped while it was starting`);
    }
    this.#ledger = new Ledger(this.#js, this.#jsm, this.#queue as Queue<unknown, unknown>, this.#incarnation);
    this.#steps = this.#buildSteps();
    if (this.#queue.results) {
      this.#states = new StateWriter(this.#nc, this.#queue as Queue<unknown, unknown>, this.#workerId, (err) => this.#reportError(err));
    }
    this.#state = "running";
    const hooks = {
      message: (m: Delivered) => {
        this.#pullRetryMs = 0;
        this.#rateIdle = false;
        this.#accept(m);
      },
      unfilled: () => {
        this.#rateIdle = true;
        this.#queuePull();
      },
      silent: () => {
        void this.#checkConsumer(undefined);
        this.#queuePull();
      },
      error: (err: Error) => this.#pullFailed(err),
    };
    const pullOptions = { apiPrefix: apiPrefix(domainOf(this.#queue)) };
    this.#puller = this.#queue.priorities
      ? new PriorityPull(this.#nc, this.#queue as Queue<unknown, unknown>, this.#pullExpiresMs, this.#concurrency, this.#pullBatch, hooks, pullOptions)
      : new Puller(this.#nc, n.stream, n.consumer, this.#pullExpiresMs, hooks, pullOptions);
    void this.#nc.closed().then(() => this.#onClosed());
    this.#telemetry.attach();
    const leaseEvery = Math.max(50, Math.floor(this.#queue.ackWaitMs / 3));
    this.#leaseTimer = setInterval(() => this.#renewLeases(leaseEvery), Math.max(25, Math.floor(leaseEvery / 2)));
    // Running handlers keep the process alive by themselves; the lease timer must not keep a
    // process whose connection closed (or that forgot to stop its worker) from exiting.
    this.#leaseTimer.unref();
    if (this.#announceEveryMs > 0) {
      this.#announcer = new Announcer(this.#nc, this.#jsm, {
        id: this.#workerId,
        queue: this.#queue.name,
        concurrency: this.#concurrency,
        inFlight: () => this.#running.size,
        paused: () => this.#pause?.paused === true,
        forEachJob: (fn) => this.#running.forEach((r) => fn(r.event.id, r.event.seq, r.event.attempt, r.since)),
        error: (err) => this.#reportError(err),
      }, this.#announceEveryMs);
      this.#announcer.start();
    }
    this.#pull();
  }

  /** jetq's own steps (telemetry, validation, timeout), then the user's middleware. */
  #buildSteps(): Middleware<T>[] {
    const steps: Middleware<unknown>[] = [telemetryStep];
    const schema = this.#queue.schema;
    if (schema && this.#validate) steps.push(validationStep(schema));
    if (this.#queue.timeoutMs !== undefined) steps.push(timeoutStep(this.#queue.timeoutMs));
    return [...(steps as Middleware<T>[]), ...this.#use];
  }

  /**
   * Stops pulling, lets running handlers finish and ack for up to `timeoutMs`,
   * then aborts the rest through their `signal` and hands their jobs back to
   * the queue at once (nak) so another worker takes them; a job handed back
   * keeps its attempt count. Idempotent; wins over a `start()` still in progress.
   */
  stop(options: StopOptions = {}): Promise<void> {
    this.#stopping ??= this.#doStop(options.timeoutMs ?? 10_000);
    return this.#stopping;
  }

  /** `await using worker = …`: {@link Worker.stop} with its default deadline. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #doStop(timeoutMs: number): Promise<void> {
    if (this.#state === "idle" || this.#state === "starting" || this.#state === "stopped") {
      this.#state = "stopped";
      this.#emit("stopped");
      return;
    }
    this.#state = "stopping";
    clearTimeout(this.#pullRetryTimer);
    clearTimeout(this.#rateTimer);
    this.#limiter?.giveBack(); // its tokens will cover no start now
    const deadline = Date.now() + timeoutMs;
    // Jobs the server already sent for our open pull requests must reach us (and be handed back)
    // before we close those requests: a round trip orders them ahead of the close.
    try {
      await this.#nc.flush();
    } catch {
      // closed connection: nothing more can arrive
    }
    this.#puller?.stop();
    await this.#scheduling?.stop();
    this.#pause?.stop();
    if (this.#running.size > this.#stuck.size) {
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
      this.#handBack(r, 0, "released");
    }
    await Promise.allSettled([...this.#handingBack]);
    await this.#announcer?.stop();
    clearInterval(this.#leaseTimer);
    this.#confirmer?.close();
    this.#states?.close();
    this.#telemetry.detach();
    this.#state = "stopped";
    this.#emit("stopped");
  }

  #pull(): void {
    const puller = this.#puller;
    // A suspect runs alone: nothing more is pulled until it settles. A paused queue is not pulled.
    if (this.#state !== "running" || this.#pullRetryTimer || !puller || this.#isolation || this.#pause?.paused) return;
    const requested = puller.outstanding;
    const free = this.#concurrency - this.#held() - requested;
    if (free <= 0) return;
    // A prioritised queue batches per level itself (and keeps its urgent levels' requests open).
    if (puller instanceof PriorityPull && !this.#limiter) {
      puller.pull(free);
      return;
    }
    // Ask in batches, but never let the worker sit idle with free slots and nothing requested.
    if (free < this.#pullBatch && requested > 0) return;
    if (this.#limiter) this.#limitedPull(puller, free);
    else puller.pull(free);
  }

  /** Jobs that count against `concurrency`: all held, but those in the window of {@link #storing}. */
  #held(): number {
    return this.#running.size - Math.min(this.#storing, this.#concurrency * STORING_PER_SLOT);
  }

  /**
   * A rate-limited queue: take tokens first, then pull only as many jobs as there are tokens,
   * so nothing is pulled that may not start. A full window: try again when its oldest token leaves.
   */
  #limitedPull(puller: JobSource, want: number): void {
    const lim = this.#limiter!;
    if (lim.taking || this.#rateTimer) return;
    if (this.#rateIdle) {
      puller.pull(want);
      return;
    }
    const spare = (): number => Math.max(0, lim.usable() - puller.outstanding);
    const spareBefore = spare();
    const ask = want - spareBefore;
    const go = (granted: number): void => {
      if (this.#state !== "running") return;
      // Pull for the tokens just granted even if they aged meanwhile: a job that arrives after its
      // token's grace takes a fresh one (#startLimited), so the limit holds either way.
      const free = this.#concurrency - this.#held() - puller.outstanding;
      const n = Math.min(free, granted + spareBefore);
      if (n > 0) puller.pull(n);
      if (granted >= ask) return;
      void lim.waitMs().then((ms) => {
        if (this.#state !== "running" || this.#rateTimer) return;
        this.#rateTimer = setTimeout(() => {
          this.#rateTimer = undefined;
          this.#pull();
        }, ms);
      });
    };
    if (ask <= 0) {
      go(0);
      return;
    }
    lim.take(ask).then(go, (err: unknown) => {
      this.#reportError(safeError(err));
      go(0);
    });
  }

  /**
   * A job of a rate-limited queue is about to start with no token young enough to cover it (its
   * pull request waited, or it was classified first): take one now, or hand the job back until the
   * window has room (no attempt used).
   */
  async #startLimited(r: Running): Promise<void> {
    const lim = this.#limiter!;
    let ok = false;
    try {
      ok = (await lim.take(1, false)) > 0 && lim.use();
    } catch (err) {
      this.#reportError(safeError(err));
    }
    if (r.answered || r.settled) return;
    if (this.#state !== "running") {
      this.#handBack(r, 0, "released");
    } else if (!ok) {
      this.#telemetry.throttled?.(this.#queue.name, "rate");
      this.#handBack(r, await lim.waitMs(), "deferred");
    } else {
      this.#begin(r, true);
    }
  }

  /**
   * A prioritised queue: every level's consumer must exist (a clear error if it was provisioned
   * without levels). Asked all at once (one round trip rather than one per level before the first
   * job); the most urgent level that failed is the one reported.
   */
  async #checkLevels(jsm: JetStreamManager): Promise<void> {
    const q = this.#queue as Queue<unknown, unknown>;
    const names = Array.from({ length: q.priorities! - 1 }, (_, l) => levelConsumer(q, l));
    const answers = await Promise.allSettled(names.map((name) => jsm.consumers.info(q.names.stream, name)));
    const l = answers.findIndex((a) => a.status === "rejected");
    if (l < 0) return;
    const err = (answers[l] as PromiseRejectedResult).reason as unknown;
    const e = mapNatsError(err, `start worker for queue "${q.name}"`);
    if (!(e instanceof QueueNotFoundError)) throw e;
    throw new QueueNotFoundError(
      `start worker for queue "${q.name}": the consumer "${names[l]}" of priority level ${l} does not exist. Provision the queue with its priorities (provisionQueue(nc, queue, { update: true }) for a queue that had none).`,
      { cause: err },
    );
  }

  /**
   * A job of a group, on a queue with group limits: take its group's tokens, or hand it back
   * until the group has room (no attempt used). A limiter stream that cannot be written (lost,
   * or the connection) holds the job back too, reported: a limit is never skipped.
   */
  async #startGrouped(r: Running, group: string, rateToken: boolean): Promise<void> {
    let verdict;
    try {
      verdict = await this.#groups!.take(group, r.msg.deliveries);
    } catch (err) {
      this.#reportError(safeError(err));
    }
    if (r.answered || r.settled || this.#state !== "running") {
      if (verdict?.ok) this.#groups!.release(verdict.hold);
      if (!r.answered && !r.settled) this.#handBack(r, 0, "released");
      return;
    }
    if (!verdict) {
      this.#handBack(r, 1_000, "deferred");
    } else if (!verdict.ok) {
      this.#telemetry.throttled?.(this.#queue.name, verdict.limit === "rate" ? "group_rate" : "group_concurrency");
      this.#groups!.deferred(r.msg.seq);
      this.#handBack(r, verdict.delayMs, "deferred");
    } else {
      this.#groups!.started(r.msg.seq, r.msg.deliveries);
      this.#holds.set(r, verdict.hold);
      this.#begin(r, rateToken);
    }
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

  /**
   * A delivery arrived. This runs inside the NATS client's subscription callback: nothing here may
   * throw (an exception would stop the connection's reader) and no user code runs synchronously.
   */
  #accept(m: Delivered): void {
    let r: Running;
    try {
      r = new Running(m, { id: jobIdOf(m.headers, m.seq), seq: m.seq, attempt: 1 }, Date.now());
      this.#running.add(r);
    } catch (err) {
      this.#reportError(safeError(err));
      return;
    }
    try {
      if (this.#state !== "running") {
        // Arrived after stop began: hand it straight back.
        this.#handBack(r, 0, "released");
      } else if (this.#isolation || (this.#stuck.size > 0 && this.#stuck.has(m.seq)) || this.#pause?.paused) {
        // Nothing else may run beside a suspect, a job never runs twice at once here, and a job
        // that answers a pull request made before the queue was paused waits in the queue.
        this.#handBack(r, DEFER_MS, "deferred");
      } else if (m.deliveries <= 1) {
        this.#begin(r);
      } else {
        void this.#classify(r);
      }
    } catch (err) {
      this.#reportError(safeError(err));
      this.#tell(r, "hand back", () => r.msg.nak(DEFER_MS));
      this.#finish(r);
    }
  }

  /** A redelivery: read the job's ledger record to tell an explained retry from a suspect. */
  async #classify(r: Running): Promise<void> {
    let read;
    try {
      read = await this.#ledger!.read(r.msg.seq);
    } catch (err) {
      // Cannot tell what happened to it: hand it back; its next delivery is looked up again.
      this.#reportError(safeError(err));
      if (!r.answered) {
        r.answered = true;
        this.#tell(r, "hand back", () => r.msg.nak(DEFER_MS));
      }
      this.#finish(r);
      return;
    }
    if (r.answered || r.settled) return; // stop() handed it back meanwhile
    const c = classify(r.msg.deliveries, read.record, this.#queue.maxCrashes);
    r.record = baseRecord(read.record, c);
    r.revision = read.revision;
    r.event.attempt = c.attempt;
    if (c.kind === "stale") {
      // A later delivery of this job wrote its record: another worker holds it now (this worker
      // stalled past ackWaitMs). Answering would act on that delivery: drop this one silently.
      r.answered = true;
      this.#finish(r);
    } else if (c.kind === "finish-dead") {
      // An earlier delivery decided to dead-letter it (and may have copied it) before it died:
      // finish that, never run the handler again. The copy's msg id makes a second one a no-op.
      r.span = this.#telemetry.start(this.#queue.name, r.msg, r.event);
      const error = new JetqError(read.record?.error ?? "dead-lettered by an earlier delivery");
      await this.#deadLetter(r, c.reason, error, c.crashes || undefined, read.record?.worker, true);
    } else if (this.#state !== "running") {
      this.#handBack(r, 0, "released");
    } else if (c.kind === "run") {
      this.#begin(r);
    } else if (c.kind === "crashed") {
      r.span = this.#telemetry.start(this.#queue.name, r.msg, r.event);
      const last = read.record?.worker ? `; the last run alone was on worker ${read.record.worker}` : "";
      const error = new JetqError(
        `the job crashed or stalled its worker ${c.crashes} time(s) while it ran alone (maxCrashes ${this.#queue.maxCrashes})${last}`,
      );
      error.name = "CrashedError";
      await this.#deadLetter(r, "crashed", error, c.crashes, read.record?.worker);
    } else if (this.#isolation || this.#blockers.size > 0 || this.#stuck.size > 0) {
      // Another suspect runs alone here already, or a handler here ran past an earlier suspect's
      // wait or past its timeout (it may never settle): let this one go to another worker (it
      // stays a suspect, its pending crash counted).
      this.#handBack(r, DEFER_MS, "deferred");
    } else {
      r.isolated = true;
      const iso: { r: Running; started: boolean; timer: NodeJS.Timeout | undefined } = { r, started: false, timer: undefined };
      this.#isolation = iso;
      this.#maybeIsolate();
      if (!iso.started && this.#isolation === iso) {
        iso.timer = setTimeout(() => this.#giveUpIsolation(iso), this.#isolationWaitMs());
        iso.timer.unref();
      }
    }
  }

  /**
   * How long a suspect waits for the other jobs here to settle: the longest a handler that heeds
   * its timeout can still run (`timeoutMs`), plus one lease period (`ackWaitMs`) for its outcome to
   * be written and answered. Without `timeoutMs`, one lease period.
   */
  #isolationWaitMs(): number {
    return (this.#queue.timeoutMs ?? 0) + this.#queue.ackWaitMs;
  }

  /**
   * A suspect cannot run alone here soon (a handler here is past its timeout, or still running at
   * the end of the wait): hand the suspect back, recorded and without an attempt, and pull again.
   * It never runs beside another handler, so a crash is still charged only to a job that ran alone.
   */
  #giveUpIsolation(iso: { r: Running; started: boolean; timer: NodeJS.Timeout | undefined }): void {
    if (this.#isolation !== iso || iso.started || this.#state !== "running") return; // stop() hands it back
    clearTimeout(iso.timer);
    this.#isolation = undefined;
    const others: string[] = [];
    for (const o of this.#running.snapshot()) {
      if (o === iso.r || o.settled) continue;
      this.#blockers.add(o);
      if (others.length < 10) others.push(o.event.id);
    }
    this.#reportError(
      new JetqError(
        `job ${iso.r.event.id} (redelivered without a recorded outcome) could not run alone on this worker: job(s) ${others.join(", ")} still running after ${this.#isolationWaitMs()} ms or past their timeout. It is handed back without an attempt to run alone elsewhere; this worker pulls again and hands suspects back until those handlers settle.`,
      ),
    );
    this.#handBack(iso.r, DEFER_MS, "deferred");
    this.#queuePull();
  }

  /** Starts the isolated run once the suspect is the only job this worker holds. */
  #maybeIsolate(): void {
    const iso = this.#isolation;
    // Pull requests already open may still bring jobs while the suspect runs: each is handed back
    // at once (recorded, never started). Waiting for those requests to expire instead cost up to
    // pullExpiresMs per isolated run, and a kill storm makes a suspect of every job in flight.
    if (!iso || iso.started) return;
    if (this.#stuck.size > 0 && this.#running.size - 1 === this.#stuck.size) {
      // Everything else here is past its timeout and ignores its signal: it may never settle.
      this.#giveUpIsolation(iso);
      return;
    }
    if (this.#running.size !== 1 || this.#acks.length > 0) return;
    iso.started = true;
    clearTimeout(iso.timer);
    void this.#runIsolated(iso.r);
  }

  async #runIsolated(r: Running): Promise<void> {
    try {
      // Fire-and-forget acks of jobs that finished before isolation began reach the server first
      // (those finished since were confirmed one by one).
      await this.#nc.flush();
    } catch {
      // the write below fails too and says why
    }
    if (r.answered || r.settled) return;
    const record = isolatedStart(r.record ?? EMPTY_RECORD, r.msg.deliveries, this.#workerId);
    try {
      r.revision = await this.#ledger!.write(r.msg.seq, record, r.revision);
    } catch (err) {
      this.#reportError(safeError(err));
      if (!r.answered && !(err instanceof LedgerConflictError)) {
        r.answered = true;
        this.#tell(r, "hand back", () => r.msg.nak(DEFER_MS));
      }
      this.#finish(r);
      return;
    }
    if (r.answered || r.settled) return;
    r.record = record;
    this.#emit("isolated", r.event);
    this.#begin(r);
  }

  /** Runs the middleware chain and the handler for one delivery (on a rate-limited queue, once it has a token). */
  #begin(r: Running, token = false): void {
    if (this.#groups && !this.#holds.has(r)) {
      const group = r.msg.headers?.get(GROUP_HEADER);
      if (group) {
        void this.#startGrouped(r, group, token);
        return;
      }
    }
    if (this.#limiter && !token && !this.#limiter.use()) {
      void this.#startLimited(r);
      return;
    }
    const span = this.#telemetry.start(this.#queue.name, r.msg, r.event);
    r.span = span;
    const started = performance.now();
    let data: unknown;
    try {
      data = decodePayload(r.msg.data);
    } catch (err) {
      const e = safeError(err);
      this.#settle(r, { kind: "rejected", reason: "decode", error: new ValidationError(`payload is not valid JSON: ${e.message}`, [], { cause: err }) }, started);
      return;
    }
    if (this.#states) r.state = this.#states.begin(r.event, r.msg.storedAtMs);
    const job = new JobImpl<T>(r, data as T, this.#queue.maxAttempts);
    // The telemetry step only sets the trace context; with nothing recording, skip it.
    const steps = span === noAttemptSpan && this.#steps[0] === telemetryStep ? this.#steps.slice(1) : this.#steps;
    runChain(steps, this.#handler, job).then(
      (v: unknown) => this.#settle(r, this.#states || this.#queue.resultSchema ? this.#result(r, v) : OK, started),
      (err: unknown) => this.#settle(r, failure(err), started),
    );
  }

  /** The chain's value is the job's result: checked against `resultSchema`; a mismatch fails the attempt. */
  #result(r: Running, v: unknown): Settlement {
    try {
      if (r.state) this.#states!.result(r.state, v);
      else checkResult(this.#queue.resultSchema, v);
      return OK;
    } catch (err) {
      return failure(err);
    }
  }

  /** The attempt settled: carry out what {@link decide} says. Never throws. */
  #settle(r: Running, s: Settlement, started: number): void {
    try {
      const error = s.kind === "failed" || s.kind === "rejected" ? s.error : undefined;
      if (r.answered || r.settled) {
        // stop() handed it back already
        r.span?.end(error, { kind: "released" });
        return;
      }
      const d = decide(s, { attempt: r.event.attempt, maxAttempts: this.#queue.maxAttempts, backoff: this.#queue.backoff });
      if (d.kind === "ack") {
        if (r.state) this.#completeWithResult(r, performance.now() - started);
        else this.#complete(r, performance.now() - started);
      } else if (d.kind === "dead") {
        void this.#deadLetter(r, d.reason, error!);
      } else if (d.kind === "retry") {
        if (d.warning) this.#reportError(d.warning);
        void this.#retry(r, error!, d.delayMs);
      } else {
        this.#handBack(r, 0, "released");
      }
    } catch (err) {
      this.#reportError(safeError(err));
    }
  }

  /**
   * A queue with `results`: the `completed` record (with the result) is confirmed by the server
   * before the ack, so a crash in between can only repeat the job, never show it completed
   * without its result. A write that fails hands the job back (it runs again), costing no attempt.
   */
  #completeWithResult(r: Running, durationMs: number): void {
    this.#storing++;
    this.#queuePull();
    const stored = (err: Error | undefined): void => {
      this.#storing--;
      try {
        if (err) {
          this.#reportError(safeError(err));
          this.#handBack(r, DEFER_MS, "deferred");
          return;
        }
        if (r.answered || r.settled) return; // stop() handed it back meanwhile: it runs again
        this.#complete(r, durationMs);
      } catch (e) {
        this.#reportError(safeError(e));
      }
    };
    try {
      this.#states!.completed(r.state!, stored);
    } catch (err) {
      // The record could not even be built: the job runs again, as for a failed write.
      stored(safeError(err));
    }
  }

  #complete(r: Running, durationMs: number): void {
    r.answered = true;
    if (this.#ackMode === "fire" && !this.#isolation) {
      // Fire-and-forget acks wait for the end of this turn of the event loop and go out together:
      // the NATS client flushes its outbound buffer in a microtask, so acks made one per job went
      // out one socket write each, about half of a draining worker's CPU in a profile.
      this.#acks.push({ r, durationMs });
      if (this.#acks.length === 1) {
        // With results, the acks leave in the same socket write as the turn's records (StateWriter.defer).
        if (this.#states) this.#states.defer(this.#flushAcksFn);
        else setImmediate(this.#flushAcksFn);
      }
      return;
    }
    // Confirmed mode, or a suspect waits to run alone: the server confirms each ack.
    this.#confirmer ??= new AckConfirmer(this.#nc, 5_000);
    this.#confirmer.confirm(r.msg).then(
      () => this.#afterAck(r, durationMs, undefined),
      (err: unknown) => this.#afterAck(r, durationMs, { err, what: "confirm ack of" }),
    );
  }

  /**
   * The job's final ack went out (or could not be sent or confirmed): free its slot, then report
   * `completed`, or the failure. A job whose ack failed ran all the same; the server redelivers it
   * (at-least-once), so it is reported, not hidden.
   */
  #afterAck(r: Running, durationMs: number, failed: { err: unknown; what: string } | undefined): void {
    this.#finish(r);
    if (failed) {
      this.#reportError(mapNatsError(failed.err, `${failed.what} job ${r.event.id} (it will be redelivered)`));
    } else {
      this.#telemetry.completed(this.#queue.name, durationMs);
      this.#emit("completed", r.event, durationMs);
    }
    r.span?.end(undefined);
  }

  readonly #flushAcksFn = (): void => this.#flushAcks();
  readonly #queuedPullFn = (): void => {
    this.#pullQueued = false;
    this.#pull();
  };

  /** Sends the queued fire-and-forget acks; each job's slot is freed (and `completed` emitted) after its ack. */
  #flushAcks(): void {
    const acks = this.#acks.splice(0);
    for (const { r, durationMs } of acks) {
      let failed: { err: unknown; what: string } | undefined;
      try {
        r.msg.ack();
      } catch (err) {
        // The connection is gone.
        failed = { err, what: "ack" };
      }
      this.#afterAck(r, durationMs, failed);
    }
    // Ask for the freed slots now, so the pull request leaves in the same write as the acks
    // rather than one more turn later.
    this.#pull();
  }

  /** A failed attempt with attempts left: record the failure, then hand the job back with its delay. */
  async #retry(r: Running, error: Error, delayMs: number): Promise<void> {
    r.answered = true;
    try {
      r.revision = await this.#ledger!.write(r.msg.seq, afterFailure(r.record ?? EMPTY_RECORD, r.msg.deliveries, this.#workerId, error), r.revision);
    } catch (err) {
      this.#reportError(safeError(err));
      if (err instanceof LedgerConflictError) {
        // The job went to another worker while this attempt ran (its lease lapsed): leave it be.
        this.#finish(r);
        r.span?.end(error, { kind: "released" });
        return;
      }
      // Not recorded: the job is still handed back; its next delivery counts as a suspect's
      // (it runs alone), which never costs an attempt it did not fail.
    }
    if (r.state) this.#states!.retrying(r.state, error, delayMs);
    this.#tell(r, "nak", () => r.msg.nak(delayMs));
    this.#finish(r);
    r.span?.end(error, { kind: "retry", delayMs });
    this.#telemetry.retried(this.#queue.name);
    this.#emit("retrying", r.event, error, delayMs);
  }

  /**
   * Hands a job back without using an attempt: records the hand-back, then naks. Used by stop()
   * and for deferrals (a suspect waiting to run alone elsewhere, a job already running here).
   */
  #handBack(r: Running, delayMs: number, why: "released" | "deferred"): void {
    if (r.answered || r.settled) return;
    r.answered = true;
    const p = this.#recordHandBack(r).then((answer) => {
      if (answer) {
        if (r.state && !r.state.final) this.#states!.released(r.state);
        this.#tell(r, "hand back", () => r.msg.nak(delayMs));
      }
      this.#finish(r);
      if (answer && why === "released") this.#emit("released", r.event);
    });
    this.#handingBack.add(p);
    void p.finally(() => this.#handingBack.delete(p));
  }

  /** Records a hand-back; false when the delivery turned out stale (nothing must answer it). */
  async #recordHandBack(r: Running): Promise<boolean> {
    try {
      if (r.msg.deliveries > 1 && r.record === undefined) {
        // A redelivery handed back before it was classified (it arrived while a suspect waits to
        // run alone here): read its record first, so the hand-back keeps what it says.
        const read = await this.#ledger!.read(r.msg.seq);
        const c = classify(r.msg.deliveries, read.record, this.#queue.maxCrashes);
        if (c.kind === "stale") return false;
        r.record = baseRecord(read.record, c);
        r.revision = read.revision;
      }
      r.revision = await this.#ledger!.write(r.msg.seq, afterHandBack(r.record ?? EMPTY_RECORD, r.msg.deliveries, this.#workerId), r.revision);
    } catch (err) {
      this.#reportError(safeError(err));
      // Lost the job to a newer delivery: leave it be. Otherwise hand it back unrecorded (its
      // next delivery then runs alone once, which costs no attempt).
      if (err instanceof LedgerConflictError) return false;
    }
    return true;
  }

  async #deadLetter(r: Running, reason: DeadLetterReason, error: Error, crashes?: number, lastWorker?: string, recorded = false): Promise<void> {
    r.answered = true;
    const m = r.msg;
    if (!recorded) {
      // The decision goes into the ledger first (compare-and-set): a worker that read an older
      // record cannot dead-letter the job another one runs, and a crash after the copy finishes
      // the dead letter on the next delivery instead of running the handler again.
      const base = r.record ?? EMPTY_RECORD;
      try {
        r.revision = await this.#ledger!.write(
          m.seq,
          afterDead(base, m.deliveries, this.#workerId, reason, r.event.attempt, crashes ?? base.crashes, error),
          r.revision,
        );
      } catch (err) {
        this.#reportError(safeError(err));
        if (err instanceof LedgerConflictError) {
          this.#finish(r);
          r.span?.end(error, { kind: "released" });
          return;
        }
        // The ledger cannot be written: dead-letter all the same (a poison job must not retry forever).
      }
    }
    try {
      await copyToDeadLetters(this.#js!, this.#queue as Queue<unknown, unknown>, {
        data: m.data,
        headers: m.headers,
        sourceSeq: m.seq,
        incarnation: this.#incarnation,
        attempts: r.event.attempt,
        crashes,
        level: levelOfAckSubject(this.#queue as Queue<unknown, unknown>, m.reply),
        worker: lastWorker ?? this.#workerId,
        publishedAtMs: m.storedAtMs,
        reason,
        error,
      }, this.#nc.info?.max_payload);
    } catch (err) {
      // Not confirmed: keep the job. It comes back after a backoff; unrecorded, it runs alone then.
      this.#tell(r, "nak", () => r.msg.nak(backoffDelay(this.#queue.backoff, r.event.attempt, Math.random, error)));
      this.#finish(r);
      r.span?.end(error);
      this.#reportError(safeError(err));
      return;
    }
    if (this.#states) {
      // Confirmed before the removal, so a Jobs.wait() on it ends; if it fails the dead letter still tells.
      await this.#states.dead(r.state ?? this.#states.track(r.event, m.storedAtMs), reason, error).catch((err: unknown) => this.#reportError(safeError(err)));
    }
    // Confirmed in the dead-letter stream: now remove the original (term deletes it from a work queue).
    // If the connection is gone now, the job comes back once more and is removed then: its dead
    // letter has the same msg id, so the server drops the second copy.
    this.#tell(r, "remove", () => r.msg.term());
    this.#finish(r);
    r.span?.end(error, { kind: "dead", reason });
    this.#telemetry.dead(this.#queue.name, reason);
    this.#emit("dead", r.event, reason, error);
  }

  /** Frees the job's slot once its handler has settled; exactly once per job. */
  #finish(r: Running): void {
    if (r.settled) return;
    if (!r.chainDone) {
      // Timed out and still running: the slot stays taken until the handler settles.
      if (!this.#stuck.has(r.msg.seq)) {
        this.#stuck.set(r.msg.seq, r);
        r.onChainDone = () => {
          this.#stuck.delete(r.msg.seq);
          this.#finish(r);
        };
        this.#telemetry.stuck?.(this.#queue.name);
        this.#emit("stuck", r.event, new JetqError(`handler for job ${r.event.id} did not settle after its timeout; it keeps its slot until it does`));
        // A suspect waiting for this one to settle need not wait out its bound.
        this.#maybeIsolate();
      }
      return;
    }
    r.settled = true;
    clearTimeout(r.timer);
    if (this.#holds.size > 0) {
      const hold = this.#holds.get(r);
      if (hold) {
        this.#holds.delete(r);
        this.#groups!.release(hold);
      }
    }
    r.state?.close();
    this.#running.delete(r);
    if (this.#blockers.size > 0) this.#blockers.delete(r);
    if (this.#isolation?.r === r) {
      clearTimeout(this.#isolation.timer);
      this.#isolation = undefined;
    }
    if (this.#running.size <= this.#stuck.size) this.#idle?.();
    this.#maybeIsolate();
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
    if (this.#states) this.#states.defer(this.#queuedPullFn);
    else setImmediate(this.#queuedPullFn);
  }

  #renewLeases(every: number): void {
    const now = Date.now();
    this.#running.forEach((r) => {
      if (now - r.lastLease >= every && !r.answered) {
        r.lastLease = now;
        this.#tell(r, "extend the lease of", () => r.msg.working());
        const hold = this.#holds.size > 0 ? this.#holds.get(r) : undefined;
        if (hold) this.#groups!.renew(hold).catch((err: unknown) => this.#reportError(safeError(err)));
        if (r.state) this.#states!.lease(r.state);
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

  /** Emits an event; a listener that throws is logged, never allowed into the worker's own paths. */
  #emit<K extends keyof WorkerEvents>(event: K, ...args: WorkerEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: WorkerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.#log(safeError(err), `a listener of the worker's "${String(event)}" event threw`);
    }
  }

  #reportError(err: Error): void {
    if (this.listenerCount("error") > 0) this.#emit("error", err);
    else this.#log(err, err.message);
  }

  #log(err: Error, msg: string): void {
    try {
      this.#logger?.error({ err, queue: this.#queue.name }, msg);
    } catch {
      // a logger that throws has nowhere left to report to
    }
  }
}
