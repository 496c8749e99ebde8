import { createHash } from "node:crypto";
import { DiscardPolicy, RetentionPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";

/** The version of jetq a worker announces (and `jetq --version` prints). */
export const JETQ_VERSION = "0.1.0";

/**
 * @internal The stream every worker of every queue announces itself in (per JetStream domain).
 * Not `JETQ_<something>`: a queue's own streams are named so, and a queue may be called anything.
 */
export const FLEET_STREAM = "JETQ-WORKERS";
/** @internal Subject prefix of announcements: `jetq.workers.<queue>.<worker key>`. */
export const FLEET_SUBJECT = "jetq.workers";

/**
 * @internal How long an announcement lives: a worker that stops announcing (killed, hung, cut off)
 * is gone from the list at most this long after its last announcement. Three missed beats at the
 * default interval.
 */
export const FLEET_TTL_MS = 15_000;
/** @internal Default announcement interval. */
export const ANNOUNCE_EVERY_MS = 5_000;
/** @internal Running jobs listed in one announcement at most (the count is always exact). */
export const MAX_LISTED_JOBS = 100;
/** @internal Longest job id kept in an announcement (longer ones are cut, marked with `…`). */
export const MAX_ID_CHARS = 200;
/** @internal Workers the store keeps at most: beyond it the oldest announcements are dropped. */
export const FLEET_MAX_WORKERS = 10_000;
/** @internal Largest announcement the store accepts (100 jobs of 200-character ids fit). */
export const FLEET_MAX_MSG_BYTES = 64 * 1024;

/**
 * @internal The fleet stream: one message per worker subject (the latest announcement), each
 * expiring `FLEET_TTL_MS` after it was stored, in memory (nothing in it outlives its TTL anyway).
 * Bounded in count and bytes whatever the fleet does.
 */
export function fleetStreamConfig(): Partial<StreamConfig> & { name: string } {
  return {
    name: FLEET_STREAM,
    description: "jetq workers: one announcement per live worker, expiring when it stops announcing",
    subjects: [`${FLEET_SUBJECT}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.Memory,
    max_msgs_per_subject: 1,
    max_age: FLEET_TTL_MS * 1_000_000,
    // The server refuses a duplicate window longer than max_age; announcements carry no msg id.
    duplicate_window: 1_000 * 1_000_000,
    max_msgs: FLEET_MAX_WORKERS,
    max_bytes: FLEET_MAX_WORKERS * 4 * 1024,
    max_msg_size: FLEET_MAX_MSG_BYTES,
    discard: DiscardPolicy.Old,
    num_replicas: 1,
    allow_direct: true,
  };
}

/** @internal The subject token of a worker id (`host:pid:random` may hold dots): a hash. */
export function workerKey(workerId: string): string {
  return createHash("sha256").update(workerId).digest("base64url").slice(0, 16);
}

/** @internal The subject a worker of `queue` announces on. */
export function workerSubject(queue: string, workerId: string): string {
  return `${FLEET_SUBJECT}.${queue}.${workerKey(workerId)}`;
}

/** @internal One running job as announced. */
export interface AnnouncedJob {
  id: string;
  seq: number;
  attempt: number;
  /** Epoch ms the worker took the delivery. */
  since: number;
}

/** @internal An announcement, as stored (JSON). */
export interface Announcement {
  v: 1;
  id: string;
  queue: string;
  host: string;
  pid: number;
  version: string;
  concurrency: number;
  inFlight: number;
  utilization: number;
  startedAt: number;
  everyMs: number;
  paused: boolean;
  jobs: AnnouncedJob[];
}

const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const str = (v: unknown): v is string => typeof v === "string";

/** @internal Reads a stored announcement; undefined when it is not one (a hand-made message). */
export function parseAnnouncement(v: unknown): Announcement | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (o.v !== 1 || !str(o.id) || !str(o.queue) || !str(o.host) || !num(o.pid) || !num(o.concurrency) || !num(o.inFlight) || !num(o.startedAt)) return undefined;
  const jobs: AnnouncedJob[] = [];
  if (Array.isArray(o.jobs)) {
    for (const j of o.jobs.slice(0, MAX_LISTED_JOBS) as unknown[]) {
      const r = j as Record<string, unknown> | null;
      if (r && str(r.id) && num(r.seq) && num(r.attempt) && num(r.since)) jobs.push({ id: r.id, seq: r.seq, attempt: r.attempt, since: r.since });
    }
  }
  return {
    v: 1,
    id: o.id,
    queue: o.queue,
    host: o.host,
    pid: o.pid,
    version: str(o.version) ? o.version : "unknown",
    concurrency: o.concurrency,
    inFlight: o.inFlight,
    utilization: num(o.utilization) ? o.utilization : 0,
    startedAt: o.startedAt,
    everyMs: num(o.everyMs) ? o.everyMs : ANNOUNCE_EVERY_MS,
    paused: o.paused === true,
    jobs,
  };
}
