import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { ConfigError, ConnectionError, JetqError, TimeoutError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import { defineQueue, type Queue } from "../queue/define.ts";
import { listQueues } from "../queue/list.ts";
import { type QueueRates, type QueueStats, type QueueTotals, ratesBetween, readQueueSample } from "../telemetry/stats.ts";

/** @internal One point of a queue's history: its totals when read. */
export type Sample = QueueTotals;

/** @internal Per-second rates over an interval. */
export type Rates = QueueRates;

/** @internal One point of the throughput chart. */
export interface HistoryPoint extends Rates {
  /** End of the interval (ms since the epoch). */
  t: number;
  /** Length of the interval the rates are over, in ms. */
  ms: number;
  depth: number;
}

/** @internal What the overview shows for one queue. */
export interface QueueSnapshot {
  name: string;
  stats: QueueStats | null;
  /** Why `stats` is null (the queue vanished, the server is unreachable...). */
  error: string | null;
  /** Rates averaged over the last few samples; null until two samples exist. */
  rates: Rates | null;
  history: HistoryPoint[];
  /** All-time figures from the streams' counters (a re-created stream starts again); null when unread. */
  totals: { published: number; completed: number; deadLettered: number } | null;
}

/** @internal A full overview at one instant. */
export interface Snapshot {
  /** When these figures were read (ms since the epoch). */
  at: number;
  queues: QueueSnapshot[];
  /**
   * Set when the overview as a whole is in doubt: queue discovery failed, the NATS connection
   * is lost, or the server has not answered for a while (then `stale` is true as well).
   */
  error: string | null;
  /** True when these are the last figures read, served again because NATS does not answer. */
  stale: boolean;
  /**
   * The NATS link as this dashboard sees it: `ok`, `stale` (the server has not answered for a
   * while) or `down` (the connection is lost or closed, or no queue could be read for want of it).
   * The page's badge shows this, not merely whether the browser reaches the dashboard.
   */
  nats: "ok" | "stale" | "down";
}

/** @internal Rates over the whole window of `samples` (oldest first), or null with fewer than two. */
export function averageRates(samples: readonly Sample[], window: number): Rates | null {
  if (samples.length < 2) return null;
  const recent = samples.slice(-Math.max(2, window + 1));
  const sum: Rates = { published: 0, completed: 0, failed: 0 };
  let seconds = 0;
  for (let i = 1; i < recent.length; i++) {
    const a = recent[i - 1]!;
    const b = recent[i]!;
    const dt = (b.t - a.t) / 1000;
    if (!(dt > 0)) continue;
    const r = ratesBetween(a, b);
    sum.published += r.published * dt;
    sum.completed += r.completed * dt;
    sum.failed += r.failed * dt;
    seconds += dt;
  }
  if (seconds === 0) return null;
  return { published: sum.published / seconds, completed: sum.completed / seconds, failed: sum.failed / seconds };
}

/** @internal A bounded ring of samples of one queue. */
export class History {
  readonly #max: number;
  readonly #samples: Sample[] = [];
  readonly #depth: number[] = [];
  constructor(max: number) {
    this.#max = max;
  }
  push(s: Sample, depth: number): void {
    const last = this.#samples.at(-1);
    // A stream recreated under the same name starts its sequences again: old points would
    // turn into one huge negative interval, so start the history over.
    if (last && (s.published < last.published || s.deadLettered < last.deadLettered)) {
      this.#samples.length = 0;
      this.#depth.length = 0;
    }
    this.#samples.push(s);
    this.#depth.push(depth);
    if (this.#samples.length > this.#max) {
      this.#samples.shift();
      this.#depth.shift();
    }
  }
  get samples(): readonly Sample[] {
    return this.#samples;
  }
  points(): HistoryPoint[] {
    const out: HistoryPoint[] = [];
    for (let i = 1; i < this.#samples.length; i++) {
      const b = this.#samples[i]!;
      const a = this.#samples[i - 1]!;
      out.push({ t: b.t, ms: b.t - a.t, depth: this.#depth[i]!, ...ratesBetween(a, b) });
    }
    return out;
  }
}

/** @internal Most queues one dashboard watches; beyond it discovery keeps the first ones by name. */
export const MAX_QUEUES = 200;

/** @internal Options of {@link Sampler}. */
export interface SamplerOptions {
  queues: ReadonlyArray<string | Queue<unknown, unknown>> | undefined;
  refreshMs: number;
  historySize: number;
  /** Re-run discovery every this many milliseconds. */
  discoverEveryMs: number;
}

/** @internal Turns a queue option (a name or a definition) into a definition. */
export function toQueue(q: string | Queue<unknown, unknown>): Queue<unknown, unknown> {
  if (typeof q === "string") return defineQueue({ name: q }) as Queue<unknown, unknown>;
  if (typeof q === "object" && q !== null && typeof q.name === "string" && q.names) return q;
  throw new ConfigError(`Expected each of \`queues\` to be a queue name or a defineQueue() result, got ${typeof q}`);
}

/**
 * @internal Reads every queue's figures on a timer, keeps a bounded history of each, and
 * tells listeners after every round. It runs only while someone is looking: `touch()` (any
 * request) keeps it alive for `idleMs`, and an open event stream keeps it alive for good.
 */
export class Sampler {
  readonly #nc: NatsConnection;
  readonly #opts: SamplerOptions;
  readonly #fixed: Map<string, Queue<unknown, unknown>> | undefined;
  readonly #originals = new Set<string>();
  readonly #histories = new Map<string, History>();
  readonly #listeners = new Set<(s: Snapshot) => void>();
  #queues = new Map<string, Queue<unknown, unknown>>();
  #discoveredAt = 0;
  #discoveryError: string | null = null;
  #discovering: Promise<void> | undefined;
  #jsm: JetStreamManager | undefined;
  #snapshot: Snapshot | undefined;
  #round: Promise<Snapshot> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastTouch = 0;
  #closed = false;
  /** Why the connection cannot serve figures now (lost, closed), or null. */
  #linkError: string | null = null;
  #following = false;
  #status: { stop?: () => void } | undefined;
  static readonly idleMs = 60_000;

  constructor(nc: NatsConnection, opts: SamplerOptions) {
    this.#nc = nc;
    this.#opts = opts;
    if (opts.queues) {
      this.#fixed = new Map();
      for (const q of opts.queues) {
        const def = toQueue(q);
        this.#fixed.set(def.name, def);
        // A definition is taken as given; a bare name gets the features its streams show.
        if (typeof q !== "string") this.#originals.add(def.name);
      }
      this.#queues = this.#fixed;
    }
  }

  /** The queues shown now, discovered again when due (the history recorder runs with no page open). */
  async queues(): Promise<Iterable<Queue<unknown, unknown>>> {
    await this.#rediscover(false);
    return this.#queues.values();
  }

  /** The queue called `name`, if the dashboard shows it (the only queues actions may touch). */
  async queue(name: string): Promise<Queue<unknown, unknown> | undefined> {
    if (!this.#fixed && !this.#queues.has(name) && (this.#discovering !== undefined || Date.now() - this.#discoveredAt > 1_000)) {
      // A queue created since the last discovery: look again before answering 404.
      await this.#rediscover(true).catch(() => {});
    }
    return this.#queues.get(name);
  }

  /** Marks the dashboard as in use and starts sampling if it was asleep. */
  touch(): void {
    this.#lastTouch = Date.now();
    if (!this.#following && !this.#closed) {
      this.#following = true;
      this.#followConnection();
    }
    this.#schedule();
  }

  /**
   * The latest snapshot, reading one now if there is none or it is older than two rounds. A read
   * that takes longer than {@link Sampler.waitMs} (a frozen or unreachable server) is not waited
   * for: the last snapshot is served again, marked stale and saying since when.
   */
  async snapshot(): Promise<Snapshot> {
    this.touch();
    const s = this.#snapshot;
    if (s && Date.now() - s.at < this.#opts.refreshMs * 2 && !this.#linkError) return s;
    const round = this.#sample();
    if (!s) return round;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.waitMs);
    });
    try {
      return (await Promise.race([round, late])) ?? this.#stale(s);
    } finally {
      clearTimeout(timer);
    }
  }

  /** How long a request waits for a round before it gets the last snapshot, marked stale. */
  get waitMs(): number {
    return Math.max(1_000, this.#opts.refreshMs);
  }

  #stale(s: Snapshot): Snapshot {
    const ago = Math.max(1, Math.round((Date.now() - s.at) / 1000));
    const why = this.#linkError ?? "NATS has not answered";
    return {
      ...s,
      stale: true,
      nats: this.#linkError ? "down" : "stale",
      error: `${why}; these figures are ${ago} s old (read at ${new Date(s.at).toISOString()}).`,
    };
  }

  /** Keeps {@link Sampler.#linkError} current from the connection's status. */
  #followConnection(): void {
    const nc = this.#nc;
    void nc.closed().then((err) => {
      this.#linkError = `The NATS connection is closed${err ? ` (${err.message})` : ""}`;
      this.#notifyStale();
    });
    const status = nc.status() as AsyncIterable<{ type: string }> & { stop?: () => void };
    this.#status = status;
    void (async () => {
      for await (const st of status) {
        if (st.type === "disconnect") {
          this.#linkError = "Lost the connection to NATS; reconnecting";
          this.#notifyStale();
        } else if (st.type === "reconnect") {
          this.#linkError = null;
        }
      }
    })().catch(() => {});
  }

  /** Tells open pages at once that their figures are no longer current. */
  #notifyStale(): void {
    if (this.#closed || !this.#snapshot) return;
    this.#emit(this.#stale(this.#snapshot));
  }

  #emit(snap: Snapshot): void {
    for (const fn of this.#listeners) {
      try {
        fn(snap);
      } catch {
        // A listener is a network write; its failure is handled where the stream is closed.
      }
    }
  }

  /** Subscribes to every round; returns the unsubscribe function. */
  subscribe(fn: (s: Snapshot) => void): () => void {
    this.#listeners.add(fn);
    this.touch();
    return () => {
      this.#listeners.delete(fn);
    };
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  close(): void {
    this.#closed = true;
    this.#status?.stop?.();
    this.#status = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
  }

  #schedule(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed) return;
      const idle = this.#listeners.size === 0 && Date.now() - this.#lastTouch > Sampler.idleMs;
      if (idle) return; // asleep until the next request
      // Open pages learn that a round is late (a frozen server) instead of showing old figures as live.
      const late = setTimeout(() => this.#notifyStale(), this.waitMs);
      late.unref();
      void this.#sample().finally(() => {
        clearTimeout(late);
        this.#schedule();
      });
    }, this.#opts.refreshMs);
    // An embedded dashboard must not keep its host process alive.
    this.#timer.unref();
  }

  async #manager(): Promise<JetStreamManager> {
    this.#jsm ??= await jetstreamManager(this.#nc);
    return this.#jsm;
  }

  /**
   * The streams a queue found by name has besides its own (`_STATE` for results, `_HELD` for
   * scheduling): a queue given or found by name alone would otherwise lose its job lookup,
   * delayed jobs and schedules. One listing of stream names per discovery.
   */
  async #streamNames(): Promise<Set<string>> {
    const out = new Set<string>();
    for await (const name of (await this.#manager()).streams.names()) {
      if (name.startsWith("JETQ_")) out.add(name);
      if (out.size > 40 * MAX_QUEUES) break;
    }
    return out;
  }

  /** `name` as a definition with the features its streams show. */
  #defined(name: string, streams: Set<string>, given?: Queue<unknown, unknown>): Queue<unknown, unknown> {
    const plain = given ?? toQueue(name);
    const results = !plain.results && streams.has(plain.names.stateStream);
    const scheduling = !plain.scheduling && streams.has(plain.names.heldStream);
    if (!results && !scheduling) return plain;
    const was = this.#queues.get(name);
    if (was && (was.results !== undefined || !results) && (was.scheduling || !scheduling)) return was;
    return defineQueue({
      name,
      ...(results || plain.results ? { results: { keepMs: plain.results?.keepMs ?? 86_400_000 } } : {}),
      ...(scheduling || plain.scheduling ? { scheduling: true } : {}),
    }) as Queue<unknown, unknown>;
  }

  /** Fixed queues given by name: look for their features now and then. */
  /**
   * Discovery when due (or `force`d), shared by every caller: a round, the history recorder and a
   * lookup of an unknown queue never run it twice at once, and none reads the queue list while a
   * discovery is still filling it.
   */
  #rediscover(force: boolean): Promise<void> {
    if (this.#discovering) return this.#discovering;
    if (!force && Date.now() - this.#discoveredAt < this.#opts.discoverEveryMs) return Promise.resolve();
    this.#discovering = (this.#fixed ? this.#detectFixed() : this.#discover()).finally(() => {
      this.#discovering = undefined;
    });
    return this.#discovering;
  }

  async #detectFixed(): Promise<void> {
    this.#discoveredAt = Date.now();
    const streams = await this.#streamNames().catch(() => undefined);
    if (!streams || !this.#fixed) return;
    const next = new Map<string, Queue<unknown, unknown>>();
    for (const [name, q] of this.#fixed) next.set(name, this.#originals.has(name) ? q : this.#defined(name, streams));
    this.#queues = next;
  }

  async #discover(): Promise<void> {
    this.#discoveredAt = Date.now();
    try {
      const names = await listQueues(this.#nc, { jsm: await this.#manager(), max: MAX_QUEUES });
      const streams = await this.#streamNames();
      const next = new Map<string, Queue<unknown, unknown>>();
      for (const name of names) next.set(name, this.#defined(name, streams));
      this.#queues = next;
      for (const name of this.#histories.keys()) if (!next.has(name)) this.#histories.delete(name);
      this.#discoveryError = null;
    } catch (err) {
      this.#discoveryError = err instanceof JetqError ? err.message : mapNatsError(err, "list queues").message;
    }
  }

  /** One round; concurrent callers share it, so rounds never overlap. */
  #sample(): Promise<Snapshot> {
    this.#round ??= this.#readAll().finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  async #readAll(): Promise<Snapshot> {
    await this.#rediscover(false);
    const queues = [...this.#queues.values()];
    const out = await Promise.all(queues.map((q) => this.#readOne(q)));
    const read = out.some((q) => q.stats !== null);
    // Figures that could not be read are not figures: with none read and the link down, say so once for the page.
    const error = this.#discoveryError ?? (!read && this.#linkError ? this.#linkError : null);
    const unreachable = out.length > 0 && !read && out.every((q) => q.unreachable);
    const nats = this.#linkError || unreachable ? "down" : "ok";
    const snap: Snapshot = { at: Date.now(), queues: out.map(({ unreachable: _, ...q }) => q), error, stale: false, nats };
    // A round that read nothing keeps the last good snapshot for the stale view.
    if (read || !this.#snapshot || out.length === 0) this.#snapshot = snap;
    this.#emit(snap);
    return snap;
  }

  async #readOne(q: Queue<unknown, unknown>): Promise<QueueSnapshot & { unreachable?: boolean }> {
    let h = this.#histories.get(q.name);
    if (!h) {
      h = new History(this.#opts.historySize);
      this.#histories.set(q.name, h);
    }
    try {
      const { stats, totals } = await readQueueSample(await this.#manager(), q);
      h.push(totals, stats.pending);
      const all = { published: totals.published, deadLettered: totals.deadLettered, completed: Math.max(0, totals.published - totals.stored - totals.deadLettered) };
      return { name: q.name, stats, error: null, rates: averageRates(h.samples, 3), history: h.points(), totals: all };
    } catch (err) {
      const e = err instanceof JetqError ? err : mapNatsError(err, `read queue "${q.name}"`);
      const unreachable = e instanceof ConnectionError || e instanceof TimeoutError;
      return { name: q.name, stats: null, error: e.message, rates: null, history: h.points(), totals: null, unreachable };
    }
  }
}
