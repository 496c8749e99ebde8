import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { type Attributes, type BatchObservableCallback, type Meter, type MeterProvider, metrics, ValueType } from "@opentelemetry/api";
import type { Logger } from "../consumer/worker.ts";
import { ConfigError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import { describe, type Queue } from "../queue/define.ts";
import { ATTR, INSTRUMENTATION_SCOPE } from "./otel.ts";
import { type QueueStats, readQueueStats } from "./stats.ts";

/** Options of {@link observeQueues}. */
export interface ObserveQueuesOptions {
  /** Meter that owns the gauges. @default `meterProvider.getMeter("jetq")` */
  meter?: Meter;
  /** Used when `meter` is not given. @default the global meter provider */
  meterProvider?: MeterProvider;
  /**
   * Shortest time between two reads of the server: a collection sooner than this reports the
   * figures already read, so frequent scrapes cost the server nothing more. @default 5000
   */
  refreshMs?: number;
  /** Longest time a collection waits for a read in progress before reporting what it has. @default 2000 */
  timeoutMs?: number;
  /** Called when a queue's figures cannot be read (that queue is then left out until a read succeeds). @default log a warning through `logger` */
  onError?: (error: Error) => void;
  /** pino-compatible logger for read failures when there is no `onError`. @default silent */
  logger?: Logger;
}

/** Handle returned by {@link observeQueues}. */
export interface QueueObserver {
  /** Reads every queue's figures now (bounded by `timeoutMs`) and returns the latest known ones. */
  refresh(): Promise<readonly QueueStats[]>;
  /** The figures of the last successful read of each queue. */
  readonly latest: readonly QueueStats[];
  /** Unregisters the gauges. Idempotent. */
  close(): void;
  /** `using observer = …`: {@link QueueObserver.close}. */
  [Symbol.dispose](): void;
}

/** Queues read at once during one refresh: a bound on concurrent API requests (three per queue). */
const READ_PARALLELISM = 8;
const MAX_QUEUES = 10_000;

interface Gauge {
  name: string;
  unit: string;
  description: string;
  value: (s: QueueStats) => number;
}

/** The observable gauges, read from the server through {@link queueStats}. */
const GAUGES: readonly Gauge[] = [
  { name: "jetq.queue.depth", unit: "{job}", description: "Jobs waiting to be delivered (the consumer's num_pending).", value: (s) => s.pending },
  {
    name: "jetq.queue.in_flight",
    unit: "{job}",
    description: "Jobs delivered and not yet acked, across all workers (the consumer's num_ack_pending).",
    value: (s) => s.inFlight,
  },
  {
    name: "jetq.queue.redelivered",
    unit: "{job}",
    description: "Jobs delivered more than once and not yet acked (the consumer's num_redelivered).",
    value: (s) => s.redelivered,
  },
  { name: "jetq.queue.dead_letters", unit: "{job}", description: "Dead letters stored for the queue.", value: (s) => s.deadLetters },
  {
    name: "jetq.queue.stored",
    unit: "{job}",
    description: "Jobs stored in the queue's stream (pending, in flight, and given-up jobs not yet moved).",
    value: (s) => s.stored,
  },
  { name: "jetq.queue.bytes", unit: "By", description: "Bytes stored in the queue's stream.", value: (s) => s.bytes },
  {
    name: "jetq.queue.waiting_pulls",
    unit: "{request}",
    description: "Pull requests waiting on the server: a rough measure of idle worker capacity.",
    value: (s) => s.waitingPulls,
  },
  {
    name: "jetq.queue.credit_window",
    unit: "{job}",
    description: "The shared credit window: the most un-acked jobs the server hands out (max_ack_pending).",
    value: (s) => s.maxAckPending,
  },
];

class Observer implements QueueObserver {
  readonly #nc: NatsConnection;
  readonly #queues: ReadonlyArray<Queue<unknown, unknown>>;
  readonly #attrs = new Map<string, Attributes>();
  readonly #latest = new Map<string, QueueStats>();
  readonly #refreshMs: number;
  readonly #timeoutMs: number;
  readonly #onError: (e: Error) => void;
  readonly #meter: Meter;
  readonly #observables: ReturnType<Meter["createObservableGauge"]>[];
  readonly #callback: BatchObservableCallback;
  #jsm: JetStreamManager | undefined;
  #reading: Promise<void> | undefined;
  #readAt = -Infinity;
  #closed = false;

  constructor(nc: NatsConnection, queues: ReadonlyArray<Queue<unknown, unknown>>, options: ObserveQueuesOptions) {
    this.#nc = nc;
    this.#queues = queues;
    for (const q of queues) this.#attrs.set(q.name, { [ATTR.queue]: q.name });
    this.#refreshMs = ms("refreshMs", options.refreshMs ?? 5_000, 0);
    this.#timeoutMs = ms("timeoutMs", options.timeoutMs ?? 2_000, 1);
    const logger = options.logger;
    this.#onError = options.onError ?? ((err) => logger?.warn({ err }, err.message));
    this.#meter = options.meter ?? (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE);
    this.#observables = GAUGES.map((g) =>
      this.#meter.createObservableGauge(g.name, { unit: g.unit, description: g.description, valueType: ValueType.INT }),
    );
    this.#callback = async (result) => {
      await this.#refreshIfStale();
      for (const s of this.#latest.values()) {
        const attrs = this.#attrs.get(s.queue)!;
        for (let i = 0; i < GAUGES.length; i++) result.observe(this.#observables[i]!, GAUGES[i]!.value(s), attrs);
      }
    };
    this.#meter.addBatchObservableCallback(this.#callback, this.#observables);
  }

  get latest(): readonly QueueStats[] {
    return [...this.#latest.values()];
  }

  async refresh(): Promise<readonly QueueStats[]> {
    this.#readAt = -Infinity;
    await this.#refreshIfStale();
    return this.latest;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#meter.removeBatchObservableCallback(this.#callback, this.#observables);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** At most one read in progress, at most one per `refreshMs`; a caller waits at most `timeoutMs`. */
  async #refreshIfStale(): Promise<void> {
    if (this.#closed) return;
    if (!this.#reading && performance.now() - this.#readAt >= this.#refreshMs) {
      this.#reading = this.#readAll().finally(() => {
        this.#readAt = performance.now();
        this.#reading = undefined;
      });
    }
    if (!this.#reading) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#reading, new Promise<void>((r) => (timer = setTimeout(r, this.#timeoutMs)))]);
    clearTimeout(timer);
  }

  async #readAll(): Promise<void> {
    try {
      this.#jsm ??= await jetstreamManager(this.#nc);
    } catch (err) {
      this.#latest.clear();
      this.#onError(mapNatsError(err, "read queue stats"));
      return;
    }
    const jsm = this.#jsm;
    for (let i = 0; i < this.#queues.length; i += READ_PARALLELISM) {
      const batch = this.#queues.slice(i, i + READ_PARALLELISM);
      const results = await Promise.allSettled(batch.map((q) => readQueueStats(jsm, q)));
      results.forEach((r, k) => {
        const name = batch[k]!.name;
        if (r.status === "fulfilled") this.#latest.set(name, r.value);
        else {
          // Stale figures would mislead a dashboard or an autoscaler: drop them until a read works.
          this.#latest.delete(name);
          this.#onError(r.reason instanceof Error ? r.reason : new Error(String(r.reason)));
        }
      });
    }
  }
}

