import type { NatsConnection } from "@nats-io/transport-node";
import {
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { ConfigError, JetqError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { readQueueSample } from "../telemetry/stats.ts";
import { listWorkers } from "../fleet/list.ts";

/**
 * @internal Queue history that outlives any browser tab: one roll-up per queue per bucket
 * (a minute by default) in the stream `JETQ_HISTORY`, kept `maxAgeMs` (8 days by default).
 *
 * Any number of processes may record at once (several dashboards, later workers): each writes
 * the bucket's roll-up with the msg id `jetq-hist:<queue>:<bucketMs>:<bucket start>`, so the
 * server's duplicate window keeps the first and drops the rest. A roll-up carries cumulative
 * counters (the stream's last sequence, dead letters ever stored), so whichever writer wins,
 * rates come out right as differences of two roll-ups; a bucket nobody recorded is a gap.
 */
export const HISTORY = {
  stream: "JETQ_HISTORY",
  subjectPrefix: "jetq.history.",
  /** Longest range shown (7 d) and a day of slack. */
  maxAgeMs: 8 * 24 * 3600_000,
  /** Covers the writers' clock skew and a late round: a roll-up written later than this is stored twice (readers keep the first). */
  duplicateWindowMs: 5 * 60_000,
} as const;

/** @internal One stored roll-up. */
export interface Rollup {
  /** Schema version. */
  v: 1;
  queue: string;
  /** Start of the bucket (epoch ms) and its length. */
  b: number;
  bms: number;
  /** When the figures were read (writer's clock, epoch ms). */
  t: number;
  /** Jobs ever stored in the queue's stream (its last sequence). */
  published: number;
  /** Dead letters ever stored. */
  deadLettered: number;
  /** Jobs stored now. */
  stored: number;
  pending: number;
  inFlight: number;
  /** Age of the oldest job not yet delivered (ms), 0 with none. */
  oldestWaitingMs: number;
  /** inFlight / maxAckPending, 0..1: how much of the credit window the workers use. */
  utilisation: number;
  /** Live workers of the queue (from their announcements; absent in roll-ups of older writers). */
  workers?: number;
  /** Their handlers in use over their capacity (sum of in flight / sum of concurrency, each worker's mean), 0..1; null with no worker. */
  busy?: number | null;
}

/** @internal A point of a history range: rates between two consecutive roll-ups. */
export interface HistoryRangePoint {
  /** Bucket start, epoch ms. */
  t: number;
  published: number;
  completed: number;
  failed: number;
  depth: number;
  oldestWaitingMs: number;
  utilisation: number;
  /** Workers' utilisation (null: no worker announced itself). */
  busy: number | null;
  workers: number | null;
  /** True when the previous bucket is missing: draw a gap before this point. */
  gap: boolean;
}

/** @internal Named ranges the dashboard offers, in ms. */
export const RANGES: Readonly<Record<string, number>> = Object.freeze({
  "15m": 15 * 60_000,
  "1h": 3600_000,
  "24h": 24 * 3600_000,
  "7d": 7 * 24 * 3600_000,
});

/** Points returned at most per range (7 days of minutes are averaged down to this). */
export const MAX_POINTS = 360;
/** Roll-ups read at most per request (7 days of minutes, plus duplicates written after the window). */
const MAX_READ = 12_000;

export function historySubject(queue: string): string {
  return `${HISTORY.subjectPrefix}${queue}`;
}

/** @internal Creates the history stream if it is missing (idempotent; an existing one is left as it is). */
export async function ensureHistoryStream(jsm: JetStreamManager): Promise<void> {
  try {
    await jsm.streams.info(HISTORY.stream);
    return;
  } catch (err) {
    if (apiCode(err) !== API.streamNotFound) throw mapNatsError(err, "read the history stream");
  }
  try {
    await jsm.streams.add({
      name: HISTORY.stream,
      subjects: [`${HISTORY.subjectPrefix}>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: HISTORY.maxAgeMs * 1_000_000,
      duplicate_window: HISTORY.duplicateWindowMs * 1_000_000,
      // A bound besides the age: 250 queues × 8 days of minutes.
      max_msgs: 250 * 8 * 1440,
      max_msg_size: 4096,
      allow_direct: true,
    });
  } catch (err) {
    // Another recorder created it first.
    if (/already in use|exists/i.test(String(err))) return;
    throw mapNatsError(err, "create the history stream");
  }
}

/** @internal Reads one queue's figures as a roll-up of the bucket starting at `bucket`. */
export async function readRollup(jsm: JetStreamManager, queue: Queue<unknown, unknown>, bucket: number, bucketMs: number): Promise<Rollup> {
  const { stats, totals } = await readQueueSample(jsm, queue);
  let oldestWaitingMs = 0;
  if (stats.pending > 0) {
    try {
      const ci = await jsm.consumers.info(queue.names.stream, queue.names.consumer);
      const next = ci.delivered.stream_seq + 1;
      const m = await jsm.direct.getMessage(queue.names.stream, { seq: next, next_by_subj: queue.names.subject });
      if (m) oldestWaitingMs = Math.max(0, Date.now() - m.time.getTime());
    } catch {
      // Taken meanwhile or not readable: the other figures still count.
    }
  }
  return {
    v: 1,
    queue: queue.name,
    b: bucket,
    bms: bucketMs,
    t: totals.t,
    published: totals.published,
    deadLettered: totals.deadLettered,
    stored: totals.stored,
    pending: stats.pending,
    inFlight: stats.inFlight,
    oldestWaitingMs,
    utilisation: stats.maxAckPending > 0 ? Math.min(1, stats.inFlight / stats.maxAckPending) : 0,
  };
}

/** @internal Workers and their utilisation per queue, from one bounded read of the announcements; undefined when it cannot be read. */
export async function fleetByQueue(nc: NatsConnection): Promise<Map<string, { workers: number; busy: number | null }> | undefined> {
  let list;
  try {
    list = await listWorkers(nc, { limit: 1000 });
  } catch {
    return undefined;
  }
  const acc = new Map<string, { workers: number; used: number; capacity: number }>();
  for (const w of list.workers) {
    const a = acc.get(w.queue) ?? { workers: 0, used: 0, capacity: 0 };
    a.workers++;
    a.used += w.utilization * w.concurrency;
    a.capacity += w.concurrency;
    acc.set(w.queue, a);
  }
  const out = new Map<string, { workers: number; busy: number | null }>();
  for (const [q, a] of acc) out.set(q, { workers: a.workers, busy: a.capacity > 0 ? Math.min(1, a.used / a.capacity) : null });
  return out;
}

/** @internal Options of {@link HistoryRecorder}. */
export interface RecorderOptions {
  /** The queues to record, read at each bucket (a function: the dashboard's list changes). */
  queues: () => Iterable<Queue<unknown, unknown>> | Promise<Iterable<Queue<unknown, unknown>>>;
  /** Bucket length. @default 60_000 */
  bucketMs?: number;
  /** Told about a failed round (the recorder carries on). */
  onError?: (err: Error) => void;
}

/**
 * @internal Writes one roll-up per queue per bucket, shortly after each bucket starts, until
 * {@link HistoryRecorder.close}. Runs in the dashboard process; a worker could run one too.
 */
export class HistoryRecorder {
  readonly #nc: NatsConnection;
  readonly #opts: RecorderOptions;
  readonly bucketMs: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #round: Promise<number> | undefined;
  #jsm: JetStreamManager | undefined;
  #js: JetStreamClient | undefined;
  #ensured = false;

  constructor(nc: NatsConnection, opts: RecorderOptions) {
    const bucketMs = opts.bucketMs ?? 60_000;
    if (!Number.isInteger(bucketMs) || bucketMs < 100 || bucketMs > 3600_000) {
      throw new ConfigError(`Expected \`bucketMs\` to be an integer from 100 to 3600000, got ${String(bucketMs)}`);
    }
    this.#nc = nc;
    this.#opts = opts;
    this.bucketMs = bucketMs;
  }

  /** Records the current bucket now, then at the start of every next one. */
  start(): void {
    if (this.#closed || this.#timer) return;
    void this.record().catch(() => {});
    this.#arm();
  }

  #arm(): void {
    if (this.#closed) return;
    const now = Date.now();
    // A little after the bucket starts, so writers with slightly different clocks agree on it.
    const wait = this.bucketMs - (now % this.bucketMs) + Math.min(1000, Math.floor(this.bucketMs / 10));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.record()
        .catch(() => {})
        .finally(() => this.#arm());
    }, wait);
    this.#timer.unref();
  }

  /** One round: a roll-up for each queue for the current bucket. Resolves with how many were written (new or duplicate). */
  record(): Promise<number> {
    this.#round ??= this.#record().finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  async #record(): Promise<number> {
    if (this.#closed || this.#nc.isClosed()) return 0;
    try {
      this.#jsm ??= await jetstreamManager(this.#nc);
      this.#js ??= jetstream(this.#nc);
      if (!this.#ensured) {
        await ensureHistoryStream(this.#jsm);
        this.#ensured = true;
      }
    } catch (err) {
      this.#opts.onError?.(err instanceof JetqError ? err : mapNatsError(err, "open the history stream"));
      return 0;
    }
    const now = Date.now();
    const bucket = now - (now % this.bucketMs);
    // Read beside the queues, not before them: a slow worker list must not make the figures late.
    const fleetRead = fleetByQueue(this.#nc);
    const jsm = this.#jsm;
    const js = this.#js;
    let written = 0;
    // Bounded: the dashboard watches at most MAX_QUEUES queues; four at a time.
    let queues: Queue<unknown, unknown>[];
    try {
      queues = [...(await this.#opts.queues())];
    } catch (err) {
      this.#opts.onError?.(err instanceof Error ? err : new Error(String(err)));
      return 0;
    }
    for (let i = 0; i < queues.length; i += 4) {
      await Promise.all(
        queues.slice(i, i + 4).map(async (q) => {
          try {
            const [plain, fleet] = await Promise.all([readRollup(jsm, q, bucket, this.bucketMs), fleetRead]);
            // Figures read after their bucket ended are not that bucket's: a late writer (a slow
            // round, a clock behind the others) leaves the bucket to the others, or to a gap. So
            // roll-ups in bucket order are in reading order too, and rates between them are right.
            if (plain.t >= bucket + this.bucketMs) return;
            const r: Rollup = fleet ? { ...plain, workers: fleet.get(q.name)?.workers ?? 0, busy: fleet.get(q.name)?.busy ?? null } : plain;
            await js.publish(historySubject(q.name), JSON.stringify(r), {
              msgID: `jetq-hist:${q.name}:${this.bucketMs}:${bucket}`,
              timeout: 5_000,
            });
            written++;
          } catch (err) {
            this.#opts.onError?.(err instanceof JetqError ? err : mapNatsError(err, `record the history of queue "${q.name}"`));
          }
        }),
      );
    }
    return written;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function parseRollup(v: unknown): Rollup | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  for (const k of ["b", "bms", "t", "published", "deadLettered", "stored", "pending", "inFlight", "oldestWaitingMs", "utilisation"]) {
    if (typeof o[k] !== "number" || !Number.isFinite(o[k])) return undefined;
  }
  return o as unknown as Rollup;
}

/**
 * @internal The roll-ups of `queue` stored since `sinceMs`, oldest first, one per bucket (the
 * first stored wins), at most {@link MAX_READ}. Empty when nothing was ever recorded.
 */
export async function readRollups(nc: NatsConnection, queue: string, sinceMs: number, deadlineMs = 10_000): Promise<Rollup[]> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  try {
    await jsm.streams.info(HISTORY.stream);
  } catch (err) {
    if (apiCode(err) === API.streamNotFound) return [];
    throw mapNatsError(err, "read the history stream");
  }
  // Nothing recorded in the range: answer at once (a fetch would wait for its expiry).
  try {
    const last = await jsm.direct.getMessage(HISTORY.stream, { last_by_subj: historySubject(queue) });
    if (!last || last.time.getTime() < sinceMs) return [];
  } catch (err) {
    if (apiCode(err) === API.noMessageFound) return [];
    throw mapNatsError(err, `read the history of queue "${queue}"`);
  }
  const out: Rollup[] = [];
  const seen = new Set<string>();
  let consumer;
  try {
    consumer = await js.consumers.get(HISTORY.stream, {
      filter_subjects: historySubject(queue),
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: new Date(sinceMs).toISOString(),
    });
  } catch (err) {
    throw mapNatsError(err, `read the history of queue "${queue}"`);
  }
  let read = 0;
  const deadline = Date.now() + deadlineMs;
  try {
    outer: while (read < MAX_READ && Date.now() < deadline) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 2_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        read++;
        let r: Rollup | undefined;
        try {
          r = parseRollup(m.json());
        } catch {
          r = undefined;
        }
        // The stream's start time is when a roll-up was stored; its bucket is what counts (a late writer's roll-up).
        if (r && r.b >= sinceMs - r.bms) {
          const key = `${r.bms}:${r.b}`;
          if (!seen.has(key)) {
            seen.add(key);
            out.push(r);
          }
        }
        if (m.info.pending === 0 || read >= MAX_READ) {
          batch.stop();
          break outer;
        }
      }
      if (got === 0) break;
    }
  } finally {
    await consumer.delete().catch(() => {});
  }
  return out.sort((a, b) => a.b - b.b);
}

/**
 * @internal Turns roll-ups (oldest first) into chart points: rates between consecutive buckets,
 * a gap where a bucket is missing, averaged down to at most `maxPoints` buckets of equal length.
 */
export function rangePoints(rollups: readonly Rollup[], maxPoints = MAX_POINTS): HistoryRangePoint[] {
  const raw: HistoryRangePoint[] = [];
  for (let i = 1; i < rollups.length; i++) {
    const a = rollups[i - 1]!;
    const b = rollups[i]!;
    const dt = (b.t - a.t) / 1000;
    if (!(dt > 0)) continue;
    // A stream re-created under the same name restarts its counters: no rate across it.
    if (b.published < a.published || b.deadLettered < a.deadLettered) continue;
    const published = b.published - a.published;
    const failed = b.deadLettered - a.deadLettered;
    const completed = Math.max(0, published - (b.stored - a.stored) - failed);
    raw.push({
      t: b.b,
      published: published / dt,
      completed: completed / dt,
      failed: failed / dt,
      depth: b.pending,
      oldestWaitingMs: b.oldestWaitingMs,
      utilisation: b.utilisation,
      busy: typeof b.busy === "number" ? b.busy : null,
      workers: typeof b.workers === "number" ? b.workers : null,
      gap: b.b - a.b > b.bms * 1.5,
    });
  }
  if (raw.length <= maxPoints) return raw;
  const per = Math.ceil(raw.length / maxPoints);
  const out: HistoryRangePoint[] = [];
  for (let i = 0; i < raw.length; i += per) {
    const group = raw.slice(i, i + per);
    const avg = (k: "published" | "completed" | "failed" | "depth" | "oldestWaitingMs" | "utilisation"): number =>
      group.reduce((s, p) => s + p[k], 0) / group.length;
    out.push({
      t: group.at(-1)!.t,
      published: avg("published"),
      completed: avg("completed"),
      failed: avg("failed"),
      depth: avg("depth"),
      oldestWaitingMs: Math.max(...group.map((p) => p.oldestWaitingMs)),
      utilisation: avg("utilisation"),
      busy: meanOf(group.map((p) => p.busy)),
      workers: meanOf(group.map((p) => p.workers)),
      gap: group.some((p) => p.gap),
    });
  }
  return out;
}

function meanOf(values: ReadonlyArray<number | null>): number | null {
  let sum = 0;
  let n = 0;
  for (const v of values) {
    if (v === null) continue;
    sum += v;
    n++;
  }
  return n === 0 ? null : sum / n;
}
