import type { NatsConnection } from "@nats-io/transport-node";
import { DiscardPolicy, type JetStreamClient, type JetStreamManager, RetentionPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";
import { ConfigError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import type { Queue, RateLimit } from "../queue/define.ts";

/** The grace's share of the window, and its least length (see {@link graceMs}). */
const GRACE_SHARE = 0.015;
const MIN_GRACE_MS = 15;

/**
 * @internal How long a token may wait for its job to start, and how much longer than the window
 * a token lives on the server. A job that starts at most GRACE after its token was asked for is
 * covered: every start within any window of `perMs` used a token that was still stored at the
 * window's end, and the stream stores at most `max`. The price is a rate up to GRACE/perMs below
 * the limit, as each token fills its place for `perMs` + GRACE: 1.5 % from 1 s windows up, 15 ms
 * at the least (3 % at 500 ms). A held token is spent only within the first two thirds of the
 * grace (SPEND); the last third covers the way from its use to the handler's first line.
 */
export function graceMs(r: RateLimit): number {
  // This was 5 %, at least 100 ms, and the rate ran 5-10 % below the limit. A batch of tokens and
  // the pull after it take 2-5 ms on loopback; a job that arrives past SPEND of the grace takes a token
  // of its own with the job in hand (one publish), and its batch token is given back. At 1.5 % with
  // the whole grace to spend, a loaded run once saw 201 starts in a 1 s window of a 200/s limit; at
  // 2 % with half of it to spend (10 ms of 20), the rate ran at 0.968-0.977 of the limit (the
  // ceiling is 1/1.02 = 0.980). Now a token is still spent within 10 ms of being asked for, and
  // its use is followed synchronously by the chain's start (Worker #begin), so the third left
  // covers lag that cannot fall between the two: the ceiling is 1/1.015 = 0.985.
  return Math.max(MIN_GRACE_MS, Math.ceil(r.perMs * GRACE_SHARE));
}

/**
 * @internal The grace a limiter stream was made with: its `max_age` less the window. A worker
 * uses the stream's own figure, so a stream provisioned by another jetq version (a longer or
 * shorter grace) is never outrun: a token is only spent while the server still counts it.
 */
export function graceOfStream(maxAgeNs: number, perMs: number): number {
  return Math.floor(maxAgeNs / 1_000_000) - perMs;
}

/**
 * @internal The window (`perMs`) a limiter stream's `max_age` (ms) was made for by {@link graceMs}:
 * the inverse of `perMs + graceMs`. A stream made by another jetq version, with another grace,
 * reads a little off; the stats that show it need no more.
 */
export function windowOfMaxAge(maxAgeMs: number): number {
  const guess = maxAgeMs <= MIN_GRACE_MS / GRACE_SHARE + MIN_GRACE_MS ? maxAgeMs - MIN_GRACE_MS : Math.round(maxAgeMs / (1 + GRACE_SHARE));
  for (let p = guess - 2; p <= guess + 2; p++) if (p >= 1 && p + graceMs({ max: 1, perMs: p }) === maxAgeMs) return p;
  return Math.max(1, Math.round(guess));
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

/** The part of the grace within which a held token may be spent (the rest covers the way to the handler). */
const SPEND = 2 / 3;

const REFUSED = new Set<number>([API.streamStoreFailed, API.maximumMessagesExceeded]);

/**
 * @internal A worker's side of a queue's rate limit. Tokens are taken in batches before pulling
 * (one pipelined publish per token, so a batch costs one round trip of waiting), kept with the
 * time they were asked for, and spent as jobs arrive; a token older than the grace is dropped and
 * given back (deleted from the stream).
 * Bounded: at most `concurrency` tokens held or asked for.
 */
export class RateLimiter {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #queue: Queue<unknown, unknown>;
  readonly #limit: RateLimit;
  #grace: number;
  readonly #subject: string;
  readonly #stream: string;
  /** Each held token: when it was asked for (oldest first) and its sequence in the limiter stream. */
  #held: Array<{ at: number; seq: number }> = [];
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

  /**
   * Fails with a clear error if the limiter stream was not provisioned or does not match the
   * queue's limit; takes the stream's grace (its `max_age` less the window).
   */
  async check(): Promise<void> {
    let cfg: StreamConfig;
    try {
      cfg = (await this.#jsm.streams.info(this.#stream)).config;
    } catch (err) {
      throw mapNatsError(err, `open the rate limiter of queue "${this.#queue.name}" (stream ${this.#stream}; provision the queue again with its rateLimit)`);
    }
    const grace = graceOfStream(cfg.max_age, this.#limit.perMs);
    if (!(grace > 0)) {
      // jetq never makes such a stream: tokens that leave before the window ends cannot keep the limit.
      throw new ConfigError(
        `open the rate limiter of queue "${this.#queue.name}": stream ${this.#stream} keeps tokens for ${Math.floor(cfg.max_age / 1_000_000)} ms, not longer than the rateLimit's window of ${this.#limit.perMs} ms. Provision the queue again (provisionQueue(nc, queue, { update: true })).`,
      );
    }
    this.#grace = grace;
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

  /** The worker stops: every held token is given back (none will cover a start). */
  giveBack(): void {
    this.#drop(Number.POSITIVE_INFINITY);
  }

  /**
   * Drops the tokens too old to cover a start, and gives them back: a token that covered no start
   * is deleted from the stream, so its place in the window is free again at once rather than for
   * the rest of `perMs` (deleting it cannot let more starts in than the limit, it counts none).
   */
  #drop(now: number): void {
    let i = 0;
    // A third of the grace to reach the job's handler: spent later than SPEND of the grace, a token
    // could cover a handler that starts past the grace (event-loop lag between the token's use
    // and the handler's first line).
    while (i < this.#held.length && now - this.#held[i]!.at > this.#grace * SPEND) i++;
    if (i === 0) return;
    for (const t of this.#held.splice(0, i)) {
      // Best effort: a token not given back leaves the window by its max_age as before.
      this.#jsm.streams.deleteMessage(this.#stream, t.seq, false).catch(() => {});
    }
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
        if (r.status === "fulfilled") {
          granted++;
          this.#held.push({ at, seq: r.value.seq });
        } else if (!REFUSED.has(apiCode(r.reason) ?? 0)) failure ??= r.reason;
      }
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
