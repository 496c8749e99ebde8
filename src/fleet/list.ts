import type { NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { ConfigError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { describe } from "../queue/define.ts";
import { domainOf } from "../transport/api.ts";
import { FLEET_STREAM, FLEET_SUBJECT, FLEET_TTL_MS, parseAnnouncement } from "./store.ts";

/** A job a worker is running, as its last announcement says. */
export interface RunningJobInfo {
  /** The job id. */
  id: string;
  /** The job's sequence in the queue's stream. */
  seq: number;
  /** The attempt it runs, from 1. */
  attempt: number;
  /** When the worker took it (this delivery). */
  since: Date;
}

/** One live worker, as {@link listWorkers} reports it (from its latest announcement). */
export interface WorkerInfo {
  /** The worker's id, `host:pid:random` (as in ledger records and dead letters). */
  id: string;
  /** The queue it serves. */
  queue: string;
  /** Host name of its process. */
  host: string;
  /** Process id. */
  pid: number;
  /** jetq version of its process. */
  version: string;
  /** Handlers it runs at once at most. */
  concurrency: number;
  /** Handlers running at its last announcement. */
  inFlight: number;
  /** Mean of in flight / concurrency over its last announcement interval, 0 to 1. */
  utilization: number;
  /** When the worker started. */
  startedAt: Date;
  /** When the server stored its latest announcement. */
  lastSeenAt: Date;
  /** How often it announces itself, in ms. */
  everyMs: number;
  /** Whether its queue was paused for it. */
  paused: boolean;
  /** The jobs it runs, at most 100 of them (`inFlight` is the full count), longest running first. */
  jobs: RunningJobInfo[];
}

/** Options of {@link listWorkers}. */
export interface ListWorkersOptions {
  /** Only the workers of this queue (its name, or its definition). @default every queue */
  queue?: string | { readonly name: string; readonly domain?: string };
  /** Workers returned at most, 1 to 1000. @default 100 */
  limit?: number;
  /** JetStream domain of the workers' queues. @default the queue's `domain`, else the connection's own JetStream */
  domain?: string;
}

/** What {@link listWorkers} returns: a bounded page and the count of all live workers that match. */
export interface WorkerList {
  /** At most `limit` workers, sorted by queue, host, pid. */
  workers: WorkerInfo[];
  /** Live workers that match, including those beyond `limit`. */
  total: number;
}

const QUEUE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** A fetch that got fewer messages than the consumer said it had ends after this. */
const FETCH_EXPIRES_MS = 1_000;

/**
 * The live workers (of one queue, or all), from the announcements every {@link Worker} makes
 * every few seconds (option `announce`). A worker that stops is removed at once; one that dies
 * or hangs disappears at most 15 s after its last announcement. Bounded: at most `limit` records
 * are read, whatever the size of the fleet; `total` counts the rest.
 *
 * @example
 * ```ts
 * const { workers, total } = await listWorkers(nc, { queue: "emails" });
 * for (const w of workers) console.log(w.host, w.pid, `${w.inFlight}/${w.concurrency}`);
 * ```
 * @throws {@link ConfigError} a bad `queue` or `limit`.
 * @throws {@link ConnectionError} / {@link TimeoutError} the server could not be asked.
 */
export async function listWorkers(nc: NatsConnection, options: ListWorkersOptions = {}): Promise<WorkerList> {
  const limit = options.limit ?? 100;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new ConfigError(`Expected \`limit\` to be an integer from 1 to 1000, got ${describe(limit)}`);
  }
  const q = options.queue;
  const name = typeof q === "string" ? q : q?.name;
  if (q !== undefined && (typeof name !== "string" || !QUEUE_NAME.test(name))) {
    throw new ConfigError(`Expected \`queue\` to be a queue name (letters, digits, - and _) or a queue definition, got ${describe(typeof q === "string" ? q : name)}`);
  }
  const domain = options.domain ?? (typeof q === "object" ? domainOf(q) : undefined);
  const js = domain === undefined ? {} : { domain };
  const what = name === undefined ? "list the workers" : `list the workers of queue "${name}"`;
  try {
    const jsm = await jetstreamManager(nc, { ...js });
    let ci;
    try {
      // Last per subject = the latest announcement of each worker; num_pending counts them all.
      ci = await jsm.consumers.add(FLEET_STREAM, {
        ack_policy: AckPolicy.None,
        deliver_policy: DeliverPolicy.LastPerSubject,
        filter_subject: name === undefined ? `${FLEET_SUBJECT}.>` : `${FLEET_SUBJECT}.${name}.*`,
        inactive_threshold: 10_000 * 1_000_000,
        mem_storage: true,
        num_replicas: 1,
      });
    } catch (err) {
      // No worker ever announced itself here.
      if (apiCode(err) === API.streamNotFound) return { workers: [], total: 0 };
      throw err;
    }
    let total = ci.num_pending;
    const workers: WorkerInfo[] = [];
    try {
      const want = Math.min(limit, total);
      if (want > 0) {
        const consumer = await jetstream(nc, { ...js }).consumers.get(FLEET_STREAM, ci.name);
        const batch = await consumer.fetch({ max_messages: want, expires: FETCH_EXPIRES_MS });
        const now = Date.now();
        let seen = 0;
        for await (const m of batch) {
          seen++;
          const storedAt = Math.floor(m.info.timestampNanos / 1e6);
          let a;
          try {
            a = parseAnnouncement(m.json());
          } catch {
            a = undefined;
          }
          // A record past its TTL that the server has not dropped yet is a dead worker.
          if (!a || now - storedAt > FLEET_TTL_MS) total--;
          else workers.push(infoOf(a, storedAt));
          if (seen >= want || m.info.pending === 0) break;
        }
      }
    } finally {
      jsm.consumers.delete(FLEET_STREAM, ci.name).catch(() => {
        // it expires on its own after inactive_threshold
      });
    }
    workers.sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : a.host < b.host ? -1 : a.host > b.host ? 1 : a.pid - b.pid || (a.id < b.id ? -1 : 1)));
    return { workers, total: Math.max(total, workers.length) };
  } catch (err) {
    throw mapNatsError(err, what);
  }
}

function infoOf(a: NonNullable<ReturnType<typeof parseAnnouncement>>, storedAt: number): WorkerInfo {
  return {
    id: a.id,
    queue: a.queue,
    host: a.host,
    pid: a.pid,
    version: a.version,
    concurrency: a.concurrency,
    inFlight: a.inFlight,
    utilization: a.utilization,
    startedAt: new Date(a.startedAt),
    lastSeenAt: new Date(storedAt),
    everyMs: a.everyMs,
    paused: a.paused,
    jobs: a.jobs.map((j) => ({ id: j.id, seq: j.seq, attempt: j.attempt, since: new Date(j.since) })).sort((x, y) => x.since.getTime() - y.since.getTime()),
  };
}