function ms(name: string, v: unknown, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > 2 ** 31 - 1) {
    throw new ConfigError(`Expected \`${name}\` to be an integer number of milliseconds from ${min}, got ${describe(v)}`);
  }
  return v;
}

/**
 * Registers observable gauges with the server-side figures of `queues` (depth,
 * in flight, redelivered, dead letters, stored jobs and bytes, waiting pulls,
 * credit window), read through {@link queueStats} when the meter collects.
 * Reads are bounded: at most one at a time, at most one per `refreshMs`, and a
 * collection waits at most `timeoutMs` for one. Call `close()` to unregister.
 *
 * @example
 * ```ts
 * const observer = observeQueues(nc, [emails, invoices], { refreshMs: 10_000 });
 * // ... on shutdown:
 * observer.close();
 * ```
 */
export function observeQueues(
  nc: NatsConnection,
  queues: ReadonlyArray<Queue<unknown, unknown>>,
  options: ObserveQueuesOptions = {},
): QueueObserver {
  if (!Array.isArray(queues) || queues.length > MAX_QUEUES) {
    throw new ConfigError(`Expected \`queues\` to be an array of at most ${MAX_QUEUES} queues, got ${describe(queues)}`);
  }
  const unique = new Map<string, Queue<unknown, unknown>>();
  for (const q of queues) {
    if (typeof q !== "object" || q === null || typeof q.name !== "string" || !q.names) {
      throw new ConfigError(`Expected every item of \`queues\` to be a queue from defineQueue(), got ${describe(q)}`);
    }
    unique.set(q.name, q);
  }
  return new Observer(nc, [...unique.values()], options);
}
