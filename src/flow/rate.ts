import type { NatsConnection } from "@nats-io/transport-node";
import { DiscardPolicy, type JetStreamClient, type JetStreamManager, RetentionPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import type { Queue, RateLimit } from "../queue/define.ts";

/**
 * @internal How long a token may wait for its job to start, and how much longer than the window
 * a token lives on the server. A job that starts at most GRACE after its token was asked for is
 * covered: every start within any window of `perMs` used a token that was still stored at the
 * window's end, and the stream stores at most `max`. The price is a rate up to GRACE/perMs below
 * the limit (5 % from 2 s windows up; 100 ms at the least, 10 % at 1 s).
 */
export function graceMs(r: RateLimit): number {
  // At least 100 ms: a batch of 16 pipelined token publishes and the pull after it took 50 ms on
  // a loaded 2-core machine, and a job that starts past the grace needs a token of its own (its
  // batch token is wasted, and a full window defers the job).
  return Math.max(100, Math.ceil(r.perMs * 0.05));
}

/** @internal The limiter stream and its subject. */
export function rateNames(queue: Queue<unknown, unknown>): { stream: string; subject: string } {
  return { stream: `${queue.names.stream}_RATE`, subject: `jetq.rate.${queue.name}` };
}

/**
 * @internal The limiter stream of a rate-limited queue: each job start takes one message (a
 * token); the server keeps at most `max` of them, each for `perMs` + grace, and refuses a new
 * one while full (discard new). Memory storage: tokens are worth nothing after a window, and a
 * server restart at worst grants one window again.
 */
export function rateStreamConfig(queue: Queue<unknown, unknown>): Partial<StreamConfig> | undefined {
  const r = queue.rateLimit;
  if (!r) return undefined;
  const n = rateNames(queue);
  return {
    name: n.stream,
    subjects: [n.subject],
    retention: RetentionPolicy.Limits,
    storage: StorageType.Memory,
    num_replicas: queue.replicas,
    max_msgs: r.max,
    max_age: (r.perMs + graceMs(r)) * 1_000_000,
    discard: DiscardPolicy.New,
  };
}

const REFUSED = new Set<number>([API.streamStoreFailed, API.maximumMessagesExceeded]);

/**
 * @internal A worker's side of a queue's rate limit. Tokens are taken in batches before pulling
 * (one pipelined publish per token, so a batch costs one round trip of waiting), kept with the
 * time they were asked for, and spent as jobs arrive; a token older than the grace is dropped.
 * Bounded: at most `concurrency` tokens held or asked for.
 */
export class RateLimiter {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #queue: Queue<unknown, unknown>;
  readonly #limit: RateLimit;
  readonly #grace: number;
  readonly #subject: string;
  readonly #stream: string;
  /** When each held token was asked for (oldest first). */
  #held: number[] = [];
  #taking = false;

  constructor(_nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, queue: Queue<unknown, unknown>) {
    this.#js = js;
    this.#jsm = jsm;
    this.#queue = queue;
    this.#limit = queue.rateLimit!;
    this.#grace = graceMs(this.#limit);
    const n = rateNames(queue);
    this.#subject = n.subject;
    this.#stream = n.stream;
  }

  /** Fails with a clear error if the limiter stream was not provisioned. */
  async check(): Promise<void> {
    try {
      await this.#jsm.streams.info(this.#stream);
    } catch (err) {
      throw mapNatsError(err, `open the rate limiter of queue "${this.#queue.name}" (stream ${this.#stream}; provision the queue again with its rateLimit)`);
    }
  }

  /** Whether a batch is being asked for now (the worker waits for it rather than ask twice). */
  get taking(): boolean {
    return this.#taking;
  }

  /** Tokens held and still young enough to cover a start now. */
  usable(now = Date.now()): number {
    this.#drop(now);
    return this.#held.length;
  }

  /** Spends a held token for a job starting now; false if none is young enough. */
  use(now = Date.now()): boolean {
    this.#drop(now);
    return this.#held.shift() !== undefined;
  }

  #drop(now: number): void {
    let i = 0;
    while (i < this.#held.length && now - this.#held[i]! > this.#grace) i++;
    if (i > 0) this.#held.splice(0, i);
  }

  /**
   * Asks the server for `n` tokens at once; resolves with how many it granted (they are held).
   * A refusal means the window is full; any other failure is thrown after the batch settles.
   * `batch` false: a single token for a job that arrived without one (not counted as `taking`).
   */
  async take(n: number, batch = true): Promise<number> {
    if (batch) this.#taking = true;
    try {
      const at = Date.now();
      const results = await Promise.allSettled(Array.from({ length: n }, () => this.#js.publish(this.#subject, undefined, { timeout: 5_000 })));
      let granted = 0;
      let failure: unknown;
      for (const r of results) {
        if (r.status === "fulfilled") granted++;
        else if (!REFUSED.has(apiCode(r.reason) ?? 0)) failure ??= r.reason;
      }
      for (let i = 0; i < granted; i++) this.#held.push(at);
      if (granted === 0 && failure !== undefined) throw mapNatsError(failure, `take rate-limit tokens for queue "${this.#queue.name}"`);
      return granted;
    } finally {
      if (batch) this.#taking = false;
    }
  }

  /** How long until the oldest token leaves the window (when the next one can be granted). */
  async waitMs(): Promise<number> {
    const full = this.#limit.perMs + this.#grace;
    try {
      const si = await this.#jsm.streams.info(this.#stream);
      if (si.state.messages === 0) return 5;
      const oldest = Date.parse(si.state.first_ts);
      return Math.min(full, Math.max(5, oldest + full - Date.now() + 2));
    } catch {
      return Math.min(full, 250);
    }
  }
}
